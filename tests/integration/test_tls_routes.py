"""TLS on listeners beyond termination: routes on the server name (`match.sni`) and on the
client certificate, the identity sent upstream, strict SNI, handshake metrics and timeouts,
certificate expiry, the admin listener over TLS, ticket-key rotation and hand-over on a
graceful upgrade, and the lesson 21 example. Certificates come from tls_certs.CertFactory,
clients from test_tls's helpers."""
import socket
import ssl
import subprocess
import types

import pytest

from helpers import free_port
from test_tls import client_ctx, tls_connect
from tls_certs import CertFactory, openssl


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    f = CertFactory(tmp_path_factory.mktemp("tls-routes"))
    n = types.SimpleNamespace(factory=f)
    n.ca = f.ca("ca", cn="routes test CA")
    n.server = f.server("server", n.ca, ["a.test", "b.test", "x.w.test"], key="ec")
    n.client = f.leaf("client", n.ca, ["DNS:client.acme.test", "URI:spiffe://acme/one"],
                      key="ec", cn="client one", org="acme", usage="client")
    fp = openssl("x509", "-in", n.client.cert, "-noout", "-fingerprint", "-sha256")
    n.client_fingerprint = fp.split("=", 1)[1].strip().replace(":", "").lower()
    n.client_serial = openssl("x509", "-in", n.client.cert, "-noout", "-serial"
                              ).split("=", 1)[1].strip().upper()
    return n


@pytest.fixture(scope="module")
def cert(pki):
    """(certificate, key, CA) paths: the listener's certificate (a.test, b.test, x.w.test),
    its key, and the CA clients verify it with."""
    return pki.server.cert, pki.server.key, pki.ca.cert


def fetch(port, ca, sni="a.test", host="x", client=None, path="/", extra=b"", version=None):
    """The raw bytes of one request over TLS (Connection: close), read to the end. @ca and
    @client are tls_certs.Cert objects or certificate paths."""
    if not hasattr(ca, "cert"):
        ca = types.SimpleNamespace(cert=ca)
    ctx = client_ctx(ca=ca, cert=client, version=version)
    with tls_connect(port, ctx=ctx, server_hostname=sni) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n".encode()
                  + extra + b"\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def get_over_tls(port, ca, sni, host="x"):
    return fetch(port, ca, sni=sni, host=host)


def test_match_sni(cairn, cert):
    c_pem, k_pem, ca = cert
    tls_port, plain_port = free_port(), free_port()
    cfg = {
        "server": {"workers": 1},
        "listeners": [{"listen": f"127.0.0.1:{tls_port}",
                       "tls": {"cert": str(c_pem), "key": str(k_pem)}},
                      {"listen": f"127.0.0.1:{plain_port}"}],
        "routes": [
            {"match": {"sni": "a.test"}, "static": {"status": 200, "body": "route a\n"}},
            {"match": {"sni": ["*.w.test"]}, "static": {"status": 200, "body": "route w\n"}},
            {"static": {"status": 200, "body": "route default\n"}},
        ],
    }
    c = cairn(cfg)
    assert get_over_tls(tls_port, ca, "a.test").endswith(b"route a\n")
    assert get_over_tls(tls_port, ca, "x.w.test").endswith(b"route w\n")
    assert get_over_tls(tls_port, ca, "b.test").endswith(b"route default\n")
    # The Host header does not stand in for the SNI.
    assert get_over_tls(tls_port, ca, "b.test", host="a.test").endswith(b"route default\n")
    with socket.create_connection(("127.0.0.1", plain_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.endswith(b"route default\n"), data


def metric(admin_port, name, **labels):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for ln in text.splitlines():
        if ln.startswith(f"{name}{{{want}}} "):
            return float(ln.split()[-1])
    raise AssertionError(f"no {name}{{{want}}} in /metrics")


def test_tls_handshake_metrics(cairn, cert):
    """cairn_tls_handshakes_total{listener,result} and cairn_tls_resumed_total{listener}."""
    c_pem, k_pem, ca = cert
    port = free_port()
    c = cairn({"server": {"workers": 1},
               "listeners": [{"listen": f"127.0.0.1:{port}", "name": "secure",
                              "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
               "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # a session id / ticket Python can reuse
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            sess = s.session
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test", session=sess) as s:
            assert s.session_reused, "the second connection did not resume"
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: plain\r\n\r\n")  # not a ClientHello
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    import time
    deadline = time.monotonic() + 3
    while metric(c.admin_port, "cairn_tls_handshakes_total", listener="secure",
                 result="failed") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(c.admin_port, "cairn_tls_handshakes_total", listener="secure", result="ok") == 2
    assert metric(c.admin_port, "cairn_tls_handshakes_total", listener="secure",
                  result="failed") == 1
    assert metric(c.admin_port, "cairn_tls_resumed_total", listener="secure") == 1


def test_certificate_expiring_soon_is_warned(cairn, pki):
    soon = pki.factory.server("soon", pki.ca, ["soon.test"], key="ec", days=5)
    port = free_port()
    c = cairn({"listeners": [{"listen": f"127.0.0.1:{port}",
                              "tls": {"cert": str(soon.cert), "key": str(soon.key)}}],
               "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    assert f"listener 127.0.0.1:{port}: a TLS certificate expires in" in c.stderr_text()


def mtls_listener(pki, port, verify="optional"):
    return {"listen": f"127.0.0.1:{port}",
            "tls": {"cert": str(pki.server.cert), "key": str(pki.server.key),
                    "client_ca": str(pki.ca.cert), "client_verify": verify}}


def test_client_certificate_forwarded_in_configured_headers(cairn, origin, pki):
    o = origin()
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [mtls_listener(pki, port)],
           "upstreams": {"o": {"peers": [{"address": o.address}]}},
           "routes": [{"upstream": "o",
                       "client_cert_headers": {"subject": "X-Client-Subject",
                                               "san": "X-Client-SAN",
                                               "fingerprint": "X-Client-Fingerprint",
                                               "serial": "X-Client-Serial"}}]})
    forged = b"X-Client-Subject: CN=forged\r\nX-Client-Serial: 1\r\n"

    def request(client):
        data = fetch(port, pki.ca, client=client, path="/id", extra=forged)
        assert data.startswith(b"HTTP/1.1 200"), data
        return o.requests[-1]

    r = request(pki.client)
    assert r.header_all("x-client-subject") == [pki.client.subject], r.headers
    assert r.header("x-client-san") == "DNS:client.acme.test, URI:spiffe://acme/one"
    assert r.header("x-client-fingerprint") == pki.client_fingerprint
    assert r.header_all("x-client-serial") == [pki.client_serial]
    r = request(None)
    for name in ("x-client-subject", "x-client-serial", "x-client-san", "x-client-fingerprint"):
        assert r.header(name) is None, (name, r.headers)


def test_client_cert_headers_stripped_on_plain_connections(cairn, origin):
    o = origin()
    c = cairn({"server": {"workers": 1},
               "upstreams": {"o": {"peers": [{"address": o.address}]}},
               "routes": [{"upstream": "o",
                           "client_cert_headers": {"subject": "X-Client-Subject"}}]})
    with socket.create_connection(("127.0.0.1", c.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"X-Client-Subject: CN=admin\r\n\r\n")
        while s.recv(4096):
            pass
    assert o.requests[-1].header("x-client-subject") is None


def test_strict_sni_answers_421_for_another_host(cairn, cert):
    c_pem, k_pem, ca = cert  # names: a.test, b.test, x.w.test
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem), "strict_sni": True}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    assert get_over_tls(port, ca, "a.test", host="b.test:443").startswith(b"HTTP/1.1 200")
    assert get_over_tls(port, ca, "a.test", host="A.TEST").startswith(b"HTTP/1.1 200")
    r = get_over_tls(port, ca, "a.test", host="other.example")
    assert r.startswith(b"HTTP/1.1 421"), r


def test_without_strict_sni_any_host_is_served(cairn, cert):
    c_pem, k_pem, ca = cert
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    assert get_over_tls(port, ca, "a.test", host="other.example").startswith(b"HTTP/1.1 200")


def test_lesson21_mtls_example(origin, pki, tmp_path):
    """examples/lesson21_mtls.c: a hook that refuses requests without a verified client
    certificate (403) and forwards the subject upstream, replacing any forged one."""
    from example_proc import Example
    o = origin()
    ex = Example("lesson21_mtls", (o.address, str(pki.server.cert), str(pki.server.key),
                                   str(pki.ca.cert)), tmp_path).start()
    try:
        forged = b"X-Client-Subject: CN=forged\r\n"
        n = len(o.requests)
        r = fetch(ex.port, pki.ca, path="/me", extra=forged)
        assert r.startswith(b"HTTP/1.1 403") and r.endswith(b"a client certificate is required\n")
        assert len(o.requests) == n, "a request without a certificate reached the origin"
        r = fetch(ex.port, pki.ca, client=pki.client, path="/me", extra=forged)
        assert r.startswith(b"HTTP/1.1 200"), r
        assert o.requests[-1].header_all("x-client-subject") == [pki.client.subject]
    finally:
        ex.stop()


def test_admin_listener_over_tls(tmp_path, cert):
    """admin.tls: the admin API answers over TLS (and nothing plain on its port)."""
    import time
    from conftest import CAIRN_BIN, cairn_env
    from helpers import to_yaml
    c_pem, k_pem, ca = cert
    admin = free_port()
    cfg = {"server": {"workers": 1, "pid_file": str(tmp_path / "p.pid")},
           "admin": {"listen": f"127.0.0.1:{admin}",
                     "tls": {"cert": str(c_pem), "key": str(k_pem)}},
           "listeners": [{"listen": f"127.0.0.1:{free_port()}"}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]}
    (tmp_path / "c.yaml").write_text(to_yaml(cfg))
    p = subprocess.Popen([CAIRN_BIN, "-c", str(tmp_path / "c.yaml")], cwd=tmp_path,
                         env=cairn_env(None), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", admin)) == 0:
                    break
            assert time.monotonic() < deadline and p.poll() is None, "admin never listened"
            time.sleep(0.05)
        r = fetch(admin, ca, path="/healthz")
        assert r.startswith(b"HTTP/1.1 200"), r
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        assert b"HTTP/1.1" not in got, got
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1].decode(errors="replace")
    assert p.returncode == 0, err
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err


def test_ticket_keys_rotate(cairn, cert):
    """server.tls_ticket_rotation: a ticket resumes within two rotation intervals (the previous
    key still opens it) and not after, whatever the traffic in between."""
    import time
    c_pem, k_pem, ca = cert
    port = free_port()
    cairn({"server": {"workers": 2, "tls_ticket_rotation": "1s"},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def connect(session=None):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
                return s.session, s.session_reused

    first, _ = connect()
    _, reused = connect(first)
    assert reused, "a fresh ticket did not resume"
    time.sleep(1.3)
    _, reused = connect(first)
    assert reused, "a ticket under the previous key did not resume"
    time.sleep(2.3)
    _, reused = connect(first)
    assert not reused, "a ticket older than two rotations resumed"


def test_tickets_resume_across_a_graceful_upgrade(cairn, cert, tmp_path):
    """The old instance hands its ticket keys to `cairn -u` with the sockets: a session
    ticket issued before the upgrade resumes on the new process."""
    from test_upgrade import upgrade, upgrade_config
    c_pem, k_pem, ca = cert
    cfg = upgrade_config(tmp_path, body="tls\n")
    port = int(cfg["listeners"][0]["listen"].rsplit(":", 1)[1])
    cfg["listeners"][0]["tls"] = {"cert": str(c_pem), "key": str(k_pem)}
    old = cairn(cfg, name="cairn-old")
    ctx = ssl.create_default_context(cafile=str(ca))

    def connect(session=None):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                assert data.endswith(b"tls\n"), data
                return s.session, s.session_reused

    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx.minimum_version = ctx.maximum_version = version
        sess, _ = connect()
        if version == ssl.TLSVersion.TLSv1_2:
            sess12 = sess
        else:
            sess13 = sess
    new = upgrade(cairn, old, cfg, tmp_path)
    assert new.alive()
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    _, reused = connect(sess12)
    assert reused, "a TLS 1.2 ticket from before the upgrade did not resume"
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _, reused = connect(sess13)
    assert reused, "a TLS 1.3 ticket from before the upgrade did not resume"


def test_certificate_expiry_metric(cairn, cert):
    c_pem, k_pem, ca = cert
    end = openssl("x509", "-in", c_pem, "-noout", "-enddate").strip().split("=", 1)[1]
    import time
    not_after = time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) - time.timezone
    port = free_port()
    c = cairn({"listeners": [{"listen": f"127.0.0.1:{port}", "name": "secure",
                              "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
               "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    v = metric(c.admin_port, "cairn_tls_certificate_expiry_seconds", listener="secure")
    want = not_after - time.time()
    assert abs(v - want) < 120, (v, want)
    assert v > 300 * 86400, v  # the factory signs for a year


def test_handshake_timeout(cairn, cert):
    """listeners[].tls.handshake_timeout bounds the handshake on its own (here well below
    server.header_timeout): a client that connects and never says hello is closed."""
    import time
    c_pem, k_pem, ca = cert
    port = free_port()
    cairn({"server": {"workers": 1, "header_timeout": "5s"},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem),
                                  "handshake_timeout": "500ms"}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall(b"\x16\x03\x01")  # the start of a record, never finished
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        waited = time.monotonic() - t0
    assert not got.startswith(b"HTTP"), got
    assert 0.3 <= waited <= 2.5, f"closed after {waited:.2f}s (handshake_timeout 500ms)"
    # A client that completes the handshake in time is served.
    assert get_over_tls(port, ca, "a.test").startswith(b"HTTP/1.1 200")


def test_routes_on_the_client_certificate(cairn, pki):
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [mtls_listener(pki, port)],
           "routes": [
               {"match": {"client_san": "URI:spiffe://other/*"},
                "static": {"status": 200, "body": "other\n"}},
               {"match": {"client_san": ["DNS:nope.test", "URI:spiffe://acme/*"]},
                "static": {"status": 200, "body": "acme\n"}},
               {"match": {"client_cert": "verified"}, "static": {"status": 200, "body": "v\n"}},
               {"match": {"client_cert": "none"},
                "static": {"status": 200, "body": "anonymous\n"}},
           ]})

    def body(client):
        return fetch(port, pki.ca, client=client).split(b"\r\n\r\n", 1)[1]

    assert body(pki.client) == b"acme\n"
    assert body(None) == b"anonymous\n"
