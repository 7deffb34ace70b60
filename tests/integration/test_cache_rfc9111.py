"""RFC 9111 shared-cache behaviour of a caching route, seen from the client and the origin.

One cairn (memory cache "c": 64MiB, max_object 8MiB, lock 10s/10s) and one recording origin
serve the whole module; every case uses its own path, so "what reached the origin" is the
number of recorded requests for that path. Cases that need stale objects share one fixture
that stores them all and then waits once (AGE_WAIT seconds).

Cache-Status (RFC 9211) values checked, as documented for this build:
  fresh hit          cairn; hit; ttl=N            (N = lifetime - age; the Age header = age)
  stale served       cairn; hit; ttl=-N
  stale, origin down cairn; hit; fwd=stale; ttl=-N; detail=origin-unreachable
  miss, stored       cairn; fwd=uri-miss; fwd-status=S; stored
  miss, not stored   cairn; fwd=uri-miss; fwd-status=S; detail=<reason>
  revalidated (304)  cairn; fwd=stale; fwd-status=304; ttl=N
  revalidated (200)  cairn; fwd=stale; fwd-status=200; stored
  unsafe method      cairn; fwd=method
  only-if-cached     504 + cairn; fwd=miss; detail=only-if-cached
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from email.utils import formatdate

import pytest

from helpers import RawConn, get, proxy_config, upstream
from origins import Echo, Normal, Origin, Reset, Slow, blob
from origins.server import Numbered, Sequence, Validating

AGE_WAIT = 3.3  # seconds the "aged" objects (max-age=1) wait before their checks


def http_date(t):
    return formatdate(t, usegmt=True)


NOW = time.time()


class Rel:
    """A date header value @offset seconds from the moment the shared cairn starts (resolved by
    the `env` fixture, so a long test session before this module does not age the Dates)."""

    def __init__(self, offset=0):
        self.offset = offset


DATE_NOW = Rel(0)


def resolve_dates(behaviours, now):
    for b in behaviours:
        if hasattr(b, "behaviours"):
            resolve_dates(b.behaviours, now)
        hs = getattr(b, "headers", None)
        if isinstance(hs, dict):
            for k, v in hs.items():
                if isinstance(v, Rel):
                    hs[k] = http_date(now + v.offset)
        elif isinstance(hs, list):
            b.headers = [(k, http_date(now + v.offset) if isinstance(v, Rel) else v) for k, v in hs]

HIT_RE = re.compile(r"^cairn; hit; ttl=(-?\d+)$")
STALE_DOWN_RE = re.compile(r"^cairn; hit; fwd=stale; ttl=(-\d+); detail=origin-unreachable$")
REVAL_RE = re.compile(r"^cairn; fwd=stale; fwd-status=304; ttl=(-?\d+)$")
MISS_STORED = "cairn; fwd=uri-miss; fwd-status={}; stored"
MISS_DETAIL = "cairn; fwd=uri-miss; fwd-status={}; detail={}"


def cstatus(r):
    return r.header("Cache-Status") or ""


def hit_ttl(r, what=""):
    """Asserts @r is a fresh-or-stale hit; returns its ttl."""
    cs = cstatus(r)
    m = HIT_RE.match(cs)
    assert m, f"{what}: expected a cache hit ('cairn; hit; ttl=N'), got Cache-Status {cs!r}; {r!r}"
    return int(m.group(1))


def age(r):
    a = r.header("Age")
    assert a is not None and a.isdigit(), f"a response served from the cache has no valid Age: {r!r}"
    return int(a)


# --------------------------------------------------------------------------------------
# the shared cairn + origin

ROUTES = {}      # path -> behaviour (filled by the tables below)
AGED = {}        # path -> behaviour, stored before the wait of the `aged` fixture

STORE_CASES = [
    # id, status, response headers, request headers, stored, detail when not stored
    ("max-age", 200, {"Cache-Control": "max-age=60"}, {}, True, None),
    ("public-max-age", 200, {"Cache-Control": "public, max-age=60"}, {}, True, None),
    ("s-maxage-over-max-age", 200, {"Cache-Control": "max-age=0, s-maxage=60"}, {}, True, None),
    ("cdn-cc-over-cc", 200, {"Cache-Control": "max-age=0", "CDN-Cache-Control": "max-age=60"}, {},
     True, None),
    ("cdn-cc-no-store", 200, {"Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store"}, {},
     False, "no-store"),
    ("expires-minus-date", 200, {"Date": DATE_NOW, "Expires": Rel(3600)}, {}, True, None),
    ("max-age-over-expires", 200, {"Cache-Control": "max-age=60", "Date": DATE_NOW,
                                   "Expires": Rel(-3600)}, {}, True, None),
    ("heuristic-200", 200, {"Date": DATE_NOW, "Last-Modified": Rel(-10000)}, {}, True, None),
    ("heuristic-404", 404, {"Date": DATE_NOW, "Last-Modified": Rel(-10000)}, {}, True, None),
    ("explicit-404", 404, {"Cache-Control": "max-age=60"}, {}, True, None),
    ("explicit-500", 500, {"Cache-Control": "max-age=60"}, {}, True, None),
    # 201 is not heuristically cacheable: either reason describes it
    ("heuristic-not-for-201", 201, {"Date": DATE_NOW, "Last-Modified": Rel(-10000)}, {},
     False, ("no-freshness", "status")),
    ("no-store", 200, {"Cache-Control": "no-store, max-age=60"}, {}, False, "no-store"),
    ("private", 200, {"Cache-Control": "private, max-age=60"}, {}, False, "private"),
    ("no-freshness", 200, {}, {}, False, "no-freshness"),
    ("vary-star", 200, {"Cache-Control": "max-age=60", "Vary": "*"}, {}, False, "vary-star"),
    ("status-429", 429, {"Cache-Control": "max-age=60"}, {}, False, "status"),
    ("authorization", 200, {"Cache-Control": "max-age=60"}, {"Authorization": "Bearer t"}, False,
     "authorization"),
    ("authorization-public", 200, {"Cache-Control": "public, max-age=60"},
     {"Authorization": "Bearer t"}, True, None),
    ("authorization-s-maxage", 200, {"Cache-Control": "s-maxage=60"}, {"Authorization": "Bearer t"},
     True, None),
    ("authorization-must-revalidate", 200, {"Cache-Control": "max-age=60, must-revalidate"},
     {"Authorization": "Bearer t"}, True, None),
    ("request-no-store", 200, {"Cache-Control": "max-age=60"}, {"Cache-Control": "no-store"}, False,
     "request-no-store"),
]
for _id, _st, _hs, _rq, _stored, _detail in STORE_CASES:
    ROUTES[f"/store/{_id}"] = Normal(_st, f"body of {_id}\n".encode(), headers=_hs)

# lifetimes expected for the stored cases (ttl + Age must add up to them)
LIFETIMES = {"max-age": 60, "public-max-age": 60, "s-maxage-over-max-age": 60, "cdn-cc-over-cc": 60,
             "expires-minus-date": 3600, "max-age-over-expires": 60, "heuristic-200": 1000,
             "heuristic-404": 1000, "explicit-404": 60, "explicit-500": 60,
             "authorization-public": 60, "authorization-s-maxage": 60,
             "authorization-must-revalidate": 60}

BIG = blob(9 << 20, seed=9)
ROUTES.update({
    "/too-large": Normal(200, BIG, headers={"Cache-Control": "max-age=60"},
                         content_type="application/octet-stream"),
    "/heuristic-cap": Normal(200, b"old\n", headers={"Date": DATE_NOW,
                                                      "Last-Modified": Rel(-100 * 86400)}),
    "/origin-age": Normal(200, b"aged at origin\n", headers={"Cache-Control": "max-age=60", "Age": "30"}),
    "/invalid-expires": Numbered({"Date": DATE_NOW, "Expires": "0"}),
    "/invalid-expires-etag": Numbered({"Date": DATE_NOW, "Expires": "yesterday", "ETag": '"ie"'}),
    "/etag-only": Validating(b"etag only\n", etag='"e1"'),
    "/vary": Echo(headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"}),
    "/vary2": Echo(headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language, X-Tenant"}),
    "/head": Numbered({"Cache-Control": "max-age=60"}),
    "/head2": Numbered({"Cache-Control": "max-age=60"}),
    "/key*": Numbered({"Cache-Control": "max-age=60"}),
    "/inv/*": Numbered({"Cache-Control": "max-age=60"}),
    "/cond": Validating(b"conditional body\n", etag='"c1"', last_modified=http_date(NOW - 3600),
                        headers={"Cache-Control": "max-age=600"}),
    "/range": Normal(200, bytes(range(256)) * 4, headers={"Cache-Control": "max-age=600",
                                                          "ETag": '"r1"'},
                     content_type="application/octet-stream"),
    "/miss-cond": Validating(b"miss with conditionals\n", etag='"m1"',
                             headers={"Cache-Control": "max-age=600"}),
    "/miss-range": Normal(200, bytes(range(256)) * 4, headers={"Cache-Control": "max-age=600"},
                          content_type="application/octet-stream"),
    "/oic": Normal(200, b"only if cached\n", headers={"Cache-Control": "max-age=60"}),
    "/pragma": Validating(b"pragma\n", etag='"p1"', headers={"Cache-Control": "max-age=600"}),
    "/pragma-cc": Numbered({"Cache-Control": "max-age=600"}),
    "/req-no-cache": Validating(b"no-cache\n", etag='"n1"', headers={"Cache-Control": "max-age=600"}),
    "/min-fresh": Numbered({"Cache-Control": "max-age=600"}),
    "/log": Numbered({"Cache-Control": "max-age=60"}),
})

# objects stored, then aged AGE_WAIT seconds (max-age=1 unless said otherwise)
AGED.update({
    "/aged/age": Numbered({"Cache-Control": "max-age=60"}),
    "/aged/expired": Numbered({"Cache-Control": "max-age=1"}),
    "/aged/max-stale": Numbered({"Cache-Control": "max-age=1"}),
    "/aged/max-stale-100": Numbered({"Cache-Control": "max-age=1"}),
    "/aged/max-stale-1": Numbered({"Cache-Control": "max-age=1"}),
    "/aged/must-revalidate": Numbered({"Cache-Control": "max-age=1, must-revalidate"}),
    "/aged/proxy-revalidate": Numbered({"Cache-Control": "max-age=1, proxy-revalidate"}),
    "/aged/s-maxage": Numbered({"Cache-Control": "s-maxage=1"}),
    "/aged/req-max-age": Numbered({"Cache-Control": "max-age=60"}),
    "/aged/req-max-age-0": Numbered({"Cache-Control": "max-age=60"}),
    "/aged/reval-304": Validating(b"revalidate me\n", etag='"v1"',
                                  headers={"Cache-Control": "max-age=1", "X-Version": "1"}),
    "/aged/reval-ims": Validating(b"by date\n", etag=None, last_modified=http_date(NOW - 7200),
                                  headers={"Cache-Control": "max-age=1"}),
    "/aged/reval-200": Validating(b"version one\n", etag='"v1"', headers={"Cache-Control": "max-age=1"}),
    "/aged/sie-reset": Sequence(Normal(200, b"sie reset\n",
                                       headers={"Cache-Control": "max-age=1, stale-if-error=60"}),
                                Reset()),
    "/aged/sie-timeout": Sequence(Normal(200, b"sie timeout\n",
                                         headers={"Cache-Control": "max-age=1, stale-if-error=60"}),
                                  Slow(delay_headers=4)),
    "/aged/sie-window-over": Sequence(Normal(200, b"sie window\n",
                                             headers={"Cache-Control": "max-age=1, stale-if-error=1"}),
                                      Reset()),
    "/aged/sie-must-revalidate": Sequence(
        Normal(200, b"sie mr\n", headers={"Cache-Control": "max-age=1, must-revalidate, stale-if-error=60"}),
        Reset()),
    "/aged/no-sie": Sequence(Normal(200, b"no sie\n", headers={"Cache-Control": "max-age=1"}), Reset()),
})
ROUTES.update(AGED)

DOWN_PATH = "/down/sie"


class Env:
    pass


@pytest.fixture(scope="module")
def env(cairn_module):
    resolve_dates(ROUTES.values(), time.time())
    org = Origin(ROUTES).start()
    down = Origin({DOWN_PATH: Normal(200, b"sie down\n",
                                     headers={"Cache-Control": "max-age=1, stale-if-error=60"})}).start()
    cfg = proxy_config(org, route_extra={"cache": "c"},
                       upstream_extra={"read_timeout": "1s"},
                       server={"workers": 2, "access_log": "access.log"},
                       extra_routes=[{"name": "down", "match": {"path_prefix": "/down/"},
                                      "upstream": "d", "cache": "c"}])
    cfg["upstreams"]["d"] = upstream(down, read_timeout="1s")
    cfg["caches"] = {"c": {"memory": {"size": "64MiB", "max_object": "8MiB"},
                           "lock": {"wait_timeout": "10s", "age_timeout": "10s"}}}
    e = Env()
    e.c, e.org, e.down = cairn_module(cfg), org, down
    yield e
    org.stop()
    down.stop()


def n_origin(e, path, method=None, org=None):
    return sum(1 for q in (org or e.org).requests
               if q.target == path and (method is None or q.method == method))


def origin_reqs(e, path):
    return [q for q in e.org.requests if q.target == path]


def log_entries(e, path):
    p = e.c.tmp / "access.log"
    out = []
    for ln in (p.read_text().splitlines() if p.exists() else []):
        d = json.loads(ln)
        if d.get("path") == path:
            out.append(d)
    return out


def wait_log(e, path, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ents = log_entries(e, path)
        if len(ents) >= n:
            return ents
        time.sleep(0.02)
    raise AssertionError(f"access log has {len(log_entries(e, path))} lines for {path}, expected {n}")


# --------------------------------------------------------------------------------------
# storing and freshness


@pytest.mark.parametrize("case", STORE_CASES, ids=[c[0] for c in STORE_CASES])
def test_store_decision(env, case):
    cid, status, _, reqh, stored, detail = case
    path = f"/store/{cid}"
    body = f"body of {cid}\n".encode()
    r1 = get(env.c.port, path, headers=reqh)
    assert r1.status == status and r1.body == body, f"first response for {cid}: {r1!r}"
    if stored:
        assert cstatus(r1) == MISS_STORED.format(status), \
            f"{cid}: the miss should be stored; Cache-Status {cstatus(r1)!r}"
    else:
        details = detail if isinstance(detail, tuple) else (detail,)
        assert cstatus(r1) in [MISS_DETAIL.format(status, d) for d in details], \
            f"{cid}: expected 'not stored: {detail}'; Cache-Status {cstatus(r1)!r}"
    r2 = get(env.c.port, path, headers=reqh)
    assert r2.status == status and r2.body == body, f"second response for {cid}: {r2!r}"
    if stored:
        ttl = hit_ttl(r2, cid)
        a = age(r2)
        assert abs(ttl + a - LIFETIMES[cid]) <= 1, \
            f"{cid}: ttl {ttl} + Age {a} should be the freshness lifetime {LIFETIMES[cid]}"
        assert n_origin(env, path) == 1, f"{cid}: origin saw {n_origin(env, path)} requests, expected 1"
    else:
        assert "hit" not in cstatus(r2).split("; "), f"{cid}: an unstorable response was served " \
                                                     f"from the cache: {cstatus(r2)!r}"
        assert n_origin(env, path) == 2, f"{cid}: origin saw {n_origin(env, path)} requests, expected 2"


def test_too_large_not_stored_body_intact(env):
    for i in range(2):
        r = get(env.c.port, "/too-large", timeout=20)
        assert r.status == 200 and len(r.body) == len(BIG), f"response {i}: {len(r.body)} bytes"
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(BIG).digest(), f"response {i} corrupted"
        assert cstatus(r) == MISS_DETAIL.format(200, "too-large") or \
            (i == 1 and "hit-for-pass" in cstatus(r)), \
            f"response {i}: a 9MiB response (max_object 8MiB) should say detail=too-large; " \
            f"Cache-Status {cstatus(r)!r}"
    assert n_origin(env, "/too-large") == 2, "a 9MiB object (max_object 8MiB) was served from cache"


def test_heuristic_freshness_capped_at_one_day(env):
    get(env.c.port, "/heuristic-cap")
    r = get(env.c.port, "/heuristic-cap")
    ttl, a = hit_ttl(r, "heuristic-cap"), age(r)
    assert abs(ttl + a - 86400) <= 1, \
        f"Last-Modified 100 days old: heuristic lifetime should be capped at 86400, got ttl {ttl} + Age {a}"
    assert n_origin(env, "/heuristic-cap") == 1


def test_age_from_origin_counts(env):
    get(env.c.port, "/origin-age")
    r = get(env.c.port, "/origin-age")
    ttl, a = hit_ttl(r, "origin-age"), age(r)
    assert a >= 30, f"origin sent Age: 30, the hit says Age: {a}"
    assert ttl <= 30 and abs(ttl + a - 60) <= 1, f"max-age=60 with Age 30: ttl {ttl}, Age {a}"


@pytest.mark.parametrize("path", ["/invalid-expires", "/invalid-expires-etag"])
def test_invalid_expires_is_stale(env, path):
    r1 = get(env.c.port, path)
    r2 = get(env.c.port, path)
    assert r1.status == r2.status == 200
    assert "hit" not in cstatus(r2).split("; "), f"invalid Expires served as fresh: {cstatus(r2)!r}"
    assert n_origin(env, path) == 2, f"origin saw {n_origin(env, path)} requests; invalid Expires = stale"
    assert r2.body == f"{path} #2\n".encode(), r2


def test_validator_only_object_revalidated(env):
    """No explicit freshness but an ETag: stored stale, revalidated every time."""
    r1 = get(env.c.port, "/etag-only")
    assert r1.status == 200 and r1.body == b"etag only\n"
    r2 = get(env.c.port, "/etag-only")
    assert r2.status == 200 and r2.body == b"etag only\n", r2
    reqs = origin_reqs(env, "/etag-only")
    assert len(reqs) == 2, f"origin saw {len(reqs)} requests, expected 2 (fetch + revalidation)"
    assert reqs[1].header("If-None-Match") == '"e1"', \
        f"the revalidation did not carry If-None-Match: {reqs[1].headers}"
    assert REVAL_RE.match(cstatus(r2)), f"Cache-Status {cstatus(r2)!r}"


# --------------------------------------------------------------------------------------
# keys, Vary, HEAD


def test_key_host_case_insensitive(env):
    r1 = get(env.c.port, "/key-host", host="Example.COM")
    r2 = get(env.c.port, "/key-host", host="example.com")
    assert r1.body == r2.body == b"/key-host #1\n", (r1, r2)
    hit_ttl(r2, "same host in another case")
    r3 = get(env.c.port, "/key-host", host="other.example")
    assert r3.body == b"/key-host #2\n", f"another host shared the key: {r3!r}"
    assert n_origin(env, "/key-host") == 2


def test_key_path_and_query(env):
    port = env.c.port
    bodies = {t: get(port, t).body for t in ["/key-q?a=1", "/key-q?a=2", "/key-q", "/key-Q?a=1"]}
    again = {t: get(port, t) for t in bodies}
    for t, r in again.items():
        assert r.body == bodies[t], f"{t}: {r.body!r} != first {bodies[t]!r}"
        hit_ttl(r, t)
    assert len(set(bodies.values())) == 4, f"distinct targets shared a key: {bodies}"
    assert n_origin(env, "/key-q?a=1") == 1 and n_origin(env, "/key-q?a=2") == 1
    assert n_origin(env, "/key-q") == 1 and n_origin(env, "/key-Q?a=1") == 1


def test_vary_variants(env):
    port = env.c.port

    def fetch(lang):
        hs = {"Accept-Language": lang} if lang is not None else {}
        r = get(port, "/vary", headers=hs)
        assert r.status == 200, r
        seen = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"]).get("accept-language")
        assert seen == lang, f"Accept-Language {lang!r} got the variant for {seen!r}"
        return r

    for lang in ["en", "fr", None]:
        r = fetch(lang)
        assert cstatus(r) == MISS_STORED.format(200), f"{lang}: first request {cstatus(r)!r}"
    for lang in ["en", "fr", None, "fr", "en"]:
        hit_ttl(fetch(lang), f"variant {lang}")
    assert n_origin(env, "/vary") == 3, f"origin saw {n_origin(env, '/vary')} requests, expected 3 variants"


def test_vary_two_headers(env):
    port = env.c.port
    combos = [("en", "a"), ("en", "b"), ("fr", "a")]
    for lang, tenant in combos + combos:
        r = get(port, "/vary2", headers={"Accept-Language": lang, "X-Tenant": tenant})
        hs = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"])
        assert (hs.get("accept-language"), hs.get("x-tenant")) == (lang, tenant), \
            f"request {(lang, tenant)} got variant {(hs.get('accept-language'), hs.get('x-tenant'))}"
    assert n_origin(env, "/vary2") == 3


def test_head_miss_fetched_as_get_and_stored(env):
    port = env.c.port
    r = get(port, "/head", method="HEAD")
    assert r.status == 200 and r.body == b"", r
    assert r.header("Content-Length") == str(len(b"/head #1\n")), r
    reqs = origin_reqs(env, "/head")
    assert [q.method for q in reqs] == ["GET"], f"a HEAD miss reached the origin as {[q.method for q in reqs]}"
    g = get(port, "/head")
    assert g.body == b"/head #1\n", g
    hit_ttl(g, "GET after HEAD miss")
    h = get(port, "/head", method="HEAD")
    hit_ttl(h, "HEAD hit")
    assert h.header("Content-Length") == g.header("Content-Length")
    assert n_origin(env, "/head") == 1


def test_head_served_from_object_stored_by_get(env):
    port = env.c.port
    g = get(port, "/head2")
    with RawConn(port) as conn:
        h = conn.request("HEAD", "/head2")
        # the connection must stay usable: a HEAD response carrying a body would corrupt it
        g2 = conn.request("GET", "/head2")
    assert h.status == 200 and h.header("Content-Length") == str(len(g.body)), h
    hit_ttl(h, "HEAD")
    assert g2.body == g.body == b"/head2 #1\n", g2
    assert n_origin(env, "/head2") == 1


# --------------------------------------------------------------------------------------
# invalidation by unsafe methods


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_unsafe_method_invalidates(env, method):
    port = env.c.port
    path = f"/inv/{method.lower()}"
    assert get(port, path).body == f"{path} #1\n".encode()
    hit_ttl(get(port, path), "before the unsafe request")
    r = get(port, path, method=method, body=b"payload")
    assert r.status == 200 and r.body == f"{path} #2\n".encode(), r
    assert cstatus(r) == "cairn; fwd=method", f"{method}: Cache-Status {cstatus(r)!r}"
    assert origin_reqs(env, path)[-1].method == method and origin_reqs(env, path)[-1].body == b"payload"
    r2 = get(port, path)
    assert r2.body == f"{path} #3\n".encode(), f"after a {method} the old object was served: {r2!r}"
    assert cstatus(r2) == MISS_STORED.format(200), cstatus(r2)


def test_unsafe_method_invalidates_uri_with_query(env):
    port = env.c.port
    path = "/inv/q?x=1"
    other = "/inv/q?x=2"
    get(port, path), get(port, other)
    assert get(port, path, method="POST", body=b"p").body == f"{path} #2\n".encode()
    r = get(port, path)
    assert r.body == f"{path} #3\n".encode(), \
        f"POST {path} did not invalidate {path} (the query is part of the URI): {r!r}"
    assert n_origin(env, path, "GET") == 2, f"origin saw {n_origin(env, path, 'GET')} GETs for {path}"
    hit_ttl(get(port, other), f"POST {path} invalidated {other}")


def test_location_and_content_location_invalidated(env):
    port = env.c.port
    env.org.route("/inv/creator", Numbered({"Location": "/inv/loc",
                                            "Content-Location": "http://localhost/inv/cloc"}, status=201))
    for p in ["/inv/loc", "/inv/cloc", "/inv/unrelated"]:
        get(port, p)
        hit_ttl(get(port, p), p)
    r = get(port, "/inv/creator", method="POST", body=b"new")
    assert r.status == 201, r
    for p in ["/inv/loc", "/inv/cloc"]:
        r = get(port, p)
        assert "hit" not in cstatus(r).split("; "), f"{p} (named by Location/Content-Location) still cached"
        assert n_origin(env, p, "GET") == 2
    hit_ttl(get(port, "/inv/unrelated"), "an unrelated URI lost its object")


def test_cross_origin_location_not_invalidated(env):
    port = env.c.port
    env.org.route("/inv/xcreator", Numbered({"Location": "http://other.example/inv/xloc"}, status=201))
    get(port, "/inv/xloc", host="other.example")
    r = get(port, "/inv/xcreator", method="POST", body=b"x")
    assert r.status == 201
    r = get(port, "/inv/xloc", host="other.example")
    hit_ttl(r, "a Location on another host was invalidated by a request to localhost")
    assert n_origin(env, "/inv/xloc", "GET") == 1


def test_failed_unsafe_method_does_not_invalidate(env):
    port = env.c.port
    env.org.route("/inv/fail", Sequence(Numbered({"Cache-Control": "max-age=60"}),
                                        Normal(500, b"nope\n")))
    get(port, "/inv/fail")
    r = get(port, "/inv/fail", method="POST", body=b"x")
    assert r.status == 500, r
    r = get(port, "/inv/fail")
    hit_ttl(r, "a POST answered 500 invalidated the object")
    assert r.body == b"/inv/fail #1\n"


# --------------------------------------------------------------------------------------
# conditionals and ranges answered from the cache

COND = [
    ({"If-None-Match": '"c1"'}, 304),
    ({"If-None-Match": 'W/"c1"'}, 304),
    ({"If-None-Match": '"zz", "c1"'}, 304),
    ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": '"zz"'}, 200),
    ({"If-Modified-Since": http_date(NOW)}, 304),
    ({"If-Modified-Since": http_date(NOW - 7200)}, 200),
    ({"If-None-Match": '"zz"', "If-Modified-Since": http_date(NOW)}, 200),
    ({"If-Match": '"c1"'}, 200),
    ({"If-Match": '"zz"'}, 412),
    ({"If-Match": "*"}, 200),
    ({"If-Unmodified-Since": http_date(NOW - 7200)}, 412),
]


@pytest.mark.parametrize("hdrs,expect", COND, ids=[f"{i}-{e}" for i, (_, e) in enumerate(COND)])
def test_conditional_from_cache(env, hdrs, expect):
    port = env.c.port
    get(port, "/cond")
    before = n_origin(env, "/cond")
    assert before == 1
    r = get(port, "/cond", headers=hdrs)
    assert r.status == expect, f"{hdrs}: expected {expect}, got {r!r}"
    if expect == 304:
        assert r.body == b"" and r.header("ETag") == '"c1"', r
    elif expect == 200:
        assert r.body == b"conditional body\n", r
    assert n_origin(env, "/cond") == 1, f"{hdrs}: the conditional reached the origin"
    assert "hit" in cstatus(r).split("; "), f"{hdrs}: Cache-Status {cstatus(r)!r}"


FULL = bytes(range(256)) * 4
RANGES = [
    ("bytes=0-0", [(0, 0)]),
    ("bytes=10-19", [(10, 19)]),
    ("bytes=1000-", [(1000, 1023)]),
    ("bytes=-24", [(1000, 1023)]),
    ("bytes=1000-5000", [(1000, 1023)]),
]


@pytest.mark.parametrize("rng,parts", RANGES, ids=[r for r, _ in RANGES])
def test_single_range_from_cache(env, rng, parts):
    port = env.c.port
    assert get(port, "/range").body == FULL
    r = get(port, "/range", headers={"Range": rng})
    (a, b), = parts
    assert r.status == 206, f"{rng}: {r!r}"
    assert r.body == FULL[a:b + 1], f"{rng}: body {r.body[:40]!r}..."
    assert r.header("Content-Range") == f"bytes {a}-{b}/1024", r
    assert r.header("Content-Length") == str(b - a + 1)
    assert n_origin(env, "/range") == 1, "a range request reached the origin"


def parse_multipart(r):
    ct = r.header("Content-Type") or ""
    m = re.match(r'multipart/byteranges;\s*boundary="?([^";]+)"?', ct)
    assert m, f"not multipart/byteranges: {ct!r}"
    boundary = m.group(1).encode()
    parts = []
    for chunk in r.body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n"), f"part does not end with CRLF: {data[-10:]!r}"
        hdrs = dict(ln.split(": ", 1) for ln in head.decode().strip().split("\r\n"))
        parts.append((hdrs.get("Content-Range"), data[:-2]))
    return parts


def test_multiple_ranges_multipart(env):
    port = env.c.port
    get(port, "/range")
    r = get(port, "/range", headers={"Range": "bytes=0-9,20-29,-5"})
    assert r.status == 206, r
    assert r.header("Content-Length") == str(len(r.body))
    parts = parse_multipart(r)
    assert parts == [("bytes 0-9/1024", FULL[0:10]), ("bytes 20-29/1024", FULL[20:30]),
                     ("bytes 1019-1023/1024", FULL[1019:])], parts
    assert n_origin(env, "/range") == 1


def test_unsatisfiable_range_416(env):
    port = env.c.port
    get(port, "/range")
    r = get(port, "/range", headers={"Range": "bytes=5000-6000"})
    assert r.status == 416, r
    assert r.header("Content-Range") == "bytes */1024", r
    assert n_origin(env, "/range") == 1


def test_if_range_mismatch_gets_full_body(env):
    port = env.c.port
    get(port, "/range")
    r = get(port, "/range", headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert r.status == 200 and r.body == FULL, r
    r = get(port, "/range", headers={"Range": "bytes=0-9", "If-Range": '"r1"'})
    assert r.status == 206 and r.body == FULL[:10], r


def test_miss_does_not_forward_client_conditionals(env):
    port = env.c.port
    r = get(port, "/miss-cond", headers={"If-None-Match": '"m1"'})
    reqs = origin_reqs(env, "/miss-cond")
    assert len(reqs) == 1
    assert reqs[0].header("If-None-Match") is None, \
        f"the client's If-None-Match reached the origin on a miss: {reqs[0].headers}"
    # the answer to the client may be the full object (its condition was not sent upstream)
    # or a 304 evaluated against the fetched object
    assert (r.status, r.body) in ((304, b""), (200, b"miss with conditionals\n")), r
    full = get(port, "/miss-cond")
    assert full.status == 200 and full.body == b"miss with conditionals\n", full
    hit_ttl(full, "after the conditional miss")


def test_miss_does_not_forward_range(env):
    port = env.c.port
    r = get(port, "/miss-range", headers={"Range": "bytes=100-199"})
    reqs = origin_reqs(env, "/miss-range")
    assert len(reqs) == 1 and reqs[0].header("Range") is None, \
        f"the client's Range reached the origin on a miss: {reqs[0].headers}"
    assert (r.status, r.body) in ((206, FULL[100:200]), (200, FULL)), r
    full = get(port, "/miss-range")
    assert full.body == FULL, "the object stored after a range miss is not the full body"
    hit_ttl(full, "after the range miss")


# --------------------------------------------------------------------------------------
# request directives


def test_only_if_cached(env):
    port = env.c.port
    r = get(port, "/oic", headers={"Cache-Control": "only-if-cached"})
    assert r.status == 504, r
    assert cstatus(r) == "cairn; fwd=miss; detail=only-if-cached", cstatus(r)
    assert n_origin(env, "/oic") == 0, "only-if-cached reached the origin"
    assert get(port, "/oic").status == 200
    r = get(port, "/oic", headers={"Cache-Control": "only-if-cached"})
    assert r.status == 200 and r.body == b"only if cached\n", r
    hit_ttl(r, "only-if-cached on a stored object")
    assert n_origin(env, "/oic") == 1


def test_request_no_cache_revalidates(env):
    port = env.c.port
    get(port, "/req-no-cache")
    r = get(port, "/req-no-cache", headers={"Cache-Control": "no-cache"})
    assert r.status == 200 and r.body == b"no-cache\n", r
    reqs = origin_reqs(env, "/req-no-cache")
    assert len(reqs) == 2, "Cache-Control: no-cache was answered without the origin"
    assert reqs[1].header("If-None-Match") == '"n1"', f"no If-None-Match on revalidation: {reqs[1].headers}"
    assert REVAL_RE.match(cstatus(r)), cstatus(r)


def test_pragma_no_cache(env):
    port = env.c.port
    get(port, "/pragma")
    r = get(port, "/pragma", headers={"Pragma": "no-cache"})
    assert r.status == 200 and r.body == b"pragma\n"
    assert n_origin(env, "/pragma") == 2, "Pragma: no-cache (no Cache-Control) was answered from the cache"
    get(port, "/pragma-cc")
    r = get(port, "/pragma-cc", headers={"Pragma": "no-cache", "Cache-Control": "max-age=600"})
    hit_ttl(r, "Pragma must be ignored when Cache-Control is present")
    assert n_origin(env, "/pragma-cc") == 1


def test_min_fresh(env):
    port = env.c.port
    get(port, "/min-fresh")
    hit_ttl(get(port, "/min-fresh", headers={"Cache-Control": "min-fresh=60"}), "min-fresh=60 of 600")
    r = get(port, "/min-fresh", headers={"Cache-Control": "min-fresh=700"})
    assert r.body == b"/min-fresh #2\n", f"min-fresh=700 on a 600s object served from cache: {r!r}"
    assert n_origin(env, "/min-fresh") == 2


def test_access_log_cache_field(env):
    port = env.c.port
    get(port, "/log")
    get(port, "/log")
    get(port, "/log", method="POST", body=b"x")
    ents = wait_log(env, "/log", 3)
    got = [e["cache"] for e in ents]
    # an unsafe method is not a cache lookup: PASS, or "-" (no cache involvement)
    assert got[:2] == ["MISS", "HIT"] and got[2] in ("PASS", "-"), got


# --------------------------------------------------------------------------------------
# aged objects: Age, expiry, max-stale, revalidation, stale-if-error


@pytest.fixture(scope="module")
def aged(env):
    port = env.c.port
    for p in AGED:
        r = get(port, p)
        assert r.status == 200 and cstatus(r) == MISS_STORED.format(200), f"{p}: {r!r}"
    r = get(port, DOWN_PATH)
    assert r.status == 200 and cstatus(r) == MISS_STORED.format(200), r
    time.sleep(AGE_WAIT)
    return env


def test_age_grows(aged):
    r = get(aged.c.port, "/aged/age")
    ttl, a = hit_ttl(r, "aged"), age(r)
    assert a >= int(AGE_WAIT), f"Age {a} after {AGE_WAIT}s in the cache"
    assert abs(ttl + a - 60) <= 1, f"ttl {ttl} + Age {a} != 60"


def test_expired_refetched(aged):
    r = get(aged.c.port, "/aged/expired")
    assert r.body == b"/aged/expired #2\n", f"an expired object was served: {r!r}"
    assert cstatus(r) == "cairn; fwd=stale; fwd-status=200; stored", cstatus(r)
    assert n_origin(aged, "/aged/expired") == 2
    assert [e["cache"] for e in wait_log(aged, "/aged/expired", 2)] == ["MISS", "EXPIRED"]
    # max-age=1 can tick over between two requests (ages count whole seconds, and include the
    # response delay, RFC 9111 §4.2.3): max-stale makes the check about storage, not timing.
    r = get(aged.c.port, "/aged/expired", headers={"Cache-Control": "max-stale=5"})
    hit_ttl(r, "the refetched object")
    assert r.body == b"/aged/expired #2\n" and n_origin(aged, "/aged/expired") == 2, r


@pytest.mark.parametrize("path,directive,served_stale", [
    ("/aged/max-stale", "max-stale", True),
    ("/aged/max-stale-100", "max-stale=100", True),
    ("/aged/max-stale-1", "max-stale=1", False),
    ("/aged/must-revalidate", "max-stale", False),
    ("/aged/proxy-revalidate", "max-stale", False),
    ("/aged/s-maxage", "max-stale", False),
])
def test_max_stale(aged, path, directive, served_stale):
    r = get(aged.c.port, path, headers={"Cache-Control": directive})
    if served_stale:
        assert r.body == f"{path} #1\n".encode(), f"{directive}: stale object not served: {r!r}"
        ttl = hit_ttl(r, directive)
        assert ttl < 0, f"a stale object's Cache-Status ttl should be negative, got {ttl}"
        assert age(r) >= int(AGE_WAIT)
        assert n_origin(aged, path) == 1
        assert [e["cache"] for e in wait_log(aged, path, 2)] == ["MISS", "STALE"]
    else:
        assert r.body == f"{path} #2\n".encode(), f"{path} with {directive} was served stale: {r!r}"
        assert n_origin(aged, path) == 2


def test_request_max_age_on_aged_object(aged):
    port = aged.c.port
    hit_ttl(get(port, "/aged/req-max-age", headers={"Cache-Control": "max-age=30"}), "max-age=30")
    r = get(port, "/aged/req-max-age", headers={"Cache-Control": "max-age=1"})
    assert r.body == b"/aged/req-max-age #2\n", f"request max-age=1 on an object aged 3s: {r!r}"
    r = get(port, "/aged/req-max-age-0", headers={"Cache-Control": "max-age=0"})
    assert r.body == b"/aged/req-max-age-0 #2\n", f"request max-age=0 on an object aged 3s: {r!r}"


def test_revalidation_304_refreshes_headers_keeps_body(aged):
    port = aged.c.port
    v = ROUTES["/aged/reval-304"]
    v.headers = {"Cache-Control": "max-age=100", "X-Version": "2"}
    r = get(port, "/aged/reval-304")
    reqs = origin_reqs(aged, "/aged/reval-304")
    assert len(reqs) == 2 and reqs[1].header("If-None-Match") == '"v1"', \
        f"revalidation did not send If-None-Match: {[q.headers for q in reqs]}"
    assert v.sent_304 == 1
    assert r.status == 200 and r.body == b"revalidate me\n", r
    m = REVAL_RE.match(cstatus(r))
    assert m, f"Cache-Status after a 304: {cstatus(r)!r}"
    assert 95 <= int(m.group(1)) <= 100, f"ttl after refresh with max-age=100: {m.group(1)}"
    assert r.header("X-Version") == "2", f"the 304's headers did not refresh the object: {r!r}"
    r2 = get(port, "/aged/reval-304")
    ttl = hit_ttl(r2, "after revalidation")
    assert ttl > 90 and r2.header("X-Version") == "2" and r2.body == b"revalidate me\n", r2
    assert n_origin(aged, "/aged/reval-304") == 2
    assert [e["cache"] for e in wait_log(aged, "/aged/reval-304", 3)] == ["MISS", "REVALIDATED", "HIT"]


def test_revalidation_with_last_modified(aged):
    r = get(aged.c.port, "/aged/reval-ims")
    reqs = origin_reqs(aged, "/aged/reval-ims")
    assert len(reqs) == 2
    assert reqs[1].header("If-Modified-Since") == http_date(NOW - 7200), \
        f"revalidation did not send If-Modified-Since: {reqs[1].headers}"
    assert r.status == 200 and r.body == b"by date\n" and REVAL_RE.match(cstatus(r)), r


def test_revalidation_answered_200_replaces(aged):
    port = aged.c.port
    v = ROUTES["/aged/reval-200"]
    v.etag, v.body = '"v2"', b"version two\n"
    v.headers = {"Cache-Control": "max-age=100"}
    r = get(port, "/aged/reval-200")
    assert origin_reqs(aged, "/aged/reval-200")[1].header("If-None-Match") == '"v1"'
    assert r.status == 200 and r.body == b"version two\n", r
    assert cstatus(r) == "cairn; fwd=stale; fwd-status=200; stored", cstatus(r)
    r2 = get(port, "/aged/reval-200")
    hit_ttl(r2, "replaced object")
    assert r2.body == b"version two\n" and r2.header("ETag") == '"v2"', r2


# A reset or a timeout leaves the cache disconnected: within stale_if_unreachable (1h by
# default) the stale object answers whatever stale-if-error says (RFC 9111 §4.2.4), unless
# must-revalidate forbids it. test_cache_stale_on_error.py has the rest.
@pytest.mark.parametrize("path,expect_stale,expect_status", [
    ("/aged/sie-reset", True, 200),
    ("/aged/sie-timeout", True, 200),
    ("/aged/sie-window-over", True, 200),
    ("/aged/sie-must-revalidate", False, 502),
    ("/aged/no-sie", True, 200),
])
def test_stale_if_error(aged, path, expect_stale, expect_status):
    t0 = time.monotonic()
    r = get(aged.c.port, path, timeout=10)
    took = time.monotonic() - t0
    assert n_origin(aged, path) >= 2, "the origin was not asked before falling back"
    if expect_stale:
        assert r.status == 200 and r.body == ROUTES[path].behaviours[0].body, \
            f"origin unreachable: expected the stale object, got {r!r}"
        assert STALE_DOWN_RE.match(cstatus(r)), f"{path}: Cache-Status {cstatus(r)!r}"
        assert took < 5
    else:
        if path == "/aged/sie-timeout":
            expect_status = 504
        assert r.status == expect_status, f"{path}: expected {expect_status}, got {r!r}"
        assert ROUTES[path].behaviours[0].body not in r.body, f"{path}: stale body served: {r!r}"


def test_stale_if_error_origin_down(aged):
    aged.down.stop()
    r = get(aged.c.port, DOWN_PATH, timeout=10)
    assert r.status == 200 and r.body == b"sie down\n", f"origin down, stale-if-error=60: {r!r}"
    assert STALE_DOWN_RE.match(cstatus(r)), f"origin down: Cache-Status {cstatus(r)!r}"
