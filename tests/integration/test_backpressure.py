"""Origin backpressure (upstreams.<name>.max_in_flight), per docs/cache.md "Origin
backpressure" and "Coalescing", against the real binary.

Contract checked here:
- only fill leaders of cacheable misses take an origin slot; cache hits and coalesced waiters
  never do; passes (uncacheable) take one only with pass_takes_slot: true;
- the queue is FIFO; a queued request whose client leaves is out of the queue at once, unless
  other clients wait on the same fill (then the fill stays queued and completes for them);
- a request queued longer than queue_timeout gets 503 with Retry-After: <retry_after>, a short
  body and Cache-Control: private, no-store, and never reaches the origin;
- slots are given back on every path (success, 5xx, reset, truncation, timeout, client gone):
  the gauges return to 0;
- cairn_origin_fetch_queue_wait_seconds{upstream,outcome="admitted"|"timeout"|"gone"} counts
  the requests that waited in the queue, by how the wait ended (a fetch that found a free
  slot never waited, so it is not observed);
- with the cache lock: a queued fill nobody waits for any more leaves the queue; clients on a
  fill that times out in the queue are answered within ~queue_timeout ("queue_timeout bounds
  what a client waits"); lock.age_timeout does not hand a merely queued fill to a waiter;
  waiters giving up (lock.wait_timeout) do not go around max_in_flight; a queued fill's wait
  is not counted in the stored object's age (RFC 9111 §4.2.3 request_time).

The origin measures its own concurrency: a request counts from the moment its head has been
read until the origin starts writing the answer (so a slot released by cairn right after the
response can never make the count look too high).
"""
from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest

from helpers import RawConn, build_request, get, proxy_config, wait_for
from origins import Func, Normal, Stream, blob
from test_metrics_admin import parse_prometheus, value



# --------------------------------------------------------------------------------------
# origin and configuration


class Concurrency:
    """Counts concurrent requests inside an origin."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cur = 0
        self.max = 0
        self.starts = []  # (target, monotonic time) in arrival order

    def enter(self, target):
        with self.lock:
            self.cur += 1
            self.max = max(self.max, self.cur)
            self.starts.append((target, time.monotonic()))

    def leave(self):
        with self.lock:
            self.cur -= 1


def body_of(target: str) -> bytes:
    return f"body of {target}\n".encode()


def slow_origin(origin, delay=0.5, cache_control="max-age=60", extra_routes=None):
    """An origin whose every answer takes @delay seconds; body_of(target), cacheable.
    Returns (origin, Concurrency)."""
    conc = Concurrency()

    def handle(o, req, sock):
        conc.enter(req.target)
        stopped = o.sleep(delay)
        conc.leave()
        if stopped:
            return False
        body = body_of(req.target)
        sock.sendall((f"HTTP/1.1 200 OK\r\nCache-Control: {cache_control}\r\n"
                      f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                     + body)
        return True

    routes = {"/*": Func(handle)}
    routes.update(extra_routes or {})
    return origin(routes), conc


def bp_config(org, max_in_flight=2, queue_timeout="10s", retry_after=None,
              pass_takes_slot=False, workers=2, read_timeout="5s", retries=None, lock=None):
    up = {"max_in_flight": max_in_flight, "queue_timeout": queue_timeout,
          "pass_takes_slot": pass_takes_slot, "read_timeout": read_timeout}
    if retry_after is not None:
        up["retry_after"] = retry_after
    if retries is not None:
        up["retries"] = retries
    cfg = proxy_config(org, route_extra={"cache": "c"}, upstream_extra=up,
                       server={"workers": workers, "header_timeout": "10s"})
    cfg["caches"] = {"c": {"memory": {"size": "64MiB"}}}
    if lock:
        cfg["caches"]["c"]["lock"] = lock
    return cfg


# --------------------------------------------------------------------------------------
# metrics


def scrape(c):
    r = get(c.admin_port, "/metrics", host=f"127.0.0.1:{c.admin_port}", timeout=5)
    assert r.status == 200, f"/metrics answered {r.status}"
    return parse_prometheus(r.body.decode("utf-8"))


IN_FLIGHT = "cairn_origin_fetches_in_flight"
QUEUED = "cairn_origin_fetches_queued"
WAIT = "cairn_origin_fetch_queue_wait_seconds"


def gauges(c, fams=None):
    fams = fams or scrape(c)
    return value(fams, IN_FLIGHT, upstream="o"), value(fams, QUEUED, upstream="o")


def waits(fams, outcome):
    """(count, sum) of the queue-wait histogram for @outcome."""
    return (value(fams, WAIT + "_count", upstream="o", outcome=outcome),
            value(fams, WAIT + "_sum", upstream="o", outcome=outcome))


def wait_gauges(c, in_flight, queued, timeout=3.0, what=""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = gauges(c)
        if last == (in_flight, queued):
            return last
        time.sleep(0.02)
    raise AssertionError(f"{what}: expected in_flight={in_flight} queued={queued} for "
                         f"upstream o, /metrics still shows in_flight={last[0]:g} "
                         f"queued={last[1]:g} after {timeout}s")


# --------------------------------------------------------------------------------------
# clients


class Client(threading.Thread):
    """One request on its own connection, connected at construction; send() sends it and
    starts reading the response in the background."""

    def __init__(self, port, target, headers=None, timeout=15.0):
        super().__init__(daemon=True)
        self.target = target
        self.conn = RawConn(port, timeout=timeout)
        self.req = build_request("GET", target, headers)
        self.timeout = timeout
        self.resp = None
        self.error = None
        self.t_send = self.t_done = None

    def send(self):
        self.t_send = time.monotonic()
        self.conn.send(self.req)
        self.start()
        return self

    def run(self):
        try:
            self.resp = self.conn.read_response(timeout=self.timeout)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.t_done = time.monotonic()
            self.conn.close()

    @property
    def elapsed(self):
        return self.t_done - self.t_send

    def result(self, timeout=20.0):
        self.join(timeout)
        assert not self.is_alive(), f"{self.target}: no response within {timeout}s"
        assert self.error is None, f"{self.target}: {self.error!r}"
        return self.resp

    def abort(self, rst=True):
        """The client goes away (an RST when @rst, like a killed browser)."""
        if rst:
            try:
                self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
            except OSError:
                pass
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def origin_count(org, target):
    return sum(1 for q in org.requests if q.target == target)


def ok_body(resp, target):
    assert resp.status == 200, f"{target}: {resp!r}"
    assert resp.body == body_of(target), f"{target}: wrong body {resp.body!r}"


# --------------------------------------------------------------------------------------
# scenario 1: ten slow misses, two slots


def run_ten_slow_misses(cairn, origin):
    org, conc = slow_origin(origin, delay=0.5)
    c = cairn(bp_config(org, max_in_flight=2))
    before = scrape(c)
    targets = [f"/k/{i}" for i in range(10)]
    clients = [Client(c.port, t) for t in targets]
    t0 = time.monotonic()
    for cl in clients:
        cl.send()
        time.sleep(0.02)
    # all sent (0.2 s); the first pair is at the origin, eight wait
    try:
        mid = wait_gauges(c, 2, 8, timeout=0.25, what="all ten sent")
    except AssertionError:
        mid = gauges(c)
    results = [cl.result() for cl in clients]
    total = time.monotonic() - t0
    after = scrape(c)
    return dict(org=org, conc=conc, c=c, targets=targets, clients=clients, results=results,
                total=total, before=before, after=after, mid=mid)


def test_max_in_flight_limits_origin_concurrency_fifo(cairn, origin):
    s = run_ten_slow_misses(cairn, origin)
    org, conc, targets, clients = s["org"], s["conc"], s["targets"], s["clients"]
    for t, r in zip(targets, s["results"]):
        ok_body(r, t)
    print(f"\n[scenario 1] origin max concurrency {conc.max}, total {s['total']:.2f}s, "
          f"gauges 0.2s after the sends in_flight={s['mid'][0]:g} queued={s['mid'][1]:g}")
    assert conc.max <= 2, f"max_in_flight 2, but the origin saw {conc.max} requests at once"
    assert conc.max == 2, f"the origin never saw 2 requests at once (max {conc.max}): the limit " \
                          f"is stricter than configured"
    for t in targets:
        assert origin_count(org, t) == 1, f"{t} reached the origin {origin_count(org, t)} times"
    # 10 fetches of 0.5 s, two at a time: five rounds, ~2.5 s
    assert 2.35 <= s["total"] <= 4.0, f"10 x 0.5 s with 2 slots took {s['total']:.2f}s (~2.5 expected)"
    assert s["mid"] == (2, 8), f"0.2 s after the sends: in_flight/queued {s['mid']}, expected (2, 8)"
    # FIFO: the origin is reached in send order (adjacent swaps tolerated: two slots free
    # almost together), and responses complete in send order with the same tolerance.
    admitted = [t for t, _ in conc.starts]
    for i, t in enumerate(targets):
        j = admitted.index(t)
        assert abs(i - j) <= 1, f"not FIFO: {t} (sent #{i}) reached the origin #{j}: {admitted}"
    done = sorted(range(10), key=lambda i: clients[i].t_done)
    for rank, i in enumerate(done):
        assert abs(rank - i) <= 1, \
            f"not FIFO: {targets[i]} (sent #{i}) completed #{rank}; completion order {done}"
    # each request finishes in its round: the request sent #i completes ~ (i//2 + 1) * 0.5 s
    for i, cl in enumerate(clients):
        want = (i // 2 + 1) * 0.5
        got = cl.t_done - clients[0].t_send
        assert want - 0.1 <= got <= want + 0.6, \
            f"{targets[i]} completed at {got:.2f}s, expected ~{want:.1f}s (round {i // 2 + 1})"


# --------------------------------------------------------------------------------------
# scenario 2: hits and coalesced waiters while the queue is full


def test_hits_and_coalesced_waiters_take_no_slot(cairn, origin):
    org, conc = slow_origin(origin, delay=1.0, extra_routes={
        "/hot": Normal(200, b"hot object\n", headers={"Cache-Control": "max-age=60"})})
    c = cairn(bp_config(org, max_in_flight=2))
    r = get(c.port, "/hot")
    assert r.status == 200 and r.body == b"hot object\n", r
    slow = [Client(c.port, f"/slow/{i}").send() for i in range(4)]
    wait_for(lambda: len(conc.starts) >= 2, timeout=3, msg="two fills at the origin")
    wait_gauges(c, 2, 2, what="two fills running, two queued")

    t0 = time.monotonic()
    hit = get(c.port, "/hot", timeout=3)
    hit_dt = time.monotonic() - t0
    print(f"\n[scenario 2] cache hit while the queue is full: {hit_dt * 1000:.1f} ms")
    assert hit.status == 200 and hit.body == b"hot object\n", hit
    assert "hit" in (hit.header("Cache-Status") or ""), f"expected a hit: {hit!r}"
    assert hit_dt < 0.1, f"a cache hit waited {hit_dt * 1000:.0f} ms behind the origin queue"

    # waiters on a queued fill (/slow/3) and on a running fill (/slow/0)
    waiters = [Client(c.port, "/slow/3").send(), Client(c.port, "/slow/3").send(),
               Client(c.port, "/slow/0").send()]
    time.sleep(0.15)
    g = gauges(c)
    assert g == (2, 2), f"coalesced waiters changed the slot gauges: in_flight/queued {g}, " \
                        f"expected (2, 2)"
    for cl in slow + waiters:
        ok_body(cl.result(), cl.target)
    for i in range(4):
        n = origin_count(org, f"/slow/{i}")
        assert n == 1, f"/slow/{i} reached the origin {n} times; coalesced waiters must share " \
                       f"the one fetch"
    assert origin_count(org, "/hot") == 1
    assert conc.max <= 2, f"the origin saw {conc.max} requests at once (max_in_flight 2)"
    # the waiter on the queued fill finished with its fill (round 2), not in a round of its own
    assert waiters[0].elapsed < 2.0 + 0.6, f"waiter on /slow/3 took {waiters[0].elapsed:.2f}s"
    wait_gauges(c, 0, 0, what="after the run")


def test_stale_answer_takes_no_slot(cairn, origin):
    """A stale-while-revalidate answer is sent at once even when every slot is taken; its
    background revalidation is the one that queues."""
    versions = {"n": 0}

    def swr(o, req, sock):
        versions["n"] += 1
        if versions["n"] > 1:
            o.sleep(0.3)
        b = f"swr v{versions['n']}\n".encode()
        # v1 goes stale after 1 s; the refreshed v2 stays fresh for the rest of the test
        max_age = 1 if versions["n"] == 1 else 60
        sock.sendall(f"HTTP/1.1 200 OK\r\nCache-Control: max-age={max_age}, "
                     f"stale-while-revalidate=30"
                     f"\r\nETag: \"s{versions['n']}\"\r\nContent-Length: {len(b)}\r\n\r\n"
                     .encode() + b)
        return True

    org, conc = slow_origin(origin, delay=1.5, extra_routes={"/swr": Func(swr)})
    c = cairn(bp_config(org, max_in_flight=1))
    r = get(c.port, "/swr")
    assert r.status == 200 and r.body == b"swr v1\n", r
    time.sleep(2.3)  # age 2 > max-age 1: stale, inside the 30 s window
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    wait_gauges(c, 1, 0, what="the holder has the only slot")
    t0 = time.monotonic()
    r = get(c.port, "/swr", timeout=5)
    dt = time.monotonic() - t0
    print(f"\n[scenario 2b] stale answer with every slot taken: {dt * 1000:.1f} ms, "
          f"{r.header('Cache-Status')}")
    assert r.status == 200 and r.body == b"swr v1\n", r
    assert dt < 0.1, f"a stale-while-revalidate answer waited {dt * 1000:.0f} ms for an " \
                     f"origin slot"
    # the background revalidation waits for the slot, then refreshes the object
    wait_gauges(c, 1, 1, timeout=1, what="the background revalidation queued")
    ok_body(holder.result(), "/hold")
    wait_for(lambda: versions["n"] >= 2, timeout=3, msg="the background revalidation")
    wait_gauges(c, 0, 0, timeout=3, what="after the revalidation")
    r = get(c.port, "/swr", timeout=5)
    assert r.body == b"swr v2\n", f"the background revalidation did not refresh: {r!r}"
    assert versions["n"] == 2


def test_queue_wait_not_counted_in_age(cairn, origin):
    """RFC 9111 §4.2.3: request_time is when cairn sent the request that produced the stored
    response. A fill that waited in the origin queue must not be stored older by its queue
    wait: an immediate answer with max-age=2 fetched after a 2.5 s queue wait is fresh."""
    org, conc = slow_origin(origin, delay=2.5, extra_routes={
        "/short": Normal(200, b"short-lived\n", headers={"Cache-Control": "max-age=2"})})
    c = cairn(bp_config(org, max_in_flight=1))
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    queued = Client(c.port, "/short").send()
    wait_gauges(c, 1, 1, what="/short queued")
    ok_body(holder.result(), "/hold")
    first = queued.result()
    assert first.status == 200 and first.body == b"short-lived\n", first
    t_stored = time.monotonic()
    r = get(c.port, "/short", timeout=5)
    dt_after = time.monotonic() - t_stored
    age = r.header("Age")
    print(f"\n[queue/age] leader waited {queued.elapsed:.2f}s: its answer Age={first.header('Age')} "
          f"{first.header('Cache-Status')}; next request {dt_after * 1000:.0f} ms later: "
          f"Age={age} {r.header('Cache-Status')}; origin saw /short "
          f"{origin_count(org, '/short')} times")
    assert r.status == 200 and r.body == b"short-lived\n", r
    assert origin_count(org, "/short") == 1 and "hit" in (r.header("Cache-Status") or ""), \
        f"an object fetched a moment ago with max-age=2 was already stale: the {queued.elapsed:.1f}s " \
        f"its fill spent in the origin queue was counted in its age (Age {age}, " \
        f"Cache-Status {r.header('Cache-Status')}, origin requests for /short: " \
        f"{origin_count(org, '/short')})"
    assert age is not None and int(age) <= 1, \
        f"Age {age} on an object received {dt_after:.2f}s ago from an origin that answered at " \
        f"once (the queue wait was counted as response delay)"


# --------------------------------------------------------------------------------------
# scenario 3: queue timeout


def run_queue_timeout(cairn, origin):
    org, conc = slow_origin(origin, delay=1.5)
    c = cairn(bp_config(org, max_in_flight=1, queue_timeout="300ms", retry_after=3))
    before = scrape(c)
    holder = Client(c.port, "/slow/a").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the first fill at the origin")
    t0 = time.monotonic()
    r = get(c.port, "/slow/b", timeout=5)
    dt = time.monotonic() - t0
    first = holder.result()
    time.sleep(0.3)
    seen_b = origin_count(org, "/slow/b")
    after = scrape(c)
    return dict(org=org, c=c, r=r, dt=dt, first=first, seen_b=seen_b, before=before,
                after=after)


def test_queue_timeout_503_retry_after(cairn, origin):
    s = run_queue_timeout(cairn, origin)
    r, dt = s["r"], s["dt"]
    print(f"\n[scenario 3] 503 after {dt * 1000:.0f} ms (queue_timeout 300 ms): {r!r}")
    assert r.status == 503, f"a miss queued past queue_timeout must get 503: {r!r}"
    assert r.reason == "Service Unavailable", r
    assert r.header("Retry-After") == "3", f"Retry-After should be retry_after (3): {r!r}"
    cc = (r.header("Cache-Control") or "").replace(" ", "").lower()
    assert "private" in cc.split(",") and "no-store" in cc.split(","), \
        f"the 503 must be Cache-Control: private, no-store: {r!r}"
    assert r.body and len(r.body) < 1024, f"expected a short body: {r.body!r}"
    assert 0.28 <= dt <= 0.8, f"503 after {dt:.3f}s, queue_timeout is 0.3 s"
    ok_body(s["first"], "/slow/a")
    assert s["seen_b"] == 0, "the request that timed out in the queue reached the origin"
    # the 503 was not stored: the next request for the key is fetched (the slot is free now)
    r2 = get(s["c"].port, "/slow/b", timeout=5)
    ok_body(r2, "/slow/b")
    assert origin_count(s["org"], "/slow/b") == 1


# --------------------------------------------------------------------------------------
# scenario 4: queued leaders whose client leaves


def queue_leader_with_waiter(c, conc):
    """With max_in_flight 1: /hold takes the slot at the origin, a client's fill of /k queues
    behind it, and a second /k client waits on that fill. Returns the three clients."""
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    leader = Client(c.port, "/k").send()
    wait_gauges(c, 1, 1, what="the leader of /k queued")
    waiter = Client(c.port, "/k").send()
    wait_for(lambda: value(scrape(c), "cairn_cache_lock_waiters") >= 1, timeout=3,
             msg="the second /k waiting on the fill")
    return holder, leader, waiter


def test_queued_leader_leaves_fill_stays_for_waiter(cairn, origin):
    org, conc = slow_origin(origin, delay=1.0)
    c = cairn(bp_config(org, max_in_flight=1))
    before = scrape(c)
    holder, leader, waiter = queue_leader_with_waiter(c, conc)
    leader.abort()
    time.sleep(0.2)
    g = gauges(c)
    assert g == (1, 1), f"the queued leader's client left while another client waits on the " \
                        f"fill: the fill must stay queued (in_flight/queued (1, 1)), got {g}"
    ok_body(holder.result(), "/hold")
    r = waiter.result()
    ok_body(r, "/k")
    assert origin_count(org, "/k") == 1, f"/k reached the origin {origin_count(org, '/k')} times"
    # it completed once the slot freed: ~1 s (holder) + 1 s (its own fetch)
    assert waiter.elapsed >= 1.2, f"the waiter was served after {waiter.elapsed:.2f}s"
    wait_gauges(c, 0, 0, what="after the run")
    # the object was stored for later requests
    r = get(c.port, "/k")
    ok_body(r, "/k")
    assert origin_count(org, "/k") == 1
    after = scrape(c)
    assert waits(after, "gone")[0] - waits(before, "gone")[0] == 0, \
        "the queued fill was counted as gone although it stayed queued for its waiter"
    assert waits(after, "admitted")[0] - waits(before, "admitted")[0] == 1


def test_queued_leader_alone_leaves_queue_at_once(cairn, origin):
    org, conc = slow_origin(origin, delay=1.0)
    c = cairn(bp_config(org, max_in_flight=1))
    before = scrape(c)
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    lonely = Client(c.port, "/lonely").send()
    wait_gauges(c, 1, 1, what="/lonely queued")
    t0 = time.monotonic()
    lonely.abort()
    wait_gauges(c, 1, 0, timeout=0.5, what="the queued client left")
    left_dt = time.monotonic() - t0
    print(f"\n[scenario 4] queued client gone -> out of the queue in {left_dt * 1000:.0f} ms")
    ok_body(holder.result(), "/hold")
    time.sleep(0.5)
    assert origin_count(org, "/lonely") == 0, \
        "a queued fill whose only client left was still sent to the origin"
    wait_gauges(c, 0, 0, what="after the run")
    after = scrape(c)
    assert waits(after, "gone")[0] - waits(before, "gone")[0] == 1, \
        "the queued client that left must count as outcome=\"gone\""
    assert waits(after, "admitted")[0] - waits(before, "admitted")[0] == 0
    # cairn still serves the key
    ok_body(get(c.port, "/lonely", timeout=5), "/lonely")


def test_queued_fill_abandoned_when_last_waiter_leaves(cairn, origin):
    """The leader's client left while a waiter kept the fill queued; when that waiter leaves
    too, nothing can use the fetch: it leaves the queue and never reaches the origin."""
    org, conc = slow_origin(origin, delay=1.5)
    c = cairn(bp_config(org, max_in_flight=1))
    holder, leader, waiter = queue_leader_with_waiter(c, conc)
    leader.abort()
    time.sleep(0.1)
    assert gauges(c) == (1, 1), "the fill must stay queued while a client waits on it"
    waiter.abort()
    time.sleep(0.5)
    g = gauges(c)
    ok_body(holder.result(), "/hold")
    time.sleep(0.5)
    n = origin_count(org, "/k")
    print(f"\n[abandon] 0.5 s after the last client left: in_flight/queued {g}; origin saw /k "
          f"{n} times")
    assert g == (1, 0) and n == 0, \
        f"every client of a queued fill left (the leader's first, then the waiter's): the fetch " \
        f"must leave the queue (docs/cache.md: a detached fetch is abandoned when it is still " \
        f"queued with no waiters left); 0.5 s later in_flight/queued was {g} (expected (1, 0)) " \
        f"and the origin later saw /k {n} times (expected 0)"
    wait_gauges(c, 0, 0, what="after the run")


def test_detached_queued_fill_times_out_waiter_answered(cairn, origin):
    """The leader's client left, a waiter keeps the fill queued, and the fill times out in
    the queue: the waiter gets an answer (503 with Retry-After, or the object once a slot
    frees), never a hang or a reset; cairn stays healthy."""
    org, conc = slow_origin(origin, delay=1.5)
    c = cairn(bp_config(org, max_in_flight=1, queue_timeout="500ms", retry_after=2))
    holder, leader, waiter = queue_leader_with_waiter(c, conc)
    leader.abort()
    r = waiter.result(timeout=8)
    print(f"\n[detached+timeout] waiter after {waiter.elapsed:.2f}s: {r!r}")
    assert r.status in (200, 503), r
    if r.status == 503:
        assert r.header("Retry-After") == "2", r
        assert waiter.elapsed < 1.5, f"503 after {waiter.elapsed:.2f}s (queue_timeout 0.5 s)"
    else:
        ok_body(r, "/k")
    ok_body(holder.result(), "/hold")
    assert origin_count(org, "/k") <= 1
    wait_gauges(c, 0, 0, what="after the run")
    ok_body(get(c.port, "/k", timeout=5), "/k")


def test_waiters_of_timed_out_fill_bounded_by_queue_timeout(cairn, origin):
    """docs/cache.md: "queue_timeout bounds what a client waits". Clients coalesced on a fill
    that times out in the queue waited for a slot as long as its leader did: each must be
    answered within about one queue_timeout, not one queue_timeout more per waiter ahead of
    it (the fill being handed from waiter to waiter, each queueing again)."""
    org, conc = slow_origin(origin, delay=3.0)
    c = cairn(bp_config(org, max_in_flight=1, queue_timeout="400ms"))
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    leader = Client(c.port, "/k").send()
    wait_gauges(c, 1, 1, what="the leader of /k queued")
    waiters = [Client(c.port, "/k").send() for _ in range(4)]
    rs = [cl.result(timeout=10) for cl in [leader] + waiters]
    took = [round(cl.elapsed, 2) for cl in [leader] + waiters]
    print(f"\n[fill timeout] statuses {[r.status for r in rs]}, answered after {took} s "
          f"(queue_timeout 0.4 s); origin /k {origin_count(org, '/k')}")
    for r in rs:
        assert r.status == 503 and r.header("Retry-After") == "1", r
    assert max(took) <= 0.4 + 0.4, \
        f"clients behind a fill that timed out in the origin queue were answered after {took} s " \
        f"with queue_timeout 0.4 s: each waiter re-queued the fill in turn"
    assert origin_count(org, "/k") == 0
    ok_body(holder.result(), "/hold")


def test_waiters_on_queued_fill_do_not_take_over_by_age(cairn, origin):
    """lock.age_timeout hands a fill whose leader made no progress at the origin to a waiter.
    A fill that is only queued for an origin slot has not stalled at the origin: its waiters
    must keep waiting for it (one origin request for the key), not queue a second fetch."""
    org, conc = slow_origin(origin, delay=2.5)
    c = cairn(bp_config(org, max_in_flight=1, lock={"wait_timeout": "10s", "age_timeout": "1s"}))
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    leader = Client(c.port, "/k").send()
    wait_gauges(c, 1, 1, what="the leader of /k queued")
    waiter = Client(c.port, "/k").send()
    time.sleep(1.6)  # past age_timeout, the holder still runs
    queued_then = gauges(c)[1]
    for cl in (holder, leader, waiter):
        ok_body(cl.result(), cl.target)
    time.sleep(0.3)
    n = origin_count(org, "/k")
    print(f"\n[age_timeout] queued after 1.6 s: {queued_then:g}; origin requests for /k: {n}; "
          f"leader {leader.elapsed:.2f}s waiter {waiter.elapsed:.2f}s")
    assert n == 1 and queued_then == 1, \
        f"a waiter took over a fill that was only waiting for an origin slot (age_timeout 1s): " \
        f"{queued_then:g} fetches queued for one key, the origin saw /k {n} times"
    wait_gauges(c, 0, 0, what="after the run")


def test_waiters_giving_up_still_respect_max_in_flight(cairn, origin):
    """lock.wait_timeout: a waiter that waited that long fetches on its own. That fetch is an
    origin fetch of a cacheable key, so max_in_flight must still bound the origin's load:
    waiters of a queued fill must not all bypass the queue at once."""
    org, conc = slow_origin(origin, delay=2.0)
    c = cairn(bp_config(org, max_in_flight=1, lock={"wait_timeout": "700ms",
                                                     "age_timeout": "10s"}))
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    leader = Client(c.port, "/k").send()
    wait_gauges(c, 1, 1, what="the leader of /k queued")
    waiters = [Client(c.port, "/k").send() for _ in range(4)]
    rs = [cl.result(timeout=20) for cl in [holder, leader] + waiters]
    print(f"\n[wait_timeout] origin max concurrency {conc.max} (max_in_flight 1); origin "
          f"requests for /k: {origin_count(org, '/k')}; statuses {[r.status for r in rs]}")
    for r in rs:
        assert r.status in (200, 503), r
    assert conc.max <= 1, \
        f"max_in_flight 1, but the origin saw {conc.max} requests at once: waiters whose " \
        f"lock.wait_timeout expired while their fill was queued went around the queue"
    wait_gauges(c, 0, 0, what="after the run")


# --------------------------------------------------------------------------------------
# scenario 5: the leader's client leaves while its fetch runs


@pytest.mark.parametrize("leave", ["before_head", "mid_body"])
def test_running_leader_leaves_followers_served(cairn, origin, leave):
    body = blob(512 * 1024, seed=5)
    st = Stream(body, headers={"Cache-Control": "max-age=60", "ETag": '"big"'},
                delay_headers=0.4, chunk_size=32 * 1024, chunk_delay=0.04)
    org = origin({"/big": st})
    c = cairn(bp_config(org, max_in_flight=2))
    leader = RawConn(c.port, timeout=10)
    leader.send(build_request("GET", "/big"))
    org.wait_requests(1, timeout=3)
    followers = [Client(c.port, "/big").send() for _ in range(3)]
    wait_for(lambda: value(scrape(c), "cairn_cache_lock_waiters") >= 3, timeout=3,
             msg="three followers waiting on the fill")
    if leave == "mid_body":
        leader.sock.settimeout(5)
        got = b""
        while b"\r\n\r\n" not in got or len(got) < 70000:
            d = leader.sock.recv(65536)
            assert d, "cairn closed the leader's connection"
            got += d
    leader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leader.close()
    for f in followers:
        r = f.result()
        assert r.status == 200, r
        assert len(r.body) == len(body) and r.body == body, \
            f"follower got {len(r.body)} bytes, not the {len(body)}-byte body, after the " \
            f"leader's client left ({leave})"
    assert len(org.requests) == 1, f"the origin saw {len(org.requests)} requests for /big"
    wait_gauges(c, 0, 0, what="after the fill")
    r = get(c.port, "/big", timeout=5)
    assert r.status == 200 and r.body == body and "hit" in (r.header("Cache-Status") or ""), \
        f"the object was not stored after the leader left: {r.header('Cache-Status')}"
    assert len(org.requests) == 1


# --------------------------------------------------------------------------------------
# scenario 6: slots come back on every path


def test_slots_released_on_every_path(cairn, origin):
    rnd = random.Random(6)
    lock = threading.Lock()
    kinds = {}

    def expected(path):
        n = 1 + (sum(map(ord, path)) * 37) % 400
        return (path.encode() + b"\n") * n

    def handle(o, req, sock):
        with lock:
            kind = rnd.choices(["fast", "slow", "500", "reset", "reset_head", "truncated",
                                "stall"], [42, 20, 10, 10, 5, 10, 3])[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        body = expected(req.path)
        ok = (f"HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Type: text/plain\r\n"
              f"Content-Length: {len(body)}\r\n\r\n").encode()
        if kind == "slow":
            if o.sleep(rnd.uniform(0.05, 0.3)):
                return False
        if kind in ("fast", "slow"):
            sock.sendall(ok + body)
            return True
        if kind == "500":
            sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nerr\n")
            return True
        if kind == "stall":  # longer than read_timeout
            o.sleep(1.0)
            return False
        if kind == "reset_head":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        elif kind == "truncated":
            sock.sendall(ok + body[: len(body) // 2])
            time.sleep(0.02)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        return False

    after_conc = Concurrency()

    def after(o, req, sock):
        after_conc.enter(req.target)
        o.sleep(0.4)
        after_conc.leave()
        b = body_of(req.target)
        sock.sendall(f"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                     f"Content-Length: {len(b)}\r\n\r\n".encode() + b)
        return True

    org = origin({"/fresh": Normal(200, b"fresh\n", headers={"Cache-Control": "max-age=60"}),
                  "/after/*": Func(after), "/*": Func(handle)})
    c = cairn(bp_config(org, max_in_flight=4, queue_timeout="1500ms", read_timeout="500ms",
                        retries=0, pass_takes_slot=True))
    keys = [f"/s/{i}" for i in range(300)]
    stats = {"complete": 0, "cut": 0, "aborted": 0}
    statuses = {}
    bad = []
    stop = threading.Event()
    max_gauge = [0.0, 0.0]

    def poll_gauges():
        while not stop.is_set():
            try:
                g = gauges(c)
            except (OSError, AssertionError):
                continue
            max_gauge[0] = max(max_gauge[0], g[0])
            max_gauge[1] = max(max_gauge[1], g[1])
            time.sleep(0.1)

    def worker(seed, n):
        r = random.Random(seed)
        for _ in range(n):
            path = r.choice(keys)
            mode = r.choices(["full", "leave_early", "leave_after_head"], [80, 15, 5])[0]
            try:
                conn = RawConn(c.port, timeout=10)
            except OSError as e:
                with lock:
                    bad.append(f"connect: {e!r}")
                continue
            try:
                conn.send(build_request("GET", path, {"Connection": "close"}))
                if mode == "leave_early":
                    time.sleep(r.uniform(0, 0.15))
                    if r.random() < 0.5:
                        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             struct.pack("ii", 1, 0))
                    with lock:
                        stats["aborted"] += 1
                    continue
                if mode == "leave_after_head":
                    conn.sock.settimeout(10)
                    while b"\r\n\r\n" not in conn.buf:
                        if not conn._fill(time.monotonic() + 10):
                            break
                    with lock:
                        stats["aborted"] += 1
                    continue
                try:
                    resp = conn.read_response(timeout=10)
                except Exception as e:  # cut by cairn after a failed fetch  # noqa: BLE001
                    with lock:
                        stats["cut"] += 1
                    if not isinstance(e, (OSError, ConnectionError)) and \
                            type(e).__name__ != "ConnectionClosed":
                        with lock:
                            bad.append(f"{path}: {e!r}")
                    continue
                with lock:
                    stats["complete"] += 1
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200 and resp.body != expected(path):
                    with lock:
                        bad.append(f"{path}: 200 with a wrong body ({len(resp.body)} bytes)")
                if resp.status not in (200, 500, 502, 503, 504):
                    with lock:
                        bad.append(f"{path}: unexpected status {resp.status}")
            finally:
                conn.close()

    poller = threading.Thread(target=poll_gauges, daemon=True)
    poller.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i, 40), daemon=True) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - t0
    stop.set()
    poller.join(5)
    assert not any(t.is_alive() for t in threads), "clients still running after 120 s"
    print(f"\n[scenario 6] {elapsed:.1f}s, origin requests {len(org.requests)}, behaviours "
          f"{kinds}, clients {stats}, statuses {statuses}, max gauges seen in_flight="
          f"{max_gauge[0]:g} queued={max_gauge[1]:g}")
    assert c.alive(), f"cairn died during the stress run: {c.stderr_text()[-3000:]}"
    assert not bad, f"{len(bad)} bad answers, e.g. {bad[:5]}"
    assert max_gauge[0] <= 4, f"in_flight gauge reached {max_gauge[0]:g} (max_in_flight 4)"
    wait_gauges(c, 0, 0, timeout=5, what="slots after 2,000 requests on every path")
    assert value(scrape(c), "cairn_cache_lock_waiters") == 0
    r = get(c.port, "/fresh", timeout=5)
    assert r.status == 200 and r.body == b"fresh\n", f"cairn after the stress run: {r!r}"
    # every slot is usable again: max_in_flight (4) new fills of 0.4 s run side by side
    t0 = time.monotonic()
    cls = [Client(c.port, f"/after/{i}").send() for i in range(4)]
    for cl in cls:
        ok_body(cl.result(), cl.target)
    dt = time.monotonic() - t0
    assert after_conc.max == 4 and dt < 0.75, \
        f"after the stress run only {after_conc.max} fills ran at once ({dt:.2f}s for 4 x " \
        f"0.4 s fills, max_in_flight 4): slots were lost"


# --------------------------------------------------------------------------------------
# scenario 7: the queue-wait histogram moves by exactly the expected numbers


def test_queue_wait_metrics_move(cairn, origin):
    s = run_ten_slow_misses(cairn, origin)
    for t, r in zip(s["targets"], s["results"]):
        ok_body(r, t)
    b, a = s["before"], s["after"]
    adm = waits(a, "admitted")[0] - waits(b, "admitted")[0]
    adm_sum = waits(a, "admitted")[1] - waits(b, "admitted")[1]
    tmo = waits(a, "timeout")[0] - waits(b, "timeout")[0]
    gone = waits(a, "gone")[0] - waits(b, "gone")[0]
    print(f"\n[scenario 7/1] admitted +{adm:g} (sum +{adm_sum:.2f}s), timeout +{tmo:g}, "
          f"gone +{gone:g}")
    # two fetches got a slot at once (no wait); eight waited: 2 x (0.46 + 0.92 + 1.38 + 1.84) s
    assert adm == 8, f"admitted count moved by {adm:g}; 8 requests waited in the queue"
    assert tmo == 0 and gone == 0, (tmo, gone)
    assert 8.4 <= adm_sum <= 11.0, f"admitted wait sum moved by {adm_sum:.2f}s, expected ~9.2 s"
    assert gauges(None, a) == (0, 0), gauges(None, a)

    s3 = run_queue_timeout(cairn, origin)
    assert s3["r"].status == 503, s3["r"]
    b, a = s3["before"], s3["after"]
    tmo = waits(a, "timeout")[0] - waits(b, "timeout")[0]
    tmo_sum = waits(a, "timeout")[1] - waits(b, "timeout")[1]
    adm = waits(a, "admitted")[0] - waits(b, "admitted")[0]
    gone = waits(a, "gone")[0] - waits(b, "gone")[0]
    print(f"[scenario 7/3] timeout +{tmo:g} (sum +{tmo_sum:.3f}s), admitted +{adm:g}, "
          f"gone +{gone:g}")
    assert tmo == 1, f"timeout count moved by {tmo:g}, expected 1"
    assert 0.28 <= tmo_sum <= 0.8, f"timeout wait sum {tmo_sum:.3f}s, expected ~0.3 s"
    assert adm == 0 and gone == 0, f"admitted +{adm:g}, gone +{gone:g}; expected 0 and 0"
    assert gauges(None, a) == (0, 0), gauges(None, a)


# --------------------------------------------------------------------------------------
# scenario 8: pass_takes_slot


@pytest.mark.parametrize("takes_slot", [False, True])
@pytest.mark.parametrize("kind", ["request-no-store", "hit-for-pass"])
def test_pass_takes_slot(cairn, origin, takes_slot, kind):
    org, conc = slow_origin(origin, delay=0.6, cache_control="no-store")
    c = cairn(bp_config(org, max_in_flight=2, pass_takes_slot=takes_slot))
    if kind == "hit-for-pass":
        r = get(c.port, "/hfp", timeout=5)  # no-store answer: the key becomes hit-for-pass
        assert r.status == 200, r
        conc.max = 0
        targets, headers = ["/hfp"] * 6, None
    else:
        targets, headers = [f"/p/{i}" for i in range(6)], {"Cache-Control": "no-store"}
    t0 = time.monotonic()
    cls = [Client(c.port, t, headers).send() for t in targets]
    rs = [cl.result() for cl in cls]
    total = time.monotonic() - t0
    for t, r in zip(targets, rs):
        ok_body(r, t)
        if kind == "hit-for-pass":
            assert "hit-for-pass" in (r.header("Cache-Status") or ""), r.header("Cache-Status")
    print(f"\n[scenario 8] pass_takes_slot={takes_slot} {kind}: origin max concurrency "
          f"{conc.max}, {total:.2f}s")
    if takes_slot:
        assert conc.max <= 2, f"pass_takes_slot: true but {conc.max} passes reached the " \
                              f"origin at once (max_in_flight 2)"
        assert total >= 3 * 0.6 - 0.05, f"6 passes x 0.6 s through 2 slots took {total:.2f}s"
    else:
        assert conc.max > 2, f"pass_takes_slot: false but passes were limited: at most " \
                             f"{conc.max} at the origin at once"
        assert total < 1.5, f"6 unlimited passes of 0.6 s took {total:.2f}s"
    wait_gauges(c, 0, 0, what="after the passes")
