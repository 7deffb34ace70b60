"""Request coalescing (the cache lock) on a caching route, with real concurrent clients.

Contract (config caches.c.lock.wait_timeout / age_timeout):
- concurrent misses for one key make ONE origin request; every waiter streams the body as
  the origin sends it (first byte then, not after the whole object);
- the leader's client leaving does not stop the fetch: the object is stored;
- a leader failing before its head hands the fetch to ONE waiter (2 origin requests);
- wait_timeout: a waiter waiting longer fetches on its own; age_timeout: a fetch older than
  that (origin stalled before its head) no longer holds back waiters;
- an uncacheable answer releases the waiters and turns the key into hit-for-pass for 10 s:
  concurrent requests then reach the origin at once, without waiting for each other;
- different keys do not wait for each other.

Clients are non-blocking raw sockets driven by one selector loop (MultiClient), so hundreds
of them send at once and every byte's arrival time is recorded.
"""
from __future__ import annotations

import hashlib
import json
import selectors
import socket
import statistics
import struct
import threading
import time

import pytest

from helpers import get, proxy_config
from test_backpressure import scrape
from test_metrics_admin import value
from origins import Origin, Reset, blob
from origins.server import Sequence, Stream

MiB = 1 << 20
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
# kernel receive timestamps are CLOCK_REALTIME; the origin records time.monotonic()
_WALL_MINUS_MONO = time.time() - time.monotonic()


FILL_EVENTS = "cairn_cache_fill_events_total"


def cache_cfg(org, wait="10s", age="10s", workers=2, retries=None, **kw):
    up = {"read_timeout": "10s"}
    if retries is not None:
        up["retries"] = retries
    cfg = proxy_config(org, route_extra={"cache": "c"}, upstream_extra=up,
                       server={"workers": workers, "access_log": "access.log", **kw})
    cfg["caches"] = {"c": {"memory": {"size": "64MiB", "max_object": "8MiB"},
                           "lock": {"wait_timeout": wait, "age_timeout": age}}}
    return cfg


def log_entries(c, path):
    p = c.tmp / "access.log"
    return [d for d in (json.loads(ln) for ln in (p.read_text().splitlines() if p.exists() else []))
            if d.get("path") == path]


def wait_log(c, path, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = log_entries(c, path)
        if len(e) >= n:
            return e
        time.sleep(0.02)
    raise AssertionError(f"access log has {len(log_entries(c, path))} lines for {path}, expected {n}")


def origin_times(org, path):
    return [q.time for q in org.requests if q.target == path]


# --------------------------------------------------------------------------------------
# many clients, one selector loop


class _Chunked:
    """Incremental chunked-body decoder: feed(bytes) -> decoded body bytes; .done at the end."""

    def __init__(self):
        self.buf = b""
        self.state = "size"  # size -> data -> crlf -> size ... -> done
        self.left = 0
        self.done = False

    def feed(self, data):
        self.buf += data
        out = []
        while not self.done:
            if self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2:]
                if size == 0:
                    self.done = True  # trailers are not read
                    break
                self.state, self.left = "data", size
            elif self.state == "data":
                if not self.buf:
                    break
                take = self.buf[:self.left]
                self.buf = self.buf[len(take):]
                self.left -= len(take)
                out.append(take)
                if self.left == 0:
                    self.state = "crlf"
            else:
                if len(self.buf) < 2:
                    break
                assert self.buf[:2] == b"\r\n", f"bad chunk terminator {self.buf[:2]!r}"
                self.buf = self.buf[2:]
                self.state = "size"
        return b"".join(out)


class Client:
    def __init__(self, idx, path, headers=None):
        self.idx, self.path = idx, path
        self.headers = headers or {}
        self.sock = None
        self.head = b""
        self.head_done = False
        self.status = None
        self.resp_headers = []
        self.parts = []  # body pieces, hashed after the run (hashing 500 MiB inline would make
        self.body_len = 0  # this loop, not cairn, the bottleneck of the timing measurement)
        self.expected_len = None
        self.chunked = None
        self.t_sent = self.t_head = self.t_first = self.t_done = self.t_closed = None
        self.t_first_kernel = None  # kernel receive time of the first body byte (monotonic)
        self.kernel_ts = False
        self.complete = False
        self.error = None

    def header(self, name):
        n = name.lower()
        for k, v in self.resp_headers:
            if k.lower() == n:
                return v
        return None

    @property
    def digest(self):
        if not hasattr(self, "_digest"):
            self._digest = hashlib.sha256(b"".join(self.parts)).hexdigest()
            self.parts = []
        return self._digest

    def request_bytes(self):
        hs = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return (f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\n{hs}Connection: close\r\n\r\n").encode()

    def _body(self, data, now, kts=None):
        if self.chunked is not None:
            data = self.chunked.feed(data)
        if data:
            if self.t_first is None:
                self.t_first = now
                self.t_first_kernel = kts if kts is not None else now
                self.kernel_ts = kts is not None
            self.parts.append(data)
            self.body_len += len(data)
        if (self.chunked is not None and self.chunked.done) or \
                (self.expected_len is not None and self.body_len >= self.expected_len):
            self.complete = True
            self.t_done = now

    def feed(self, data, now, kts=None):
        if self.head_done:
            self._body(data, now, kts)
            return
        self.head += data
        i = self.head.find(b"\r\n\r\n")
        if i < 0:
            return
        head, rest = self.head[:i], self.head[i + 4:]
        self.head_done = True
        self.t_head = now
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.resp_headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
        te, cl = self.header("transfer-encoding"), self.header("content-length")
        if te and "chunked" in te.lower():
            self.chunked = _Chunked()
        elif cl is not None:
            self.expected_len = int(cl)
            if self.expected_len == 0:
                self.complete, self.t_done = True, now
        if rest:
            self._body(rest, now, kts)

    def __repr__(self):
        return (f"<Client {self.idx} {self.path} status={self.status} len={self.body_len} "
                f"complete={self.complete} error={self.error}>")


class MultiClient:
    """Connects every client, then runs them in one thread (run()) or in the background
    (start()/join()). A client can be closed early with close_at (monotonic time) or
    close_after_send (seconds)."""

    def __init__(self, port, clients, connect_timeout=5.0):
        self.port = port
        self.clients = clients
        self.sel = selectors.DefaultSelector()
        self._thread = None
        self.close_at = {}  # idx -> monotonic time to close that client's socket
        for c in clients:
            s = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setblocking(False)
            c.sock = s

    def send_all(self, clients=None):
        for c in clients if clients is not None else self.clients:
            c.sock.setblocking(True)
            c.sock.sendall(c.request_bytes())
            c.sock.setblocking(False)
            c.t_sent = time.monotonic()
            self.sel.register(c.sock, selectors.EVENT_READ, c)

    def run(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        open_ = {c.idx for c in self.clients if c.t_sent is not None}
        while open_ and time.monotonic() < deadline:
            now = time.monotonic()
            for idx, t in list(self.close_at.items()):
                if now >= t:
                    c = self.clients[idx]
                    self._close(c)
                    c.error = c.error or "closed by test"
                    del self.close_at[idx]
                    open_.discard(idx)
            wait = 0.05
            if self.close_at:
                wait = max(0.0, min(wait, min(self.close_at.values()) - now))
            for key, _ in self.sel.select(wait):
                c = key.data
                kts = None
                try:
                    if c.t_first is None:
                        # small reads until the first body byte, with the kernel's receive
                        # time of the data read: this loop's own delays do not count
                        data, anc, _, _ = c.sock.recvmsg(4096, 256)
                        for level, typ, val in anc:
                            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                                sec, nsec = struct.unpack("=qq", val[:16])
                                kts = sec + nsec / 1e9 - _WALL_MINUS_MONO
                    else:
                        data = c.sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data = None
                    c.error = c.error or repr(e)
                now = time.monotonic()
                if data:
                    c.feed(data, now, kts)
                    continue
                c.t_closed = now
                self._close(c)
                open_.discard(c.idx)
        for idx in open_:
            c = self.clients[idx]
            c.error = c.error or "timeout"
            self._close(c)
        return self.clients

    def _close(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass

    def start(self, timeout=30.0):
        self._thread = threading.Thread(target=self.run, args=(timeout,), daemon=True)
        self._thread.start()
        return self

    def join(self, timeout=60):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "client loop did not finish"
        return self.clients


def fetch_many(port, path, n, timeout=30.0, headers=None):
    mc = MultiClient(port, [Client(i, path, headers) for i in range(n)])
    mc.send_all()
    return mc.run(timeout)


def check_full(clients, sha, size, what):
    bad = [c for c in clients if not (c.status == 200 and c.complete and c.body_len == size
                                      and c.digest == sha)]
    assert not bad, (f"{what}: {len(bad)} of {len(clients)} clients did not get the full body "
                     f"({size} bytes): {bad[:5]}")


# --------------------------------------------------------------------------------------


def test_500_concurrent_misses_one_origin_request_streamed(cairn):
    """500 clients ask for one slow uncached 1 MiB object: the origin sees one request, every
    client gets the whole body, and each client's first body byte arrives within 0.3 s of the
    origin starting to send it (streaming to the waiters, not store-then-serve)."""
    N = 500
    body = blob(MiB, seed=500)
    st = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=1.0,
                chunk_size=64 * 1024, chunk_delay=0.05)
    org = Origin({"/slow": st}).start()
    try:
        c = cairn(cache_cfg(org))
        mc = MultiClient(c.port, [Client(i, "/slow") for i in range(N)])
        mc.send_all()
        t_sent_last = time.monotonic()
        clients = mc.run(timeout=40)
    finally:
        org.stop()
    n_req = len(org.requests)
    assert n_req == 1, f"{N} concurrent misses made {n_req} origin requests, expected 1"
    check_full(clients, st.sha256, len(body), "500 coalesced clients")
    t_origin_first = st.first_body_times[0]
    t_origin_done = st.done_times[0]
    assert t_sent_last < t_origin_first, "the clients were not all waiting before the origin answered"
    # the kernel's receive time of each client's first body byte (SO_TIMESTAMPNS), so the
    # delays of this Python loop reading 500 MiB do not count; the loop's own times are shown
    assert all(cl.kernel_ts for cl in clients), "SO_TIMESTAMPNS gave no receive timestamps"
    lags = sorted(cl.t_first_kernel - t_origin_first for cl in clients)
    user = sorted(cl.t_first - t_origin_first for cl in clients)

    def stats(xs):
        return (f"p50 {xs[len(xs) // 2] * 1000:.0f} ms, p99 {xs[int(len(xs) * 0.99) - 1] * 1000:.0f} ms, "
                f"max {xs[-1] * 1000:.0f} ms")

    print(f"\nfirst body byte after the origin's first byte: kernel receive time {stats(lags)}; "
          f"read by the test {stats(user)}; the origin sent the body over "
          f"{(t_origin_done - t_origin_first) * 1000:.0f} ms")
    late = [lag for lag in lags if lag > 0.3]
    assert not late, (f"{len(late)} of {N} clients received their first body byte more than 0.3 s "
                      f"after the origin started sending ({stats(lags)}; the origin took "
                      f"{t_origin_done - t_origin_first:.3f} s for the whole body): waiters are not "
                      f"streamed as the body arrives")
    assert lags[0] > -0.01, f"a client's first body byte predates the origin's: {lags[0]:.3f} s"
    statuses = [cl.header("Cache-Status") for cl in clients]
    stored = [s for s in statuses if s == "cairn; fwd=uri-miss; fwd-status=200; stored"]
    collapsed = [s for s in statuses if s and s.startswith("cairn; fwd=uri-miss; collapsed; ttl=")]
    assert len(stored) == 1 and len(collapsed) == N - 1, \
        f"Cache-Status: {len(stored)} stored, {len(collapsed)} collapsed, others " \
        f"{sorted(set(statuses) - set(stored) - set(collapsed))[:5]}"
    cache = [e["cache"] for e in wait_log(c, "/slow", N)]
    assert cache.count("MISS") == 1 and cache.count("COALESCED") == N - 1, \
        {k: cache.count(k) for k in set(cache)}
    r = get(c.port, "/slow")
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == st.sha256
    assert r.header("Cache-Status", "").startswith("cairn; hit;"), r.header("Cache-Status")


@pytest.mark.parametrize("leave_after", [0.3, 1.15], ids=["before-head", "mid-body"])
def test_leader_disconnect_fetch_continues(cairn, origin, leave_after):
    """The leader's client leaves mid-fetch (before the origin's head at 1 s, or in the middle
    of the body, sent from 1 s to 1.35 s): waiters still get the body, the object is stored,
    the origin saw one request."""
    body = blob(256 * 1024, seed=7)
    st = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=1.0,
                chunk_size=32 * 1024, chunk_delay=0.05)
    org = origin({"/ld": st})
    c = cairn(cache_cfg(org))
    mc = MultiClient(c.port, [Client(i, "/ld") for i in range(6)])
    mc.send_all(mc.clients[:1])
    org.wait_requests(1, timeout=3)
    mc.send_all(mc.clients[1:])
    mc.close_at[0] = org.requests[0].time + leave_after
    clients = mc.run(timeout=10)
    if leave_after < 1:
        assert clients[0].status is None, "the leader was closed before any response"
    else:
        assert clients[0].status == 200 and not clients[0].complete, \
            f"the leader should have left mid-body: {clients[0]!r}"
    check_full(clients[1:], st.sha256, len(body), "waiters of a leader whose client left")
    r = get(c.port, "/ld")
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == st.sha256, r
    assert (r.header("Cache-Status") or "").startswith("cairn; hit;"), \
        f"after the leader left, the object was not stored: {r.header('Cache-Status')!r}"
    assert len(org.requests) == 1, f"origin saw {len(org.requests)} requests, expected 1"


def test_leader_disconnect_alone_object_stored(cairn, origin):
    """No waiters: the fetch still completes into the cache after the only client left."""
    body = blob(128 * 1024, seed=8)
    st = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=0.5,
                chunk_size=16 * 1024, chunk_delay=0.05)
    org = origin({"/alone": st})
    c = cairn(cache_cfg(org))
    s = socket.create_connection(("127.0.0.1", c.port))
    s.sendall(b"GET /alone HTTP/1.1\r\nHost: localhost\r\n\r\n")
    org.wait_requests(1, timeout=3)
    time.sleep(0.1)
    s.close()
    deadline = time.monotonic() + 5
    while not st.done_times and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.done_times, "the origin never finished sending after the client left"
    time.sleep(0.2)
    r = get(c.port, "/alone")
    assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == st.sha256, r
    assert (r.header("Cache-Status") or "").startswith("cairn; hit;"), \
        f"the fetch of a client that left was not stored: {r.header('Cache-Status')!r}"
    assert len(org.requests) == 1, f"origin saw {len(org.requests)} requests"


def test_failed_leader_elects_one_waiter(cairn, origin):
    """The origin resets the leader's connection before any head: ONE of the 20 waiters
    fetches next (2 origin requests in all), and the others get its object."""
    body = blob(64 * 1024, seed=9)
    good = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=0.3)
    org = origin({"/elect": Sequence(Reset(delay=0.8), good)})
    c = cairn(cache_cfg(org, retries=0))
    mc = MultiClient(c.port, [Client(i, "/elect") for i in range(21)])
    mc.send_all(mc.clients[:1])
    org.wait_requests(1, timeout=3)
    mc.send_all(mc.clients[1:])
    clients = mc.run(timeout=15)
    time.sleep(0.3)
    n = len(org.requests)
    assert n == 2, (f"after the leader's fetch failed, the origin saw {n} requests in all "
                    f"(expected 2: the failed one and one elected waiter)")
    assert clients[0].status is not None and clients[0].status >= 500, \
        f"the failed leader's client: {clients[0]!r}"
    check_full(clients[1:], good.sha256, len(body), "waiters after a failed leader")
    r = get(c.port, "/elect")
    assert (r.header("Cache-Status") or "").startswith("cairn; hit;") and r.body == body
    assert len(org.requests) == 2
    fams = scrape(c)
    elected = value(fams, FILL_EVENTS, cache="c", event="leader_elected")
    assert elected == 1, f"{FILL_EVENTS}{{event=leader_elected}} is {elected}, expected 1"
    assert value(fams, FILL_EVENTS, cache="c", event="takeover") == 0


def test_wait_timeout_waiters_fetch_on_their_own(cairn, origin):
    """lock.wait_timeout 500ms, origin takes 2 s: the waiters stop waiting after ~0.5 s and
    each fetches on its own (the origin sees their requests then)."""
    body = blob(32 * 1024, seed=10)
    st = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=2.0)
    org = origin({"/wt": st})
    c = cairn(cache_cfg(org, wait="500ms", age="30s"))
    W = 4
    mc = MultiClient(c.port, [Client(i, "/wt") for i in range(1 + W)])
    mc.send_all(mc.clients[:1])
    org.wait_requests(1, timeout=3)
    t_waiters = time.monotonic()
    mc.send_all(mc.clients[1:])
    mc.start(timeout=10)
    org.wait_requests(1 + W, timeout=3)
    clients = mc.join()
    times = origin_times(org, "/wt")
    extra = [t - t_waiters for t in times[1:]]
    print(f"\nwaiters' own origin requests at {[round(x, 3) for x in extra]} s after they were sent")
    assert len(times) == 1 + W, f"origin saw {len(times)} requests, expected {1 + W} " \
                                f"(leader + each waiter after wait_timeout)"
    assert all(0.4 <= x <= 1.2 for x in extra), \
        f"waiters reached the origin at {extra} s; expected after wait_timeout (0.5 s)"
    check_full(clients, st.sha256, len(body), "wait_timeout clients")
    for cl in clients[1:]:
        took = cl.t_done - cl.t_sent
        assert took < 3.2, f"a waiter took {took:.2f} s (0.5 s wait + 2 s origin expected)"


def test_age_timeout_waiter_takes_over(cairn, origin):
    """lock.age_timeout 500ms, the origin stalls the leader's fetch before its head (4 s):
    a waiter does not wait for it beyond the age timeout and gets its answer from its own
    fetch long before the stalled one ends."""
    body = blob(16 * 1024, seed=11)
    quick = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=0.2)
    stalled = Stream(body, headers={"Cache-Control": "max-age=60"}, delay_headers=4.0)
    org = origin({"/at": Sequence(stalled, quick)})
    c = cairn(cache_cfg(org, wait="30s", age="500ms"))
    mc = MultiClient(c.port, [Client(i, "/at") for i in range(2)])
    mc.send_all(mc.clients[:1])
    org.wait_requests(1, timeout=3)
    t_leader = org.requests[0].time
    time.sleep(0.1)
    mc.send_all(mc.clients[1:])
    mc.start(timeout=10)
    org.wait_requests(2, timeout=3)
    t_takeover = org.requests[1].time - t_leader
    # a request arriving after the age timeout does not wait either
    late_t0 = time.monotonic()
    late = get(c.port, "/at", timeout=5)
    late_took = time.monotonic() - late_t0
    clients = mc.join()
    print(f"\nwaiter's own fetch {t_takeover:.3f} s after the stalled one; late request {late_took:.3f} s")
    assert 0.35 <= t_takeover <= 1.2, \
        f"the waiter fetched {t_takeover:.3f} s after the stalled fetch began (age_timeout 0.5 s)"
    w = clients[1]
    check_full([w], quick.sha256, len(body), "waiter after age_timeout")
    assert w.t_done - w.t_sent < 2.0, f"the waiter took {w.t_done - w.t_sent:.2f} s (stalled fetch: 4 s)"
    assert late.status == 200 and late.body == body and late_took < 2.0, \
        f"late request: {late.status}, {late_took:.2f} s"
    check_full(clients[:1], quick.sha256, len(body), "the stalled leader")
    took_over = value(scrape(c), FILL_EVENTS, cache="c", event="takeover")
    assert took_over >= 1, f"{FILL_EVENTS}{{event=takeover}} is {took_over}, expected >= 1"


def test_hit_for_pass(cairn, origin):
    """An uncacheable answer (private) releases the waiters to fetch on their own; then, for
    10 s, concurrent requests for the key go to the origin at once, not one after another."""
    st = Stream(b"per user\n", headers={"Cache-Control": "private, max-age=60"}, delay_headers=1.0)
    org = origin({"/hfp": st})
    c = cairn(cache_cfg(org))
    mc = MultiClient(c.port, [Client(i, "/hfp") for i in range(4)])
    mc.send_all(mc.clients[:1])
    org.wait_requests(1, timeout=3)
    mc.send_all(mc.clients[1:])
    first = mc.run(timeout=10)
    assert all(cl.status == 200 and cl.complete and cl.digest == st.sha256 for cl in first), first
    assert len(org.requests) == 4, (f"a private answer: the 3 released waiters should each fetch, "
                                    f"origin saw {len(org.requests)} requests")
    assert first[0].header("Cache-Status") == "cairn; fwd=uri-miss; fwd-status=200; detail=private", \
        first[0].header("Cache-Status")

    org.reset_log()
    t0 = time.monotonic()
    clients = fetch_many(c.port, "/hfp", 5, timeout=10)
    took = time.monotonic() - t0
    times = [t - t0 for t in origin_times(org, "/hfp")]
    print(f"\nhit-for-pass: origin requests at {[round(t, 3) for t in times]} s, all done in {took:.2f} s")
    assert len(times) == 5, f"hit-for-pass: origin saw {len(times)} of 5 requests"
    assert max(times) < 0.5, f"hit-for-pass requests waited for each other: origin saw them at {times}"
    assert took < 1.9, f"5 concurrent hit-for-pass requests took {took:.2f} s (origin: 1 s each)"
    for cl in clients:
        assert cl.status == 200 and cl.digest == st.sha256, cl
        assert cl.header("Cache-Status") == "cairn; fwd=uri-miss; fwd-status=200; detail=hit-for-pass", \
            cl.header("Cache-Status")
    cache = [e["cache"] for e in wait_log(c, "/hfp", 9)]
    assert cache[4:] == ["PASS"] * 5, f"access log cache field of the hit-for-pass requests: {cache}"


def test_three_keys_in_parallel(cairn, origin):
    """3 keys x 10 clients each: 3 origin requests, each client gets its key's body."""
    bodies = {f"/k{i}": blob(100_000 + i, seed=20 + i) for i in range(3)}
    sts = {p: Stream(b, headers={"Cache-Control": "max-age=60"}, delay_headers=0.5,
                     chunk_size=16384, chunk_delay=0.02) for p, b in bodies.items()}
    org = origin(sts)
    c = cairn(cache_cfg(org))
    clients = [Client(i, f"/k{i % 3}") for i in range(30)]
    mc = MultiClient(c.port, clients)
    t0 = time.monotonic()
    mc.send_all()
    mc.run(timeout=10)
    took = time.monotonic() - t0
    for p, st in sts.items():
        n = sum(1 for q in org.requests if q.target == p)
        assert n == 1, f"{p}: origin saw {n} requests, expected 1"
        check_full([cl for cl in clients if cl.path == p], st.sha256, len(bodies[p]), p)
    assert took < 2.5, f"3 keys fetched in parallel took {took:.2f} s (each 0.5 s + ~0.2 s body)"
    assert statistics.mean(cl.t_done - cl.t_sent for cl in clients) < 2.0
