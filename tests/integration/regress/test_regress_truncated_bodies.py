"""Found 2026-11-30 (outside audit, issue 12): an origin that ends a close-delimited response
(no Content-Length, not chunked) with a connection reset instead of a clean close gave the client
200 with a short body, closed as if complete, and the short body was stored and later served as
a hit. Only a clean end of stream ends a close-delimited body; a reset is a truncation.

The sweep: every body framing (close-delimited, chunked without its last chunk, a short
Content-Length), ended by a reset or a clean close, on a plain miss, during a revalidation, and
while a fill has waiters: the client sees an aborted response and nothing is stored."""
import socket
import threading
import time

import pytest

from helpers import ConnectionClosed, RawConn, proxy_config
from origins.server import Func, rst_close

BODY = b"0123456789abcdef" * 256  # 4 KiB


def head(framing, cc="max-age=60"):
    h = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: {cc}\r\n"
    if framing == "cl":
        h += f"Content-Length: {len(BODY)}\r\n"
    elif framing == "chunked":
        h += "Transfer-Encoding: chunked\r\n"
    else:
        h += "Connection: close\r\n"
    return (h + "\r\n").encode()


def partial_body(framing):
    half = BODY[: len(BODY) // 2]
    if framing == "chunked":
        return b"%x\r\n" % len(half) + half + b"\r\n"
    return half


def full_body(framing):
    if framing == "chunked":
        return b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"
    return BODY


class Script:
    """The origin's answers in order: 'reset' / 'close' (a truncated body ended by a reset or a
    clean close), 'ok' (a complete body); the last entry repeats."""

    def __init__(self, framing, plan, delay=0.0, cc="max-age=60"):
        self.framing, self.plan, self.delay, self.cc = framing, list(plan), delay, cc
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self, origin, req, sock):
        with self.lock:
            step = self.plan[min(self.n, len(self.plan) - 1)]
            self.n += 1
        sock.sendall(head(self.framing, self.cc))
        if step == "ok":
            sock.sendall(full_body(self.framing))
            if self.framing == "close":
                sock.shutdown(socket.SHUT_WR)
                time.sleep(0.05)
                return False
            return True
        sock.sendall(partial_body(self.framing))
        if self.delay:
            origin.sleep(self.delay)
        if step == "reset":
            rst_close(sock)
        else:
            sock.shutdown(socket.SHUT_WR)
            time.sleep(0.05)
        return False


def assert_aborted(conn, what):
    """The response must not look complete: either the read fails, or (close-delimited relayed
    as chunked) the framing is incomplete."""
    try:
        r = conn.read_response(timeout=5)
    except (ConnectionClosed, ConnectionResetError):
        return
    raise AssertionError(f"{what}: a truncated response was delivered as complete: {r!r} "
                         f"({len(r.body)} of {len(BODY)} bytes)")


def config(origin, **upstream_extra):
    cfg = proxy_config(origin, route_extra={"cache": "c"}, upstream_extra=upstream_extra)
    cfg["caches"] = {"c": {"memory": {"size": "8MiB"}}}
    return cfg


FRAMINGS = ["close", "chunked", "cl"]
ENDS = ["reset", "close"]


# A clean close ends a close-delimited body: that one is complete (tested below).
TRUNCATIONS = [(f, e) for f in FRAMINGS for e in ENDS if (f, e) != ("close", "close")]


@pytest.mark.parametrize("framing,end", TRUNCATIONS)
def test_truncated_miss_is_aborted_and_not_stored(cairn, origin, framing, end):
    script = Script(framing, [end, "ok"])
    o = origin({"/t": Func(script)})
    c = cairn(config(o))
    with RawConn(c.port) as conn:
        conn.send(b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_aborted(conn, f"{framing}/{end}")
    # Not stored: the next request goes to the origin and gets the whole body.
    with RawConn(c.port) as conn:
        r = conn.request("GET", "/t", host="x")
        assert r.status == 200 and r.body == BODY, r
    assert script.n == 2, f"the truncated object was served from the cache ({script.n} fetches)"
    with RawConn(c.port) as conn:
        r = conn.request("GET", "/t", host="x")
        assert r.body == BODY and "hit" in r.header("cache-status", ""), r
    assert script.n == 2


def test_close_delimited_clean_close_is_complete_and_stored(cairn, origin):
    script = Script("close", ["ok"])
    o = origin({"/t": Func(script)})
    c = cairn(config(o))
    for _ in range(2):
        with RawConn(c.port) as conn:
            r = conn.request("GET", "/t", host="x")
            assert r.status == 200 and r.body == BODY, r
    assert script.n == 1


@pytest.mark.parametrize("framing", FRAMINGS)
def test_reset_during_revalidation_keeps_the_stored_object(cairn, origin, framing):
    script = Script(framing, ["ok", "reset", "ok"], cc="max-age=1")
    o = origin({"/t": Func(script)})
    c = cairn(config(o))
    with RawConn(c.port) as conn:
        assert conn.request("GET", "/t", host="x").body == BODY
    time.sleep(1.3)  # stale now: the next request revalidates and meets a reset mid-body
    with RawConn(c.port) as conn:
        conn.send(b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_aborted(conn, f"revalidation {framing}")
    assert script.n == 2
    with RawConn(c.port) as conn:
        r = conn.request("GET", "/t", host="x")
        assert r.status == 200 and r.body == BODY, r


@pytest.mark.parametrize("framing", FRAMINGS)
def test_reset_while_a_fill_has_waiters(cairn, origin, framing):
    script = Script(framing, ["reset", "ok"], delay=0.6)
    o = origin({"/t": Func(script)})
    c = cairn(config(o))
    conns = [RawConn(c.port) for _ in range(3)]
    try:
        for k in conns:
            k.send(b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
        for i, k in enumerate(conns):
            assert_aborted(k, f"waiter {i} ({framing})")
    finally:
        for k in conns:
            k.close()
    assert script.n == 1, "the waiters should have joined the one fill"
    with RawConn(c.port) as conn:
        r = conn.request("GET", "/t", host="x")
        assert r.status == 200 and r.body == BODY, r
    assert script.n == 2
