"""What cairn reports (access log, Cache-Status, /metrics, /upstreams, the error log, the
docs) must say what happened, against the real binary and real origins.

- the access log's lock_wait_ms is the wait of a coalesced waiter, the same wait that
  cairn_cache_lock_wait_seconds observes; it ends when the waiter is answered (the fill's
  head), not when the body has streamed;
- a first Range request for an uncached key (range: fetch_full) is a miss (Cache-Status,
  access log, cairn_cache_requests_total, one tier lookup); the next one is a hit;
- responses cairn makes itself (queue timeout 503, connect failure 502, timeout 504) carry no
  fwd-status in Cache-Status: the origin never answered; detail says why;
- /upstreams queue counters and cairn_origin_fetch_queue_wait_seconds count the same
  population (requests that waited in the queue), by outcome; immediate grants apart;
- pass_takes_slot: true limits requests on routes without a cache too;
- docs/operations.md lists every admin endpoint with its methods;
- a unix-socket peer whose path does not exist is logged as such, not "connection refused".
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import RawConn, build_request, free_port, get, proxy_config, wait_for
from origins import Func, Normal, Slow, Stream
from test_backpressure import Client, Concurrency, scrape, wait_gauges
from test_metrics_admin import value

ROOT = Path(__file__).resolve().parents[2]
LOCK_WAIT = "cairn_cache_lock_wait_seconds"
QWAIT = "cairn_origin_fetch_queue_wait_seconds"


def log_entries(c, path=None):
    """Access log lines of client requests (a background fetch logs its own "BACKGROUND")."""
    out = []
    for ln in c.access_log_lines():
        try:
            d = json.loads(ln)
        except ValueError:
            continue
        if (path is None or d.get("path") == path) and d.get("cache") != "BACKGROUND":
            out.append(d)
    return out


def wait_log(c, path, n, timeout=5.0):
    wait_for(lambda: len(log_entries(c, path)) >= n, timeout=timeout,
             msg=f"{n} access log lines for {path}")
    return log_entries(c, path)


def cache_cfg(org, upstream_extra=None, workers=2, cache_extra=None):
    cfg = proxy_config(org, route_extra={"cache": "c"},
                       upstream_extra={"read_timeout": "5s", **(upstream_extra or {})},
                       server={"workers": workers, "header_timeout": "10s"})
    cfg["caches"] = {"c": {"memory": {"size": "16MiB"}, **(cache_extra or {})}}
    return cfg


def delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def params(cache_status):
    """Cache-Status "cairn; a; b=c" -> {"a": True, "b": "c"} (the first member only)."""
    parts = [p.strip() for p in (cache_status or "").split(",")[0].split(";")]
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k] = v if _ else True
    return out


# --------------------------------------------------------------------------------------
# 1. lock_wait_ms


def test_access_log_lock_wait_is_the_coalesced_wait(cairn, origin):
    def handle(o, req, sock):
        if o.sleep(0.8):
            return False
        body = b"waited for\n"
        sock.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        return True
    org = origin({"/w": Func(handle)})
    c = cairn(cache_cfg(org))
    before = scrape(c)
    leader = Client(c.port, "/w").send()
    org.wait_requests(1, timeout=3)
    time.sleep(0.2)
    waiter = Client(c.port, "/w").send()
    assert leader.result().status == 200 and waiter.result().status == 200
    entries = wait_log(c, "/w", 2)
    by_cache = {e["cache"]: e for e in entries}
    assert set(by_cache) == {"MISS", "COALESCED"}, entries
    lead, wait = by_cache["MISS"], by_cache["COALESCED"]
    assert lead["lock_wait_ms"] == 0, lead
    # the waiter came ~0.2 s after the leader reached the origin, which answers after 0.8 s
    assert 350 <= wait["lock_wait_ms"] <= wait["duration_ms"] + 1, wait
    assert len(org.requests) == 1

    def check(after):
        n = delta(before, after, LOCK_WAIT + "_count")
        s = delta(before, after, LOCK_WAIT + "_sum")
        assert n == 1, n
        assert abs(s * 1000 - wait["lock_wait_ms"]) < 20, (s, wait)

    wait_for(lambda: _ok(check, scrape(c)), timeout=3, msg="the lock-wait histogram")


def _ok(check, fams):
    try:
        check(fams)
        return True
    except AssertionError:
        return False


def test_lock_wait_ends_when_the_waiter_is_answered(cairn, origin):
    """The head comes after 0.5 s, the body over ~1 s more: a waiter waited for the head,
    the streaming that follows is not lock wait."""
    st = Stream(b"x" * 40000, headers={"Cache-Control": "max-age=60"}, delay_headers=0.5,
                chunk_size=4000, chunk_delay=0.1)
    org = origin({"/s": st})
    c = cairn(cache_cfg(org))
    leader = Client(c.port, "/s").send()
    org.wait_requests(1, timeout=3)
    waiter = Client(c.port, "/s").send()
    assert leader.result().status == 200 and waiter.result().status == 200
    e = [x for x in wait_log(c, "/s", 2) if x["cache"] == "COALESCED"]
    assert len(e) == 1, log_entries(c, "/s")
    assert e[0]["duration_ms"] >= 1200, e[0]
    assert 250 <= e[0]["lock_wait_ms"] <= 800, e[0]


# --------------------------------------------------------------------------------------
# 2. a first Range request is a miss


def test_first_range_request_is_a_miss_then_hit(cairn, origin):
    body = b"0123456789abcdefghij"
    org = origin({"/r": Normal(200, body, headers={"Cache-Control": "max-age=60"})})
    c = cairn(cache_cfg(org, workers=1))
    b0 = scrape(c)
    r1 = get(c.port, "/r", headers={"Range": "bytes=2-5"})
    assert r1.status == 206 and r1.body == b"2345", r1
    cs1 = r1.header("Cache-Status")
    p1 = params(cs1)
    assert "hit" not in p1, f"the first Range request went to the origin: {cs1}"
    assert p1.get("fwd") in ("miss", "uri-miss"), cs1
    assert p1.get("fwd-status") == "200", cs1  # the origin answered the full fetch with 200
    assert len(org.requests) == 1
    assert "range" not in {k.lower() for k, _ in org.requests[0].headers}, org.requests[0].headers
    wait_log(c, "/r", 1)
    time.sleep(0.1)
    b1 = scrape(c)
    assert delta(b0, b1, "cairn_cache_requests_total", cache="c", status="miss") == 1
    assert delta(b0, b1, "cairn_cache_requests_total", cache="c", status="hit") == 0
    assert delta(b0, b1, "cairn_cache_lookups_total", cache="c", tier="memory", result="miss") == 1
    assert delta(b0, b1, "cairn_cache_lookups_total", cache="c", tier="memory", result="hit") == 0

    r2 = get(c.port, "/r", headers={"Range": "bytes=0-3"})
    assert r2.status == 206 and r2.body == b"0123", r2
    assert "hit" in params(r2.header("Cache-Status")), r2.header("Cache-Status")
    assert len(org.requests) == 1
    e = wait_log(c, "/r", 2)
    assert [x["cache"] for x in e] == ["MISS", "HIT"], e
    time.sleep(0.1)
    b2 = scrape(c)
    assert delta(b1, b2, "cairn_cache_requests_total", cache="c", status="hit") == 1
    assert delta(b1, b2, "cairn_cache_requests_total", cache="c", status="miss") == 0
    assert delta(b1, b2, "cairn_cache_lookups_total", cache="c", tier="memory", result="hit") == 1
    assert delta(b1, b2, "cairn_cache_lookups_total", cache="c", tier="memory", result="miss") == 0


def test_range_waiter_on_a_range_fill_is_coalesced(cairn, origin):
    """A second Range request arriving while the first one's full fetch runs waited on that
    fill: it is coalesced, not a hit."""
    def handle(o, req, sock):
        if o.sleep(0.6):
            return False
        body = b"abcdefghijklmnop"
        sock.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        return True
    org = origin({"/rr": Func(handle)})
    c = cairn(cache_cfg(org))
    first = Client(c.port, "/rr", {"Range": "bytes=0-1"}).send()
    org.wait_requests(1, timeout=3)
    second = Client(c.port, "/rr", {"Range": "bytes=2-3"}).send()
    r1, r2 = first.result(), second.result()
    assert (r1.status, r1.body, r2.status, r2.body) == (206, b"ab", 206, b"cd"), (r1, r2)
    assert "hit" not in params(r1.header("Cache-Status")), r1.header("Cache-Status")
    p2 = params(r2.header("Cache-Status"))
    assert "hit" not in p2 and "collapsed" in p2, r2.header("Cache-Status")
    assert len(org.requests) == 1
    e = wait_log(c, "/rr", 2)
    assert sorted(x["cache"] for x in e) == ["COALESCED", "MISS"], e
    assert [x for x in e if x["cache"] == "COALESCED"][0]["lock_wait_ms"] >= 200, e


# --------------------------------------------------------------------------------------
# 3. cairn's own errors carry no fwd-status


def slow_func(delay, cache_control="max-age=60"):
    conc = Concurrency()

    def handle(o, req, sock):
        conc.enter(req.target)
        stopped = o.sleep(delay)
        conc.leave()
        if stopped:
            return False
        body = f"body of {req.target}\n".encode()
        sock.sendall((f"HTTP/1.1 200 OK\r\nCache-Control: {cache_control}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        return True
    return Func(handle), conc


def test_queue_timeout_503_has_no_fwd_status(cairn, origin):
    fn, conc = slow_func(1.5)
    org = origin({"/*": fn})
    c = cairn(cache_cfg(org, {"max_in_flight": 1, "queue_timeout": "300ms"}))
    holder = Client(c.port, "/hold").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the holder at the origin")
    leader = Client(c.port, "/q").send()
    wait_gauges(c, 1, 1, what="the /q fill queued")
    waiter = Client(c.port, "/q").send()  # waits on the queued fill
    r1, r2 = leader.result(), waiter.result()
    assert holder.result().status == 200
    for r in (r1, r2):
        assert r.status == 503, r
        cs = r.header("Cache-Status")
        p = params(cs)
        assert "fwd-status" not in p, f"the origin never answered: {cs}"
        assert p.get("detail") == "queue-timeout", cs
    assert not any(q.target == "/q" for q in org.requests)


def test_connect_failure_502_has_no_fwd_status(cairn):
    dead = f"127.0.0.1:{free_port()}"
    c = cairn(cache_cfg(dead, {"retries": 0}))
    r = get(c.port, "/x")
    assert r.status == 502, r
    cs = r.header("Cache-Status")
    p = params(cs)
    assert "fwd-status" not in p, f"nothing answered the connect: {cs}"
    assert p.get("detail") == "upstream-connect", cs


def test_read_timeout_504_has_no_fwd_status(cairn, origin):
    org = origin({"/t": Slow(delay_headers=3.0)})
    c = cairn(cache_cfg(org, {"read_timeout": "300ms", "retries": 0}))
    r = get(c.port, "/t", timeout=5)
    assert r.status == 504, r
    cs = r.header("Cache-Status")
    p = params(cs)
    assert "fwd-status" not in p, cs
    assert p.get("detail") == "upstream-timeout", cs


def test_origin_errors_keep_fwd_status(cairn, origin):
    """A 503 that the origin sent is the origin's: fwd-status says so."""
    org = origin({"/e": Normal(503, b"origin busy\n")})
    c = cairn(cache_cfg(org))
    r = get(c.port, "/e")
    assert r.status == 503 and r.body == b"origin busy\n", r
    assert params(r.header("Cache-Status")).get("fwd-status") == "503", r.header("Cache-Status")


# --------------------------------------------------------------------------------------
# 4. /upstreams queue counters agree with the histogram


def test_upstreams_queue_counts_agree_with_histogram(cairn, origin):
    fn, conc = slow_func(0.6)
    org = origin({"/*": fn})
    c = cairn(cache_cfg(org, {"max_in_flight": 1, "queue_timeout": "1s"}))
    # /a gets the slot at once; /b waits ~0.6 s and is admitted; /c waits 1 s and times out
    a = Client(c.port, "/a").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="/a at the origin")
    b = Client(c.port, "/b").send()
    wait_gauges(c, 1, 1, what="/b queued")
    cl = Client(c.port, "/c").send()
    wait_gauges(c, 1, 2, what="/c queued")
    assert a.result().status == 200 and b.result().status == 200
    assert cl.result().status == 503
    wait_gauges(c, 0, 0, what="all done")
    fams = scrape(c)
    r = get(c.admin_port, "/upstreams", host=f"127.0.0.1:{c.admin_port}")
    q = json.loads(r.body)["upstreams"][0]["queue"]
    counts = {o: value(fams, QWAIT + "_count", upstream="o", outcome=o)
              for o in ("admitted", "timeout", "gone")}
    sums = sum(value(fams, QWAIT + "_sum", upstream="o", outcome=o)
               for o in ("admitted", "timeout", "gone"))
    assert counts == {"admitted": 1, "timeout": 1, "gone": 0}, counts
    assert (q["admitted"], q["timeout"], q["gone"]) == (1, 1, 0), q
    assert q["immediate"] == 1, q  # /a, which never queued
    # /b waited ~0.6 s, /c 1 s: every queued request's wait, whatever its outcome
    assert 1400 <= q["wait_ms_total"] <= 2200, q
    assert abs(q["wait_ms_total"] - sums * 1000) <= 30, (q, sums)


# --------------------------------------------------------------------------------------
# 5. pass_takes_slot on a route without a cache


def nocache_cfg(org, takes_slot, queue_timeout):
    return proxy_config(org, upstream_extra={"max_in_flight": 1, "queue_timeout": queue_timeout,
                                             "pass_takes_slot": takes_slot,
                                             "read_timeout": "5s"},
                        server={"workers": 2, "header_timeout": "10s"})


def test_pass_takes_slot_on_route_without_cache_waits(cairn, origin):
    fn, conc = slow_func(0.6, cache_control="no-store")
    org = origin({"/*": fn})
    c = cairn(nocache_cfg(org, True, "5s"))
    t0 = time.monotonic()
    cls = [Client(c.port, f"/n/{i}").send() for i in range(2)]
    rs = [x.result() for x in cls]
    dt = time.monotonic() - t0
    assert [r.status for r in rs] == [200, 200], rs
    assert conc.max == 1, f"max_in_flight 1, pass_takes_slot: {conc.max} at the origin at once"
    assert dt >= 1.15, f"two 0.6 s requests through one slot took {dt:.2f}s"
    assert all(r.header("Cache-Status") is None for r in rs), rs
    wait_gauges(c, 0, 0, what="after the passes")


def test_pass_takes_slot_on_route_without_cache_times_out(cairn, origin):
    fn, conc = slow_func(1.2, cache_control="no-store")
    org = origin({"/*": fn})
    c = cairn(nocache_cfg(org, True, "300ms"))
    first = Client(c.port, "/n/1").send()
    wait_for(lambda: len(conc.starts) >= 1, timeout=3, msg="the first at the origin")
    t0 = time.monotonic()
    r = get(c.port, "/n/2", timeout=5)
    dt = time.monotonic() - t0
    assert r.status == 503, r
    assert 0.25 <= dt <= 0.9, dt
    assert first.result().status == 200
    assert [q.target for q in org.requests] == ["/n/1"]
    wait_gauges(c, 0, 0, what="after the timeout")


def test_no_slot_without_pass_takes_slot_on_route_without_cache(cairn, origin):
    fn, conc = slow_func(0.6, cache_control="no-store")
    org = origin({"/*": fn})
    c = cairn(nocache_cfg(org, False, "300ms"))
    cls = [Client(c.port, f"/n/{i}").send() for i in range(2)]
    assert [x.result().status for x in cls] == [200, 200]
    assert conc.max == 2, conc.max


def test_pass_takes_slot_unsafe_methods_on_caching_route(cairn, origin):
    """A POST on a caching route is a pass too: with pass_takes_slot it takes a slot."""
    fn, conc = slow_func(0.6, cache_control="no-store")
    org = origin({"/*": fn})
    c = cairn(cache_cfg(org, {"max_in_flight": 1, "queue_timeout": "5s",
                              "pass_takes_slot": True}))
    out = []

    def post(i):
        with RawConn(c.port, timeout=10) as rc:
            rc.send(build_request("POST", f"/p/{i}", body=b"data"))
            out.append(rc.read_response(timeout=10))

    ts = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    assert sorted(r.status for r in out) == [200, 200], out
    assert conc.max == 1, f"pass_takes_slot, max_in_flight 1: {conc.max} POSTs at the origin at once"
    wait_gauges(c, 0, 0, what="after the POSTs")


def test_config_reference_says_what_max_in_flight_bounds(cairn_cli):
    text = cairn_cli("--dump-config-docs").stdout
    row = [ln for ln in text.splitlines() if "`upstreams.<name>.max_in_flight`" in ln]
    assert row and "Most concurrent requests to this upstream" not in row[0], row
    assert "pass_takes_slot" in row[0], row
    doc = (ROOT / "docs/config.md").read_text().splitlines()
    for key in ("max_in_flight", "pass_takes_slot"):
        want = [ln for ln in text.splitlines() if f"`upstreams.<name>.{key}`" in ln]
        assert want and want[0] in doc, f"docs/config.md is not regenerated ({key})"


# --------------------------------------------------------------------------------------
# 6. every admin endpoint is in docs/operations.md


def admin_endpoints():
    """(path, methods) from the endpoint table of src/server/admin.c."""
    src = (ROOT / "src/server/admin.c").read_text()
    table = src[src.index("} endpoints[] = {"):]
    table = table[:table.index("};")]
    out = []
    for path, post in re.findall(r'\{"(/[^"]*)",\s*(true|false),', table):
        out.append((path, ("POST",) if post == "true" else ("GET", "HEAD")))
    return out


def documented_endpoints():
    doc = (ROOT / "docs/operations.md").read_text()
    sect = doc[doc.index("## Admin API"):]
    out = {}
    for m in re.finditer(r"^\| ([A-Z, ]+) \| `(/[^`]*)` \|", sect, re.M):
        out[m.group(2)] = tuple(x.strip() for x in m.group(1).split(","))
    return out


def test_operations_doc_lists_every_admin_endpoint(cairn):
    eps = admin_endpoints()
    assert len(eps) >= 8, eps
    c = cairn({"caches": {"c": {"memory": {"size": "1MiB"}}},
               "routes": [{"match": {"path_prefix": "/"}, "static": {"body": "x\n"}}]})
    doc = documented_endpoints()
    for path, methods in eps:
        assert doc.get(path) == methods, f"{path} {methods}: docs/operations.md says {doc.get(path)}"
        other = "GET" if methods == ("POST",) else "POST"
        r = get(c.admin_port, path, method=other, host=f"127.0.0.1:{c.admin_port}")
        assert r.status == 405, (path, r)
        assert tuple(x.strip() for x in r.header("Allow").split(",")) == methods, (path, r)
    assert set(doc) == {p for p, _ in eps}, (sorted(doc), eps)


# --------------------------------------------------------------------------------------
# 7. a missing unix socket is not "connection refused"


def test_missing_unix_socket_peer_logged_as_missing(cairn, tmp_path):
    path = tmp_path / "no" / "such.sock"
    c = cairn(proxy_config(f"unix:{path}", upstream_extra={"retries": 0}))
    r = get(c.port, "/u")
    assert r.status == 502, r
    wait_for(lambda: "upstream connect failed" in c.stderr_text(), timeout=3, msg="the log line")
    line = [ln for ln in c.stderr_text().splitlines() if "upstream connect failed" in ln][0]
    assert "connection refused" not in line, line
    assert "no such file" in line and str(path) in line, line
    e = wait_log(c, "/u", 1)
    assert "no such file" in e[0].get("error", ""), e


def test_refused_unix_socket_peer_still_refused(cairn, tmp_path):
    """A socket file nobody listens on is a refused connection."""
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody accepts
    c = cairn(proxy_config(f"unix:{path}", upstream_extra={"retries": 0}))
    r = get(c.port, "/u")
    assert r.status == 502, r
    wait_for(lambda: "upstream connect failed" in c.stderr_text(), timeout=3, msg="the log line")
    line = [ln for ln in c.stderr_text().splitlines() if "upstream connect failed" in ln][0]
    assert "connection refused" in line, line
