"""Found 2026-11-30 (outside audit, issue 12): the upstream read_timeout ran while cairn was still
sending a slow client's request body, so a client pausing 1.8 s mid-upload (body_timeout 2s,
read_timeout 1.5s) got 504. While the request is being sent, the client's body_timeout and the
upstream write_timeout govern; the wait for the response starts when the request is written,
and an early response from the origin (413 before the body ends) is still read at once."""
import time

from helpers import RawConn, proxy_config
from origins.server import Echo, Func, Slow


def cfg(o):
    return proxy_config(o, server={"body_timeout": "2s"},
                        upstream_extra={"read_timeout": "1500ms", "write_timeout": "1500ms"})


def test_pause_mid_upload_is_governed_by_body_timeout(cairn, origin):
    o = origin({"/up": Echo(echo_body=True)})
    c = cairn(cfg(o))
    with RawConn(c.port, timeout=10) as conn:
        conn.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(1.8)
        conn.send(b"world")
        r = conn.read_response(timeout=5)
    assert r.status == 200, r
    assert r.body == b"helloworld"


def test_chunked_upload_pauses(cairn, origin):
    o = origin({"/up": Echo(echo_body=True)})
    c = cairn(cfg(o))
    with RawConn(c.port, timeout=10) as conn:
        conn.send(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(1.7)
        conn.send(b"3\r\ndef\r\n")
        time.sleep(1.7)
        conn.send(b"0\r\n\r\n")
        r = conn.read_response(timeout=5)
    assert r.status == 200 and r.body == b"abcdef", r


def test_read_timeout_starts_when_the_request_is_written(cairn, origin):
    o = origin({"/slow": Slow(delay_headers=4)})
    c = cairn(cfg(o))
    with RawConn(c.port, timeout=10) as conn:
        conn.send(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(1.0)
        conn.send(b"cd")
        t0 = time.monotonic()
        r = conn.read_response(timeout=8)
        waited = time.monotonic() - t0
    assert r.status == 504, r
    assert 1.2 <= waited <= 2.8, f"504 {waited:.2f}s after the body ended (read_timeout 1.5s)"


def test_early_response_is_read_at_once(cairn, origin):
    def early(origin, req, sock):
        sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
                     b"Connection: close\r\n\r\nbig\n")
        return False

    o = origin({"/up": Func(early, before_body=True)})
    c = cairn(cfg(o))
    with RawConn(c.port, timeout=10) as conn:
        conn.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        t0 = time.monotonic()
        r = conn.read_response(timeout=5)
        waited = time.monotonic() - t0
    assert r.status == 413 and r.body == b"big\n", r
    assert waited < 1.0, f"the early 413 took {waited:.2f}s"


def test_body_timeout_still_ends_a_stalled_upload(cairn, origin):
    o = origin({"/up": Echo(echo_body=True)})
    c = cairn(cfg(o))
    with RawConn(c.port, timeout=10) as conn:
        conn.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        t0 = time.monotonic()
        r = conn.read_response(timeout=6)
        waited = time.monotonic() - t0
    assert r.status == 408, r
    assert 1.5 <= waited <= 3.5, f"408 after {waited:.2f}s (body_timeout 2s)"
    assert len(o.requests) <= 1
