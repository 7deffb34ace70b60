"""Client-side timeouts: header_timeout (slowloris → 408), keepalive_timeout (idle close),
body_timeout (→ 408)."""
import time

import pytest

from helpers import RawConn, static_route


@pytest.fixture(scope="module")
def srv(cairn_module):
    return cairn_module({
        "server": {"workers": 1, "header_timeout": "1s", "keepalive_timeout": "1s",
                   "body_timeout": "1s"},
        "routes": [static_route("ok\n", path_prefix="/")],
    })


def test_slowloris_partial_head_408(srv):
    with RawConn(srv.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        r = c.read_response(timeout=4)
        t = time.monotonic() - t0
        assert r.status == 408, r
        assert 0.8 <= t <= 2.5, f"408 after {t:.2f}s, expected ~1s (header_timeout: 1s)"
        c.wait_closed(1.0)


def test_slowloris_trickle_is_bounded(srv):
    """header_timeout bounds the whole head, not the gap between bytes."""
    with RawConn(srv.port, timeout=5) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\n")
        got = None
        while time.monotonic() - t0 < 4:
            try:
                c.send(b"X: y\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            if not c.is_open(0.2):
                break
            if c.buf:
                break
        t = time.monotonic() - t0
        try:
            got = c.read_response(timeout=1)
        except Exception as e:  # noqa: BLE001
            got = e
        assert t <= 2.5, f"trickled head still open after {t:.2f}s (header_timeout: 1s)"
        assert getattr(got, "status", None) == 408, f"expected 408 for a trickled head, got {got!r}"


def test_idle_before_first_request_closed(srv):
    with RawConn(srv.port, timeout=5) as c:
        t0 = time.monotonic()
        extra = c.wait_closed(3.0)
        t = time.monotonic() - t0
        assert t <= 2.5, f"idle new connection closed after {t:.2f}s"
        assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), f"unexpected bytes {extra!r}"


def test_keepalive_idle_closed(srv):
    with RawConn(srv.port, timeout=5) as c:
        r = c.request("GET", "/")
        assert r.status == 200, r
        t0 = time.monotonic()
        extra = c.wait_closed(3.0)
        t = time.monotonic() - t0
        assert 0.7 <= t <= 2.5, f"idle keep-alive connection closed after {t:.2f}s, expected ~1s"
        assert extra == b"", f"idle close should be silent, got {extra!r}"


def test_keepalive_activity_keeps_connection(srv):
    with RawConn(srv.port, timeout=5) as c:
        for _ in range(4):
            assert c.request("GET", "/").status == 200
            time.sleep(0.5)
        assert c.request("GET", "/").status == 200


def test_body_timeout_408(srv):
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        t0 = time.monotonic()
        r = c.read_response(timeout=4)
        t = time.monotonic() - t0
        assert r.status == 408, f"stalled body must get 408, got {r}"
        assert 0.8 <= t <= 2.5, f"408 after {t:.2f}s, expected ~1s (body_timeout: 1s)"
        c.wait_closed(1.0)


def test_body_timeout_chunked_408(srv):
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
        r = c.read_response(timeout=4)
        assert r.status == 408, f"stalled chunked body must get 408, got {r}"
        c.wait_closed(1.0)


def test_partial_pipelined_request_times_out(srv):
    """A complete request followed by half of the next: the first is answered, the second
    gets 408 once header_timeout runs out."""
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHos")
        t0 = time.monotonic()
        r1 = c.read_response(timeout=2)
        assert r1.status == 200, r1
        r2 = c.read_response(timeout=4)
        t = time.monotonic() - t0
        assert r2.status == 408, f"half a pipelined request must get 408: {r2}"
        assert t <= 2.5, f"408 after {t:.2f}s"
        c.wait_closed(1.0)


def test_client_timeouts_do_not_cut_slow_upstream_responses(cairn, origin):
    """header/keepalive/body timeouts guard the client side only: a proxied response that
    takes longer than all of them (but less than read_timeout) must arrive intact."""
    from helpers import proxy_config
    from origins import Slow
    org = origin({"/slow-head": Slow(delay_headers=1.6, body=b"late\n"),
                  "/slow-body": Slow(chunk_delay=0.6, chunks=3, body=b"abcdefgh" * 3)})
    c = cairn(proxy_config(org, server={"header_timeout": "1s", "keepalive_timeout": "1s",
                                        "body_timeout": "1s"},
                           upstream_extra={"read_timeout": "5s"}))
    with RawConn(c.port, timeout=8) as s:
        r = s.request("GET", "/slow-head", timeout=6)
        assert r.status == 200 and r.body == b"late\n", r
        r = s.request("GET", "/slow-body", timeout=6)
        assert r.status == 200 and r.body == b"abcdefgh" * 3, r
        r = s.request("POST", "/slow-head", body=b"x" * 100, timeout=6)
        assert r.status == 200 and r.body == b"late\n", r


def test_send_timeout_resets_non_reading_client(cairn, tmp_path):
    """docs/http1.md: send_timeout — a client that stops reading gets its connection reset."""
    import socket
    size = 32 << 20
    (tmp_path / "www").mkdir()
    with open(tmp_path / "www" / "huge.bin", "wb") as f:
        f.truncate(size)
    c = cairn({"server": {"workers": 1, "send_timeout": "1s"},
               "routes": [{"match": {"path_prefix": "/"}, "files": {"root": str(tmp_path / "www")}}]})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", c.port))
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(3.0)  # not reading: cairn's writes stall
    got, ended = 0, None
    s.settimeout(3)
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                ended = "eof"
                break
            got += len(d)
    except ConnectionResetError:
        ended = "reset"
    except (socket.timeout, TimeoutError):
        ended = "timeout"
    finally:
        s.close()
    assert ended in ("reset", "eof"), f"connection still open ({got} bytes read) after send_timeout"
    assert got < size, "the whole body arrived although the client stalled past send_timeout"
    assert c.alive()


@pytest.mark.parametrize("sent_before_stall", [b"", b"GET / HTTP/1.1\r\n"])
def test_timer_does_not_fire_on_bytes_already_received(cairn, sent_before_stall):
    """The worker is blocked (CAIRN_FAULT_STALL_MS, test builds) for longer than the
    keep-alive and header timeouts while a client sends its head. When the worker resumes,
    libuv runs the overdue timer before it polls; the bytes are already in the socket, so the
    client is answered (200), not closed (keep-alive timer) or sent 408 (header timer)."""
    c = cairn({
        "server": {"workers": 1, "header_timeout": "1s", "keepalive_timeout": "1s"},
        "routes": [static_route("ok\n", path_prefix="/")],
    }, env={"CAIRN_FAULT_STALL_MS": "2500"})
    with RawConn(c.port, timeout=8) as victim, RawConn(c.port, timeout=8) as staller:
        if sent_before_stall:
            victim.send(sent_before_stall)
        # The victim is accepted and its timer armed before the stall starts.
        r = staller.request("GET", "/", timeout=3)
        assert r.status == 200, r
        t0 = time.monotonic()
        staller.send(b"GET /__fault/stall HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # the worker is now blocked for 2.5 s
        victim.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[len(sent_before_stall):])
        r = victim.read_response(timeout=6)
        assert r.status == 200 and r.body == b"ok\n", r
        assert time.monotonic() - t0 >= 2.0, "the stall did not happen (is this a test build?)"
        assert staller.read_response(timeout=3).status == 200
