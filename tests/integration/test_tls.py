"""TLS: termination on listeners (versions, ALPN, ciphers, bad clients, timeouts, proxying and
cache hits over TLS), certificates chosen by SNI (exact, wildcard, default; RSA and ECDSA for
one name), client certificates (mTLS), TLS to upstreams (verification, SNI, client
certificates), configuration errors, session resumption across workers, certificate reload,
and the two YAML examples (examples/lesson07_tls.yaml, examples/lesson20_upstream_tls.yaml).

Certificates are made once per session with the `openssl` command (tls_certs.py); HTTPS
origins are tls_origin.TLSOrigin. Clients are Python's `ssl` module, `openssl s_client` and
curl. What is checked is what a client sees: status and body, the certificate presented
(compared byte for byte with the one expected), the protocol and ALPN negotiated, a refused
handshake, a closed connection, what the HTTPS origin saw (SNI, client certificate,
resumption), the error and access logs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import types
import warnings
from pathlib import Path

import pytest

from helpers import (ConnectionClosed, RawConn, free_port, get, proxy_config, static_route,
                     to_yaml, wait_for)
from origins import Blob, Echo, Normal
from tls_certs import CertFactory
from tls_origin import TLSOrigin

REPO = Path(__file__).resolve().parent.parent.parent
HELLO = b"hello over tls\n"
MAX_AGE = {"Cache-Control": "max-age=600"}
SERVER_NAMES = ["cairn.test", "localhost", "IP:127.0.0.1"]
RELOADED = "configuration reloaded (generation"
RELOAD_FAILED = "reload failed:"


# --------------------------------------------------------------------------------------
# certificates, built once per session


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    f = CertFactory(tmp_path_factory.mktemp("tls-certs"))
    n = types.SimpleNamespace(factory=f, dir=f.dir)
    n.ca = f.ca("ca", cn="cairn test CA")
    n.other_ca = f.ca("other-ca", cn="another test CA")
    # the listener's certificate, and a second one for the same names (reload)
    n.server = f.server("server", n.ca, SERVER_NAMES)
    n.server2 = f.server("server2", n.ca, SERVER_NAMES, key="ec")
    # SNI: a default, an exact name (two SANs), a wildcard, an exact name under the
    # wildcard, and an RSA and an ECDSA certificate for one name
    n.first = f.server("first", n.ca, ["first.test"], key="ec")
    n.a = f.server("a", n.ca, ["a.test", "a2.test"], key="ec")
    n.wild = f.server("wild", n.ca, ["*.wild.test"], key="ec")
    n.exact_wild = f.server("exact-wild", n.ca, ["exact.wild.test"], key="ec")
    n.dual_rsa = f.server("dual-rsa", n.ca, ["dual.test"], key="rsa")
    n.dual_ec = f.server("dual-ec", n.ca, ["dual.test"], key="ec")
    # client certificates
    n.alice = f.client("alice", n.ca, key="ec")
    n.mallory = f.client("mallory", n.other_ca, key="ec")
    n.alice_expired = f.client("alice-expired", n.ca, key="ec", expired=True)
    # origins, and cairn's own client certificate towards them
    n.origin = f.server("origin", n.ca, ["origin.test"], key="ec")
    n.origin_other_ca = f.server("origin-other-ca", n.other_ca, ["origin.test"], key="ec")
    n.origin_expired = f.server("origin-expired", n.ca, ["origin.test"], key="ec", expired=True)
    n.origin_wrong_name = f.server("origin-wrong-name", n.ca, ["wrong.test"], key="ec")
    n.cairn_client = f.client("cairn-upstream", n.ca, key="ec")
    # a file that is not PEM at all
    n.garbage = f.dir / "garbage.pem"
    n.garbage.write_bytes(b"this is not a certificate\n" * 4)
    return n


# --------------------------------------------------------------------------------------
# clients


def client_ctx(ca=None, cert=None, version=None, alpn=None, ciphers=None,
               check_hostname=True):
    """A client context: verifies against @ca (a Cert) when given, otherwise verifies
    nothing; @cert is a client certificate; @version pins one ssl.TLSVersion."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(ca.cert))
        ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, ctx=None, server_hostname="cairn.test", timeout=5.0, rcvbuf=None,
                **ctx_kw) -> ssl.SSLSocket:
    ctx = ctx or client_ctx(**ctx_kw)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
        return ctx.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def tls_conn(port, timeout=5.0, **kw) -> RawConn:
    return RawConn(sock=tls_connect(port, timeout=timeout, **kw), timeout=timeout)


def tls_get(port, target="/", headers=None, host="cairn.test", timeout=5.0, method="GET",
            body=b"", **kw):
    with tls_conn(port, timeout=timeout, **kw) as c:
        return c.request(method, target, headers, body, host=host, timeout=timeout)


def refused(port, target="/", **kw):
    """Connects, sends a request and expects no response: the handshake fails, or (TLS 1.3,
    where the client finishes first) the first read gets an alert or the connection closes.
    Returns the error; fails when a response arrives or the server merely hangs."""
    try:
        sock = tls_connect(port, **kw)
    except ssl.SSLError as e:
        return e
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
        return e
    try:
        with RawConn(sock=sock, timeout=5.0) as c:
            r = c.request("GET", target, host="cairn.test")
    except (ssl.SSLError, ConnectionClosed, ConnectionResetError, BrokenPipeError) as e:
        return e
    except (socket.timeout, TimeoutError) as e:
        raise AssertionError(f"no answer and no close within 5 s (expected a refusal): {e!r}")
    raise AssertionError(f"expected the TLS connection to be refused, got a response: {r!r}")


def s_client(port, *args, host="cairn.test", request=None, timeout=15):
    """`openssl s_client -connect 127.0.0.1:PORT ARGS` sending one Connection: close
    request and reading until the server closes -> (returncode, output with stderr)."""
    req = request if request is not None else (
        f"GET /hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *map(str, args)]
    try:
        p = subprocess.run(argv, input=req.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(argv)}` did not finish within {timeout}s: "
                             f"{(e.stdout or b'')[-2000:]!r}")
    return p.returncode, p.stdout.decode("utf-8", "replace")


def presented_der(out):
    """The DER of the server certificate printed by s_client."""
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert m, f"s_client printed no server certificate:\n{out[-3000:]}"
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def session_line(out):
    """('New' | 'Reused', 'TLSv1.x') from s_client's first `New, TLSv1.3, Cipher is ...`."""
    m = re.search(r"^(New|Reused), (TLSv1\.\d|\(NONE\))", out, re.M)
    assert m, f"no New/Reused line in s_client output:\n{out[-3000:]}"
    return m.group(1), m.group(2)


def which(certs, der):
    """The name of the fixture certificate whose DER is @der (for readable failures)."""
    for k, v in vars(certs).items():
        if getattr(v, "cert", None) is not None and getattr(v, "der", None) == der:
            return k
    return "<unknown certificate>"


def assert_closed_without_http(conn: RawConn, within=4.0):
    """The server closes @conn within @within s and never sent an HTTP response."""
    t0 = time.monotonic()
    extra = conn.wait_closed(timeout=within)
    data = conn.buf + extra
    assert b"HTTP/" not in data, f"an HTTP answer arrived on the TLS port: {data[:300]!r}"
    return time.monotonic() - t0, data


def client_hello(server_hostname="cairn.test") -> bytes:
    """The bytes of a real ClientHello (made with a MemoryBIO, never sent anywhere)."""
    ctx = client_ctx()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16" and len(data) > 100, data[:20]
    return data


# --------------------------------------------------------------------------------------
# configurations


def tls_block(certs, cert=None, **extra):
    cert = cert or certs.server
    t = {"cert": str(cert.cert), "key": str(cert.key)}
    t.update(extra)
    return t


def listener(tls=None, name=None, port=None):
    lst = {"listen": f"127.0.0.1:{port or free_port()}"}
    if name:
        lst["name"] = name
    if tls is not None:
        lst["tls"] = tls
    return lst


def hello_routes():
    return [
        static_route(HELLO.decode(), path="/hello"),
        *[static_route(f"piece {i}\n", path=f"/p{i}") for i in range(3)],
        static_route("fallback\n"),
    ]


def tls_config(certs, routes=None, server=None, plain_too=False, **tls_extra):
    cfg = {
        "server": {"workers": 1, "header_timeout": "3s", "shutdown_grace": "2s"},
        "listeners": [listener(tls_block(certs, **tls_extra), name="tls")],
        "routes": routes or hello_routes(),
    }
    if plain_too:
        cfg["listeners"].append(listener(name="plain"))
    cfg["server"].update(server or {})
    return cfg


def with_tls_listener(cfg, certs, **tls_extra):
    """@cfg (e.g. from proxy_config) with one TLS listener."""
    cfg["listeners"] = [listener(tls_block(certs, **tls_extra), name="tls")]
    return cfg


def upstream_tls(certs, **kw):
    t = {"sni": "origin.test", "ca": str(certs.ca.cert), "verify": True}
    t.update(kw)
    return t


@pytest.fixture(scope="module")
def term(cairn_module, certs):
    """One cairn shared by the read-only termination tests: listener 0 is TLS (the default
    protocols), listener 1 plain HTTP."""
    return cairn_module(tls_config(certs, plain_too=True), name="tls-term")


# --------------------------------------------------------------------------------------
# termination: versions, ALPN, ciphers


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_tls_versions_1_2_and_1_3_work(term, certs, version):
    with tls_conn(term.port, ca=certs.ca, version=version) as c:
        assert c.sock.version() == version.name.replace("_", "."), c.sock.version()
        assert c.sock.getpeercert(binary_form=True) == certs.server.der
        r = c.request("GET", "/hello", host="cairn.test")
        assert (r.status, r.body) == (200, HELLO), r
        # the connection stays usable for a second request
        r = c.request("GET", "/p1", host="cairn.test")
        assert (r.status, r.body) == (200, b"piece 1\n"), r


@pytest.mark.parametrize("flag,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_s_client_versions(term, certs, flag, name):
    rc, out = s_client(term.port, flag, "-CAfile", certs.ca.cert, "-servername", "cairn.test",
                       "-verify_return_error")
    assert "HTTP/1.1 200" in out, out[-3000:]
    assert session_line(out) == ("New", name), out[-3000:]
    assert "Verify return code: 0 (ok)" in out, out[-3000:]
    assert "HTTP/1.1 200" in out and HELLO.decode() in out, out[-3000:]


def test_tls_1_1_is_refused(term, certs):
    # SECLEVEL=0: without it OpenSSL 3 would refuse TLS 1.1 on the client side, and the
    # test would pass without the server having refused anything.
    rc, out = s_client(term.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "no protocols available" not in out, f"the client refused by itself:\n{out}"
    assert "HTTP/1.1" not in out, f"TLS 1.1 was accepted:\n{out[-3000:]}"
    assert rc != 0 or "Cipher is (NONE)" in out, out[-3000:]
    e = refused(term.port, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
    assert isinstance(e, (ssl.SSLError, OSError)), e
    # ... and the same clients at TLS 1.2 are served (the refusal is the version's)
    assert tls_get(term.port, "/hello", version=ssl.TLSVersion.TLSv1_2,
                   ciphers="DEFAULT:@SECLEVEL=0").status == 200


def test_alpn_selects_http11(term, certs):
    rc, out = s_client(term.port, "-alpn", "h2,http/1.1", "-CAfile", certs.ca.cert)
    assert "HTTP/1.1 200" in out, out[-3000:]
    assert "ALPN protocol: http/1.1" in out, out[-3000:]
    assert "HTTP/1.1 200" in out, out[-3000:]
    with tls_conn(term.port, ca=certs.ca, alpn=["h2", "http/1.1"]) as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        assert c.request("GET", "/hello", host="cairn.test").body == HELLO
    # a client that offers only h2 must not get h2 (cairn speaks HTTP/1.1 here)
    try:
        with tls_conn(term.port, ca=certs.ca, alpn=["h2"]) as c:
            assert c.sock.selected_alpn_protocol() != "h2"
    except ssl.SSLError:
        pass  # refusing with no_application_protocol is fine too
    # no ALPN at all still works
    with tls_conn(term.port, ca=certs.ca) as c:
        assert c.sock.selected_alpn_protocol() is None
        assert c.request("GET", "/hello", host="cairn.test").status == 200


def test_curl_https(term, certs):
    """curl offers h2 and http/1.1 by ALPN and verifies the name."""
    p = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(certs.ca.cert),
         "--resolve", f"cairn.test:{term.port}:127.0.0.1", "-w", "\n%{http_version} %{http_code}",
         f"https://cairn.test:{term.port}/hello"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout == HELLO.decode() + "\n1.1 200", p.stdout


def test_plain_listener_beside_tls_stays_plain(term):
    r = get(term.ports[1], "/hello")
    assert (r.status, r.body) == (200, HELLO), r


@pytest.mark.parametrize("only,works,refused_version", [
    ("TLSv1.3", ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2),
    ("TLSv1.2", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
])
def test_protocols_restrict_versions(cairn, certs, only, works, refused_version):
    c = cairn(tls_config(certs, protocols=[only]))
    with tls_conn(c.port, ca=certs.ca, version=works) as conn:
        assert conn.sock.version() == only
        assert conn.request("GET", "/hello", host="cairn.test").body == HELLO
    refused(c.port, ca=certs.ca, version=refused_version)
    # an unrestricted client negotiates the one allowed version
    with tls_conn(c.port, ca=certs.ca) as conn:
        assert conn.sock.version() == only


def test_ciphers_restrict_tls12(cairn, certs):
    c = cairn(tls_config(certs, ciphers="ECDHE+AESGCM"))
    v12 = ssl.TLSVersion.TLSv1_2
    with tls_conn(c.port, ca=certs.ca, version=v12, ciphers="ECDHE-RSA-AES128-GCM-SHA256") as t:
        assert t.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        assert t.request("GET", "/hello", host="cairn.test").body == HELLO
    refused(c.port, ca=certs.ca, version=v12, ciphers="ECDHE-RSA-CHACHA20-POLY1305")
    refused(c.port, ca=certs.ca, version=v12, ciphers="AES128-GCM-SHA256")  # no ECDHE
    # the list is for TLS 1.2: TLS 1.3 suites are not affected
    with tls_conn(c.port, ca=certs.ca, version=ssl.TLSVersion.TLSv1_3) as t:
        assert t.request("GET", "/hello", host="cairn.test").status == 200


# --------------------------------------------------------------------------------------
# termination: clients that do not speak TLS, or nothing at all


def test_plain_http_on_tls_port_gets_no_http_answer(term, certs):
    with RawConn(term.port, timeout=5) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: cairn.test\r\n\r\n")
        elapsed, data = assert_closed_without_http(c)
    assert HELLO not in data
    assert tls_get(term.port, "/hello", ca=certs.ca).body == HELLO  # still serving


@pytest.mark.parametrize("garbage", [
    b"\x00" * 64,
    bytes(range(256)) * 4,
    b"\x16\x03\x01\x00\x30" + b"\x01\x00\x00\x2c" + b"\xee" * 44,  # a ClientHello full of junk
    b"\x16\x03\x03\xff\xff" + b"A" * 300,                          # a record longer than allowed
])
def test_garbage_instead_of_client_hello_closes(term, certs, garbage):
    with RawConn(term.port, timeout=5) as c:
        c.send(garbage)
        elapsed, data = assert_closed_without_http(c)
    assert tls_get(term.port, "/hello", ca=certs.ca).body == HELLO
    assert term.alive()


@pytest.fixture
def quick_timeout(cairn, certs):
    return cairn(tls_config(certs, server={"header_timeout": "1s"}))


def _still_open_then_closed(conn, open_for=0.5, within=4.0):
    t0 = time.monotonic()
    assert conn.is_open(wait=open_for), "closed at once, before header_timeout"
    try:
        conn.wait_closed(timeout=within)
    except AssertionError:
        raise AssertionError(f"still open {within + open_for:.1f}s after connecting, with "
                             "server.header_timeout 1s")
    return time.monotonic() - t0 + open_for


def test_silent_client_closed_after_header_timeout(quick_timeout):
    with RawConn(quick_timeout.port, timeout=6) as c:
        t = _still_open_then_closed(c)
        assert b"HTTP/" not in c.buf
    assert t >= 0.9, t


def test_partial_client_hello_closed_after_header_timeout(quick_timeout):
    hello = client_hello()
    with RawConn(quick_timeout.port, timeout=6) as c:
        c.send(hello[:20])
        _still_open_then_closed(c)


def test_handshake_then_silence_closed_after_header_timeout(quick_timeout, certs):
    with tls_conn(quick_timeout.port, ca=certs.ca, timeout=6) as c:
        assert c.is_open(wait=0.5), "closed right after the handshake"
        try:
            extra = c.wait_closed(timeout=4)
        except AssertionError:
            raise AssertionError("handshake done, no request: still open 4.5 s later with "
                                 "server.header_timeout 1s")
        data = c.buf + extra
        # a 408 is allowed, any other answer is not
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]


# --------------------------------------------------------------------------------------
# termination: HTTP over TLS


def test_pipelined_requests_in_one_record(term, certs):
    with tls_conn(term.port, ca=certs.ca) as c:
        c.send(b"".join(
            f"GET /p{i} HTTP/1.1\r\nHost: cairn.test\r\n\r\n".encode() for i in range(3)))
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"piece 0\n", b"piece 1\n", b"piece 2\n"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["TLSv1.2", "TLSv1.3"])
def test_connection_close_sends_close_notify(term, certs, version):
    """After `Connection: close` the server ends the TLS stream with close_notify (RFC 8446
    6.1) before closing TCP: without it a client cannot tell the end from a truncation, and
    OpenSSL 3 clients (s_client, curl on close-delimited bodies) report `unexpected eof`."""
    ctx = client_ctx(ca=certs.ca, version=version)
    # Python sets OP_IGNORE_UNEXPECTED_EOF by default, which reads a bare TCP close as a
    # clean end; clear it so that only a real close_notify ends the stream cleanly.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    sock = socket.create_connection(("127.0.0.1", term.port), timeout=5)
    s = ctx.wrap_socket(sock, server_hostname="cairn.test", suppress_ragged_eofs=False)
    try:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: cairn.test\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:  # close_notify received
                    break
                data += chunk
        except ssl.SSLError as e:  # UNEXPECTED_EOF_WHILE_READING
            raise AssertionError(f"TCP closed without close_notify after {data!r}: {e}")
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(HELLO), data
    finally:
        s.close()


def test_request_split_over_many_tls_records(term, certs):
    """One request head sent as one TLS record per byte, then two pipelined requests in one
    record: cairn must parse plaintext that arrives in pieces and must not wait for socket
    readiness for plaintext it has already decrypted."""
    with tls_conn(term.port, ca=certs.ca) as c:
        for ch in b"GET /p0 HTTP/1.1\r\nHost: cairn.test\r\n\r\n":
            c.sock.sendall(bytes([ch]))
        assert c.read_response().body == b"piece 0\n"
        c.send(b"GET /p1 HTTP/1.1\r\nHost: cairn.test\r\n\r\nGET /p2 HTTP/1.1\r\nHo")
        time.sleep(0.2)
        c.send(b"st: cairn.test\r\n\r\n")
        assert [c.read_response().body for _ in range(2)] == [b"piece 1\n", b"piece 2\n"]


def _s_client_interactive(port, steps, *args):
    """s_client with its command letters on: @steps is [(bytes, pause)], written in turn;
    stdin is closed at the end. -> (returncode, output)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)
        for data, pause in steps:
            try:
                p.stdin.write(data)
                p.stdin.flush()
            except BrokenPipeError:
                break
            time.sleep(pause)
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        killer = threading.Timer(10, p.kill)
        killer.start()
        try:
            out = p.stdout.read()
            p.wait()
        finally:
            killer.cancel()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    return p.returncode, out.decode("utf-8", "replace")


@pytest.mark.parametrize("cmd", [b"k\n", b"K\n"], ids=["key-update", "key-update-requested"])
def test_tls13_key_update_mid_connection(term, certs, cmd):
    """A TLS 1.3 KeyUpdate between two requests (K also asks cairn to update its own keys):
    both requests are answered on the one connection."""
    req = b"GET /p%d HTTP/1.1\r\nHost: cairn.test\r\n\r\n"
    rc, out = _s_client_interactive(term.port, [(req % 0, 0.4), (cmd, 0.4), (req % 1, 0.8)],
                                    "-tls1_3", "-CAfile", certs.ca.cert)
    assert "KEYUPDATE" in out, out[-3000:]
    assert out.count("HTTP/1.1 200") == 2, out[-3000:]
    assert "piece 0" in out and "piece 1" in out, out[-3000:]


def test_tls12_renegotiation_is_refused_and_harmless(term, certs):
    req = b"GET /p%d HTTP/1.1\r\nHost: cairn.test\r\n\r\n"
    rc, out = _s_client_interactive(term.port, [(req % 0, 0.4), (b"R\n", 0.6), (req % 1, 0.6)],
                                    "-tls1_2", "-CAfile", certs.ca.cert)
    assert "piece 0" in out, out[-3000:]
    assert "RENEGOTIATING" in out, out[-3000:]
    assert term.alive()
    assert tls_get(term.port, "/hello", ca=certs.ca, version=ssl.TLSVersion.TLSv1_2).body == HELLO


def _fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_failed_handshakes_release_their_connections(cairn, certs):
    c = cairn(tls_config(certs, client_ca=str(certs.ca.cert), server={"header_timeout": "2s"}))
    assert tls_get(c.port, "/hello", ca=certs.ca, cert=certs.alice).status == 200
    time.sleep(0.3)
    before = _fds(c.pid)
    for i in range(20):
        with RawConn(c.port, timeout=5) as r:
            plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            r.send(plain if i % 2 else b"\x16\x03\x01\xff\xff" + b"x" * 64)
            r.wait_closed(timeout=4)
        refused(c.port, ca=certs.ca, version=VERSIONS[i % 2])          # no client certificate
        refused(c.port, ca=certs.ca, cert=certs.mallory, version=VERSIONS[i % 2])
        s = socket.create_connection(("127.0.0.1", c.port))            # gone mid-ClientHello
        s.sendall(client_hello()[:30])
        s.close()
    assert tls_get(c.port, "/hello", ca=certs.ca, cert=certs.alice).status == 200
    wait_for(lambda: _fds(c.pid) <= before, timeout=5,
             msg=f"cairn's open files back to {before} (now {_fds(c.pid)})")


def test_large_proxied_response_to_a_slow_tls_reader(cairn, origin, certs):
    """Not cached: the origin's bytes go through to a TLS client that reads slowly, so cairn
    has to stop reading the origin and resume (backpressure through the TLS layer)."""
    big = Blob(4 << 20, seed=21, chunked=True, chunk_size=65536)
    o = origin({"/big": big})
    c = cairn(with_tls_listener(proxy_config(o), certs))
    s = tls_connect(c.port, ca=certs.ca, rcvbuf=16384, timeout=15)
    with RawConn(sock=s, timeout=15) as t:
        t.send(b"GET /big HTTP/1.1\r\nHost: cairn.test\r\n\r\n")
        time.sleep(0.5)  # let every buffer on the way fill up
        r = t.read_response(timeout=30)
    assert r.status == 200 and len(r.body) == len(big.body) and _sha(r.body) == big.sha256


def test_many_concurrent_tls_clients(cairn, certs):
    c = cairn(tls_config(certs, server={"workers": 2}))
    errors, ok = [], []

    def client(i):
        try:
            with tls_conn(c.port, ca=certs.ca, timeout=10) as t:
                for j in range(5):
                    r = t.request("GET", f"/p{(i + j) % 3}", host="cairn.test")
                    assert r.body == f"piece {(i + j) % 3}\n".encode(), r
            ok.append(i)
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(ok) == 24


def test_proxied_over_tls_with_forwarded_proto(cairn, origin, certs):
    o = origin(default=Echo())
    cfg = with_tls_listener(proxy_config(o, server={"trusted_proxies": []}), certs)
    c = cairn(cfg)
    body = hashlib.sha256(b"x").digest() * 10000  # 320000 bytes
    r = tls_get(c.port, "/up/load?x=1", method="POST", body=body,
                headers={"X-Forwarded-Proto": "http"}, ca=certs.ca, timeout=10)
    assert r.status == 200, r
    seen = json.loads(r.body)
    assert seen["target"] == "/up/load?x=1"
    assert seen["body_len"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    req = o.wait_requests(1)[-1]
    assert req.header_all("X-Forwarded-Proto") == ["https"], req.headers


def test_forwarded_proto_https_only_on_the_tls_listener(cairn, origin, certs):
    o = origin()
    cfg = proxy_config(o)
    cfg["listeners"] = [listener(tls_block(certs)), listener()]
    c = cairn(cfg)
    assert tls_get(c.ports[0], "/a", ca=certs.ca).status == 200
    assert get(c.ports[1], "/b").status == 200
    reqs = {q.target: q for q in o.wait_requests(2)}
    assert reqs["/a"].header("X-Forwarded-Proto") == "https"
    assert reqs["/b"].header("X-Forwarded-Proto") == "http"


@pytest.fixture
def tls_cache(cairn, origin, certs):
    blobs = {
        "/small": Normal(body=b"small cached body\n", headers=MAX_AGE),
        "/b200k": Blob(200 << 10, seed=3, headers=MAX_AGE),
        "/b1m": Blob((1 << 20) + 3, seed=4, chunked=True, chunk_size=10000, headers=MAX_AGE),
        "/a": Blob(3 << 20, seed=11, headers=MAX_AGE),
        "/b": Blob(3 << 20, seed=12, headers=MAX_AGE),
    }
    o = origin(blobs)
    cfg = with_tls_listener(proxy_config(o, route_extra={"cache": "c"}), certs)
    cfg["caches"] = {"c": {"memory": {"size": "64MiB", "max_object": "16MiB"}}}
    return cairn(cfg), o, blobs


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def test_cache_hits_over_tls(tls_cache, certs):
    c, o, blobs = tls_cache
    for path in ("/small", "/b200k", "/b1m"):
        want_body = blobs[path].body
        for want in ("fwd=uri-miss", "hit"):
            r = tls_get(c.port, path, ca=certs.ca, timeout=10)
            assert r.status == 200, (path, r)
            assert want in (r.header("Cache-Status") or ""), (path, want, r.headers)
            assert len(r.body) == len(want_body) and _sha(r.body) == _sha(want_body), \
                f"{path} ({want}): {len(r.body)} bytes, not the origin's {len(want_body)}"
    assert [q.target for q in o.requests] == ["/small", "/b200k", "/b1m"]
    # several hits on one keep-alive TLS connection
    with tls_conn(c.port, ca=certs.ca, timeout=10) as t:
        for path in ("/b200k", "/small", "/b1m", "/b200k"):
            r = t.request("GET", path, host="cairn.test", timeout=10)
            assert "hit" in r.header("Cache-Status") and _sha(r.body) == _sha(blobs[path].body)
        r = t.request("HEAD", "/b200k", host="cairn.test")
        assert r.status == 200 and int(r.header("Content-Length")) == 200 << 10


def test_large_hit_to_a_slow_tls_reader(tls_cache, certs):
    c, o, blobs = tls_cache
    assert _sha(tls_get(c.port, "/a", ca=certs.ca, timeout=10).body) == blobs["/a"].sha256
    s = tls_connect(c.port, ca=certs.ca, rcvbuf=16384, timeout=10)
    with RawConn(sock=s, timeout=10) as t:
        t.send(b"GET /a HTTP/1.1\r\nHost: cairn.test\r\n\r\n")
        time.sleep(0.3)
        got = bytearray()
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(16384)
            assert chunk, "closed before the head"
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0] and b"hit" in head, head
        got += rest
        n = 0
        while len(got) < len(blobs["/a"].body):
            chunk = s.recv(16384)
            assert chunk, f"closed after {len(got)} body bytes"
            got += chunk
            n += 1
            if n % 8 == 0:
                time.sleep(0.01)
    assert _sha(bytes(got)) == blobs["/a"].sha256


def test_purge_during_a_tls_hit_does_not_change_its_bytes(tls_cache, certs):
    """As test_cache_sendfile's reused-segments test, over TLS: a client that has not read
    its hit holds it while the object is purged and another fills the freed segments; it
    then reads the original bytes."""
    c, o, blobs = tls_cache
    a, b = blobs["/a"], blobs["/b"]
    assert _sha(tls_get(c.port, "/a", ca=certs.ca, timeout=10).body) == a.sha256
    s = tls_connect(c.port, ca=certs.ca, rcvbuf=32768, timeout=10)
    try:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: cairn.test\r\n\r\n")
        time.sleep(0.5)
        purged = 0
        for scheme in ("https", "http"):  # whichever the cache key holds
            body = json.dumps({"url": f"{scheme}://cairn.test/a", "soft": False})
            with RawConn(c.admin_port) as adm:
                r = adm.request("POST", "/cache/purge", {"Content-Type": "application/json"},
                                body.encode(), host=f"127.0.0.1:{c.admin_port}")
            assert r.status == 200, r
            purged += json.loads(r.body).get("purged", 0)
        assert purged == 1, f"purging /a removed {purged} objects"
        for _ in range(2):
            assert _sha(tls_get(c.port, "/b", ca=certs.ca, timeout=10).body) == b.sha256
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, "closed before the head"
            data += chunk
        head, got = data.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0], head
        while len(got) < len(a.body):
            chunk = s.recv(1 << 20)
            assert chunk, f"connection closed after {len(got)} of {len(a.body)} bytes"
            got += chunk
        assert _sha(got) == a.sha256, "bytes of a hit in flight changed after a purge"
    finally:
        s.close()


def test_client_abort_mid_response_over_tls(tls_cache, certs):
    c, o, blobs = tls_cache
    assert tls_get(c.port, "/a", ca=certs.ca, timeout=10).status == 200
    for _ in range(3):
        s = tls_connect(c.port, ca=certs.ca, rcvbuf=16384)
        s.sendall(b"GET /a HTTP/1.1\r\nHost: cairn.test\r\n\r\n")
        assert s.recv(16384)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST in the middle of the TLS stream
    r = tls_get(c.port, "/b200k", ca=certs.ca, timeout=10)
    assert r.status == 200 and _sha(r.body) == blobs["/b200k"].sha256
    assert c.alive()


# --------------------------------------------------------------------------------------
# SNI


@pytest.fixture(scope="module")
def sni(cairn_module, certs):
    entries = [certs.first, certs.a, certs.wild, certs.exact_wild, certs.dual_rsa, certs.dual_ec]
    cfg = {
        "server": {"workers": 1, "header_timeout": "3s", "shutdown_grace": "2s"},
        "listeners": [listener({"certificates": [
            {"cert": str(e.cert), "key": str(e.key)} for e in entries]})],
        "routes": hello_routes(),
    }
    return cairn_module(cfg, name="tls-sni")


@pytest.mark.parametrize("server_name,expected", [
    ("a.test", "a"),
    ("a2.test", "a"),            # the certificate's second SAN
    ("x.wild.test", "wild"),
    ("exact.wild.test", "exact_wild"),   # the exact name wins over the wildcard
    ("wild.test", "first"),      # *.wild.test does not cover wild.test itself
    ("other.test", "first"),     # no match: the first certificate
    ("first.test", "first"),
    (None, "first"),             # no SNI at all
])
def test_sni_selects_certificate(sni, certs, server_name, expected):
    ctx = client_ctx(ca=certs.ca, check_hostname=False)
    with tls_conn(sni.port, ctx=ctx, server_hostname=server_name) as c:
        der = c.sock.getpeercert(binary_form=True)
        assert der == getattr(certs, expected).der, \
            f"SNI {server_name!r}: got {which(certs, der)}, expected {expected}"
        r = c.request("GET", "/hello", host=server_name or "cairn.test")
        assert (r.status, r.body) == (200, HELLO), r


@pytest.mark.parametrize("server_name,expected", [
    ("a.test", "a"), ("x.wild.test", "wild"), ("other.test", "first"),
    ("A.TEST", "a"), ("X.Wild.Test", "wild"),  # names are case-insensitive (s_client sends
])                                             # them as given; Python would lowercase them)
def test_sni_s_client(sni, certs, server_name, expected):
    rc, out = s_client(sni.port, "-servername", server_name, "-CAfile", certs.ca.cert,
                       host=server_name)
    assert "HTTP/1.1 200" in out, out[-3000:]
    assert presented_der(out) == getattr(certs, expected).der, out[-3000:]
    assert "HTTP/1.1 200" in out


@pytest.mark.parametrize("flag", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("sigalgs,expected", [
    ("ECDSA+SHA256", "dual_ec"),
    ("RSA-PSS+SHA256:RSA+SHA256", "dual_rsa"),
])
def test_sni_rsa_and_ecdsa_for_one_name(sni, certs, flag, sigalgs, expected):
    rc, out = s_client(sni.port, flag, "-servername", "dual.test", "-sigalgs", sigalgs,
                       "-CAfile", certs.ca.cert, "-verify_return_error", host="dual.test")
    assert "HTTP/1.1 200" in out, out[-3000:]
    der = presented_der(out)
    assert der == getattr(certs, expected).der, \
        f"{flag} {sigalgs}: got {which(certs, der)}, expected {expected}\n{out[-2000:]}"
    assert "HTTP/1.1 200" in out


# --------------------------------------------------------------------------------------
# client certificates (mTLS)

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
VERSION_IDS = ["TLSv1.2", "TLSv1.3"]


@pytest.fixture(scope="module")
def mtls(cairn_module, certs):
    cfg = {
        "server": {"workers": 1, "header_timeout": "3s", "shutdown_grace": "2s"},
        "listeners": [
            listener(tls_block(certs, client_ca=str(certs.ca.cert))),
            listener(tls_block(certs, client_ca=str(certs.ca.cert),
                               client_verify="required")),
            listener(tls_block(certs, client_ca=str(certs.ca.cert),
                               client_verify="optional")),
        ],
        "routes": hello_routes(),
    }
    return cairn_module(cfg, name="tls-mtls")


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("which_listener", [0, 1], ids=["default", "required"])
def test_mtls_required_refuses_without_certificate(mtls, certs, version, which_listener):
    refused(mtls.ports[which_listener], ca=certs.ca, version=version)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("client", ["mallory", "alice_expired"])
def test_mtls_required_refuses_bad_certificate(mtls, certs, version, client):
    refused(mtls.ports[1], ca=certs.ca, cert=getattr(certs, client), version=version)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("which_listener", [0, 1, 2], ids=["default", "required", "optional"])
def test_mtls_accepts_certificate_from_the_ca(mtls, certs, version, which_listener):
    r = tls_get(mtls.ports[which_listener], "/hello", ca=certs.ca, cert=certs.alice,
                version=version)
    assert (r.status, r.body) == (200, HELLO), r


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_mtls_optional_accepts_without_certificate(mtls, certs, version):
    r = tls_get(mtls.ports[2], "/hello", ca=certs.ca, version=version)
    assert (r.status, r.body) == (200, HELLO), r


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_mtls_optional_refuses_invalid_certificate(mtls, certs, version):
    """docs/tls.md: optional lets a client without a certificate in; one with an invalid
    certificate is still refused."""
    refused(mtls.ports[2], ca=certs.ca, cert=certs.mallory, version=version)


def test_mtls_s_client(mtls, certs):
    rc, out = s_client(mtls.ports[1], "-CAfile", certs.ca.cert, "-cert", certs.alice.cert,
                       "-key", certs.alice.key)
    assert "HTTP/1.1 200" in out, out[-3000:]
    rc, out = s_client(mtls.ports[1], "-CAfile", certs.ca.cert, "-tls1_2")
    assert "HTTP/1.1" not in out, out[-3000:]
    assert rc != 0, out[-3000:]


# --------------------------------------------------------------------------------------
# TLS to upstreams


@pytest.fixture
def tls_origin():
    started = []

    def start(cert, routes=None, **kw):
        o = TLSOrigin(cert.cert, cert.key, routes, **kw).start()
        started.append(o)
        return o

    yield start
    for o in started:
        o.stop()


def upstream_cfg(o, certs, **tls_kw):
    return proxy_config(o, upstream_extra={"tls": upstream_tls(certs, **tls_kw)})


def test_upstream_tls_verified_with_sni(cairn, tls_origin, certs):
    o = tls_origin(certs.origin, default=Normal(body=b"from the https origin\n"))
    c = cairn(upstream_cfg(o, certs))
    r = get(c.port, "/x?y=1")
    assert (r.status, r.body) == (200, b"from the https origin\n"), r
    req = o.wait_requests(1)[-1]
    assert req.target == "/x?y=1"
    assert o.handshakes and o.handshakes[0].sni == "origin.test", (o.handshakes, o.sni)
    assert o.handshakes[0].version in ("TLSv1.2", "TLSv1.3")
    # a second request reuses the pooled TLS connection
    r = get(c.port, "/again")
    assert r.status == 200, r
    assert len(o.requests) == 2
    assert o.connections == 1 and len(o.handshakes) == 1, \
        f"{o.connections} connections, {len(o.handshakes)} handshakes for 2 requests"


def test_upstream_tls_sni_is_the_configured_name(cairn, tls_origin, certs):
    o = tls_origin(certs.origin)
    c = cairn(upstream_cfg(o, certs))
    assert get(c.port, "/", host="client.example").status == 200
    assert o.sni == ["origin.test"], o.sni  # not the client's Host, not the address


@pytest.mark.parametrize("origin_cert", ["origin_other_ca", "origin_expired",
                                         "origin_wrong_name"])
def test_upstream_tls_bad_origin_certificate_is_502(cairn, tls_origin, certs, origin_cert):
    o = tls_origin(getattr(certs, origin_cert))
    c = cairn(upstream_cfg(o, certs))
    r = get(c.port, "/")
    assert r.status == 502, f"{origin_cert}: {r!r}"
    assert o.requests == [], "a request was sent over an unverified connection"
    assert c.alive()


def test_upstream_tls_verify_false_accepts_any_certificate(cairn, tls_origin, certs):
    o = tls_origin(certs.origin_other_ca, default=Normal(body=b"unverified\n"))
    c = cairn(upstream_cfg(o, certs, verify=False))
    r = get(c.port, "/")
    assert (r.status, r.body) == (200, b"unverified\n"), r
    assert len(o.requests) == 1


def test_upstream_tls_client_certificate(cairn, tls_origin, certs):
    o = tls_origin(certs.origin, client_ca=certs.ca.cert, default=Normal(body=b"mtls\n"))
    c = cairn(upstream_cfg(o, certs, cert=str(certs.cairn_client.cert),
                           key=str(certs.cairn_client.key)))
    r = get(c.port, "/")
    assert (r.status, r.body) == (200, b"mtls\n"), r
    assert o.handshakes[0].peer_subject == "CN=cairn-upstream,O=cairn-upstream", o.handshakes


def test_upstream_tls_without_client_certificate_is_502(cairn, tls_origin, certs):
    o = tls_origin(certs.origin, client_ca=certs.ca.cert)
    c = cairn(upstream_cfg(o, certs))
    r = get(c.port, "/")
    assert r.status == 502, r
    assert o.requests == []


def test_upstream_tls_large_bodies_both_ways(cairn, tls_origin, certs):
    big = Blob((1 << 20) + 7, seed=5, chunked=True, chunk_size=50000)
    o = tls_origin(certs.origin, {"/big": big, "/echo": Echo()})
    c = cairn(upstream_cfg(o, certs))
    with RawConn(c.port, timeout=10) as conn:
        r = conn.request("GET", "/big", timeout=10)
        assert r.status == 200 and _sha(r.body) == big.sha256, len(r.body)
        payload = bytes(range(256)) * 1200  # 307200 bytes
        r = conn.request("POST", "/echo", body=payload, timeout=10)
        assert r.status == 200, r
        seen = json.loads(r.body)
        assert seen["body_len"] == len(payload)
        assert seen["body_sha256"] == _sha(payload)


def test_upstream_tls_origin_closing_after_each_response(cairn, tls_origin, certs):
    """Pooled TLS connections the origin closed are not used for the next request."""
    o = tls_origin(certs.origin, keepalive=False, default=Normal(body=b"once\n"))
    c = cairn(upstream_cfg(o, certs))
    for i in range(4):
        r = get(c.port, f"/{i}")
        assert (r.status, r.body) == (200, b"once\n"), (i, r)
        time.sleep(0.1)
    assert len(o.requests) == 4


def test_plain_origin_behind_upstream_tls_fails(cairn, origin, certs):
    """A plain-HTTP origin waits for a request head that never comes (the ClientHello has no
    CRLFCRLF): the handshake times out (connect_timeout) and nothing reaches the origin."""
    o = origin()
    c = cairn(upstream_cfg(o, certs))
    r = get(c.port, "/")
    assert r.status in (502, 504), r
    assert o.requests == [], "the origin parsed a request out of a ClientHello"


class _PlainAnswerer:
    """Answers whatever arrives with a plain HTTP response, then closes."""

    def __init__(self, answer):
        self.answer = answer
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.address = f"127.0.0.1:{self.ls.getsockname()[1]}"
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                continue
            with c:
                try:
                    c.settimeout(2)
                    c.recv(65536)
                    c.sendall(self.answer)
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.t.join(2)
        self.ls.close()


def test_plain_http_answer_to_client_hello_is_502(cairn, certs):
    """An origin that answers the ClientHello with plain HTTP: the handshake fails (502) and
    the plain response never reaches the client."""
    a = _PlainAnswerer(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nplain answer\r\n")
    try:
        cfg = proxy_config(a.address, upstream_extra={"tls": upstream_tls(certs), "retries": 0})
        c = cairn(cfg)
        r = get(c.port, "/")
        assert r.status == 502, r
        assert b"plain answer" not in r.body
    finally:
        a.close()


def test_tls_origin_without_upstream_tls_is_502(cairn, tls_origin, certs):
    o = tls_origin(certs.origin)
    c = cairn(proxy_config(o))
    r = get(c.port, "/")
    assert r.status == 502, r
    assert o.requests == [] and o.handshakes == []


def test_upstream_handshake_that_never_completes(cairn, certs):
    """An origin that accepts TCP and never answers the ClientHello: the handshake counts
    against connect_timeout (500ms), not read_timeout (10s)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    try:
        cfg = proxy_config(f"127.0.0.1:{ls.getsockname()[1]}", upstream_extra={
            "tls": upstream_tls(certs), "connect_timeout": "500ms", "read_timeout": "10s",
            "retries": 0})
        c = cairn(cfg)
        t0 = time.monotonic()
        r = get(c.port, "/", timeout=15)
        dt = time.monotonic() - t0
        assert r.status in (502, 504), r
        assert 0.4 <= dt < 3.0, f"answered after {dt:.2f}s with connect_timeout 500ms"
    finally:
        ls.close()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_upstream_tls_origin_with_one_version(cairn, tls_origin, certs, version):
    o = tls_origin(certs.origin, min_version=version, max_version=version,
                   default=Normal(body=b"pinned\n"))
    c = cairn(upstream_cfg(o, certs))
    r = get(c.port, "/")
    assert (r.status, r.body) == (200, b"pinned\n"), r
    assert o.handshakes[0].version == version.name.replace("_", ".")


@pytest.mark.parametrize("origin_cert,reason", [
    ("origin_other_ca", "unable to get local issuer certificate"),
    ("origin_expired", "certificate has expired"),
    ("origin_wrong_name", "hostname mismatch"),
])
def test_upstream_tls_failure_reason_in_error_log(cairn, tls_origin, certs, origin_cert,
                                                   reason):
    o = tls_origin(getattr(certs, origin_cert))
    c = cairn(upstream_cfg(o, certs))
    assert get(c.port, "/").status == 502
    wait_for(lambda: reason in c.stderr_text(), timeout=3,
             msg=f"{reason!r} in the error log:\n{c.stderr_text()[-2000:]}")


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_upstream_tls_sessions_resume(cairn, tls_origin, certs, version):
    """docs/tls.md: the upstream client context offers its last session to the next
    connection. keepalive_pool 0: every request opens a new connection. (TLS 1.3 tickets
    arrive after the handshake: the session to keep is the one after they were read.)"""
    o = tls_origin(certs.origin, min_version=version, max_version=version)
    cfg = proxy_config(o, upstream_extra={"tls": upstream_tls(certs), "keepalive_pool": 0})
    c = cairn(cfg)
    for i in range(3):
        assert get(c.port, f"/{i}").status == 200
    assert len(o.handshakes) == 3, o.handshakes
    assert [h.resumed for h in o.handshakes][1:] == [True, True], o.handshakes


def test_access_log_has_tls_fields(cairn, origin, certs):
    """docs/tls.md: requests over TLS carry tls_version, tls_cipher and tls_resumed in the
    JSON access log (static and proxied, first and later requests of a connection)."""
    o = origin()
    cfg = with_tls_listener(proxy_config(o, extra_routes=[static_route("s\n", path="/static")]),
                            certs)
    c = cairn(cfg)
    with tls_conn(c.port, ca=certs.ca, version=ssl.TLSVersion.TLSv1_3) as t:
        for path in ("/static", "/proxied", "/static"):
            assert t.request("GET", path, host="cairn.test").status == 200
    assert c.stop() == 0
    entries = [json.loads(ln) for ln in c.access_log_lines()]
    assert [e["path"] for e in entries] == ["/static", "/proxied", "/static"], entries
    for e in entries:
        assert e.get("tls_version") == "TLSv1.3", e
        assert e.get("tls_resumed") is False, e
        assert str(e.get("tls_cipher", "")).startswith("TLS_"), e


def test_tls_both_sides(cairn, tls_origin, certs):
    big = Blob(300 << 10, seed=9)
    o = tls_origin(certs.origin, {"/big": big})
    cfg = with_tls_listener(upstream_cfg(o, certs), certs)
    c = cairn(cfg)
    r = tls_get(c.port, "/big", ca=certs.ca, timeout=10)
    assert r.status == 200 and _sha(r.body) == big.sha256
    assert o.requests[-1].header("X-Forwarded-Proto") == "https"
    assert o.sni == ["origin.test"]


# --------------------------------------------------------------------------------------
# configuration errors (cairn -t)


def diag_lines(stderr, path):
    out = []
    for ln in stderr.splitlines():
        m = re.match(re.escape(str(path)) + r":(\d+):(\d+): error: (.+)$", ln)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def block(text, start_pattern, nth=0):
    """(first, last) 1-based line numbers of the YAML block that starts at the @nth line
    matching @start_pattern (the line and every more-indented line after it)."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if re.search(start_pattern, ln)]
    assert len(starts) > nth, (start_pattern, text)
    i = starts[nth]
    indent = len(lines[i]) - len(lines[i].lstrip())
    j = i + 1
    while j < len(lines) and (not lines[j].strip() or
                              len(lines[j]) - len(lines[j].lstrip()) > indent):
        j += 1
    return i + 1, j


def check_config(certs, listener_tls=None, upstream=None):
    """A complete configuration for `cairn -t` with one TLS listener and an upstream with
    tls; @listener_tls / @upstream replace or add keys (None values remove them)."""
    t = tls_block(certs)
    for k, v in (listener_tls or {}).items():
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    u = upstream_tls(certs, cert=str(certs.cairn_client.cert), key=str(certs.cairn_client.key))
    for k, v in (upstream or {}).items():
        if v is None:
            u.pop(k, None)
        else:
            u[k] = v
    return to_yaml({
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "listeners": [listener(t)],
        "upstreams": {"o": {"peers": [{"address": f"127.0.0.1:{free_port()}"}], "tls": u}},
        "routes": [{"match": {"path_prefix": "/"}, "upstream": "o"}],
    })


def assert_valid(cairn_cli, write_config, text, name="good.yaml"):
    p = write_config(text, name)
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 0, f"valid TLS configuration refused:\n{text}\n{r.stderr}"
    assert "configuration OK" in r.stdout, r.stdout


def assert_error_in(cairn_cli, write_config, text, first_last, what):
    p = write_config(text, "bad.yaml")
    r = cairn_cli("-t", "-c", p)
    assert r.returncode == 1, f"{what}: exit {r.returncode}, expected 1; stderr:\n{r.stderr}"
    diags = diag_lines(r.stderr, p)
    first, last = first_last
    assert any(first <= ln <= last for ln, _, _ in diags), (
        f"{what}: no `{p}:LINE:COL: error:` with LINE in {first}..{last}; stderr:\n{r.stderr}"
        f"\nconfig:\n{text}")
    return diags


def test_check_valid_tls_config(cairn_cli, write_config, certs):
    assert_valid(cairn_cli, write_config, check_config(certs))
    assert_valid(cairn_cli, write_config, check_config(certs, {
        "protocols": ["TLSv1.2", "TLSv1.3"], "ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20",
        "client_ca": str(certs.ca.cert), "client_verify": "optional"}))


def test_check_key_not_matching_certificate(cairn_cli, write_config, certs):
    assert_valid(cairn_cli, write_config, check_config(certs))
    text = check_config(certs, {"key": str(certs.a.key)})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$"),
                    "a key that does not match the certificate")


def test_check_certificates_entry_key_mismatch(cairn_cli, write_config, certs):
    good = [{"cert": str(certs.first.cert), "key": str(certs.first.key)},
            {"cert": str(certs.a.cert), "key": str(certs.a.key)}]
    assert_valid(cairn_cli, write_config,
                 check_config(certs, {"cert": None, "key": None, "certificates": good}))
    bad = [good[0], {"cert": str(certs.a.cert), "key": str(certs.wild.key)}]
    text = check_config(certs, {"cert": None, "key": None, "certificates": bad})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+certificates:$"),
                    "certificates[1] with another certificate's key")


@pytest.mark.parametrize("key", ["cert", "key"])
def test_check_unreadable_file(cairn_cli, write_config, certs, key):
    assert_valid(cairn_cli, write_config, check_config(certs))
    missing = str(certs.dir / f"does-not-exist.{key}")
    text = check_config(certs, {key: missing})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$"),
                    f"an unreadable {key} file")


@pytest.mark.parametrize("not_cert", ["csr", "key", "garbage"])
def test_check_pem_that_is_not_a_certificate(cairn_cli, write_config, certs, not_cert):
    assert_valid(cairn_cli, write_config, check_config(certs))
    path = {"csr": certs.server.csr, "key": certs.server.key, "garbage": certs.garbage}[not_cert]
    text = check_config(certs, {"cert": str(path)})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$"),
                    f"cert: a {not_cert} file")


@pytest.mark.parametrize("bad", ["TLSv1.0", "TLSv1.1", "SSLv3", "TLSv1.4"])
def test_check_protocols_refused(cairn_cli, write_config, certs, bad):
    assert_valid(cairn_cli, write_config, check_config(certs, {"protocols": ["TLSv1.3"]}))
    text = check_config(certs, {"protocols": [bad, "TLSv1.2"]})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+protocols:$"),
                    f"protocols: [{bad}]")


def test_check_bad_cipher_list(cairn_cli, write_config, certs):
    assert_valid(cairn_cli, write_config, check_config(certs, {"ciphers": "ECDHE+AESGCM"}))
    text = check_config(certs, {"ciphers": "NOT-A-CIPHER:ALSO-NOT"})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$"),
                    "a cipher list that names no cipher")


def test_check_client_ca_and_verify(cairn_cli, write_config, certs):
    assert_valid(cairn_cli, write_config, check_config(certs, {"client_ca": str(certs.ca.cert),
                                                               "client_verify": "required"}))
    text = check_config(certs, {"client_ca": str(certs.dir / "no-such-ca.pem")})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$"),
                    "an unreadable client_ca")
    text = check_config(certs, {"client_ca": str(certs.ca.cert), "client_verify": "sometimes"})
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$"),
                    "client_verify: sometimes")


@pytest.mark.parametrize("change,what", [
    ({"ca": "/nonexistent/ca.pem"}, "an unreadable upstream ca"),
    ({"key": None}, "an upstream cert without key"),
    ({"key": "KEY_OF_A"}, "an upstream key that does not match its cert"),
    ({"cert": "GARBAGE"}, "an upstream cert that is not a certificate"),
])
def test_check_upstream_tls_errors(cairn_cli, write_config, certs, change, what):
    assert_valid(cairn_cli, write_config, check_config(certs))
    subst = {"KEY_OF_A": str(certs.a.key), "GARBAGE": str(certs.garbage)}
    change = {k: subst.get(v, v) for k, v in change.items()}
    text = check_config(certs, upstream=change)
    assert_error_in(cairn_cli, write_config, text, block(text, r"^\s+tls:$", nth=1), what)


# --------------------------------------------------------------------------------------
# session resumption across workers


@pytest.mark.parametrize("flag,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_session_resumption_across_workers(cairn, certs, tmp_path, flag, name):
    c = cairn(tls_config(certs, server={"workers": 2}))
    sess = tmp_path / "session.pem"
    common = (flag, "-CAfile", certs.ca.cert, "-servername", "cairn.test")
    rc, out = s_client(c.port, *common, "-sess_out", sess)
    assert "HTTP/1.1 200" in out, out[-3000:]
    assert session_line(out) == ("New", name)
    assert sess.exists() and sess.stat().st_size > 0, "s_client saved no session"
    # eight more connections, each resuming the latest session; SO_REUSEPORT spreads them
    # over both workers
    for i in range(8):
        rc, out = s_client(c.port, *common, "-sess_in", sess, "-sess_out", sess)
        assert "HTTP/1.1 200" in out, out[-3000:]
        assert session_line(out) == ("Reused", name), f"connection {i + 2}:\n{out[-3000:]}"


# --------------------------------------------------------------------------------------
# reload


def reload_and_wait(c, expect_ok=True):
    log = c.stderr_text()
    ok, failed = log.count(RELOADED), log.count(RELOAD_FAILED)
    c.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = c.stderr_text()
        if log.count(RELOADED) > ok:
            assert expect_ok, f"reload succeeded unexpectedly:\n{log[-2000:]}"
            return
        if log.count(RELOAD_FAILED) > failed:
            assert not expect_ok, f"reload failed:\n{log[-2000:]}"
            return
        time.sleep(0.02)
    raise AssertionError(f"no reload outcome logged within 10s:\n{c.stderr_text()[-3000:]}")


def _install(src, live):
    """Copies @src's cert and key over the live files (rename: never half a file)."""
    for a, b in ((src.cert, live.cert), (src.key, live.key)):
        tmp = Path(str(b) + ".new")
        shutil.copyfile(a, tmp)
        tmp.replace(b)


@pytest.fixture
def live_cert(tmp_path, certs):
    live = types.SimpleNamespace(cert=tmp_path / "live.pem", key=tmp_path / "live.key")
    _install(certs.server, live)
    return live


def test_reload_swaps_certificate(cairn, certs, live_cert):
    cfg = tls_config(certs, server={"workers": 2, "keepalive_timeout": "30s"},
                     cert=types.SimpleNamespace(cert=live_cert.cert, key=live_cert.key))
    c = cairn(cfg)
    before = tls_conn(c.port, ca=certs.ca, timeout=10)
    try:
        assert before.sock.getpeercert(binary_form=True) == certs.server.der
        assert before.request("GET", "/hello", host="cairn.test").body == HELLO
        _install(certs.server2, live_cert)
        reload_and_wait(c)
        for _ in range(4):  # both workers
            with tls_conn(c.port, ca=certs.ca) as t:
                assert t.sock.getpeercert(binary_form=True) == certs.server2.der, \
                    "a connection after the reload got the old certificate"
                assert t.request("GET", "/hello", host="cairn.test").body == HELLO
        # the connection opened before the reload keeps working
        r = before.request("GET", "/p2", host="cairn.test")
        assert (r.status, r.body) == (200, b"piece 2\n"), r
        assert before.sock.getpeercert(binary_form=True) == certs.server.der
    finally:
        before.close()


def test_reload_with_broken_certificate_keeps_the_old_one(cairn, certs, live_cert):
    cfg = tls_config(certs, cert=types.SimpleNamespace(cert=live_cert.cert, key=live_cert.key))
    c = cairn(cfg)
    assert tls_get(c.port, "/hello", ca=certs.ca).body == HELLO
    # a key that does not match the certificate
    shutil.copyfile(certs.a.key, live_cert.key)
    reload_and_wait(c, expect_ok=False)
    with tls_conn(c.port, ca=certs.ca) as t:
        assert t.sock.getpeercert(binary_form=True) == certs.server.der
        assert t.request("GET", "/hello", host="cairn.test").body == HELLO
    assert c.alive()


# --------------------------------------------------------------------------------------
# the YAML examples (placeholders @NAME@ filled in here)


def example_text(name, **values):
    text = (REPO / "examples" / name).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = [m for ln in text.splitlines() if not ln.lstrip().startswith("#")
            for m in re.findall(r"@[A-Z_]+@", ln)]
    assert not left, f"unfilled placeholders in examples/{name}: {left}"
    return text


def test_example_lesson07_tls(cairn, certs):
    port = free_port()
    c = cairn(example_text("lesson07_tls.yaml", PORT=port, ADMIN_PORT=free_port(),
                           CERT=certs.server.cert, KEY=certs.server.key))
    assert c.port == port
    with tls_conn(port, ca=certs.ca) as t:
        assert t.sock.version() in ("TLSv1.2", "TLSv1.3")
        r = t.request("GET", "/", host="cairn.test")
        assert r.status == 200 and r.body == b"Hello over TLS\n", r
    rc, out = s_client(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "HTTP/1.1" not in out


def test_example_lesson20_upstream_tls(cairn, tls_origin, certs):
    o = tls_origin(certs.origin, client_ca=certs.ca.cert,
                   default=Normal(body=b"Response from the HTTPS origin\n"))
    port = free_port()
    cairn(example_text("lesson20_upstream_tls.yaml", PORT=port, ADMIN_PORT=free_port(),
                       ORIGIN=o.address, CA=certs.ca.cert,
                       CLIENT_CERT=certs.cairn_client.cert,
                       CLIENT_KEY=certs.cairn_client.key))
    r = get(port, "/anything")
    assert (r.status, r.body) == (200, b"Response from the HTTPS origin\n"), r
    assert o.sni == ["origin.test"]
    assert o.handshakes[0].peer_subject == "CN=cairn-upstream,O=cairn-upstream"
