"""Upstream options from docs/config.md and docs/proxy.md: trusted_proxies and forwarding
headers, weights, keepalive_pool / keepalive_idle, max_in_flight queue (503 +
Retry-After)."""
import json
import threading
import time

from helpers import RawConn, get, proxy_config
from origins import Echo, Func, Normal


def fwd(r):
    assert r.status == 200, r
    return {k.lower(): v for k, v in json.loads(r.body)["headers"]}


def test_untrusted_client_forwarding_headers_replaced(cairn, origin):
    org = origin(default=Echo())
    c = cairn(proxy_config(org, server={"trusted_proxies": ["10.0.0.0/8"]}))
    h = fwd(get(c.port, "/", host="real.test", headers={
        "X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.test"}))
    assert h.get("x-forwarded-for") == "127.0.0.1", \
        f"an untrusted client's X-Forwarded-For must be replaced: {h.get('x-forwarded-for')!r}"
    assert h.get("x-forwarded-proto") == "http", h
    assert h.get("x-forwarded-host") == "real.test", h


def test_trusted_client_forwarding_headers_kept(cairn, origin):
    org = origin(default=Echo())
    c = cairn(proxy_config(org))  # default trusted_proxies: loopback
    h = fwd(get(c.port, "/", host="edge.test", headers={
        "X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "public.test"}))
    assert h.get("x-forwarded-for", "").replace(" ", "") == "203.0.113.66,127.0.0.1", h
    assert h.get("x-forwarded-proto") == "https", h
    assert h.get("x-forwarded-host") == "public.test", h


def test_weighted_round_robin(cairn, origin):
    a = origin({"/w": Normal(200, b"a")})
    b = origin({"/w": Normal(200, b"b")})
    cfg = proxy_config(a, server={"workers": 1})
    cfg["upstreams"]["o"]["peers"] = [{"address": a.address, "weight": 3},
                                      {"address": b.address, "weight": 1}]
    c = cairn(cfg)
    with RawConn(c.port) as s:
        bodies = [s.request("GET", "/w").body for _ in range(40)]
    na = bodies.count(b"a")
    assert 28 <= na <= 32, f"weights 3:1 gave {na} of 40 requests to the heavy peer"


def test_keepalive_pool_zero_disables_reuse(cairn, origin):
    org = origin({"/k": Normal(200, b"k")})
    c = cairn(proxy_config(org, upstream_extra={"keepalive_pool": 0}))
    with RawConn(c.port) as s:
        for _ in range(4):
            assert s.request("GET", "/k").status == 200
    assert org.connections == 4, f"keepalive_pool: 0 still reused connections ({org.connections})"


def test_keepalive_idle_expires(cairn, origin):
    org = origin({"/k": Normal(200, b"k")})
    c = cairn(proxy_config(org, upstream_extra={"keepalive_idle": "300ms"}))
    with RawConn(c.port) as s:
        assert s.request("GET", "/k").status == 200
        assert s.request("GET", "/k").status == 200
        assert org.connections == 1
        time.sleep(1.0)
        assert s.request("GET", "/k").status == 200
    assert org.connections == 2, f"a connection idle past keepalive_idle was reused ({org.connections})"


def test_max_in_flight_queue_timeout_503(cairn, origin):
    """docs/cache.md: fill leaders of cacheable misses take a slot; a miss that waits longer
    than queue_timeout gets 503 with Retry-After."""
    def slow_cacheable(o, req, sock):
        if o.sleep(2.0):
            return False
        sock.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nslow\n")
        return True

    org = origin({"/slow*": Func(slow_cacheable)})
    cfg = proxy_config(org, route_extra={"cache": "m"}, upstream_extra={
        "max_in_flight": 1, "queue_timeout": "500ms", "retry_after": 7, "read_timeout": "5s"})
    cfg["caches"] = {"m": {"memory": {"size": "1MiB"}}}
    c = cairn(cfg)
    first = {}

    def run():
        first["r"] = get(c.port, "/slow1", timeout=6)

    t = threading.Thread(target=run)
    t.start()
    org.wait_requests(1, timeout=3)
    t0 = time.monotonic()
    r = get(c.port, "/slow2", timeout=5)
    dt = time.monotonic() - t0
    t.join(6)
    assert r.status == 503, f"a miss queued past queue_timeout must get 503: {r}"
    assert r.header("Retry-After") == "7", r
    assert r.body, r
    assert 0.4 <= dt <= 1.5, f"503 after {dt:.2f}s, expected ~0.5s"
    assert first["r"].status == 200 and first["r"].body == b"slow\n", first
    assert [q.path for q in org.requests] == ["/slow1"], "the queued request reached the origin"
