"""Routes on the TLS server name: `match.sni` matches the name the client sent in its
ClientHello (exact or *.wildcard), and never matches a plain connection."""
import socket
import ssl
import subprocess

import pytest

from helpers import free_port


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("sni")
    c, k = d / "c.pem", d / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(k), "-out", str(c),
                    "-days", "1", "-subj", "/CN=a.test", "-addext",
                    "subjectAltName=DNS:a.test,DNS:b.test,DNS:x.w.test"],
                   check=True, capture_output=True)
    return c, k


def get_over_tls(port, ca, sni, host="x"):
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    return data


def test_match_sni(cairn, cert):
    c_pem, k_pem = cert
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
    assert get_over_tls(tls_port, c_pem, "a.test").endswith(b"route a\n")
    assert get_over_tls(tls_port, c_pem, "x.w.test").endswith(b"route w\n")
    assert get_over_tls(tls_port, c_pem, "b.test").endswith(b"route default\n")
    # The Host header does not stand in for the SNI.
    assert get_over_tls(tls_port, c_pem, "b.test", host="a.test").endswith(b"route default\n")
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
    c_pem, k_pem = cert
    port = free_port()
    c = cairn({"server": {"workers": 1},
               "listeners": [{"listen": f"127.0.0.1:{port}", "name": "secure",
                              "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
               "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    ctx = ssl.create_default_context(cafile=str(c_pem))
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


def test_certificate_expiring_soon_is_warned(cairn, tmp_path):
    c_pem, k_pem = tmp_path / "soon.pem", tmp_path / "soon.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(k_pem), "-out",
                    str(c_pem), "-days", "5", "-subj", "/CN=soon.test"],
                   check=True, capture_output=True)
    port = free_port()
    c = cairn({"listeners": [{"listen": f"127.0.0.1:{port}",
                              "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
               "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    assert f"listener 127.0.0.1:{port}: a TLS certificate expires in" in c.stderr_text()


def make_ca_and_client(d):
    ca_key, ca = d / "ca.key", d / "ca.pem"
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=test CA")
    srv_key, srv_csr, srv = d / "s.key", d / "s.csr", d / "s.pem"
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(srv_key), "-out", str(srv_csr), "-subj", "/CN=a.test")
    ext = d / "s.ext"
    ext.write_text("subjectAltName=DNS:a.test\n")
    run("openssl", "x509", "-req", "-in", str(srv_csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(srv), "-days", "2", "-extfile", str(ext))
    cl_key, cl_csr, cl = d / "c.key", d / "c.csr", d / "c.pem"
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(cl_key), "-out", str(cl_csr), "-subj", "/O=acme/CN=client one")
    cext = d / "c.ext"
    cext.write_text("subjectAltName=DNS:client.acme.test,URI:spiffe://acme/one\n")
    run("openssl", "x509", "-req", "-in", str(cl_csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cl), "-days", "2", "-extfile", str(cext))
    fp = run("openssl", "x509", "-in", str(cl), "-noout", "-fingerprint", "-sha256").stdout
    fingerprint = fp.decode().split("=", 1)[1].strip().replace(":", "").lower()
    serial = run("openssl", "x509", "-in", str(cl), "-noout", "-serial").stdout
    serial = serial.decode().split("=", 1)[1].strip().upper()
    return ca, (srv, srv_key), (cl, cl_key), fingerprint, serial


def test_client_certificate_forwarded_in_configured_headers(cairn, origin, tmp_path):
    ca, (srv, srv_key), (cl, cl_key), fingerprint, serial = make_ca_and_client(tmp_path)
    o = origin()
    port = free_port()
    c = cairn({"server": {"workers": 1},
               "listeners": [{"listen": f"127.0.0.1:{port}",
                              "tls": {"cert": str(srv), "key": str(srv_key),
                                      "client_ca": str(ca), "client_verify": "optional"}}],
               "upstreams": {"o": {"peers": [{"address": o.address}]}},
               "routes": [{"upstream": "o",
                           "client_cert_headers": {"subject": "X-Client-Subject",
                                                   "san": "X-Client-SAN",
                                                   "fingerprint": "X-Client-Fingerprint",
                                                   "serial": "X-Client-Serial"}}]})

    def request(with_cert):
        ctx = ssl.create_default_context(cafile=str(ca))
        if with_cert:
            ctx.load_cert_chain(str(cl), str(cl_key))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET /id HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n"
                          b"X-Client-Subject: CN=forged\r\nX-Client-Serial: 1\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data
        return o.requests[-1]

    r = request(with_cert=True)
    assert r.header_all("x-client-subject") == ["CN=client one,O=acme"], r.headers
    assert r.header("x-client-san") == "DNS:client.acme.test, URI:spiffe://acme/one"
    assert r.header("x-client-fingerprint") == fingerprint
    assert r.header_all("x-client-serial") == [serial]
    r = request(with_cert=False)
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
    c_pem, k_pem = cert  # names: a.test, b.test, x.w.test
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem), "strict_sni": True}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    assert get_over_tls(port, c_pem, "a.test", host="b.test:443").startswith(b"HTTP/1.1 200")
    assert get_over_tls(port, c_pem, "a.test", host="A.TEST").startswith(b"HTTP/1.1 200")
    r = get_over_tls(port, c_pem, "a.test", host="other.example")
    assert r.startswith(b"HTTP/1.1 421"), r


def test_without_strict_sni_any_host_is_served(cairn, cert):
    c_pem, k_pem = cert
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    assert get_over_tls(port, c_pem, "a.test", host="other.example").startswith(b"HTTP/1.1 200")


def test_lesson21_mtls_example(origin, tmp_path):
    """examples/lesson21_mtls.c: a hook that refuses requests without a verified client
    certificate (403) and forwards the subject upstream, replacing any forged one."""
    from example_proc import Example
    ca, (srv, srv_key), (cl, cl_key), _, _ = make_ca_and_client(tmp_path)
    o = origin()
    ex = Example("lesson21_mtls", (o.address, str(srv), str(srv_key), str(ca)), tmp_path).start()
    try:
        def request(with_cert):
            ctx = ssl.create_default_context(cafile=str(ca))
            if with_cert:
                ctx.load_cert_chain(str(cl), str(cl_key))
            with socket.create_connection(("127.0.0.1", ex.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                    s.sendall(b"GET /me HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n"
                              b"X-Client-Subject: CN=forged\r\n\r\n")
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
            return data

        n = len(o.requests)
        r = request(with_cert=False)
        assert r.startswith(b"HTTP/1.1 403") and r.endswith(b"a client certificate is required\n")
        assert len(o.requests) == n, "a request without a certificate reached the origin"
        r = request(with_cert=True)
        assert r.startswith(b"HTTP/1.1 200"), r
        assert o.requests[-1].header_all("x-client-subject") == ["CN=client one,O=acme"]
    finally:
        ex.stop()


def test_admin_listener_over_tls(tmp_path, cert):
    """admin.tls: the admin API answers over TLS (and nothing plain on its port)."""
    import time
    from conftest import CAIRN_BIN, cairn_env
    from helpers import to_yaml
    c_pem, k_pem = cert
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
        r = get_over_tls(admin, c_pem, "a.test", host="127.0.0.1")
        r2 = b""
        ctx = ssl.create_default_context(cafile=str(c_pem))
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while chunk := s.recv(4096):
                    r2 += chunk
        assert r2.startswith(b"HTTP/1.1 200"), r2
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        assert b"HTTP/1.1" not in got, got
        assert r.startswith(b"HTTP/1.1 "), r
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1].decode(errors="replace")
    assert p.returncode == 0, err
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err


def test_ticket_keys_rotate(cairn, cert):
    """server.tls_ticket_rotation: a ticket resumes within two rotation intervals (the previous
    key still opens it) and not after, whatever the traffic in between."""
    import time
    c_pem, k_pem = cert
    port = free_port()
    cairn({"server": {"workers": 2, "tls_ticket_rotation": "1s"},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
           "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    ctx = ssl.create_default_context(cafile=str(c_pem))
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
    c_pem, k_pem = cert
    cfg = upgrade_config(tmp_path, body="tls\n")
    port = int(cfg["listeners"][0]["listen"].rsplit(":", 1)[1])
    cfg["listeners"][0]["tls"] = {"cert": str(c_pem), "key": str(k_pem)}
    old = cairn(cfg, name="cairn-old")
    ctx = ssl.create_default_context(cafile=str(c_pem))

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
    import subprocess as sp
    c_pem, k_pem = cert
    end = sp.run(["openssl", "x509", "-in", str(c_pem), "-noout", "-enddate"],
                 capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
    import time
    not_after = time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) - time.timezone
    port = free_port()
    c = cairn({"listeners": [{"listen": f"127.0.0.1:{port}", "name": "secure",
                              "tls": {"cert": str(c_pem), "key": str(k_pem)}}],
               "routes": [{"static": {"status": 200, "body": "ok\n"}}]})
    v = metric(c.admin_port, "cairn_tls_certificate_expiry_seconds", listener="secure")
    want = not_after - time.time()
    assert abs(v - want) < 120, (v, want)
    assert 0 < v <= 86400 + 60


def test_handshake_timeout(cairn, cert):
    """listeners[].tls.handshake_timeout bounds the handshake on its own (here well below
    server.header_timeout): a client that connects and never says hello is closed."""
    import time
    c_pem, k_pem = cert
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
    assert got in (b"",) or not got.startswith(b"HTTP"), got
    assert 0.3 <= waited <= 2.5, f"closed after {waited:.2f}s (handshake_timeout 500ms)"
    # A client that completes the handshake in time is served.
    assert get_over_tls(port, c_pem, "a.test").startswith(b"HTTP/1.1 200")


def test_routes_on_the_client_certificate(cairn, tmp_path):
    ca, (srv, srv_key), (cl, cl_key), _, _ = make_ca_and_client(tmp_path)
    port = free_port()
    cairn({"server": {"workers": 1},
           "listeners": [{"listen": f"127.0.0.1:{port}",
                          "tls": {"cert": str(srv), "key": str(srv_key),
                                  "client_ca": str(ca), "client_verify": "optional"}}],
           "routes": [
               {"match": {"client_san": "URI:spiffe://other/*"},
                "static": {"status": 200, "body": "other\n"}},
               {"match": {"client_san": ["DNS:nope.test", "URI:spiffe://acme/*"]},
                "static": {"status": 200, "body": "acme\n"}},
               {"match": {"client_cert": "verified"}, "static": {"status": 200, "body": "v\n"}},
               {"match": {"client_cert": "none"},
                "static": {"status": 200, "body": "anonymous\n"}},
           ]})

    def body(with_cert):
        ctx = ssl.create_default_context(cafile=str(ca))
        if with_cert:
            ctx.load_cert_chain(str(cl), str(cl_key))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
        return data.split(b"\r\n\r\n", 1)[1]

    assert body(with_cert=True) == b"acme\n"
    assert body(with_cert=False) == b"anonymous\n"
