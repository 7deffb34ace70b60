"""Request limits: max_header_size (431), max_headers (431), max_uri_size (414),
max_body_size (413)."""
import pytest

from helpers import RawConn, static_route

LIMITS = {"max_header_size": "4KiB", "max_headers": 20, "max_uri_size": "1KiB",
          "max_body_size": "1KiB"}


@pytest.fixture(scope="module")
def srv(cairn_module):
    return cairn_module({
        "server": {"workers": 1, "header_timeout": "2s", **LIMITS},
        "routes": [static_route("ok\n", path_prefix="/")],
    })


def send(srv, data, timeout=3):
    c = RawConn(srv.port, timeout=timeout)
    c.send(data)
    return c


def test_header_block_too_large_431_and_close(srv):
    with send(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 431, r
        c.wait_closed(2)


def test_header_block_too_large_without_terminator(srv):
    # The head never ends: cairn must not wait for the end once the limit is exceeded.
    with send(srv, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Fill: " + b"f" * 6000) as c:
        r = c.read_response(timeout=1.5)
        assert r.status == 431, r
        c.wait_closed(2)


def test_header_block_under_limit_ok(srv):
    with send(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 200, f"a 3 KB head is within max_header_size 4KiB: {r}"


def test_too_many_headers_431(srv):
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    with send(srv, b"GET / HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n") as c:
        r = c.read_response()
        assert r.status == 431, r
        c.wait_closed(2)


def test_headers_at_limit_ok(srv):
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(15))
    with send(srv, b"GET / HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n") as c:
        r = c.read_response()
        assert r.status == 200, f"16 headers are within max_headers 20: {r}"


def test_uri_too_long_414(srv):
    target = b"/" + b"u" * 2000
    with send(srv, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 414, r
        c.wait_closed(2)


def test_uri_too_long_query_414(srv):
    target = b"/?q=" + b"u" * 2000
    with send(srv, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 414, r


def test_uri_under_limit_ok(srv):
    target = b"/" + b"u" * 900
    with send(srv, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 200, f"a 901-byte target is within max_uri_size 1KiB: {r}"


def test_body_too_large_content_length_413(srv):
    with send(srv, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 413, f"Content-Length 2000 > max_body_size 1KiB must be refused at once: {r}"
        c.wait_closed(2)


def test_body_too_large_chunked_413(srv):
    chunk = b"400\r\n" + b"c" * 1024 + b"\r\n"
    with send(srv, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              + chunk + chunk + b"0\r\n\r\n") as c:
        r = c.read_response()
        assert r.status == 413, r


def test_body_at_limit_ok(srv):
    body = b"b" * 1024
    with send(srv, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n" + body) as c:
        r = c.read_response()
        assert r.status == 200, f"a 1024-byte body equals max_body_size 1KiB: {r}"
        r2 = c.request("GET", "/")
        assert r2.status == 200, r2
