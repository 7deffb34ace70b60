"""Shared-cache correctness (RFC 9111) on a proxied route with a memory cache: keys,
HEAD, Vary, Authorization, big objects, ranges, concurrency."""
import hashlib
import json
import threading

import pytest

from helpers import RawConn, get, proxy_config
from origins import Blob, Func, Normal


def versioned(cache_control="public, max-age=60", extra=None):
    """Each response carries a counter, so a cached answer is recognisable."""
    n = {"v": 0}

    def fn(origin, req, sock):
        n["v"] += 1
        body = json.dumps({"v": n["v"], "target": req.target, "host": req.header("host"),
                           "ae": req.header("accept-encoding")}).encode()
        hs = [("Content-Type", "application/json"), ("Cache-Control", cache_control),
              ("Content-Length", str(len(body)))] + list((extra or {}).items())
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
        sock.sendall(head.encode() + (b"" if req.method == "HEAD" else body))
        return True
    return Func(fn)


@pytest.fixture
def cached(cairn, origin):
    big = Blob(200_000, seed=5, headers={"Cache-Control": "public, max-age=60"})
    org = origin({
        "/v": versioned(),
        "/vary": versioned(extra={"Vary": "Accept-Encoding"}),
        "/auth": versioned(cache_control="max-age=60"),
        "/big": big,
        "/ranged": Normal(200, bytes(range(256)) * 4, headers={"Cache-Control": "public, max-age=60"}),
    })
    cfg = proxy_config(org, route_extra={"cache": "mem"}, server={"workers": 2})
    cfg["caches"] = {"mem": {"memory": {"size": "8MiB", "max_object": "64KiB"}}}
    c = cairn(cfg)
    c.big = big
    return c, org


def v(r):
    assert r.status == 200, r
    return json.loads(r.body)


def hits(org, path):
    return sum(1 for q in org.requests if q.path == path)


def test_query_is_part_of_the_key(cached):
    c, org = cached
    a, b = v(get(c.port, "/v?a=1")), v(get(c.port, "/v?a=2"))
    assert a["target"] == "/v?a=1" and b["target"] == "/v?a=2", f"query ignored by the cache key: {a} {b}"
    assert v(get(c.port, "/v?a=1"))["v"] == a["v"], "second /v?a=1 not served from cache"


def test_host_is_part_of_the_key(cached):
    c, org = cached
    a = v(get(c.port, "/v", host="one.test"))
    b = v(get(c.port, "/v", host="two.test"))
    assert (a["host"], b["host"]) == ("one.test", "two.test"), \
        f"a response for one host was served to another: {a} {b}"


def test_head_does_not_poison_get(cached):
    c, org = cached
    with RawConn(c.port) as s:
        h = s.request("HEAD", "/v?head")
        assert h.status == 200, h
        g = s.request("GET", "/v?head")
    assert g.status == 200 and g.body, f"GET after HEAD returned an empty body from the cache: {g}"
    assert json.loads(g.body)["target"] == "/v?head"


def test_vary_respected(cached):
    c, org = cached
    a = v(get(c.port, "/vary", headers={"Accept-Encoding": "gzip"}))
    b = v(get(c.port, "/vary", headers={"Accept-Encoding": "br"}))
    assert a["ae"] == "gzip" and b["ae"] == "br", \
        f"Vary: Accept-Encoding ignored, one variant served for the other: {a} {b}"
    a2 = v(get(c.port, "/vary", headers={"Accept-Encoding": "gzip"}))
    assert a2["ae"] == "gzip", a2


def test_authorization_not_served_from_shared_cache(cached):
    c, org = cached
    v(get(c.port, "/auth", headers={"Authorization": "Bearer alice"}))
    v(get(c.port, "/auth", headers={"Authorization": "Bearer bob"}))
    assert hits(org, "/auth") == 2, \
        "a response to an Authorization request (no public/s-maxage) was stored and reused"


def test_post_not_cached(cached):
    c, org = cached
    v(get(c.port, "/v?p"))
    r = get(c.port, "/v?p", method="POST", body=b"x")
    assert r.status == 200
    assert org.requests[-1].method == "POST", "a POST was answered from the cache"


def test_object_over_max_object_served_whole(cached):
    c, org = cached
    for _ in range(2):
        r = get(c.port, "/big", timeout=10)
        assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == c.big.sha256, \
            f"an object over max_object was corrupted ({len(r.body)} bytes)"
    assert hits(org, "/big") == 2, "an object over max_object (64KiB) was cached"


def test_range_on_cached_object(cached):
    c, org = cached
    full = bytes(range(256)) * 4
    assert get(c.port, "/ranged").body == full
    r = get(c.port, "/ranged", headers={"Range": "bytes=10-19"})
    assert r.status in (200, 206), r
    if r.status == 206:
        assert r.body == full[10:20] and r.header("Content-Range") == "bytes 10-19/1024", r
    else:
        assert r.body == full, r


def test_concurrent_misses_all_correct(cached):
    c, org = cached
    out, errs = [], []

    def run():
        try:
            out.append(v(get(c.port, "/v?concurrent", timeout=10))["target"])
        except Exception as e:  # noqa: BLE001
            errs.append(repr(e))

    ts = [threading.Thread(target=run) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    assert not errs, errs[:3]
    assert out == ["/v?concurrent"] * 20, out
