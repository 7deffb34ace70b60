"""Per-cache options of caches.<name>: the key template (key.query, key.query_drop,
key.headers, key.cookies), range (fetch_full | bypass), heuristic freshness, targeted_field
and hit_for_pass, seen from the client (status, Cache-Status, Age, bytes) and the origin
(request counts, forwarded headers, arrival times).

Every test starts its own cairn (cache "c", one worker) in front of a recording origin.
"""
from __future__ import annotations

import json
import re
import threading
import time
from email.utils import formatdate

from helpers import RawConn, get, proxy_config
from origins import Func, Normal, Stream, blob
from origins.server import Numbered, _head

MAX_AGE = {"Cache-Control": "max-age=60"}
HIT_RE = re.compile(r"^cairn; hit; ttl=(-?\d+)$")
MISS_STORED = "cairn; fwd=uri-miss; fwd-status=200; stored"


def start(cairn, origin, conf=None, routes=None, default=None):
    org = origin(routes or {}, default=default or Numbered(headers=MAX_AGE))
    cfg = proxy_config(org, route_extra={"cache": "c"})
    cache = {"memory": {"size": "16MiB", "max_object": "2MiB"}}
    cache.update(conf or {})
    cfg["caches"] = {"c": cache}
    return cairn(cfg), org


def cstatus(r):
    return r.header("Cache-Status") or ""


def hit_ttl(r, what):
    m = HIT_RE.match(cstatus(r))
    assert r.status == 200 and m, \
        f"{what}: expected a cache hit, got {r.status} Cache-Status {cstatus(r)!r}; {r!r}"
    return int(m.group(1))


def age(r):
    a = r.header("Age")
    assert a is not None and a.isdigit(), f"a hit without a valid Age header: {r!r}"
    return int(a)


def count(org, target=None, path=None):
    return sum(1 for q in org.requests
               if (target is None or q.target == target) and (path is None or q.path == path))


# --------------------------------------------------------------------------------------
# key.query


def test_key_query_none_shares_one_object(cairn, origin):
    c, org = start(cairn, origin, {"key": {"query": "none"}})
    r1 = get(c.port, "/a?x=1")
    assert (r1.status, r1.body, cstatus(r1)) == (200, b"/a?x=1 #1\n", MISS_STORED), r1
    r2 = get(c.port, "/a?x=2")
    hit_ttl(r2, "/a?x=2 with key.query none after /a?x=1")
    assert r2.body == b"/a?x=1 #1\n", r2
    hit_ttl(get(c.port, "/a"), "/a without a query")
    assert [q.target for q in org.requests] == ["/a?x=1"], \
        f"key.query none: the origin saw {[q.target for q in org.requests]}"
    # The query still reaches the origin on a miss; other paths are other objects.
    assert get(c.port, "/b?y=7").body == b"/b?y=7 #1\n"
    assert [q.target for q in org.requests] == ["/a?x=1", "/b?y=7"]


def test_key_query_all_is_default(cairn, origin):
    c, org = start(cairn, origin)
    get(c.port, "/a?x=1")
    r = get(c.port, "/a?x=2")
    assert r.body == b"/a?x=2 #1\n" and cstatus(r) == MISS_STORED, r
    hit_ttl(get(c.port, "/a?x=1"), "/a?x=1 again")
    assert count(org) == 2


def test_key_query_drop(cairn, origin):
    c, org = start(cairn, origin, {"key": {"query_drop": ["utm_source", "fbclid"]}})
    r = get(c.port, "/p?id=1&utm_source=news")
    assert r.body == b"/p?id=1&utm_source=news #1\n", r
    # Only the dropped parameters differ: one object.
    for t in ("/p?id=1&utm_source=ads", "/p?utm_source=x&id=1", "/p?id=1",
              "/p?id=1&fbclid=abc&utm_source=z"):
        r = get(c.port, t)
        hit_ttl(r, f"{t} (differs from /p?id=1&utm_source=news only in dropped parameters)")
        assert r.body == b"/p?id=1&utm_source=news #1\n", r
    assert count(org, path="/p") == 1
    # Any other parameter makes another object.
    for t in ("/p?id=2&utm_source=news", "/p?id=1&utm_medium=news", "/p?id=1&utm_source_x=1"):
        r = get(c.port, t)
        assert cstatus(r) == MISS_STORED and r.body == f"{t} #1\n".encode(), \
            f"{t} must be its own object (only utm_source and fbclid are dropped): {r!r}"
    assert count(org, path="/p") == 4
    # The origin sees the query as the client sent it.
    assert org.requests[0].target == "/p?id=1&utm_source=news"


def test_key_headers(cairn, origin):
    c, org = start(cairn, origin, {"key": {"headers": ["X-Tenant"]}})
    ra = get(c.port, "/h", headers={"X-Tenant": "alpha"})
    rb = get(c.port, "/h", headers={"X-Tenant": "beta"})
    rn = get(c.port, "/h")
    assert [r.body for r in (ra, rb, rn)] == [b"/h #1\n", b"/h #2\n", b"/h #3\n"], (ra, rb, rn)
    assert count(org) == 3, "X-Tenant is part of the key: three tenants, three origin fetches"
    for hdrs, body in (({"X-Tenant": "alpha"}, b"/h #1\n"), ({"x-tenant": "beta"}, b"/h #2\n"),
                       ({}, b"/h #3\n"), ({"X-Tenant": "alpha", "X-Other": "1"}, b"/h #1\n")):
        r = get(c.port, "/h", headers=hdrs)
        hit_ttl(r, f"/h with {hdrs}")
        assert r.body == body, f"/h with {hdrs}: got {r.body!r}, expected {body!r} (another tenant's object)"
    assert count(org) == 3
    assert get(c.port, "/h", headers={"X-Tenant": "gamma"}).body == b"/h #4\n"


def test_key_cookies(cairn, origin):
    c, org = start(cairn, origin, {"key": {"cookies": ["session"]}})
    r1 = get(c.port, "/k", headers={"Cookie": "session=one; theme=dark"})
    r2 = get(c.port, "/k", headers={"Cookie": "session=two"})
    assert (r1.body, r2.body) == (b"/k #1\n", b"/k #2\n"), (r1, r2)
    # Other cookies, their order, and look-alike names do not matter.
    for cookie in ("theme=light; session=one", "session=one", "sessionid=two; session=one",
                   "a=1;session=one;b=2"):
        r = get(c.port, "/k", headers={"Cookie": cookie})
        hit_ttl(r, f"/k with Cookie: {cookie}")
        assert r.body == b"/k #1\n", f"Cookie: {cookie} got {r.body!r}, expected session one's object"
    r = get(c.port, "/k", headers=[("Cookie", "theme=x"), ("Cookie", "session=two")])
    hit_ttl(r, "/k with session=two in a second Cookie field")
    assert r.body == b"/k #2\n", r
    assert count(org) == 2
    r = get(c.port, "/k", headers={"Cookie": "sessionid=one"})
    assert r.body == b"/k #3\n", f"sessionid is not the session cookie: {r!r}"
    assert count(org) == 3


# --------------------------------------------------------------------------------------
# range


BODY = blob(100_000, seed=7)


def ranged_origin(body, headers):
    """200 with @body, or 206 for a single "bytes=a-b" Range."""

    def fn(origin, req, sock):
        hs = [("Content-Type", "application/octet-stream"), *headers.items()]
        rng = req.header("Range")
        m = re.match(r"^bytes=(\d+)-(\d+)$", rng or "")
        if m:
            a, b = int(m.group(1)), min(int(m.group(2)), len(body) - 1)
            part = body[a:b + 1]
            hs += [("Content-Range", f"bytes {a}-{b}/{len(body)}"), ("Content-Length", str(len(part)))]
            sock.sendall(_head(206, None, hs) + part)
        else:
            hs.append(("Content-Length", str(len(body))))
            sock.sendall(_head(200, None, hs) + body)
        return True

    return Func(fn)


def test_range_bypass_forwards_range(cairn, origin):
    c, org = start(cairn, origin, {"range": "bypass"}, routes={"/r": ranged_origin(BODY, MAX_AGE)})
    r = get(c.port, "/r", headers={"Range": "bytes=100-199"})
    assert r.status == 206, f"range: bypass: the origin's 206 should reach the client: {r!r}"
    assert r.body == BODY[100:200]
    assert r.header("Content-Range") == f"bytes 100-199/{len(BODY)}", r.headers
    assert org.requests[-1].header("Range") == "bytes=100-199", \
        f"range: bypass: the Range header was not forwarded: {org.requests[-1].headers}"
    # Nothing was stored: the next Range request goes to the origin again, and so does a GET.
    r = get(c.port, "/r", headers={"Range": "bytes=0-9"})
    assert (r.status, r.body) == (206, BODY[:10]), r
    assert count(org, "/r") == 2, "range: bypass stored the partial response"
    r = get(c.port, "/r")
    assert (r.status, r.body, cstatus(r)) == (200, BODY, MISS_STORED), \
        f"a GET after bypassed Range requests should be a stored miss: {r!r}"
    assert org.requests[-1].header("Range") is None
    assert count(org, "/r") == 3
    # Once stored, a Range request is a hit answered from the object.
    r = get(c.port, "/r", headers={"Range": "bytes=5-14"})
    assert (r.status, r.body) == (206, BODY[5:15]), r
    assert r.header("Content-Range") == f"bytes 5-14/{len(BODY)}", r.headers
    assert count(org, "/r") == 3, "a Range request on a stored object went to the origin"


def test_range_fetch_full_default(cairn, origin):
    c, org = start(cairn, origin, routes={"/r": ranged_origin(BODY, MAX_AGE)})
    r = get(c.port, "/r", headers={"Range": "bytes=1000-1999"})
    assert r.status == 206, (
        f"range: fetch_full (default), a Range miss: the client should get a 206 built from the "
        f"full object, got {r.status} with {len(r.body)} body bytes and Content-Range "
        f"{r.header('Content-Range')!r} (Cache-Status {cstatus(r)!r})")
    assert r.body == BODY[1000:2000], "the 206 built from the full object has the wrong bytes"
    assert r.header("Content-Range") == f"bytes 1000-1999/{len(BODY)}", r.headers
    assert org.requests[-1].header("Range") is None, \
        f"range: fetch_full must not forward Range: {org.requests[-1].headers}"
    r = get(c.port, "/r")
    hit_ttl(r, "GET /r after a fetch_full Range miss")
    assert r.body == BODY
    r = get(c.port, "/r", headers={"Range": "bytes=-10"})
    assert (r.status, r.body) == (206, BODY[-10:]), r
    assert count(org, "/r") == 1


# --------------------------------------------------------------------------------------
# heuristic freshness


def dated(last_modified_ago, body=b"heuristic\n", extra=None):
    """200 with Date: now and Last-Modified: now - @last_modified_ago, computed per request."""

    def fn(origin, req, sock):
        now = time.time()
        hs = [("Date", formatdate(now, usegmt=True)),
              ("Last-Modified", formatdate(now - last_modified_ago, usegmt=True)),
              ("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
              *(extra or {}).items()]
        sock.sendall(_head(200, None, hs) + body)
        return True

    return Func(fn)


def test_heuristic_percent(cairn, origin):
    c, org = start(cairn, origin, {"heuristic": {"percent": 50, "max": "1h"}},
                   routes={"/h": dated(100), "/old": dated(10 * 86400)})
    r = get(c.port, "/h")
    assert cstatus(r) == MISS_STORED, r
    r = get(c.port, "/h")
    ttl, a = hit_ttl(r, "/h"), age(r)
    assert abs(ttl + a - 50) <= 1, \
        f"Last-Modified 100 s before Date, heuristic 50%: lifetime 50 expected, got ttl {ttl} + Age {a}"
    get(c.port, "/old")
    r = get(c.port, "/old")
    ttl, a = hit_ttl(r, "/old"), age(r)
    assert abs(ttl + a - 3600) <= 1, \
        f"heuristic max 1h: a 10-day-old Last-Modified should give 3600, got ttl {ttl} + Age {a}"
    assert count(org) == 2


def test_heuristic_default_ten_percent(cairn, origin):
    c, org = start(cairn, origin, routes={"/h": dated(1000)})
    get(c.port, "/h")
    r = get(c.port, "/h")
    ttl, a = hit_ttl(r, "/h"), age(r)
    assert abs(ttl + a - 100) <= 1, f"default heuristic 10% of 1000 s: got ttl {ttl} + Age {a}"


def test_heuristic_percent_zero_gives_no_freshness(cairn, origin):
    """percent 0 turns heuristics off: a Last-Modified-only response is never a fresh hit;
    every request goes to the origin."""
    c, org = start(cairn, origin, {"heuristic": {"percent": 0}}, routes={"/h": dated(100)})
    for i in range(3):
        r = get(c.port, "/h")
        assert r.status == 200 and r.body == b"heuristic\n", r
        assert not HIT_RE.match(cstatus(r)), \
            f"request {i}: heuristic percent 0 gave a fresh hit: Cache-Status {cstatus(r)!r}"
        assert count(org) == i + 1, f"request {i} was answered without the origin"
    # Explicit freshness still works on that cache.
    c2, org2 = start(cairn, origin, {"heuristic": {"percent": 0}})
    get(c2.port, "/x")
    hit_ttl(get(c2.port, "/x"), "max-age=60 with heuristic percent 0")


def test_heuristic_percent_zero_stored_but_never_fresh(cairn, origin):
    """docs/cache.md: a heuristically cacheable status with a validator is stored even without
    explicit freshness (RFC 9111 §3 allows it). With heuristic percent 0 it has no lifetime:
    it is stored already stale and every use is revalidated with If-Modified-Since; it is
    never answered as a fresh hit."""
    c, org = start(cairn, origin, {"heuristic": {"percent": 0}}, routes={"/h": dated(100)})
    r = get(c.port, "/h")
    assert r.status == 200 and r.body == b"heuristic\n", r
    assert cstatus(r) == MISS_STORED, f"percent 0 with Last-Modified: {cstatus(r)!r}"
    for i in range(2):
        r = get(c.port, "/h")
        assert r.status == 200 and r.body == b"heuristic\n", r
        assert "hit" not in cstatus(r).split("; "), \
            f"request {i + 2}: a zero-lifetime object was served as a hit: {cstatus(r)!r}"
    assert count(org) == 3, f"every use must reach the origin, it saw {count(org)} requests"
    assert all(q.header("If-Modified-Since") for q in org.requests[1:]), \
        "the reuses must be conditional (If-Modified-Since from the stored Last-Modified)"


# --------------------------------------------------------------------------------------
# targeted_field


def test_targeted_field(cairn, origin):
    hs = {"Cairn-Cache-Control": "max-age=5", "Cache-Control": "no-store"}
    c, org = start(cairn, origin, {"targeted_field": "Cairn-Cache-Control"},
                   routes={"/t": Numbered(headers=hs),
                           "/cc": Numbered(headers={"Cache-Control": "no-store"}),
                           "/nostore": Numbered(headers={"Cairn-Cache-Control": "no-store",
                                                         "Cache-Control": "max-age=60"})})
    r = get(c.port, "/t")
    assert cstatus(r) == MISS_STORED, \
        f"Cairn-Cache-Control: max-age=5 overrides Cache-Control: no-store: {cstatus(r)!r}"
    r = get(c.port, "/t")
    ttl, a = hit_ttl(r, "/t"), age(r)
    assert ttl + a == 5, f"lifetime from Cairn-Cache-Control max-age=5: got ttl {ttl} + Age {a}"
    assert r.body == b"/t #1\n"
    assert count(org, "/t") == 1
    # Without the targeted field, Cache-Control still decides; and the field can forbid.
    for p in ("/cc", "/nostore"):
        get(c.port, p)
        r = get(c.port, p)
        assert r.body == f"{p} #2\n".encode(), f"{p} should not be stored: {r!r} ({cstatus(r)})"


def test_targeted_field_unset_ignores_it(cairn, origin):
    hs = {"Cairn-Cache-Control": "max-age=5", "Cache-Control": "no-store"}
    c, org = start(cairn, origin, routes={"/t": Numbered(headers=hs)})
    get(c.port, "/t")
    r = get(c.port, "/t")
    assert r.body == b"/t #2\n", (
        "targeted_field is unset (docs/config.md: default null), so Cairn-Cache-Control should be "
        "an ordinary header and Cache-Control: no-store should decide; yet the second GET was "
        f"answered from the cache ({cstatus(r)!r}): cn_policy_conf_init() defaults target_field "
        "to Cairn-Cache-Control and policy_conf() in src/engine/cached_store.c keeps it when the "
        f"option is null. {r!r}")


# --------------------------------------------------------------------------------------
# hit_for_pass


def concurrent_gets(port, path, n):
    out = [None] * n
    errs = []

    def one(i):
        try:
            out[i] = get(port, path, timeout=10)
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    assert not errs, errs
    return out


def test_hit_for_pass_duration(cairn, origin):
    delay = 0.8
    st = Stream(b"uncacheable\n", headers={"Cache-Control": "no-store"}, delay_headers=delay)
    c, org = start(cairn, origin, {"hit_for_pass": "500ms", "lock": {"wait_timeout": "10s"}},
                   routes={"/u": st})
    r = get(c.port, "/u")
    assert r.status == 200 and "detail=no-store" in cstatus(r), r
    assert "hit-for-pass" not in cstatus(r)

    # Within 0.5 s: known uncacheable, so concurrent requests all go to the origin at once.
    rs = concurrent_gets(c.port, "/u", 3)
    times = sorted(q.time for q in org.requests[1:4])
    assert len(org.requests) == 4
    assert all(r.status == 200 and "detail=hit-for-pass" in cstatus(r) for r in rs), \
        f"right after an uncacheable answer: {[cstatus(r) for r in rs]}"
    assert times[-1] - times[0] < delay / 2, \
        f"hit-for-pass requests waited for each other: origin arrivals {times}"

    # After 0.5 s the mark is gone: the requests collapse again (one leader, the others wait
    # for its head, then learn it is uncacheable and fetch on their own).
    time.sleep(1.2)
    n0 = len(org.requests)
    rs = concurrent_gets(c.port, "/u", 3)
    times = sorted(q.time for q in org.requests[n0:])
    assert len(times) == 3, f"origin saw {len(times)} requests"
    assert sum("hit-for-pass" in cstatus(r) for r in rs) < 3, \
        f"hit_for_pass 500ms still applied after 1.2 s: {[cstatus(r) for r in rs]}"
    assert times[1] - times[0] >= delay * 0.75, \
        f"after hit_for_pass expired, concurrent misses should wait for the leader's head " \
        f"({delay}s): origin arrivals {times}"
