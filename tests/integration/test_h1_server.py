"""HTTP/1.1 server behaviour: Date/Server, keep-alive, pipelining, HTTP/1.0, Connection:
close, request bodies, Expect: 100-continue, HEAD."""
import email.utils
import time

import httpx
import pytest

from helpers import RawConn, get, proxy_config, static_route
from origins import Echo


@pytest.fixture(scope="module")
def srv(cairn_module):
    return cairn_module({
        "server": {"workers": 2, "header_timeout": "2s", "keepalive_timeout": "5s"},
        "routes": [
            static_route("AAA\n", path="/a"),
            static_route("BBBBBB\n", path="/b"),
            static_route("C\n", path="/c"),
            static_route("sink\n", path="/sink"),
        ],
    })


def test_date_and_server_headers(srv):
    for target, status in (("/a", 200), ("/missing", 404)):
        r = get(srv.port, target)
        assert r.status == status, r
        assert r.header("Server") == "cairn", f"{target}: Server header {r.header('Server')!r}"
        d = r.header("Date")
        assert d, f"{target}: no Date header: {r}"
        dt = email.utils.parsedate_to_datetime(d)
        assert abs(dt.timestamp() - time.time()) < 5, f"Date {d!r} is not now"
        assert d.endswith("GMT"), f"Date must be an IMF-fixdate in GMT: {d!r}"


def test_httpx_client(srv):
    r = httpx.get(srv.url("/b"), timeout=5)
    assert r.status_code == 200 and r.content == b"BBBBBB\n"
    assert r.http_version == "HTTP/1.1"


def test_keepalive_two_requests(srv):
    with RawConn(srv.port) as c:
        r1 = c.request("GET", "/a")
        r2 = c.request("GET", "/b")
    assert (r1.status, r1.body) == (200, b"AAA\n"), r1
    assert (r2.status, r2.body) == (200, b"BBBBBB\n"), r2
    assert "close" not in (r1.header("Connection") or "").lower(), r1


def test_pipelining_in_order(srv):
    with RawConn(srv.port) as c:
        c.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"BBBBBB\n", b"AAA\n", b"C\n"], f"pipelined responses out of order: {bodies}"


def test_pipelining_many_with_bodies(srv):
    reqs = []
    for i in range(20):
        body = (b"%d" % i) * (i * 50)
        reqs.append(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        reqs.append(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
    with RawConn(srv.port) as c:
        c.send(b"".join(reqs))
        got = [c.read_response().body for _ in range(40)]
    assert got == [b"sink\n", b"C\n"] * 20, f"pipelined responses wrong: {got}"


def test_http10_closes(srv):
    with RawConn(srv.port) as c:
        c.send(b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"AAA\n", r
        assert r.version in ("HTTP/1.1", "HTTP/1.0"), r
        c.wait_closed(2)


def test_http10_without_host(srv):
    with RawConn(srv.port) as c:
        c.send(b"GET /a HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"AAA\n", f"HTTP/1.0 needs no Host: {r}"


def test_http10_keepalive(srv):
    with RawConn(srv.port) as c:
        c.send(b"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"AAA\n", r
        assert "keep-alive" in (r.header("Connection") or "").lower(), \
            f"HTTP/1.0 keep-alive response must say Connection: keep-alive: {r}"
        assert r.header("Content-Length") == "4", r
        c.send(b"GET /b HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        r2 = c.read_response()
        assert r2.body == b"BBBBBB\n", r2


def test_connection_close_honoured(srv):
    with RawConn(srv.port) as c:
        c.send(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"AAA\n", r
        extra = c.wait_closed(2)
        assert extra == b"", f"bytes after the response: {extra!r}"


def test_connection_close_stops_pipeline(srv):
    with RawConn(srv.port) as c:
        c.send(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.body == b"AAA\n", r
        extra = c.wait_closed(2)
        assert extra == b"", f"a request after Connection: close was answered: {extra!r}"


def test_content_length_body_consumed(srv):
    body = b"x" * 10000
    with RawConn(srv.port) as c:
        r = c.request("POST", "/sink", body=body)
        assert r.status == 200 and r.body == b"sink\n", r
        r2 = c.request("GET", "/a")
        assert r2.status == 200 and r2.body == b"AAA\n", f"body was not consumed: {r2}"


def test_chunked_body_consumed(srv):
    chunks = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n"
    with RawConn(srv.port) as c:
        c.send(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
               + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"sink\n", r
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == b"BBBBBB\n", f"chunked body not consumed: {r2}"


def test_chunked_body_sent_slowly(srv):
    with RawConn(srv.port) as c:
        c.send(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"4\r\n", b"ab", b"cd\r\n", b"0\r", b"\n\r\n"):
            time.sleep(0.05)
            c.send(piece)
        r = c.read_response()
        assert r.status == 200, r
        assert c.request("GET", "/c").body == b"C\n"


def test_head_static_no_body(srv):
    with RawConn(srv.port) as c:
        c.send(b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        h = c.read_response(head_request=True)
        assert h.status == 200 and h.header("Content-Length") == "7", h
        r = c.read_response()
        assert r.body == b"C\n", f"HEAD response had a body: {r}"


def test_absolute_form_target(srv):
    r = get(srv.port, "http://whatever.test/a")
    assert r.status == 200 and r.body == b"AAA\n", r


def test_expect_100_continue(cairn, origin):
    o = origin({"/up": Echo()})
    c = cairn(proxy_config(o))
    body = b"z" * 5000
    with RawConn(c.port) as s:
        s.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        first = s.read_response(timeout=3, skip_1xx=False)
        assert first.status == 100, f"expected `HTTP/1.1 100 Continue` before the body, got {first}"
        assert first.raw_head.startswith(b"HTTP/1.1 100"), first.raw_head
        s.send(body)
        r = s.read_response(timeout=5)
        assert r.status == 200, r
    seen = o.requests[-1]
    assert seen.body == body, f"origin got {len(seen.body)} body bytes, expected {len(body)}"


def test_expect_100_continue_static_then_connection_usable(srv):
    # The static route may answer without reading the body (no 100), but the connection
    # must stay usable or be closed cleanly; a 100 is allowed before the final response.
    with RawConn(srv.port) as c:
        c.send(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        time.sleep(0.2)
        c.send(b"abcd")
        r = c.read_response()
        assert r.status == 200 and r.body == b"sink\n", r
        c.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = c.read_response()
        assert r2.body == b"AAA\n", r2


def test_many_concurrent_connections(srv):
    conns = [RawConn(srv.port) for _ in range(50)]
    try:
        for c in conns:
            c.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            assert c.read_response().body == b"AAA\n"
    finally:
        for c in conns:
            c.close()


def test_server_header_configurable(cairn):
    c = cairn({"server": {"workers": 1, "server_header": "edge-7"}, "routes": [static_route()]})
    r = get(c.port, "/")
    assert r.header_all("Server") == ["edge-7"], f"server_header not used: {r}"


def test_server_header_empty_disables(cairn):
    c = cairn({"server": {"workers": 1, "server_header": ""}, "routes": [static_route()]})
    r = get(c.port, "/")
    assert r.header("Server") is None, f'server_header: "" must drop Server: {r}'
    assert get(c.port, "/nope-404").header("Server") is None


def test_head_of_404_has_no_body(srv):
    with RawConn(srv.port) as c:
        c.send(b"HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        h = c.read_response(head_request=True)
        assert h.status == 404, h
        r = c.read_response()
        assert r.status == 200 and r.body == b"AAA\n", f"HEAD 404 carried a body: {r}"


def test_error_keeps_connection_for_404(srv):
    with RawConn(srv.port) as c:
        assert c.request("GET", "/missing").status == 404
        assert c.request("GET", "/a").body == b"AAA\n", "a 404 must not close the connection"


def test_expect_100_continue_static_route(srv):
    """Local routes read the request body before answering, so they send 100 Continue."""
    with RawConn(srv.port) as c:
        c.send(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        first = c.read_response(timeout=2, skip_1xx=False)
        assert first.status == 100, f"expected 100 Continue before sending the body, got {first}"
        c.send(b"abcd")
        r = c.read_response()
        assert r.status == 200 and r.body == b"sink\n", r


def test_no_100_continue_without_expect(srv):
    with RawConn(srv.port) as c:
        c.send(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")
        r = c.read_response(skip_1xx=False)
        assert r.status == 200, f"unexpected interim response without Expect: {r}"


def test_no_100_continue_for_http10(srv):
    with RawConn(srv.port) as c:
        c.send(b"POST /sink HTTP/1.0\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        time.sleep(0.3)
        c.send(b"abcd")
        r = c.read_response(skip_1xx=False)
        assert r.status in (200, 417), f"HTTP/1.0 clients must not get a 100 Continue: {r}"


def test_thousand_pipelined_requests(srv):
    with RawConn(srv.port, timeout=10) as c:
        c.send(b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"abc"[i % 3:i % 3 + 1]) for i in range(1000)))
        bodies = [c.read_response().body for _ in range(1000)]
    expect = [[b"AAA\n", b"BBBBBB\n", b"C\n"][i % 3] for i in range(1000)]
    assert bodies == expect, "1000 pipelined responses out of order or wrong"


def test_pipelining_client_not_reading(cairn):
    """The client writes many requests without reading: cairn must apply backpressure
    (not die, not drop), then deliver every response once the client reads."""
    body = b"z" * 20000
    c = cairn({"server": {"workers": 1}, "routes": [static_route(body.decode())]})
    n = 1500
    s = RawConn(c.port, timeout=10)
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    import threading
    err = []

    def writer():
        try:
            for _ in range(n // 100):
                s.send(req * 100)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.5)
    got = 0
    while got < n:
        r = s.read_response(timeout=10)
        assert r.status == 200 and r.body == body, f"response {got}: {r.status} {len(r.body)}"
        got += 1
    t.join(5)
    s.close()
    assert not err, f"writer failed: {err}"
    assert c.alive()
