"""Upstream connection handling: origins that close, HTTP/1.0-style responses, 1xx, and
pooled connections that went stale."""
import pytest

from helpers import RawConn, get, proxy_config
from origins import Func, Normal, Raw


def close_after(body):
    """Answers with a keep-alive-looking response, then silently closes the connection."""
    def fn(origin, req, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body)
        return False
    return Func(fn)


def test_stale_pooled_connection_is_not_fatal(cairn, origin):
    org = origin({"/x": close_after(b"fresh\n")})
    c = cairn(proxy_config(org, server={"workers": 1}))
    import time
    with RawConn(c.port) as s:
        for i in range(5):
            r = s.request("GET", "/x")
            assert r.status == 200 and r.body == b"fresh\n", \
                f"request {i} failed after the origin closed the previous pooled connection: {r}"
            time.sleep(0.1)  # let the origin's FIN arrive
    assert len(org.requests) == 5


def test_origin_connection_close_not_reused(cairn, origin):
    org = origin({"/x": Normal(200, b"cc\n", headers={"Connection": "close"})})
    c = cairn(proxy_config(org, server={"workers": 1}))
    with RawConn(c.port) as s:
        for i in range(3):
            r = s.request("GET", "/x")
            assert r.status == 200 and r.body == b"cc\n", f"request {i}: {r}"
            assert "close" not in (r.header("Connection") or "").lower(), \
                f"the origin's Connection: close leaked to the client: {r}"
    assert org.connections == 3, f"expected 3 upstream connections, saw {org.connections}"


def test_origin_body_until_close(cairn, origin):
    body = b"read until EOF\n" * 1000
    org = origin({"/eof": Raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)})
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        r = s.request("GET", "/eof")
        assert r.status == 200 and r.body == body, f"close-delimited body mangled: {len(r.body)} bytes"


def test_origin_http10_response(cairn, origin):
    org = origin({"/old": Raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: 4\r\n\r\nold\n")})
    c = cairn(proxy_config(org))
    r = get(c.port, "/old")
    assert r.status == 200 and r.body == b"old\n", r
    assert r.version == "HTTP/1.1", f"cairn speaks HTTP/1.1 to its clients: {r}"


def test_origin_interim_100_then_final(cairn, origin):
    org = origin({"/up": Raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                             b"Content-Length: 5\r\n\r\nmade\n", close=False)})
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        r = s.request("POST", "/up", body=b"data")
        assert r.status == 201 and r.body == b"made\n", f"origin's 100 mishandled: {r}"
        r2 = s.request("POST", "/up", body=b"data")
        assert r2.status == 201, r2


def test_origin_304_passthrough(cairn, origin):
    org = origin({"/c": Normal(304, b"", headers={"ETag": '"v1"'})})
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        r = s.request("GET", "/c", headers={"If-None-Match": '"v1"'})
        assert r.status == 304 and r.header("ETag") == '"v1"', r
        r2 = s.request("GET", "/c", headers={"If-None-Match": '"v1"'})
        assert r2.status == 304, f"connection out of sync after a 304: {r2}"


def test_origin_head_response(cairn, origin):
    org = origin({"/h": Normal(200, b"x" * 1234)})
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        h = s.request("HEAD", "/h")
        assert h.status == 200 and h.header("Content-Length") == "1234", h
        g = s.request("GET", "/h")
        assert g.body == b"x" * 1234, g
    assert org.requests[0].method == "HEAD", "HEAD must be forwarded as HEAD"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_forwarded(cairn, origin, method):
    org = origin({"/m": Normal(200, b"m\n")})
    c = cairn(proxy_config(org))
    body = b"payload" if method in ("PUT", "PATCH") else b""
    r = get(c.port, "/m", method=method, body=body)
    assert r.status == 200, r
    assert org.requests[-1].method == method and org.requests[-1].body == body, org.requests[-1]


def test_chunked_request_trailers_and_body(cairn, origin):
    org = origin()
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        s.send(b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n")
        r = s.read_response()
        assert r.status == 200, r
    assert org.requests[-1].body == b"abcdefg", org.requests[-1]


def test_http10_client_gets_unchunked_body(cairn, origin):
    from origins import Chunked
    org = origin({"/ch": Chunked(pieces=[b"one ", b"two ", b"three\n"])})
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        s.send(b"GET /ch HTTP/1.0\r\nHost: x\r\n\r\n")
        r = s.read_response()
        assert not r.chunked, f"chunked encoding sent to an HTTP/1.0 client: {r}"
        assert r.status == 200 and r.body == b"one two three\n", r
        s.wait_closed(2)


def test_http10_client_keepalive_through_proxy(cairn, origin):
    org = origin({"/k": Normal(200, b"k10\n")})
    c = cairn(proxy_config(org))
    with RawConn(c.port) as s:
        for _ in range(2):
            s.send(b"GET /k HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            r = s.read_response()
            assert r.status == 200 and r.body == b"k10\n" and not r.chunked, r
