"""Seed 001: cache failures degrade to proxying; upstream failures never store partial objects.

- With CAIRN_FAULT_TIER=lookup / insert / lookup,insert (test builds), every cache lookup
  and/or store fails: every request is still answered correctly by proxying (status, headers,
  body bytes intact), store failures say `detail=tier-error` in Cache-Status, and the error
  log has a warning.
- An upstream failure in the middle of a body (reset, close, read timeout) aborts the
  client's response (no clean end: the framing is never completed) and stores nothing: the
  next request goes to the origin again. Coalesced waiters of that fetch are aborted too.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from helpers import ConnectionClosed, RawConn, get, proxy_config
from origins import Normal, blob
from origins.server import Sequence, Stream, Validating

MiB = 1 << 20


def cfg_for(org, workers=2, read_timeout="5s"):
    cfg = proxy_config(org, route_extra={"cache": "c"}, upstream_extra={"read_timeout": read_timeout},
                       server={"workers": workers, "access_log": "access.log"})
    cfg["caches"] = {"c": {"memory": {"size": "64MiB", "max_object": "8MiB"},
                           "lock": {"wait_timeout": "10s", "age_timeout": "10s"}}}
    return cfg


def n_origin(org, target):
    return sum(1 for q in org.requests if q.target == target)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def log_cache(c, path, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        p = c.tmp / "access.log"
        ents = [json.loads(ln) for ln in p.read_text().splitlines()] if p.exists() else []
        ents = [e for e in ents if e["path"] == path]
        if len(ents) >= n or time.monotonic() > deadline:
            return ents
        time.sleep(0.02)


def warnings(c):
    return [ln for ln in c.stderr_text().splitlines() if "[warn]" in ln]


BIG = blob(MiB + 12345, seed=1001)
FAULT_ROUTES = lambda: {  # noqa: E731
    "/fresh": Normal(200, b"fresh body\n", headers={"Cache-Control": "max-age=60", "X-Origin": "yes"}),
    "/big": Normal(200, BIG, headers={"Cache-Control": "max-age=60"},
                   content_type="application/octet-stream"),
    "/chunked": Stream(BIG, headers={"Cache-Control": "max-age=60"}, chunked=True, chunk_size=40000),
    "/notfound": Normal(404, b"missing\n", headers={"Cache-Control": "max-age=60"}),
    "/etag": Validating(b"with etag\n", etag='"t1"', headers={"Cache-Control": "max-age=60"}),
    "/slow": Stream(blob(300_000, seed=1002), headers={"Cache-Control": "max-age=60"},
                    delay_headers=0.5, chunk_size=30000, chunk_delay=0.02),
}


@pytest.mark.parametrize("fault", ["lookup", "insert", "lookup,insert"])
def test_fault_tier_requests_still_answered(cairn, origin, fault):
    org = origin(FAULT_ROUTES())
    c = cairn(cfg_for(org), env={"CAIRN_FAULT_TIER": fault})
    port = c.port
    for i in range(3):
        r = get(port, "/fresh")
        assert r.status == 200 and r.body == b"fresh body\n" and r.header("X-Origin") == "yes", \
            f"{fault}: request {i}: {r!r}"
        assert r.header("Cache-Control") == "max-age=60", r
        cs = r.header("Cache-Status") or ""
        assert "hit" not in cs.split("; "), f"{fault}: a failing tier produced a hit: {cs!r}"
        if "insert" in fault:
            assert cs == "cairn; fwd=uri-miss; fwd-status=200; detail=tier-error", \
                f"{fault}: request {i}: a failed store should say detail=tier-error, got {cs!r}"
    assert n_origin(org, "/fresh") == 3, \
        f"{fault}: origin saw {n_origin(org, '/fresh')} of 3 requests (nothing can be served from a failing tier)"

    for i in range(2):
        r = get(port, "/big", timeout=10)
        assert r.status == 200 and len(r.body) == len(BIG) and sha(r.body) == sha(BIG), \
            f"{fault}: /big request {i}: {len(r.body)} bytes"
        r = get(port, "/chunked", timeout=10)
        assert r.status == 200 and sha(r.body) == sha(BIG), f"{fault}: chunked /chunked request {i}"
    r = get(port, "/big", headers={"Range": "bytes=100-199"})
    assert (r.status, r.body) in ((206, BIG[100:200]), (200, BIG)), f"{fault}: range: {r!r}"
    r = get(port, "/notfound")
    assert r.status == 404 and r.body == b"missing\n", r
    r = get(port, "/etag", method="HEAD")
    assert r.status == 200 and r.header("ETag") == '"t1"' and r.header("Content-Length") == "10", r
    r = get(port, "/fresh", method="POST", body=b"data")
    assert r.status == 200 and r.body == b"fresh body\n" and org.requests[-1].method == "POST", r
    assert org.requests[-1].body == b"data"

    ws = warnings(c)
    assert ws, f"{fault}: no warning in the error log:\n{c.stderr_text()[-2000:]}"
    if "lookup" in fault:
        assert any("lookup" in w for w in ws), f"{fault}: no lookup warning: {ws[:5]}"
    if fault == "insert":
        assert any("store" in w or "insert" in w for w in ws), f"{fault}: no store warning: {ws[:5]}"
    assert c.alive(), f"cairn died with CAIRN_FAULT_TIER={fault}"


@pytest.mark.parametrize("fault", ["lookup", "insert", "lookup,insert"])
def test_fault_tier_access_log(cairn, origin, fault):
    """Each request whose lookup or store failed is logged with cache=ERROR."""
    org = origin(FAULT_ROUTES())
    c = cairn(cfg_for(org), env={"CAIRN_FAULT_TIER": fault})
    for _ in range(2):
        assert get(c.port, "/fresh").body == b"fresh body\n"
    got = [e["cache"] for e in log_cache(c, "/fresh", 2)]
    assert got == ["ERROR", "ERROR"], \
        f"CAIRN_FAULT_TIER={fault}: access log cache field {got}, expected ERROR for each request"


@pytest.mark.parametrize("fault", ["lookup", "insert"])
def test_fault_tier_concurrent_misses(cairn, origin, fault):
    """20 concurrent requests for one slow key with a failing tier: every client gets the
    whole body (coalesced waiters included, even when the store at the end fails)."""
    org = origin(FAULT_ROUTES())
    c = cairn(cfg_for(org), env={"CAIRN_FAULT_TIER": fault})
    expect = org.routes["/slow"].body
    out, errs = [None] * 20, []

    def run(i):
        try:
            out[i] = get(c.port, "/slow", timeout=10)
        except Exception as e:  # noqa: BLE001
            errs.append(f"client {i}: {e!r}")

    ts = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    assert not errs, errs[:5]
    bad = [i for i, r in enumerate(out) if r is None or r.status != 200 or sha(r.body) != sha(expect)]
    assert not bad, f"{fault}: clients {bad} did not get the full body: {[out[i] for i in bad[:3]]}"
    time.sleep(0.2)
    n = len(org.requests)
    r = get(c.port, "/slow", timeout=10)
    assert r.status == 200 and sha(r.body) == sha(expect)
    assert len(org.requests) == n + 1, f"{fault}: a request after the fill was not proxied to the origin"


# --------------------------------------------------------------------------------------
# upstream failure in the middle of a body


BODY = blob(512 * 1024, seed=1003)


def broken_then_good(kind):
    hs = {"Cache-Control": "max-age=60", "ETag": '"b1"'}
    good = Stream(BODY, headers=hs, chunk_size=65536)
    if kind == "reset":
        bad = Stream(BODY, headers=hs, chunk_size=65536, abort_after=200_000, rst=True)
    elif kind == "close":
        bad = Stream(BODY, headers=hs, chunk_size=65536, abort_after=200_000, rst=False)
    elif kind == "chunked-reset":
        bad = Stream(BODY, headers=hs, chunk_size=65536, chunked=True, abort_after=200_000, rst=True)
        good = Stream(BODY, headers=hs, chunk_size=65536, chunked=True)
    elif kind == "chunked-close":
        bad = Stream(BODY, headers=hs, chunk_size=65536, chunked=True, abort_after=200_000, rst=False)
        good = Stream(BODY, headers=hs, chunk_size=65536, chunked=True)
    elif kind == "stall":  # read_timeout (1s) in the middle of the body
        bad = Stream(BODY, headers=hs, chunk_size=100_000, chunk_delay=3.0)
    else:
        raise ValueError(kind)
    return Sequence(bad, good), bad, good


def expect_aborted(conn, what):
    """The response head is a 200, but the body never ends cleanly."""
    try:
        r = conn.read_response(timeout=8)
    except ConnectionClosed as e:
        return str(e)
    raise AssertionError(f"{what}: the client got a complete response ({len(r.body)} of "
                         f"{len(BODY)} bytes, status {r.status}) although the origin failed mid-body")


@pytest.mark.parametrize("kind", ["reset", "close", "chunked-reset", "chunked-close", "stall"])
def test_mid_body_failure_aborts_and_stores_nothing(cairn, origin, kind):
    seq, bad, good = broken_then_good(kind)
    org = origin({"/mid": seq})
    c = cairn(cfg_for(org, read_timeout="1s"))
    with RawConn(c.port, timeout=10) as conn:
        conn.send(b"GET /mid HTTP/1.1\r\nHost: localhost\r\n\r\n")
        how = expect_aborted(conn, kind)
    assert "closed" in how, how
    time.sleep(0.1)
    r = get(c.port, "/mid", timeout=10)
    assert r.status == 200 and sha(r.body) == sha(BODY), f"{kind}: second request: {len(r.body)} bytes"
    assert n_origin(org, "/mid") == 2, \
        f"{kind}: the second request was answered from a partial object stored after the failure " \
        f"(origin saw {n_origin(org, '/mid')} requests, Cache-Status {r.header('Cache-Status')!r})"
    assert r.header("Cache-Status") == "cairn; fwd=uri-miss; fwd-status=200; stored", r.header("Cache-Status")
    r = get(c.port, "/mid", timeout=10)
    assert (r.header("Cache-Status") or "").startswith("cairn; hit;") and sha(r.body) == sha(BODY)
    assert n_origin(org, "/mid") == 2


def test_mid_body_failure_aborts_coalesced_waiters(cairn, origin):
    hs = {"Cache-Control": "max-age=60"}
    bad = Stream(BODY, headers=hs, delay_headers=0.5, chunk_size=50_000, chunk_delay=0.02,
                 abort_after=250_000)
    good = Stream(BODY, headers=hs)
    org = origin({"/midw": Sequence(bad, good)})
    c = cairn(cfg_for(org))
    conns = [RawConn(c.port, timeout=10) for _ in range(6)]
    conns[0].send(b"GET /midw HTTP/1.1\r\nHost: localhost\r\n\r\n")
    org.wait_requests(1, timeout=3)
    for k in conns[1:]:
        k.send(b"GET /midw HTTP/1.1\r\nHost: localhost\r\n\r\n")
    results = []
    for i, k in enumerate(conns):
        try:
            r = k.read_response(timeout=8)
            results.append(f"client {i}: complete {r.status} with {len(r.body)} bytes")
        except ConnectionClosed:
            results.append(None)
        except OSError as e:
            results.append(f"client {i}: {e!r} (connection left open)")
        k.close()
    assert results == [None] * 6, \
        f"every client of a fetch that failed mid-body must see an aborted response: {results}"
    assert n_origin(org, "/midw") == 1
    r = get(c.port, "/midw", timeout=10)
    assert r.status == 200 and sha(r.body) == sha(BODY)
    assert n_origin(org, "/midw") == 2, "a partial object was stored after the mid-body failure"
