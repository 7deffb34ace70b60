"""Cache administration: the admin API's POST /cache/purge and GET /cache/stats, and the PURGE
method of a caching route (caches.<name>.purge).

Every test starts its own cairn (memory cache "c", one worker) in front of a recording origin,
so origin request counts and the stats counters start from zero. Requests carry
`Host: 127.0.0.1:<port>`, so the cache key of /p?q is "http://127.0.0.1:<port>/p?q", the URL a
purge names.

What a user sees:
  POST /cache/purge {"url"|"prefix"|"tag": "...", "soft": bool, "cache": "name"}
      200 {"purged": N}; 400 for malformed JSON or not exactly one of url/prefix/tag;
      405 for GET; 413 for a body over 64 KiB; 401 without the bearer token when one is set.
  GET /cache/stats  {"caches": {"c": {"tiers": {"memory": {objects, bytes, hits, misses,
      inserts, evictions, removals}}}}}
  PURGE /path       200 {"purged": N} / 404 nothing cached / 403 outside purge.allow;
                    "Purge-Mode: soft" marks stale instead of removing.
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import time

import pytest

from helpers import ConnectionClosed, RawConn, proxy_config
from origins import Blob, Normal
from origins.server import Numbered, Validating

MAX_AGE = {"Cache-Control": "max-age=60"}
HIT_RE = re.compile(r"^cairn; hit; ttl=(-?\d+)$")


# --------------------------------------------------------------------------------------
# helpers


def start(cairn, origin, routes=None, caches=None, key=None, admin=None, purge=None,
          extra_routes=(), cache_name="c"):
    org = origin(routes or {}, default=Numbered(headers=MAX_AGE))
    cfg = proxy_config(org, route_extra={"cache": cache_name}, extra_routes=extra_routes)
    conf = {"memory": {"size": "16MiB", "max_object": "1MiB"}}
    if key:
        conf["key"] = key
    if purge:
        conf["purge"] = purge
    cfg["caches"] = caches or {cache_name: conf}
    if admin:
        cfg["admin"] = admin
    return cairn(cfg), org


def req(c, target, headers=None, method="GET", body=b"", sock=None):
    """One request on a fresh connection with Host: 127.0.0.1:<port>."""
    conn = RawConn(sock=sock) if sock is not None else RawConn(c.port)
    with conn:
        return conn.request(method, target, headers, body, host=f"127.0.0.1:{c.port}")


def admin(c, method, path, body=b"", headers=None):
    try:
        with RawConn(c.admin_port) as conn:
            return conn.request(method, path, headers, body, host=f"127.0.0.1:{c.admin_port}")
    except (ConnectionClosed, OSError) as e:
        raise AssertionError(
            f"{method} {path} (body {body[:80]!r}, {len(body)} bytes): no answer from the admin "
            f"API ({e!r}); cairn alive: {c.alive()}; stderr tail:\n{c.stderr_text()[-1500:]}")


def purge(c, expect=200, headers=None, **spec):
    """POST /cache/purge with @spec as JSON; returns the parsed answer (asserting @expect)."""
    r = admin(c, "POST", "/cache/purge", json.dumps(spec).encode(),
              {"Content-Type": "application/json", **(headers or {})})
    assert r.status == expect, f"POST /cache/purge {spec} answered {r.status}, expected {expect}: {r!r}"
    if expect != 200:
        return r
    try:
        return json.loads(r.body)
    except ValueError:
        raise AssertionError(f"POST /cache/purge {spec}: body is not JSON: {r.body!r}")


def purged(c, **spec):
    d = purge(c, **spec)
    assert set(d) == {"purged"} and isinstance(d["purged"], int), \
        f"POST /cache/purge {spec}: expected {{\"purged\": N}}, got {d!r}"
    return d["purged"]


def url(c, path):
    return f"http://127.0.0.1:{c.port}{path}"


def stats(c, name="c"):
    r = admin(c, "GET", "/cache/stats")
    assert r.status == 200, f"GET /cache/stats answered {r.status}: {r!r}"
    d = json.loads(r.body)
    try:
        return d["caches"][name]["tiers"]["memory"]
    except (KeyError, TypeError):
        raise AssertionError(f"GET /cache/stats has no caches.{name}.tiers.memory: {d!r}")


def count(org, target, method="GET"):
    return sum(1 for q in org.requests if q.target == target and q.method == method)


def cstatus(r):
    return r.header("Cache-Status") or ""


def assert_hit(r, what):
    assert r.status == 200 and HIT_RE.match(cstatus(r)), \
        f"{what}: expected a cache hit, got {r.status} Cache-Status {cstatus(r)!r}; {r!r}"


def assert_miss(r, what):
    assert r.status == 200 and cstatus(r).startswith("cairn; fwd="), \
        f"{what}: expected a forwarded response (miss), got {r.status} Cache-Status {cstatus(r)!r}"


# --------------------------------------------------------------------------------------
# POST /cache/purge {"url": ...}


def test_purge_url_removes_every_variant(cairn, origin):
    """Vary, key.headers and key.cookies variants of one URL all go; /p?q=10 and /p stay."""
    c, org = start(cairn, origin, routes={
        "/p": Numbered(headers={**MAX_AGE, "Vary": "Accept-Language"})},
        key={"headers": ["X-Tenant"], "cookies": ["session"]})
    variants = [
        {"Accept-Language": "en", "X-Tenant": "a"},
        {"Accept-Language": "de", "X-Tenant": "a"},
        {"Accept-Language": "en", "X-Tenant": "b"},
        {"Accept-Language": "en", "X-Tenant": "a", "Cookie": "session=s1"},
    ]
    for h in variants:
        assert_miss(req(c, "/p?q=1", h), f"first GET /p?q=1 {h}")
    for h in variants:
        assert_hit(req(c, "/p?q=1", h), f"second GET /p?q=1 {h}")
    assert count(org, "/p?q=1") == 4
    # Neighbours that a sloppy prefix match would take too.
    for t in ("/p?q=10", "/p"):
        req(c, t, variants[0])
        assert_hit(req(c, t, variants[0]), f"GET {t}")
    assert stats(c)["objects"] == 6

    assert purged(c, url=url(c, "/p?q=1")) == 4
    assert stats(c)["objects"] == 2
    for i, h in enumerate(variants):
        r = req(c, "/p?q=1", h)
        assert_miss(r, f"GET /p?q=1 {h} after the purge")
        assert count(org, "/p?q=1") == 5 + i, \
            f"variant {h} was served from the cache after a URL purge"
    for t in ("/p?q=10", "/p"):
        assert_hit(req(c, t, variants[0]), f"GET {t} after purging /p?q=1 (another URL)")


def test_purge_url_exact_path(cairn, origin):
    """The path is compared as is (case-sensitive); nothing cached → {"purged": 0}."""
    c, org = start(cairn, origin)
    req(c, "/Case/Path")
    assert purged(c, url=url(c, "/case/path")) == 0, "the path is case-sensitive"
    assert purged(c, url=url(c, "/nothing")) == 0
    assert purged(c, url=url(c, "/Case/Pat")) == 0, "a URL purge matched a longer path"
    assert purged(c, url=url(c, "/Case/Path")) == 1
    assert_miss(req(c, "/Case/Path"), "GET after the purge")
    assert count(org, "/Case/Path") == 2


def test_purge_url_default_port_removed(cairn, origin):
    """A request with Host: h:80 is stored under http://h/...: a purge of http://h:80/x and
    of http://h/x both match it."""
    c, org = start(cairn, origin)
    with RawConn(c.port) as conn:
        conn.request("GET", "/dp", host="Example.COM:80")
        assert_hit(conn.request("GET", "/dp", host="example.com"), "Host example.com after example.com:80")
    assert purged(c, url="http://EXAMPLE.com:80/dp") == 1
    with RawConn(c.port) as conn:
        assert_miss(conn.request("GET", "/dp", host="example.com"), "GET after the purge")
    assert count(org, "/dp") == 2


# --------------------------------------------------------------------------------------
# prefix and tag


def test_purge_prefix(cairn, origin):
    c, org = start(cairn, origin)
    inside = ["/dir/a", "/dir/b?x=1", "/dir/sub/c"]
    outside = ["/dir", "/dirx/a", "/other/dir/a"]
    for t in inside + outside:
        assert_miss(req(c, t), f"first GET {t}")
    assert stats(c)["objects"] == 6
    assert purged(c, prefix=url(c, "/dir/")) == 3
    for t in inside:
        assert_miss(req(c, t), f"GET {t} after purging prefix /dir/")
        assert count(org, t) == 2, f"{t} was still cached after a prefix purge of /dir/"
    for t in outside:
        assert_hit(req(c, t), f"GET {t} (outside prefix /dir/)")
        assert count(org, t) == 1
    # A prefix of the whole origin takes everything that is left: 3 + 3 re-fetched.
    assert purged(c, prefix=url(c, "/")) == 6
    assert stats(c)["objects"] == 0


def test_purge_tag(cairn, origin):
    c, org = start(cairn, origin, routes={
        "/t/red-blue": Normal(body=b"rb\n", headers={**MAX_AGE, "Surrogate-Key": "red  blue"}),
        "/t/blue-green": Normal(body=b"bg\n", headers={**MAX_AGE, "Cache-Tag": "blue,green"}),
        "/t/both": Normal(body=b"both\n", headers=[*MAX_AGE.items(), ("Surrogate-Key", "yellow"),
                                                   ("Cache-Tag", "purple, orange")]),
        "/t/reddish": Normal(body=b"reddish\n", headers={**MAX_AGE, "Surrogate-Key": "reddish xred"}),
        "/t/none": Normal(body=b"none\n", headers=MAX_AGE),
    })
    paths = ["/t/red-blue", "/t/blue-green", "/t/both", "/t/reddish", "/t/none"]
    for p in paths:
        assert_miss(req(c, p), f"first GET {p}")
    for p in paths:
        assert_hit(req(c, p), f"second GET {p}")

    assert purged(c, tag="re") == 0, "a tag purge matched part of a tag"
    assert purged(c, tag="blue") == 2
    assert purged(c, tag="blue") == 0
    assert purged(c, tag="red") == 0, "red's object was already purged (red blue)"
    assert purged(c, tag="orange") == 1, "Cache-Tag 'purple, orange' (comma and space)"
    assert purged(c, tag="yellow") == 0
    for p in ["/t/red-blue", "/t/blue-green", "/t/both"]:
        assert_miss(req(c, p), f"GET {p} after its tag was purged")
        assert count(org, p) == 2
    for p in ["/t/reddish", "/t/none"]:
        assert_hit(req(c, p), f"GET {p}, whose tags were never purged")
        assert count(org, p) == 1
    # The re-fetched objects carry their tags again.
    assert purged(c, tag="yellow") == 1
    assert purged(c, tag="purple") == 0
    assert purged(c, tag="green") == 1
    assert purged(c, tag="xred") == 1


# --------------------------------------------------------------------------------------
# soft purge


def test_soft_purge_url_revalidates_with_etag(cairn, origin):
    v = Validating(body=b"validated body\n", etag='"v1"', headers=MAX_AGE)
    c, org = start(cairn, origin, routes={"/soft": v})
    assert_miss(req(c, "/soft"), "first GET /soft")
    assert_hit(req(c, "/soft"), "second GET /soft")
    before = stats(c)
    assert purged(c, url=url(c, "/soft"), soft=True) == 1
    after = stats(c)
    assert (after["objects"], after["removals"]) == (before["objects"], before["removals"]), \
        f"a soft purge removed the object: stats before {before}, after {after}"

    r = req(c, "/soft")
    assert r.status == 200 and r.body == b"validated body\n", r
    reqs = [q for q in org.requests if q.target == "/soft"]
    assert len(reqs) == 2, f"the request after a soft purge did not go to the origin ({len(reqs)})"
    assert reqs[1].header("If-None-Match") == '"v1"', \
        f"the soft-purged object was not revalidated with its ETag: {reqs[1].headers}"
    assert v.sent_304 == 1
    assert cstatus(r).startswith("cairn; fwd=stale; fwd-status=304"), cstatus(r)
    assert_hit(req(c, "/soft"), "GET after the revalidation")
    assert count(org, "/soft") == 2


def test_soft_purge_without_validator_refetches(cairn, origin):
    c, org = start(cairn, origin)
    req(c, "/nv")
    assert purged(c, url=url(c, "/nv"), soft=True) == 1
    r = req(c, "/nv")
    assert r.status == 200 and r.body == b"/nv #2\n", \
        f"after a soft purge of an object without validators the origin's new answer was expected: {r!r}"
    q = [q for q in org.requests if q.target == "/nv"][-1]
    assert q.header("If-None-Match") is None and q.header("If-Modified-Since") is None, q.headers
    assert_hit(req(c, "/nv"), "GET after the refetch")
    assert count(org, "/nv") == 2


@pytest.mark.parametrize("kind", ["prefix", "tag"])
def test_soft_purge_prefix_and_tag(cairn, origin, kind):
    vs = {p: Validating(body=p.encode(), etag=f'"{i}"', headers={**MAX_AGE, "Surrogate-Key": "grp"})
          for i, p in enumerate(["/g/1", "/g/2"])}
    c, org = start(cairn, origin, routes=vs)
    for p in vs:
        req(c, p)
    spec = {"prefix": url(c, "/g/")} if kind == "prefix" else {"tag": "grp"}
    assert purged(c, soft=True, **spec) == 2
    assert stats(c)["objects"] == 2
    for i, (p, v) in enumerate(vs.items()):
        r = req(c, p)
        assert (r.status, r.body) == (200, p.encode()), r
        last = [q for q in org.requests if q.target == p][-1]
        assert count(org, p) == 2 and last.header("If-None-Match") == f'"{i}"', \
            f"{p} was not revalidated after a soft {kind} purge: {last.headers}"
        assert v.sent_304 == 1


# --------------------------------------------------------------------------------------
# "cache": name


def test_purge_limited_to_one_cache(cairn, origin):
    org = origin(default=Numbered(headers=MAX_AGE))
    cfg = proxy_config(org, route_extra={"cache": "b"},
                       extra_routes=[{"name": "a", "match": {"path_prefix": "/a/"},
                                      "upstream": "o", "cache": "a"}])
    cfg["caches"] = {n: {"memory": {"size": "4MiB"}} for n in ("a", "b")}
    c = cairn(cfg)
    for t in ("/a/x", "/b/x"):
        req(c, t)
    assert stats(c, "a")["objects"] == 1 and stats(c, "b")["objects"] == 1
    assert purged(c, prefix=url(c, "/"), cache="a") == 1
    assert_miss(req(c, "/a/x"), "cache a was purged")
    assert_hit(req(c, "/b/x"), "cache b was not named in the purge")
    assert purged(c, prefix=url(c, "/"), cache="nope") == 0
    assert purged(c, prefix=url(c, "/")) == 2, "without \"cache\", every cache is purged"
    assert stats(c, "a")["objects"] == 0 and stats(c, "b")["objects"] == 0


# --------------------------------------------------------------------------------------
# request errors and authentication


@pytest.mark.parametrize("body", [
    b"{not json",
    b"",
    b"[]",
    b"{}",
    b'{"soft": true}',
    b'{"url": "http://h/a", "tag": "t"}',
    b'{"url": "http://h/a", "prefix": "http://h/"}',
    b'{"url": "http://h/a", "prefix": "http://h/", "tag": "t"}',
    b'{"url": 5}',
    b'{"tag": "t", "soft": "yes"}',
], ids=["malformed", "empty", "array", "none", "soft-only", "url+tag", "url+prefix", "all-three",
        "url-number", "soft-string"])
def test_purge_bad_request(cairn, origin, body):
    c, org = start(cairn, origin)
    req(c, "/keep")
    r = admin(c, "POST", "/cache/purge", body, {"Content-Type": "application/json"})
    assert r.status == 400, f"POST /cache/purge {body!r} answered {r.status}, expected 400: {r!r}"
    assert stats(c)["objects"] == 1, "a rejected purge removed something"
    assert_hit(req(c, "/keep"), "GET after a rejected purge")


def test_purge_get_is_405(cairn, origin):
    c, _ = start(cairn, origin)
    r = admin(c, "GET", "/cache/purge")
    assert r.status == 405, r
    assert "POST" in (r.header("Allow") or ""), r.headers


def test_purge_body_limit(cairn, origin):
    c, org = start(cairn, origin)
    req(c, "/big")
    # Just under 64 KiB of valid JSON (padding whitespace) is accepted.
    ok = b'{"url": "' + url(c, "/big").encode() + b'"}'
    ok = ok + b" " * (65536 - len(ok))
    assert len(ok) == 65536
    r = admin(c, "POST", "/cache/purge", ok, {"Content-Type": "application/json"})
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}, \
        f"a 64 KiB body was refused: {r!r}"
    req(c, "/big")
    over = ok + b" "
    with RawConn(c.admin_port) as conn:
        try:
            conn.send(b"POST /cache/purge HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(over) + over)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = conn.read_response()
    assert r.status == 413, f"a body of 64 KiB + 1 answered {r.status}, expected 413: {r!r}"
    assert stats(c)["objects"] == 1, "the refused purge removed the object"


def test_purge_and_stats_need_token(cairn, origin):
    c, org = start(cairn, origin, admin={"listen": f"127.0.0.1:{_free()}", "token": "s3cret"})
    req(c, "/tok")
    spec = json.dumps({"url": url(c, "/tok")}).encode()
    for hdrs in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                 {"Authorization": "Basic s3cret"}):
        r = admin(c, "POST", "/cache/purge", spec, hdrs)
        assert r.status == 401, f"POST /cache/purge with {hdrs} answered {r.status}: {r!r}"
        r = admin(c, "GET", "/cache/stats", headers=hdrs)
        assert r.status == 401, f"GET /cache/stats with {hdrs} answered {r.status}: {r!r}"
    assert_hit(req(c, "/tok"), "GET after unauthorised purges")
    auth = {"Authorization": "Bearer s3cret"}
    r = admin(c, "GET", "/cache/stats", headers=auth)
    assert r.status == 200 and json.loads(r.body)["caches"]["c"]["tiers"]["memory"]["objects"] == 1, r
    r = admin(c, "POST", "/cache/purge", spec, auth)
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}, r
    assert_miss(req(c, "/tok"), "GET after the authorised purge")


def _free():
    from helpers import free_port
    return free_port()


# --------------------------------------------------------------------------------------
# GET /cache/stats


STAT_KEYS = {"objects", "bytes", "hits", "misses", "inserts", "evictions", "removals"}


def delta(a, b):
    return {k: b[k] - a[k] for k in STAT_KEYS}


def test_stats_shape_and_deltas(cairn, origin):
    c, org = start(cairn, origin, routes={
        "/nostore": Normal(body=b"n\n", headers={"Cache-Control": "no-store"})})
    r = admin(c, "GET", "/cache/stats")
    assert r.status == 200 and "json" in (r.header("Content-Type") or ""), r
    d = json.loads(r.body)
    assert list(d) == ["caches"] and list(d["caches"]) == ["c"], d
    assert list(d["caches"]["c"]) == ["tiers"] and list(d["caches"]["c"]["tiers"]) == ["memory"], d
    s0 = d["caches"]["c"]["tiers"]["memory"]
    assert set(s0) == STAT_KEYS, s0
    assert all(isinstance(v, int) for v in s0.values()), s0
    assert s0 == {k: 0 for k in STAT_KEYS}, f"a fresh cache reports {s0}"

    req(c, "/s1")                      # lookup miss, stored
    s1 = stats(c)
    assert delta(s0, s1) | {"bytes": 0} == {"objects": 1, "bytes": 0, "hits": 0, "misses": 1,
                                            "inserts": 1, "evictions": 0, "removals": 0}, s1
    assert s1["bytes"] >= len(b"/s1 #1\n"), s1

    for _ in range(3):
        assert_hit(req(c, "/s1"), "GET /s1")
    s2 = stats(c)
    assert delta(s1, s2) == {"objects": 0, "bytes": 0, "hits": 3, "misses": 0, "inserts": 0,
                             "evictions": 0, "removals": 0}, (s1, s2)

    req(c, "/nostore")                 # lookup miss, not stored
    s3 = stats(c)
    assert delta(s2, s3) == {"objects": 0, "bytes": 0, "hits": 0, "misses": 1, "inserts": 0,
                             "evictions": 0, "removals": 0}, (s2, s3)

    req(c, "/s2")
    s4 = stats(c)
    assert delta(s3, s4)["objects"] == 1 and delta(s3, s4)["inserts"] == 1
    assert delta(s3, s4)["misses"] == 1

    assert purged(c, url=url(c, "/s1")) == 1
    s5 = stats(c)
    assert delta(s4, s5) == {"objects": -1, "bytes": -s1["bytes"], "hits": 0, "misses": 0,
                             "inserts": 0, "evictions": 0, "removals": 1}, (s4, s5)
    assert purged(c, url=url(c, "/s2")) == 1
    s6 = stats(c)
    assert (s6["objects"], s6["bytes"], s6["removals"]) == (0, 0, 2), s6


def test_stats_bytes_track_body_size(cairn, origin):
    body = b"z" * 200_000
    c, org = start(cairn, origin, routes={"/b": Normal(body=body, headers=MAX_AGE)})
    s0 = stats(c)
    r = req(c, "/b")
    assert r.body == body
    s1 = stats(c)
    grew = s1["bytes"] - s0["bytes"]
    assert len(body) <= grew <= len(body) + 16384, \
        f"storing a 200000-byte body added {grew} bytes to the stats"


# --------------------------------------------------------------------------------------
# the PURGE method


def purge_cfg(method=True, allow=("127.0.0.1/32",)):
    return {"method": method, "allow": list(allow)}


def test_purge_method_removes_all_variants(cairn, origin):
    c, org = start(cairn, origin, routes={
        "/pm": Numbered(headers={**MAX_AGE, "Vary": "Accept"})},
        key={"headers": ["X-Tenant"]}, purge=purge_cfg())
    variants = [{"Accept": "a/a"}, {"Accept": "b/b"}, {"Accept": "a/a", "X-Tenant": "t"}]
    for h in variants:
        req(c, "/pm?x=1", h)
        req(c, "/pm?x=2", h)
    assert count(org, "/pm?x=1") == 3
    r = req(c, "/pm?x=1", method="PURGE")
    assert r.status == 200, f"PURGE answered {r.status}: {r!r}"
    assert json.loads(r.body) == {"purged": 3}, r.body
    assert not any(q.method == "PURGE" for q in org.requests), "PURGE reached the origin"
    for i, h in enumerate(variants):
        assert_miss(req(c, "/pm?x=1", h), f"GET /pm?x=1 {h} after PURGE")
        assert count(org, "/pm?x=1") == 4 + i
        assert_hit(req(c, "/pm?x=2", h), f"GET /pm?x=2 {h} (another URL)")


def test_purge_method_nothing_cached_is_404(cairn, origin):
    c, org = start(cairn, origin, purge=purge_cfg())
    r = req(c, "/never", method="PURGE")
    assert r.status == 404, f"PURGE of an uncached URL answered {r.status}: {r!r}"
    req(c, "/once")
    assert req(c, "/once", method="PURGE").status == 200
    assert req(c, "/once", method="PURGE").status == 404, "a second PURGE found something"
    assert not any(q.method == "PURGE" for q in org.requests)


def test_purge_method_soft(cairn, origin):
    v = Validating(body=b"soft body\n", etag='"e1"', headers=MAX_AGE)
    c, org = start(cairn, origin, routes={"/ps": v}, purge=purge_cfg())
    req(c, "/ps")
    r = req(c, "/ps", {"Purge-Mode": "soft"}, method="PURGE")
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}, r
    assert stats(c)["objects"] == 1, "Purge-Mode: soft removed the object"
    r = req(c, "/ps")
    assert (r.status, r.body) == (200, b"soft body\n"), r
    last = [q for q in org.requests if q.target == "/ps"][-1]
    assert count(org, "/ps") == 2 and last.header("If-None-Match") == '"e1"', \
        f"after a soft PURGE the next GET should revalidate with If-None-Match: {last.headers}"
    assert v.sent_304 == 1
    assert_hit(req(c, "/ps"), "GET after the revalidation")


def _client_from(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def test_purge_method_outside_allow_is_403(cairn, origin):
    c, org = start(cairn, origin, purge=purge_cfg(allow=["127.0.0.1/32"]))
    req(c, "/acl")
    r = req(c, "/acl", method="PURGE", sock=_client_from("127.0.0.2", c.port))
    assert r.status == 403, f"PURGE from 127.0.0.2 (allow 127.0.0.1/32) answered {r.status}: {r!r}"
    # X-Forwarded-For does not make a client someone else for purge.allow.
    r = req(c, "/acl", {"X-Forwarded-For": "127.0.0.1"}, method="PURGE",
            sock=_client_from("127.0.0.2", c.port))
    assert r.status == 403, f"PURGE from 127.0.0.2 with X-Forwarded-For: 127.0.0.1 answered {r.status}"
    assert_hit(req(c, "/acl", sock=_client_from("127.0.0.2", c.port)), "GET from 127.0.0.2")
    assert count(org, "/acl") == 1
    r = req(c, "/acl", method="PURGE")
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}, r
    assert not any(q.method == "PURGE" for q in org.requests)


def test_purge_method_off_is_proxied(cairn, origin):
    c, org = start(cairn, origin, routes={
        "/off": Numbered(headers=MAX_AGE)}, purge=purge_cfg(method=False))
    r = req(c, "/off", method="PURGE")
    assert r.status == 200 and r.body == b"/off #1\n", \
        f"with purge.method false, PURGE should be the origin's business: {r!r}"
    assert [q.method for q in org.requests if q.target == "/off"] == ["PURGE"]


def test_purge_method_default_is_off(cairn, origin):
    c, org = start(cairn, origin)
    req(c, "/d")
    r = req(c, "/d", method="PURGE")
    assert r.body == b"/d #2\n", r
    assert [q.method for q in org.requests if q.target == "/d"] == ["GET", "PURGE"]


# --------------------------------------------------------------------------------------
# purges meeting other cache features


def test_purge_while_a_hit_is_streaming(cairn, origin):
    """A hard purge removes the object from the index; a client in the middle of reading it
    still gets every byte (the object lives until its last reader is done), the next
    request is a miss, and the tier's bytes drop back to 0."""
    blob = Blob(4 << 20, seed=5, headers=MAX_AGE)
    c, org = start(cairn, origin, routes={"/s": blob}, caches={
        "c": {"memory": {"size": "256MiB", "max_object": "8MiB"}}})
    assert req(c, "/s").body == blob.body
    s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(f"GET /s HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, got = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"cairn; hit" in head, head
    assert purged(c, url=url(c, "/s")) == 1
    st = stats(c)
    assert (st["objects"], st["bytes"]) == (0, 0), f"after the purge: {st}"
    deadline = time.monotonic() + 20
    while len(got) < len(blob.body):
        assert time.monotonic() < deadline, f"stalled after {len(got)} bytes"
        d = s.recv(1 << 20)
        assert d, f"cairn closed the purged hit after {len(got)} of {len(blob.body)} bytes"
        got += d
    s.close()
    assert hashlib.sha256(got).hexdigest() == blob.sha256, "the purged hit's bytes are corrupt"
    assert_miss(req(c, "/s"), "GET after the purge")
    assert len(org.requests) == 2


def test_tags_follow_a_304_update(cairn, origin):
    """A 304 replaces the stored headers (RFC 9111 §4.3.4): tag purges see the new
    Surrogate-Key, not the one the object was first stored with."""
    v = Validating(body=b"tagged\n", etag='"t1"',
                   headers={"Cache-Control": "max-age=1", "Surrogate-Key": "old-tag"})
    c, org = start(cairn, origin, routes={"/tg": v})
    req(c, "/tg")
    time.sleep(1.6)
    v.headers["Surrogate-Key"] = "new-tag"
    r = req(c, "/tg")
    assert cstatus(r).startswith("cairn; fwd=stale; fwd-status=304"), cstatus(r)
    assert r.header("Surrogate-Key") == "new-tag", r.headers
    assert v.sent_304 == 1
    assert purged(c, tag="old-tag") == 0, \
        "the tag of the headers the 304 replaced still purges the object"
    assert purged(c, tag="new-tag") == 1, \
        "the object refreshed by a 304 with Surrogate-Key: new-tag is not found by that tag " \
        "(refresh_object in src/engine/cached_store.c keeps the old object's tags)"


@pytest.mark.parametrize("key,target,same", [
    ({"query": "none"}, "/q?x=1", "/q?x=2"),
    ({"query_drop": ["utm_source"]}, "/q?id=1&utm_source=mail", "/q?id=1&utm_source=web"),
], ids=["query-none", "query-drop"])
def test_purge_url_uses_the_key_template(cairn, origin, key, target, same):
    """A URL purge removes the object that answers that URL, whatever the cache's key
    template leaves out of the key (as PURGE of the same URL does)."""
    c, org = start(cairn, origin, key=key, purge=purge_cfg())
    req(c, target)
    assert_hit(req(c, same), f"GET {same} shares {target}'s object")
    n = purged(c, url=url(c, target))
    assert n == 1, (
        f"POST /cache/purge {{\"url\": \"{url(c, target)}\"}} with key {key}: purged {n}, "
        f"expected 1; the admin purge compares the raw URL with the stored key text, which "
        f"the key template shortened")
    assert_miss(req(c, same), f"GET {same} after the purge")


def test_purge_method_uses_the_key_template(cairn, origin):
    c, org = start(cairn, origin, key={"query": "none"}, purge=purge_cfg())
    req(c, "/q?x=1")
    r = req(c, "/q?x=9", method="PURGE")
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}, r
    assert_miss(req(c, "/q?x=1"), "GET after PURGE")
