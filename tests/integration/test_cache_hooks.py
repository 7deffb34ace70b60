"""The cache hooks of the C API, through examples/cache_hooks.c ($CAIRN_BUILD/example_cache_hooks,
default build-asan): one caching route whose program

  cache_key                 appends the request's X-Tenant value to the key (cairn_cache_key_add)
  cache_hit_filter          sets m->expire for a request with X-Force-Revalidate
  upstream_response_filter  cairn_resp_set_cache(resp, false, -1) for X-No-Cache-Please,
                            cairn_resp_set_cache(resp, true, 7) for X-Cache-7
  request_filter            cairn_req_allow_stale(req, false) for a request with X-No-Stale

Each test checks what the client (status, body, Cache-Status, Age) and the origin (requests,
conditionals) saw, then stops the program with SIGTERM: it must exit 0 within 5 s without a
sanitizer report.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from helpers import get
from origins import Normal, Reset, Sequence
from origins.server import Numbered, Validating

from example_proc import Example

HIT_RE = re.compile(r"^cairn; hit; ttl=(-?\d+)$")
MISS_STORED = "cairn; fwd=uri-miss; fwd-status=200; stored"
MAX_AGE = {"Cache-Control": "max-age=60"}


class Program(Example):
    """example_cache_hooks running on a free port in front of @origin_addr."""

    def __init__(self, origin_addr, tmp: Path):
        super().__init__("cache_hooks", [origin_addr], tmp)

    def get(self, target, headers=None):
        return get(self.port, target, headers=headers)


@pytest.fixture
def program(tmp_path, origin):
    """program(routes) -> (Program, origin): a recording origin and the example in front."""
    started = []

    def start(routes, default=None):
        org = origin(routes, default=default or Numbered(headers=MAX_AGE))
        p = Program(org.address, tmp_path).start()
        started.append(p)
        return p, org

    yield start
    for p in started:
        p.kill()


def cstatus(r):
    return r.header("Cache-Status") or ""


def hit_ttl(r, what):
    m = HIT_RE.match(cstatus(r))
    assert r.status == 200 and m, \
        f"{what}: expected a cache hit, got {r.status} Cache-Status {cstatus(r)!r}; {r!r}"
    return int(m.group(1))


def age(r):
    a = r.header("Age")
    assert a is not None and a.isdigit(), f"a hit without a valid Age: {r!r}"
    return int(a)


def count(org, target):
    return sum(1 for q in org.requests if q.target == target)


# --------------------------------------------------------------------------------------
# cache_key: X-Tenant


def test_cache_key_hook_adds_tenant(program):
    p, org = program({})
    first = {}
    for tenant in ("acme", "globex", None):
        hdrs = {"X-Tenant": tenant} if tenant else {}
        r = p.get("/t", hdrs)
        assert cstatus(r) == MISS_STORED, f"first request of tenant {tenant}: {cstatus(r)!r}"
        first[tenant] = r.body
    assert sorted(first.values()) == [b"/t #1\n", b"/t #2\n", b"/t #3\n"], first
    assert count(org, "/t") == 3, "each tenant (and no tenant) should have its own object"
    for tenant in ("acme", "globex", None, "acme"):
        hdrs = {"X-Tenant": tenant} if tenant else {}
        r = p.get("/t", hdrs)
        hit_ttl(r, f"tenant {tenant} again")
        assert r.body == first[tenant], \
            f"tenant {tenant} got {r.body!r}, its own object is {first[tenant]!r}"
    assert count(org, "/t") == 3
    # The tenant is added to the key, not to what is sent: the origin saw the plain path.
    assert {q.target for q in org.requests} == {"/t"}
    # The tenant value is compared exactly.
    r = p.get("/t", {"X-Tenant": "acme2"})
    assert r.body == b"/t #4\n" and cstatus(r) == MISS_STORED, r
    p.stop()


# --------------------------------------------------------------------------------------
# cache_hit_filter: X-Force-Revalidate


def test_cache_hit_filter_expire_revalidates(program):
    v = Validating(body=b"version one\n", etag='"v1"', headers=MAX_AGE)
    p, org = program({"/v": v})
    assert cstatus(p.get("/v")) == MISS_STORED
    hit_ttl(p.get("/v"), "plain GET of a fresh object")
    assert count(org, "/v") == 1

    r = p.get("/v", {"X-Force-Revalidate": "1"})
    assert (r.status, r.body) == (200, b"version one\n"), r
    assert count(org, "/v") == 2, "m->expire = true did not send the request to the origin"
    assert org.requests[-1].header("If-None-Match") == '"v1"', \
        f"the forced revalidation was not conditional: {org.requests[-1].headers}"
    assert cstatus(r).startswith("cairn; fwd=stale; fwd-status=304"), cstatus(r)
    assert v.sent_304 == 1
    hit_ttl(p.get("/v"), "plain GET after the revalidation")
    assert count(org, "/v") == 2

    # The origin changed: the forced revalidation brings the new version, which is stored.
    v.body, v.etag = b"version two\n", '"v2"'
    r = p.get("/v", {"X-Force-Revalidate": "yes"})
    assert (r.status, r.body) == (200, b"version two\n"), r
    r = p.get("/v")
    hit_ttl(r, "plain GET after the forced refetch")
    assert r.body == b"version two\n"
    assert count(org, "/v") == 3
    p.stop()


# --------------------------------------------------------------------------------------
# upstream_response_filter: cairn_resp_set_cache


def test_set_cache_false_never_stores(program):
    p, org = program({"/n": Numbered(headers={**MAX_AGE, "X-No-Cache-Please": "1"})})
    for i in range(1, 4):
        r = p.get("/n")
        assert (r.status, r.body) == (200, f"/n #{i}\n".encode()), \
            f"request {i}: a response the hook declared uncacheable was served from the cache: {r!r}"
        assert not HIT_RE.match(cstatus(r)) and "stored" not in cstatus(r).split("; "), cstatus(r)
    assert count(org, "/n") == 3
    p.stop()


@pytest.mark.parametrize("headers", [
    {"Cache-Control": "no-store"},
    {"Cache-Control": "private"},
    {},
    {"Cache-Control": "max-age=100"},
], ids=["no-store", "private", "no-cache-headers", "max-age-100"])
def test_set_cache_true_ttl_7(program, headers):
    p, org = program({"/s7": Numbered(headers={**headers, "X-Cache-7": "1"})})
    r = p.get("/s7")
    assert (r.status, r.body) == (200, b"/s7 #1\n"), r
    assert cstatus(r) == MISS_STORED, \
        f"cairn_resp_set_cache(resp, true, 7) with {headers}: not stored ({cstatus(r)!r})"
    r = p.get("/s7")
    ttl, a = hit_ttl(r, f"second GET ({headers})"), age(r)
    assert r.body == b"/s7 #1\n"
    assert ttl + a == 7, f"cairn_resp_set_cache(resp, true, 7): lifetime {ttl} + {a}, expected 7"
    assert count(org, "/s7") == 1
    p.stop()


def test_set_cache_ttl_expires(program):
    p, org = program({"/e7": Numbered(headers={"Cache-Control": "max-age=600", "X-Cache-7": "1"})})
    p.get("/e7")
    hit_ttl(p.get("/e7"), "right after storing")
    time.sleep(7.3)
    r = p.get("/e7")
    assert r.body == b"/e7 #2\n", \
        f"7.3 s after storing with ttl 7 (max-age=600 overridden), the object should be stale: {r!r}"
    assert count(org, "/e7") == 2
    p.stop()


# --------------------------------------------------------------------------------------
# request_filter: cairn_req_allow_stale(req, false)


def test_allow_stale_false(program):
    swr = {"Cache-Control": "max-age=1, stale-while-revalidate=60"}
    sie = {"Cache-Control": "max-age=1, stale-if-error=60"}
    p, org = program({
        "/swr/no": Numbered(headers=swr),
        "/swr/yes": Numbered(headers=swr),
        "/sie/no": Sequence(Normal(body=b"sie no\n", headers=sie), Reset()),
        "/sie/yes": Sequence(Normal(body=b"sie yes\n", headers=sie), Reset()),
    })
    for t in ("/swr/no", "/swr/yes", "/sie/no", "/sie/yes"):
        assert cstatus(p.get(t)) == MISS_STORED, t
    time.sleep(2.2)

    # Control: without X-No-Stale the stale object is served.
    r = p.get("/swr/yes")
    assert (r.status, r.body) == (200, b"/swr/yes #1\n"), \
        f"stale-while-revalidate: the stale object should be served at once: {r!r}"
    r = p.get("/sie/yes")
    assert (r.status, r.body) == (200, b"sie yes\n"), \
        f"stale-if-error: the stale object should be served when the origin fails: {r!r}"

    # X-No-Stale: the origin answers (or its failure shows).
    r = p.get("/swr/no", {"X-No-Stale": "1"})
    assert (r.status, r.body) == (200, b"/swr/no #2\n"), \
        f"cairn_req_allow_stale(false): stale-while-revalidate content was served: {r!r} " \
        f"({cstatus(r)})"
    r = p.get("/sie/no", {"X-No-Stale": "1"})
    assert r.status in (502, 504) and r.body != b"sie no\n", \
        f"cairn_req_allow_stale(false): stale-if-error content was served: {r!r} ({cstatus(r)})"
    # Others still get stale content for /sie/no.
    r = p.get("/sie/no")
    assert (r.status, r.body) == (200, b"sie no\n"), r
    p.stop()
