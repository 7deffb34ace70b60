"""Streaming with backpressure both ways: a slow reader pauses the other side, so cairn's memory
does not grow with the size of a body (issue 3).

The issue's figure is 1 GiB to a client reading at 1 MiB/s (17 minutes); these tests keep the
shape and shorten the clock: an origin that can send 512 MiB as fast as the kernel takes it,
a client reading ~4 MiB/s for a few seconds, and cairn's RSS sampled throughout. Without
backpressure cairn would buffer what the origin sends (hundreds of MiB in a few seconds); with
it, the growth is one buffer per direction."""
import socket
import threading
import time

from helpers import free_port, proc_status_kib, proxy_config

BODY = 512 << 20
CHUNK = b"z" * (1 << 20)


def rss_kib(pid):
    return proc_status_kib(pid)


class FastOrigin:
    """Answers every request with a BODY-byte response, written as fast as possible; counts
    the bytes the kernel accepted (what cairn has read or buffered)."""

    def __init__(self):
        self.port = free_port()
        self.sent = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(8)
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def run(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BODY)
            left = BODY
            while left > 0 and not self.stop:
                n = c.send(CHUNK[: min(len(CHUNK), left)])
                left -= n
                self.sent += n
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.srv.close()


class SlowSink:
    """Reads request bodies slowly (a slow upstream for uploads) and counts what it read."""

    def __init__(self, rate):
        self.port = free_port()
        self.read = 0
        self.rate = rate
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.srv.bind(("127.0.0.1", self.port))
        self.srv.listen(8)
        threading.Thread(target=self.run, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def run(self):
        try:
            c, _ = self.srv.accept()
        except OSError:
            return
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                self.read += len(d)
                time.sleep(len(d) / self.rate)
        except OSError:
            pass

    def close(self):
        self.srv.close()


def test_slow_client_does_not_grow_memory(cairn):
    org = FastOrigin()
    try:
        c = cairn(proxy_config(org, server={"workers": 1}))
        s = socket.create_connection(("127.0.0.1", c.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        base = rss_kib(c.pid)
        got, peak, t0 = 0, base, time.monotonic()
        while time.monotonic() - t0 < 6:
            got += len(s.recv(65536))
            time.sleep(0.015)  # ~4 MiB/s
            peak = max(peak, rss_kib(c.pid))
        s.close()
        growth = peak - base
        print(f"client read {got >> 20} MiB in 6 s; origin pushed {org.sent >> 20} MiB; "
              f"cairn RSS {base} KiB -> peak {peak} KiB (+{growth} KiB)")
        # The origin could have sent everything; it was held back to what the client took.
        assert org.sent < got + (32 << 20), \
            f"origin sent {org.sent >> 20} MiB but the client only read {got >> 20} MiB: no backpressure"
        assert growth < 8 * 1024, f"RSS grew by {growth} KiB while streaming to a slow client"
    finally:
        org.close()


def test_slow_upstream_does_not_grow_memory_on_upload(cairn):
    sink = SlowSink(rate=4 << 20)
    try:
        c = cairn(proxy_config(sink, server={"workers": 1}))
        s = socket.create_connection(("127.0.0.1", c.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BODY)
        s.setblocking(False)
        time.sleep(0.3)
        base = rss_kib(c.pid)
        sent, peak, t0 = 0, base, time.monotonic()
        while time.monotonic() - t0 < 5:
            try:
                sent += s.send(CHUNK)
            except BlockingIOError:
                time.sleep(0.005)
            peak = max(peak, rss_kib(c.pid))
        s.close()
        growth = peak - base
        print(f"client pushed {sent >> 20} MiB; upstream read {sink.read >> 20} MiB; "
              f"cairn RSS +{growth} KiB")
        assert sent < sink.read + (32 << 20), \
            f"client could push {sent >> 20} MiB while the upstream read {sink.read >> 20} MiB"
        assert growth < 8 * 1024, f"RSS grew by {growth} KiB while uploading to a slow upstream"
    finally:
        sink.close()
