"""Stale content when the origin fails (RFC 9111 §4.2.4, RFC 5861 §4).

A stored object goes stale (max-age=1, then a wait); the request that revalidates or refetches
it then meets a failing origin:

  origin unreachable (refused, reset or closed before a head, connect/read timeout)
      the stored object answers, stale by at most caches.<name>.stale_if_unreachable (1h by
      default, 0 = off), unless the response forbids stale use (must-revalidate,
      proxy-revalidate, s-maxage, no-cache) or the request does (no-cache, max-age, max-stale):
      Cache-Status  cairn; hit; fwd=stale; ttl=-N; detail=origin-unreachable
  origin answers 500/502/503/504 and the object (or the request) has stale-if-error
      the stored object answers, the error is neither relayed nor stored over it:
      Cache-Status  cairn; hit; fwd=stale; fwd-status=500; ttl=-N; detail=origin-error
  otherwise the failure shows (502/504, or the origin's 5xx as it is).

Requests coalesced on the failing fetch get the same stale answer (Cache-Status adds
`collapsed`) without a fetch of their own.
"""
from __future__ import annotations

import json
import re
import threading
import time

import pytest

from helpers import RawConn, build_request, get, proxy_config
from origins import BadFraming, Func, Normal, Origin, Raw, Reset, Sequence, Slow

AGE_WAIT = 2.3  # max-age=1 objects are stale (age >= 2) after this
UNREACHABLE_RE = re.compile(r"^cairn; hit; fwd=stale; ttl=(-\d+); detail=origin-unreachable$")


def cstatus(r):
    return r.header("Cache-Status") or ""


def cfg_for(org, read_timeout="1s", stale_if_unreachable=None, workers=2):
    cfg = proxy_config(org, route_extra={"cache": "c"},
                       upstream_extra={"read_timeout": read_timeout, "connect_timeout": "1s"},
                       server={"workers": workers, "access_log": "access.log"})
    cache = {"memory": {"size": "16MiB"}, "lock": {"wait_timeout": "10s", "age_timeout": "10s"}}
    if stale_if_unreachable is not None:
        cache["stale_if_unreachable"] = stale_if_unreachable
    cfg["caches"] = {"c": cache}
    return cfg


def n_origin(org, path):
    return sum(1 for q in org.requests if q.target == path)


def first(body, cc="max-age=1", **hs):
    return Normal(200, body, headers={"Cache-Control": cc, **hs})


def assert_stale(r, body, what, unreachable=True):
    assert r.status == 200 and r.body == body, f"{what}: expected the stale object, got {r!r}"
    if unreachable:
        m = UNREACHABLE_RE.match(cstatus(r))
        assert m, f"{what}: Cache-Status {cstatus(r)!r} does not say stale/origin-unreachable"
    assert int(r.header("Age") or 0) >= 2, f"{what}: Age {r.header('Age')} on a stale answer"


def store(port, path, body):
    r = get(port, path)
    assert r.status == 200 and r.body == body, f"{path}: {r!r}"
    assert cstatus(r) == "cairn; fwd=uri-miss; fwd-status=200; stored", f"{path}: {cstatus(r)!r}"


# --------------------------------------------------------------------------------------
# one cairn, one origin: every case on its own path

ROUTES = {
    "/reset": Sequence(first(b"reset body\n"), Reset()),
    "/closed": Sequence(first(b"closed body\n"), Raw(b"")),
    "/garbage": Sequence(first(b"garbage\n"), BadFraming("garbage")),
    "/timeout": Sequence(first(b"timeout body\n"), Slow(delay_headers=6)),
    "/mr": Sequence(first(b"mr\n", "max-age=1, must-revalidate"), Reset()),
    "/mr-timeout": Sequence(first(b"mr t\n", "max-age=1, must-revalidate"), Slow(delay_headers=6)),
    "/pr": Sequence(first(b"pr\n", "public, max-age=1, proxy-revalidate"), Reset()),
    "/smaxage": Sequence(first(b"sm\n", "s-maxage=1"), Reset()),
    "/nocache": Sequence(first(b"nc\n", "no-cache, max-age=60", ETag='"n1"'), Reset()),
    "/req-no-cache": Sequence(first(b"rnc\n"), Reset()),
    "/req-max-stale": Sequence(first(b"rms\n"), Reset()),
    "/req-max-age": Sequence(first(b"rma\n"), Reset()),
    "/sie-500": Sequence(first(b"sie body\n", "max-age=1, stale-if-error=60", ETag='"s1"'),
                         Normal(500, b"origin broke\n")),
    "/sie-503-cacheable": Sequence(first(b"sie 503\n", "max-age=1, stale-if-error=60"),
                                   Normal(503, b"unavailable\n",
                                          headers={"Cache-Control": "max-age=60"})),
    "/req-sie-502": Sequence(first(b"req sie\n"), Normal(502, b"bad gateway\n")),
    "/sie-500-req": Sequence(first(b"sie req\n", "max-age=1, stale-if-error=60"),
                             Normal(500, b"origin broke\n")),
    "/no-sie-500": Sequence(first(b"no sie\n"), Normal(500, b"origin broke\n")),
    "/sie-mr-500": Sequence(first(b"sie mr\n", "max-age=1, must-revalidate, stale-if-error=60"),
                            Normal(500, b"origin broke\n")),
}


class Env:
    pass


@pytest.fixture(scope="module")
def env(cairn_module):
    org = Origin(ROUTES).start()
    e = Env()
    e.org = org
    e.c = cairn_module(cfg_for(org))
    for path, seq in ROUTES.items():
        store(e.c.port, path, seq.behaviours[0].body)
    time.sleep(AGE_WAIT)
    yield e
    org.stop()


@pytest.mark.parametrize("path", ["/reset", "/closed"])
def test_reset_before_any_byte_serves_stale(env, path):
    """(b) The origin resets (or closes) the connection before any response byte."""
    r = get(env.c.port, path, timeout=10)
    assert_stale(r, ROUTES[path].behaviours[0].body, f"{path}: reset")
    assert n_origin(env.org, path) >= 2, "the origin was not asked before falling back"
    # The stored object was neither evicted nor replaced by the failure.
    r = get(env.c.port, path, timeout=10)
    assert_stale(r, ROUTES[path].behaviours[0].body, f"{path}: second request")


def test_read_timeout_serves_stale_in_time(env):
    """(c) The origin is slower than read_timeout (1s): stale after about 1s, not a 504."""
    t0 = time.monotonic()
    r = get(env.c.port, "/timeout", timeout=10)
    took = time.monotonic() - t0
    assert_stale(r, b"timeout body\n", "read timeout")
    assert 0.9 <= took < 2.5, f"stale answer after {took:.2f}s with read_timeout 1s"


@pytest.mark.parametrize("path,status", [
    ("/mr", 502), ("/mr-timeout", 504), ("/pr", 502), ("/smaxage", 502), ("/nocache", 502),
])
def test_response_forbids_stale(env, path, status):
    """(d) must-revalidate, proxy-revalidate, s-maxage and no-cache forbid stale use even when
    the origin is unreachable (RFC 9111 §3.2, §4.2.4, §5.2.2)."""
    r = get(env.c.port, path, timeout=10)
    assert r.status == status, f"{path}: expected {status}, got {r!r} ({cstatus(r)})"
    assert r.body != ROUTES[path].behaviours[0].body, f"{path}: stale body served: {r!r}"
    assert n_origin(env.org, path) >= 2


def test_malformed_answer_is_not_unreachable(env):
    """An origin that answers garbage was reached: without stale-if-error the 502 shows."""
    r = get(env.c.port, "/garbage", timeout=10)
    assert r.status == 502 and r.body != b"garbage\n", f"{r!r} ({cstatus(r)})"


@pytest.mark.parametrize("path,directive", [
    ("/req-no-cache", "no-cache"),
    ("/req-max-stale", "max-stale=0"),
    ("/req-max-age", "max-age=1"),
])
def test_request_forbids_stale(env, path, directive):
    """The request's own directives (RFC 9111 §5.2.1) limit what a disconnected cache may
    answer with."""
    r = get(env.c.port, path, headers={"Cache-Control": directive}, timeout=10)
    assert r.status == 502, f"{path} with {directive}: expected 502, got {r!r} ({cstatus(r)})"
    # Without the directive the same stale object is served.
    r = get(env.c.port, path, timeout=10)
    assert_stale(r, ROUTES[path].behaviours[0].body, f"{path} without {directive}")


def test_stale_if_error_covers_500(env):
    """(g) An object with stale-if-error=60 whose revalidation is answered 500: the stale
    object is served (Cache-Status says why), the 500 is not stored, and the next request still
    gets the stale object."""
    for i in range(2):
        r = get(env.c.port, "/sie-500", timeout=10)
        assert r.status == 200 and r.body == b"sie body\n", \
            f"request {i}: the origin's 500 replaced the stale-if-error object: {r!r}"
        assert re.match(r"^cairn; hit; fwd=stale; fwd-status=500; ttl=-\d+; detail=origin-error$",
                        cstatus(r)), f"request {i}: Cache-Status {cstatus(r)!r}"
        assert r.header("ETag") == '"s1"', r
    assert n_origin(env.org, "/sie-500") == 3, "each stale answer follows an origin attempt"
    # The client's conditional is answered from the stale object.
    r = get(env.c.port, "/sie-500", headers={"If-None-Match": '"s1"'}, timeout=10)
    assert r.status == 304, r


def test_stale_if_error_5xx_not_stored_over_object(env):
    """A cacheable 503 (max-age=60) does not replace an object inside its stale-if-error window."""
    for i in range(2):
        r = get(env.c.port, "/sie-503-cacheable", timeout=10)
        assert r.status == 200 and r.body == b"sie 503\n", f"request {i}: {r!r}"
        assert "fwd-status=503" in cstatus(r), cstatus(r)
    assert n_origin(env.org, "/sie-503-cacheable") == 3, \
        "the 503 was stored: a later request did not go to the origin"


def test_request_stale_if_error_covers_502(env):
    """The request's stale-if-error grants it as well (RFC 5861 §4)."""
    r = get(env.c.port, "/req-sie-502", headers={"Cache-Control": "stale-if-error=60"}, timeout=10)
    assert r.status == 200 and r.body == b"req sie\n", r
    assert "fwd-status=502" in cstatus(r), cstatus(r)
    r = get(env.c.port, "/req-sie-502", timeout=10)
    assert r.status == 502 and r.body == b"bad gateway\n", r


def test_request_directive_limits_stale_if_error(env):
    """A client that wants a response younger than the stale object (max-age=0) gets the
    origin's 500 even with stale-if-error; without the directive it gets the stale object."""
    r = get(env.c.port, "/sie-500-req", headers={"Cache-Control": "max-age=0"}, timeout=10)
    assert r.status == 500 and r.body == b"origin broke\n", f"{r!r} ({cstatus(r)})"
    r = get(env.c.port, "/sie-500-req", timeout=10)
    assert r.status == 200 and r.body == b"sie req\n", f"{r!r} ({cstatus(r)})"
    assert "detail=origin-error" in cstatus(r), cstatus(r)


@pytest.mark.parametrize("path", ["/no-sie-500", "/sie-mr-500"])
def test_500_without_stale_if_error_is_forwarded(env, path):
    """(h) Without stale-if-error (or with must-revalidate) the origin's 500 goes to the client
    as it is: the origin answered, so it was not unreachable."""
    r = get(env.c.port, path, timeout=10)
    assert r.status == 500 and r.body == b"origin broke\n", f"{path}: {r!r} ({cstatus(r)})"
    assert "hit" not in cstatus(r).split("; "), cstatus(r)


# --------------------------------------------------------------------------------------
# a cairn per case


def test_origin_stopped_serves_stale(cairn, origin):
    """(a) The origin is down (connection refused): the stored object answers, again and
    again, and a Range is answered from it."""
    body = b"0123456789 stored while the origin was up\n"
    org = origin({"/doc": first(body, ETag='"d1"')})
    c = cairn(cfg_for(org))
    store(c.port, "/doc", body)
    time.sleep(AGE_WAIT)
    org.stop()
    for i in range(2):
        t0 = time.monotonic()
        r = get(c.port, "/doc", timeout=10)
        assert_stale(r, body, f"origin stopped, request {i}")
        assert time.monotonic() - t0 < 2.0
    r = get(c.port, "/doc", headers={"Range": "bytes=0-3"}, timeout=10)
    assert r.status == 206 and r.body == b"0123", r
    time.sleep(0.2)
    log = [json.loads(ln) for ln in (c.tmp / "access.log").read_text().splitlines()]
    log = [e for e in log if e["client"] != "-"]  # not the Range's client-less full fetch
    assert [e["cache"] for e in log][-3:] == ["STALE"] * 3, log[-3:]
    assert c.alive()


def test_stale_if_unreachable_off(cairn, origin):
    """(e) stale_if_unreachable: 0 turns it off: the failure shows."""
    org = origin({"/doc": first(b"doc\n")})
    c = cairn(cfg_for(org, stale_if_unreachable=0))
    store(c.port, "/doc", b"doc\n")
    time.sleep(AGE_WAIT)
    org.stop()
    r = get(c.port, "/doc", timeout=10)
    assert r.status == 502 and r.body != b"doc\n", f"stale_if_unreachable 0: {r!r} ({cstatus(r)})"


def test_stale_beyond_maximum(cairn, origin):
    """(f) stale_if_unreachable bounds the staleness: within it the object answers, beyond it
    the failure shows."""
    org = origin({"/doc": Sequence(first(b"doc\n"), Reset())})
    c = cairn(cfg_for(org, stale_if_unreachable="2s"))
    t0 = time.monotonic()
    store(c.port, "/doc", b"doc\n")
    time.sleep(AGE_WAIT)  # age 2, staleness 1 <= 2
    assert_stale(get(c.port, "/doc", timeout=10), b"doc\n", "within stale_if_unreachable")
    time.sleep(max(0.0, t0 + 4.6 - time.monotonic()))  # age 4, staleness 3 > 2
    r = get(c.port, "/doc", timeout=10)
    assert r.status == 502 and r.body != b"doc\n", \
        f"stale by ~3s with stale_if_unreachable 2s: {r!r} ({cstatus(r)})"


class FailAfter:
    """Origin behaviour: the first request gets @good; later ones wait @delay, then fail with
    @how ("reset", "500"). Counts requests."""

    def __init__(self, good, how, delay=0.8):
        self.good, self.how, self.delay = good, how, delay
        self.n = 0
        self.lock = threading.Lock()

    def handle(self, o, req, sock):
        with self.lock:
            self.n += 1
            n = self.n
        if n == 1:
            return self.good.handle(o, req, sock)
        if self.how == "reset":
            return Reset(delay=self.delay).handle(o, req, sock)
        if o.sleep(self.delay):
            return False
        return Normal(500, b"origin broke\n").handle(o, req, sock)


@pytest.mark.parametrize("how", ["timeout", "reset", "500"])
def test_coalesced_waiters_get_stale(cairn, origin, how):
    """(i) Two clients coalesced on one failing revalidation both get the stale body; the
    waiter does not fetch again."""
    cc = "max-age=1, stale-if-error=60" if how == "500" else "max-age=1"
    good = first(b"shared stale body\n", cc)
    beh = Sequence(good, Slow(delay_headers=6)) if how == "timeout" else None
    fa = None if beh else FailAfter(good, how)
    # No pooled connection: a reset on a reused one is retried once, which would blur the count.
    org = origin({"/doc": beh if beh else Func(fa.handle)}, keepalive=False)
    c = cairn(cfg_for(org, read_timeout="1s"))
    store(c.port, "/doc", b"shared stale body\n")
    time.sleep(AGE_WAIT)
    conns = [RawConn(c.port, timeout=10) for _ in range(2)]
    t0 = time.monotonic()
    conns[0].send(build_request("GET", "/doc"))
    org.wait_requests(2, timeout=3)  # the leader's revalidation reached the origin
    conns[1].send(build_request("GET", "/doc"))
    out = []
    for k in conns:
        r = k.read_response(timeout=10)
        out.append((r, time.monotonic() - t0))
        k.close()
    print(f"\n[{how}] " + "; ".join(f"{r.status} {r.body!r} {dt:.2f}s {cstatus(r)}" for r, dt in out))
    for i, (r, dt) in enumerate(out):
        assert r.status == 200 and r.body == b"shared stale body\n", f"client {i}: {r!r}"
        assert "fwd=stale" in cstatus(r) and "hit" in cstatus(r).split("; "), cstatus(r)
        assert dt < 2.5, f"client {i} answered after {dt:.2f}s"
    assert "collapsed" in cstatus(out[1][0]), \
        f"the second client did not wait on the first one's fetch: {cstatus(out[1][0])!r}"
    assert n_origin(org, "/doc") == 2, \
        f"the coalesced waiter fetched on its own (origin saw {n_origin(org, '/doc')} requests)"
