"""stale-while-revalidate (RFC 5861) on a caching route: the lesson 47 timeline, against the
real binary.

The origin takes 2 s per request, answers `Cache-Control: public, max-age=5,
stale-while-revalidate=10` with an ETag, and its body carries a version number that grows with
every origin request (so every answer says which origin fetch it came from).

    t=0      miss: the client waits ~2 s for v1
    t~3      fresh hit: v1 at once
    t~7      stale, inside the window: 5 concurrent requests all get v1 at once
             (Cache-Status ttl < 0), and exactly ONE background request reaches the origin
    t~9.5    the refreshed object: v2, a hit
    t~24.5   v2 stale for ~12 s (more than the 10 s window) with no request: the client
             waits for the origin and gets v3 (not served stale)

Ages are whole seconds (RFC 9111 §4.2.3), so every instant keeps >= 1 s of margin from a
freshness or window boundary. `must-revalidate` / `proxy-revalidate` / `s-maxage` objects are
never served stale, whatever stale-while-revalidate says (RFC 9111 §4.2.4).
"""
from __future__ import annotations

import re
import threading
import time

import pytest

from helpers import RawConn, build_request, proxy_config
from origins import Func

DELAY = 2.0


class Versioned:
    """Origin behaviour: sleeps @delay, then 200 "version N" with ETag "vN" (N = 1-based
    number of origin requests). Records (monotonic time, If-None-Match, version) per request."""

    def __init__(self, cache_control, delay=DELAY):
        self.cc, self.delay = cache_control, delay
        self.lock = threading.Lock()
        self.n = 0
        self.log = []

    def handle(self, o, req, sock):
        with self.lock:
            self.n += 1
            v = self.n
            self.log.append((time.monotonic(), req.header("if-none-match"), v))
        if o.sleep(self.delay):
            return False
        body = f"version {v}\n".encode()
        sock.sendall((f"HTTP/1.1 200 OK\r\nCache-Control: {self.cc}\r\nETag: \"v{v}\"\r\n"
                      f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                     + body)
        return True


def swr_config(org):
    cfg = proxy_config(org, route_extra={"cache": "c"}, upstream_extra={"read_timeout": "10s"},
                       server={"workers": 2, "header_timeout": "10s"})
    cfg["caches"] = {"c": {"memory": {"size": "64MiB"}}}
    return cfg


def timed_get(port, target="/doc", timeout=10.0):
    """(response, seconds from sending the request to the end of the body)."""
    with RawConn(port, timeout=timeout) as c:
        t0 = time.monotonic()
        c.send(build_request("GET", target))
        r = c.read_response(timeout=timeout)
        return r, time.monotonic() - t0


def concurrent_gets(port, n, target="/doc", timeout=10.0):
    """@n requests on pre-opened connections, sent together; [(response, seconds)]."""
    conns = [RawConn(port, timeout=timeout) for _ in range(n)]
    out = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        c = conns[i]
        try:
            barrier.wait(5)
            t0 = time.monotonic()
            c.send(build_request("GET", target))
            r = c.read_response(timeout=timeout)
            out[i] = (r, time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - reported below
            out[i] = (e, None)
        finally:
            c.close()

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 5)
    for i, (r, _) in enumerate(out):
        assert not isinstance(r, Exception), f"concurrent request #{i}: {r!r}"
    return out


def ttl_of(r):
    cs = r.header("Cache-Status") or ""
    m = re.search(r"(?:^|;)\s*ttl=(-?\d+)", cs)
    return int(m.group(1)) if m else None


def is_hit(r):
    parts = [p.strip() for p in (r.header("Cache-Status") or "").split(";")]
    return "hit" in parts


def until(t0, at):
    dt = t0 + at - time.monotonic()
    assert dt > -0.5, f"the timeline slipped: already {-dt:.2f}s past t={at}"
    if dt > 0:
        time.sleep(dt)


def test_swr_lesson_47_timeline(cairn, origin):
    beh = Versioned("public, max-age=5, stale-while-revalidate=10")
    org = origin({"/doc": Func(beh.handle)})
    c = cairn(swr_config(org))
    t0 = time.monotonic()
    report = []

    # t=0: miss, the client waits for the origin
    r, dt = timed_get(c.port)
    report.append(f"t=0 miss {dt:.2f}s")
    assert r.status == 200 and r.body == b"version 1\n", r
    assert dt >= DELAY - 0.1, f"the first request (a miss) answered in {dt:.2f}s, before the origin"
    assert "fwd=uri-miss" in (r.header("Cache-Status") or ""), r.header("Cache-Status")

    # t~3: fresh hit
    until(t0, 3.0)
    r, dt = timed_get(c.port)
    report.append(f"t=3 hit {dt * 1000:.1f}ms ttl={ttl_of(r)}")
    assert r.status == 200 and r.body == b"version 1\n", r
    assert is_hit(r) and ttl_of(r) is not None and ttl_of(r) > 0, \
        f"t~3 (age ~3 < max-age 5) must be a fresh hit: {r.header('Cache-Status')}"
    assert dt < 0.1, f"fresh hit took {dt * 1000:.0f} ms"
    assert beh.n == 1

    # t~7: stale (age ~7 > 5) but inside the window (staleness ~2 <= 10): 5 concurrent
    # requests, all answered at once with v1; one background revalidation
    until(t0, 7.0)
    t_stale = time.monotonic()
    res = concurrent_gets(c.port, 5)
    lat = [dt for _, dt in res]
    report.append("t=7 stale x5 " + ", ".join(f"{x * 1000:.1f}ms" for x in lat)
                  + f" ttl={[ttl_of(r) for r, _ in res]} age={[r.header('Age') for r, _ in res]}")
    for i, (r, dt) in enumerate(res):
        assert r.status == 200, r
        assert r.body == b"version 1\n", \
            f"stale request #{i} got {r.body!r}: inside stale-while-revalidate the stored v1 " \
            f"must be served at once"
        assert dt < 0.05, f"stale request #{i} took {dt * 1000:.0f} ms (must not wait for " \
                          f"the origin; latencies {lat})"
        assert is_hit(r) and ttl_of(r) is not None and ttl_of(r) < 0, \
            f"a stale answer must say Cache-Status ...; ttl=<negative>: {r.header('Cache-Status')}"
        assert r.header("Age") is not None and int(r.header("Age")) > 5, \
            f"stale answer with Age {r.header('Age')}"
    deadline = time.monotonic() + 1.0
    while beh.n < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert beh.n == 2, f"serving stale must start one background revalidation; the origin " \
                       f"saw {beh.n} requests in total"
    bg_t, bg_inm, _ = beh.log[1]
    report.append(f"background request {bg_t - t_stale:.3f}s after the stale burst, "
                  f"If-None-Match={bg_inm!r}")
    assert bg_inm in (None, '"v1"'), f"background request with If-None-Match {bg_inm!r}"

    # t~8: still revalidating: stale again, and still no second background request
    until(t0, 8.0)
    r, dt = timed_get(c.port)
    assert r.body == b"version 1\n" and dt < 0.05, (r, dt)
    assert beh.n == 2, f"a second background request while one runs (origin saw {beh.n})"

    # t~9.5: the revalidation (2 s from t~7) is done: v2 as a hit
    until(t0, 9.6)
    r, dt = timed_get(c.port)
    report.append(f"t=9.6 {r.body!r} {dt * 1000:.1f}ms {r.header('Cache-Status')}")
    assert r.status == 200 and r.body == b"version 2\n", \
        f"~2.5 s after the stale burst the refreshed content must be served: {r!r}"
    assert is_hit(r) and ttl_of(r) > 0, f"v2 should be a fresh hit: {r.header('Cache-Status')}"
    assert dt < 0.1, f"the refreshed hit took {dt * 1000:.0f} ms"
    assert beh.n == 2, f"the origin saw {beh.n} requests, expected 2 by now"

    # t~24.5: v2 (fetched from t~7, stale from t~12) is ~12.5 s stale: past the 10 s window.
    # Nothing was requested meanwhile: the request waits for the origin.
    until(t0, 24.5)
    r, dt = timed_get(c.port)
    report.append(f"t=24.5 {r.body!r} {dt:.2f}s {r.header('Cache-Status')}")
    print("\n" + "\n".join(report))
    assert r.status == 200, r
    assert r.body == b"version 3\n", \
        f"stale beyond stale-while-revalidate must not be served: got {r.body!r} in {dt:.2f}s"
    assert dt >= DELAY - 0.1, f"answered in {dt:.2f}s: it did not wait for the origin"
    assert not is_hit(r) and "fwd=stale" in (r.header("Cache-Status") or ""), \
        r.header("Cache-Status")
    assert beh.n == 3


@pytest.mark.parametrize("cc", [
    "max-age=1, must-revalidate, stale-while-revalidate=10",
    "public, max-age=1, proxy-revalidate, stale-while-revalidate=10",
    "s-maxage=1, stale-while-revalidate=10",
])
def test_never_served_stale(cairn, origin, cc):
    beh = Versioned(cc, delay=1.5)
    org = origin({"/doc": Func(beh.handle)})
    c = cairn(swr_config(org))
    t0 = time.monotonic()
    r, dt = timed_get(c.port)
    assert r.status == 200 and r.body == b"version 1\n" and dt >= 1.4, (r, dt)
    # age ~3 > 1: stale, well inside stale-while-revalidate=10, yet it must not be served
    until(t0, 3.5)
    res = concurrent_gets(c.port, 3)
    print(f"\n[{cc}] at t=3.5: " + ", ".join(
        f"{r.body!r} {dt:.2f}s {r.header('Cache-Status')}" for r, dt in res))
    for r, dt in res:
        assert r.status == 200, r
        assert r.body == b"version 2\n", \
            f"'{cc}' was served stale ({r.body!r} in {dt * 1000:.0f} ms, " \
            f"Cache-Status {r.header('Cache-Status')})"
        assert dt >= 1.4, f"answered in {dt:.2f}s without waiting for the origin"
        assert not (is_hit(r) and (ttl_of(r) or 0) < 0), r.header("Cache-Status")
    assert beh.n == 2, f"three concurrent revalidations must share one origin request " \
                       f"(origin saw {beh.n})"
    assert beh.log[1][1] in (None, '"v1"'), beh.log[1]


def test_swr_background_304_refreshes_stored_object(cairn, origin):
    """The background revalidation is conditional (the object has an ETag); a 304 refreshes
    the stored object: the next request is a fresh hit on the same body, with a reset Age."""
    log = []

    def validating(o, req, sock):
        inm = req.header("if-none-match")
        log.append(inm)
        hs = 'Cache-Control: max-age=2, stale-while-revalidate=10\r\nETag: "same"\r\n'
        if inm == '"same"':
            sock.sendall(f"HTTP/1.1 304 Not Modified\r\n{hs}\r\n".encode())
        else:
            sock.sendall(f"HTTP/1.1 200 OK\r\n{hs}Content-Length: 12\r\n\r\nsame body v1".encode())
        return True

    org = origin({"/doc": Func(validating)})
    c = cairn(swr_config(org))
    t0 = time.monotonic()
    r, _ = timed_get(c.port)
    assert r.status == 200 and r.body == b"same body v1", r
    until(t0, 4.0)  # age 4 > 2: stale, inside the window
    r, dt = timed_get(c.port)
    assert r.status == 200 and r.body == b"same body v1" and dt < 0.05, (r, dt)
    assert is_hit(r) and ttl_of(r) < 0, r.header("Cache-Status")
    deadline = time.monotonic() + 1
    while len(log) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log == [None, '"same"'], f"origin requests' If-None-Match: {log}"
    time.sleep(0.3)
    r, dt = timed_get(c.port)
    print(f"\n[swr 304] after the background 304: {r.header('Cache-Status')} Age={r.header('Age')}")
    assert r.status == 200 and r.body == b"same body v1", r
    assert is_hit(r) and ttl_of(r) > 0, \
        f"a 304 to the background revalidation must make the object fresh: {r.header('Cache-Status')}"
    assert int(r.header("Age") or 0) <= 1, f"Age {r.header('Age')} after the refresh"
    assert len(log) == 2


def test_swr_background_error_keeps_stale_object(cairn, origin):
    """A background revalidation answered with 500 neither replaces nor removes the stored
    object: later requests inside the window still get the stale body at once (each may start
    a new background attempt), never the 500."""
    n = {"count": 0}

    def flaky(o, req, sock):
        n["count"] += 1
        if n["count"] == 1:
            sock.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=2, stale-while-revalidate=20"
                         b"\r\nETag: \"e1\"\r\nContent-Length: 8\r\n\r\ngood v1\n")
        else:
            sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nbad\n")
        return True

    org = origin({"/doc": Func(flaky)})
    c = cairn(swr_config(org))
    t0 = time.monotonic()
    r, _ = timed_get(c.port)
    assert r.status == 200 and r.body == b"good v1\n", r
    bodies = []
    for at in (4.0, 4.6, 5.2):
        until(t0, at)
        r, dt = timed_get(c.port)
        bodies.append((r.status, r.body, round(dt * 1000, 1), r.header("Cache-Status")))
        assert r.status == 200 and r.body == b"good v1\n" and dt < 0.05, \
            f"after a failed background revalidation: {r!r} in {dt * 1000:.0f} ms"
    print(f"\n[swr 500] {bodies}; origin requests {n['count']}")
    assert 2 <= n["count"] <= 4, n
    assert c.alive()
