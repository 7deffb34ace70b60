"""Found 2026-11-22: SIGTERM waits for connections that have sent only part of a request
head. With header_timeout 5s, one client that sent `GET / HTTP/1.1\\r\\nHo` delays the exit by
7 s (header_timeout, then the 408 and a 2 s lingering close); with the default 10s, 12 s.
No request has been dispatched on such a connection, so it is not "a request in flight" and
should be closed like an idle keep-alive connection: the exit takes well under a second.
Reproducer: start, open a connection, send a partial head, SIGTERM, time the exit."""
import signal
import time

from helpers import RawConn, static_route


def test_partial_head_does_not_hold_shutdown(cairn):
    c = cairn({"server": {"workers": 1, "header_timeout": "5s", "shutdown_grace": "30s"},
               "routes": [static_route()]})
    half = RawConn(c.port)
    half.send(b"GET / HTTP/1.1\r\nHo")
    time.sleep(0.2)
    t0 = time.monotonic()
    c.send_signal(signal.SIGTERM)
    code = c.wait_exit(1.5)
    dt = time.monotonic() - t0
    half.close()
    assert code is not None, (f"cairn still running {dt:.1f}s after SIGTERM: a half-sent request "
                              f"head holds the graceful shutdown")
    assert code == 0
