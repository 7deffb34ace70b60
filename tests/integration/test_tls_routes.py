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
