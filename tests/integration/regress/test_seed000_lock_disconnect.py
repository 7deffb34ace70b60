"""Seed 000: a request waiting on the cache lock must notice its client leaving.

Symptom (Pingora's cache lock, the seed's reproduction): one writer fetches a slow uncached
object (origin: 5 s) while readers of the same key wait on the lock; the readers disconnect
after 500 ms, but the server keeps their connections (and the waiting requests) until the
lock's timeout or the fetch's end, seconds later.

Contract for cairn: a waiter whose client disconnects is dropped at once; the server closes
its side of the connection within 100 ms of the disconnect; the writer still gets its 200
after ~5 s, and the readers never reach the origin.

Measurement: each reader closes its socket (a FIN: nothing is unread). The kernel keeps the
reader's socket in FIN_WAIT2 until the server closes its side, and cairn's socket in
CLOSE_WAIT until cairn closes it; a thread polls both (sock_diag netlink) every ~1 ms and records, per
reader, when its socket leaves FIN_WAIT1/2 (the server's FIN or RST arrived) and when cairn's
socket leaves CLOSE_WAIT. The access log's 499 lines (millisecond wall-clock times) are a
second, independent measurement. Found: 2026-11 (seed corpus); reproducer: this file.
"""
from __future__ import annotations

import errno
import json
import socket
import struct
import threading
import time
from datetime import datetime, timezone

import pytest

from helpers import RawConn, proxy_config
from origins import blob
from origins.server import Stream

ORIGIN_DELAY = 5.0
DISCONNECT_AFTER = 0.5
THRESHOLD = 0.100

# TCP states (include/net/tcp_states.h)
ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK = 1, 4, 5, 6, 7, 8, 9

NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, NLMSG_ERROR = 4, 20, 1, 2


class TcpStates:
    """State of one loopback TCP socket by (local port, remote port), via an exact sock_diag
    netlink lookup (~10 us; /proc/net/tcp is far too slow to poll with thousands of
    TIME_WAIT sockets around). None: no such socket. A lookup with no connected socket may
    return the listener (LISTEN), which also means the connection is gone."""

    def __init__(self):
        self.nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        self.nl.settimeout(1.0)
        self.seq = 0

    def state(self, lport, rport):
        lo = socket.inet_aton("127.0.0.1") + bytes(12)
        sockid = struct.pack("!HH", lport, rport) + lo + lo + struct.pack("=III", 0, 0xFFFFFFFF,
                                                                           0xFFFFFFFF)
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        self.seq += 1
        self.nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST,
                                 self.seq, 0) + req)
        while True:
            data = self.nl.recv(65536)
            _, typ, _, seq = struct.unpack_from("=IHHI", data, 0)
            if seq != self.seq:
                continue
            if typ == NLMSG_ERROR:
                err = struct.unpack_from("=i", data, 16)[0]
                assert err in (0, -errno.ENOENT), f"sock_diag lookup failed: errno {-err}"
                return None
            return data[17]  # inet_diag_msg.idiag_state

    def close(self):
        self.nl.close()


class ClosePoller(threading.Thread):
    """Records when each watched connection is closed by the server."""

    def __init__(self, server_port):
        super().__init__(daemon=True)
        self.server_port = server_port
        self.diag = TcpStates()
        self.watch = {}        # reader local port -> monotonic time of its disconnect
        self.client_side = {}  # port -> time its socket left FIN_WAIT1/2
        self.server_side = {}  # port -> time cairn's socket left CLOSE_WAIT
        self.first_state = {}  # port -> (reader state, cairn state) first seen after close
        self.max_gap = 0.0     # longest interval between two polls of the same socket
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, port, t_closed):
        with self.lock:
            self.watch[port] = t_closed

    def run(self):
        last = {}
        while not self.stop.is_set():
            with self.lock:
                items = list(self.watch.items())
            for port, t0 in items:
                if port in self.client_side and port in self.server_side:
                    continue
                cs = self.diag.state(port, self.server_port)
                ss = self.diag.state(self.server_port, port)
                now = time.monotonic()
                self.max_gap = max(self.max_gap, now - last.get(port, t0))
                last[port] = now
                self.first_state.setdefault(port, (cs, ss))
                if port not in self.client_side and cs not in (FIN_WAIT1, FIN_WAIT2):
                    self.client_side[port] = now
                if port not in self.server_side and ss not in (CLOSE_WAIT, ESTABLISHED):
                    self.server_side[port] = now
            time.sleep(0.001)
        self.diag.close()


def parse_log_time(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("readers", [3, 20])
def test_seed000_waiters_closed_quickly_on_disconnect(cairn, origin, readers):
    body = blob(64 * 1024, seed=0)
    st = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=ORIGIN_DELAY)
    org = origin({"/seed": st})
    cfg = proxy_config(org, route_extra={"cache": "c"}, upstream_extra={"read_timeout": "30s"},
                       server={"workers": 2, "access_log": "access.log"})
    cfg["caches"] = {"c": {"memory": {"size": "64MiB", "max_object": "8MiB"},
                           "lock": {"wait_timeout": "60s", "age_timeout": "60s"}}}
    c = cairn(cfg)

    writer = RawConn(c.port, timeout=15)
    t_writer = time.monotonic()
    writer.send(b"GET /seed HTTP/1.1\r\nHost: localhost\r\n\r\n")
    org.wait_requests(1, timeout=3)

    poller = ClosePoller(c.port)
    poller.start()
    socks = []
    for _ in range(readers):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
        s.sendall(b"GET /seed HTTP/1.1\r\nHost: localhost\r\n\r\n")
        socks.append(s)
    time.sleep(DISCONNECT_AFTER)
    disconnect_wall = {}
    for s in socks:
        port = s.getsockname()[1]
        s.setblocking(False)
        try:
            pending = s.recv(1)
        except BlockingIOError:
            pending = None
        assert pending is None, f"a reader got data while waiting on the lock: {pending!r}"
        disconnect_wall[port] = time.time()
        s.close()
        poller.add(port, time.monotonic())

    deadline = time.monotonic() + ORIGIN_DELAY + 3
    while time.monotonic() < deadline and \
            (len(poller.client_side) < readers or len(poller.server_side) < readers):
        time.sleep(0.01)

    resp = writer.read_response(timeout=15)
    writer_took = time.monotonic() - t_writer
    writer.close()
    poller.stop.set()
    poller.join(2)

    client_ms, server_ms = [], []
    for port, t0 in poller.watch.items():
        client_ms.append((poller.client_side.get(port, float("inf")) - t0) * 1000)
        server_ms.append((poller.server_side.get(port, float("inf")) - t0) * 1000)

    # second measurement: the access log's 499 lines
    log = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        p = c.tmp / "access.log"
        log = [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []
        if sum(1 for e in log if e["status"] == 499) >= readers:
            break
        time.sleep(0.05)
    last_disconnect = max(disconnect_wall.values())
    first_disconnect = min(disconnect_wall.values())
    log_ms = sorted((parse_log_time(e["time"]) - first_disconnect) * 1000
                    for e in log if e["path"] == "/seed" and e["status"] == 499)

    def fmt(xs):
        xs = sorted(xs)
        return (f"min {xs[0]:.1f} ms, median {xs[len(xs) // 2]:.1f} ms, max {xs[-1]:.1f} ms"
                if xs else "none")

    print(f"\nseed 000, {readers} readers disconnecting {DISCONNECT_AFTER}s after their request:"
          f"\n  server FIN/RST seen by the reader socket after its close: {fmt(client_ms)}"
          f"\n  cairn's socket left CLOSE_WAIT after the reader's close:   {fmt(server_ms)}"
          f"\n  access-log 499 lines after the first disconnect (ms clock; disconnects spread "
          f"{(last_disconnect - first_disconnect) * 1000:.1f} ms): {fmt(log_ms)}"
          f"\n  writer: {resp.status} with {len(resp.body)} bytes after {writer_took:.2f} s"
          f"\n  first states after close (reader, cairn): "
          f"{sorted(set(poller.first_state.values()), key=str)}; longest poll gap "
          f"{poller.max_gap * 1000:.1f} ms")

    assert resp.status == 200 and resp.body == body, f"the writer's response: {resp!r}"
    assert ORIGIN_DELAY - 0.3 <= writer_took <= ORIGIN_DELAY + 1.5, \
        f"the writer got its response after {writer_took:.2f} s (origin delay {ORIGIN_DELAY} s)"
    assert len(org.requests) == 1, f"the origin saw {len(org.requests)} requests, expected 1"
    worst = max(max(client_ms), max(server_ms))
    assert worst <= THRESHOLD * 1000, (
        f"cairn took up to {worst:.0f} ms to close the connection of a lock waiter whose client "
        f"disconnected (limit {THRESHOLD * 1000:.0f} ms): reader side {fmt(client_ms)}; "
        f"cairn side {fmt(server_ms)} (measurement resolution: poll gaps up to "
        f"{poller.max_gap * 1000:.1f} ms)")
    assert len(log_ms) == readers, \
        f"{len(log_ms)} access-log lines with status 499 for {readers} readers that left: " \
        f"{[(e['status'], e.get('cache')) for e in log]}"
    assert log_ms[-1] <= THRESHOLD * 1000 + (last_disconnect - first_disconnect) * 1000 + 2, \
        f"the 499 access-log lines came up to {log_ms[-1]:.0f} ms after the disconnect"
    assert not any(e["status"] == 499 for e in log if e["time"] and e.get("path") != "/seed")
