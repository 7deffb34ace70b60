"""The admin API: /metrics (parsed as Prometheus text format 0.0.4 and checked against the
traffic sent), /config (redacted), /upstreams (JSON), POST /config/reload, 404/405 and the
bearer token."""
import json
import math
import re
import threading
import time

import pytest

from helpers import RawConn, get, free_port, to_yaml
from origins import Normal, Slow, Stream

# --------------------------------------------------------------------------------------
# A Prometheus text format parser (exposition format 0.0.4), strict enough to catch what a
# scraper would reject or misread.

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []  # (sample name, labels dict, value)


def _parse_labels(s, i, line):
    """Parses '{a="x",b="y"}' starting at s[i] == '{'; returns (dict, index after '}')."""
    assert s[i] == "{"
    i += 1
    labels = {}
    while True:
        while i < len(s) and s[i] == " ":
            i += 1
        if s[i] == "}":
            return labels, i + 1
        m = _LABEL.match(s, i)
        assert m, f"bad label name at {i}: {line!r}"
        name = m.group(0)
        i = m.end()
        assert s[i] == "=" and s[i + 1] == '"', f"bad label syntax: {line!r}"
        i += 2
        val = []
        while s[i] != '"':
            if s[i] == "\\":
                nxt = s[i + 1]
                assert nxt in ('\\', '"', 'n'), f"bad escape \\{nxt} in {line!r}"
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            else:
                assert s[i] != "\n"
                val.append(s[i])
                i += 1
        i += 1
        assert name not in labels, f"duplicate label {name} in {line!r}"
        labels[name] = "".join(val)
        if s[i] == ",":
            i += 1
        else:
            assert s[i] == "}", f"expected , or }} in {line!r}"


def _parse_value(v, line):
    if v in ("+Inf", "Inf"):
        return math.inf
    if v == "-Inf":
        return -math.inf
    if v == "NaN":
        return math.nan
    assert re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", v), f"bad value {v!r}: {line!r}"
    return float(v)


def _family_of(name, families):
    if name in families:
        return families[name]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = families.get(name[: -len(suffix)])
            if base is not None and base.type in ("histogram", "summary"):
                if suffix == "_bucket" and base.type != "histogram":
                    continue
                return base
    return None


def parse_prometheus(text):
    """Returns {family name: Family}. Raises AssertionError on anything malformed."""
    assert text.endswith("\n"), "exposition must end with a newline"
    families = {}
    seen_series = set()
    order = []
    for line in text.split("\n")[:-1]:
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert _NAME.fullmatch(name), f"bad metric name {name!r}"
                fam = families.get(name)
                if fam is None:
                    fam = families[name] = Family(name)
                    order.append(name)
                if parts[1] == "HELP":
                    assert fam.help is None, f"second HELP for {name}"
                    assert not fam.samples, f"HELP after samples for {name}"
                    fam.help = parts[3] if len(parts) > 3 else ""
                else:
                    assert fam.type is None, f"second TYPE for {name}"
                    assert not fam.samples, f"TYPE after samples for {name}"
                    assert len(parts) == 4 and parts[3] in _TYPES, f"bad TYPE line {line!r}"
                    fam.type = parts[3]
            continue
        m = _NAME.match(line)
        assert m, f"bad sample line {line!r}"
        sname = m.group(0)
        i = m.end()
        labels = {}
        try:
            if i < len(line) and line[i] == "{":
                labels, i = _parse_labels(line, i, line)
            assert line[i] == " ", f"expected a space before the value: {line!r}"
        except IndexError:
            raise AssertionError(f"truncated sample line {line!r}")
        rest = line[i + 1:].split(" ")
        assert 1 <= len(rest) <= 2, f"bad sample line {line!r}"
        value = _parse_value(rest[0], line)
        fam = _family_of(sname, families)
        assert fam is not None and fam.type is not None, f"sample of an undeclared family: {line!r}"
        # Samples of one family are contiguous.
        assert order[-1] == fam.name, f"{sname} appears outside its family's block"
        key = (sname, tuple(sorted(labels.items())))
        assert key not in seen_series, f"duplicate series {line!r}"
        seen_series.add(key)
        fam.samples.append((sname, labels, value))
    for fam in families.values():
        assert fam.type is not None, f"family {fam.name} has HELP but no TYPE"
        if fam.type == "histogram":
            _check_histogram(fam)
        if fam.type == "counter":
            for sname, labels, v in fam.samples:
                assert v >= 0, f"negative counter {sname}{labels}"
    return families


def _check_histogram(fam):
    series = {}
    for sname, labels, v in fam.samples:
        base = {k: x for k, x in labels.items() if k != "le"}
        key = tuple(sorted(base.items()))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sname == fam.name + "_bucket":
            assert "le" in labels, f"bucket without le: {sname}{labels}"
            s["buckets"].append((_parse_value(labels["le"], labels["le"]), v))
        elif sname == fam.name + "_sum":
            s["sum"] = v
        elif sname == fam.name + "_count":
            s["count"] = v
        else:
            raise AssertionError(f"unexpected sample {sname} in histogram {fam.name}")
    for key, s in series.items():
        b = s["buckets"]
        assert b, f"{fam.name}{key}: no buckets"
        les = [le for le, _ in b]
        assert les == sorted(les) and len(set(les)) == len(les), f"{fam.name}{key}: le order"
        assert les[-1] == math.inf, f"{fam.name}{key}: no +Inf bucket"
        counts = [c for _, c in b]
        assert all(x <= y for x, y in zip(counts, counts[1:])), f"{fam.name}{key}: not cumulative"
        assert s["count"] is not None and s["sum"] is not None, f"{fam.name}{key}: _sum/_count"
        assert counts[-1] == s["count"], f"{fam.name}{key}: +Inf bucket != _count"
        assert s["sum"] >= 0


def value(fams, name, **labels):
    """The value of the one sample @name whose labels include @labels; 0 when absent."""
    fam = _family_of(name, fams)
    assert fam is not None, f"family of {name} not exposed"
    hits = [v for sname, ls, v in fam.samples
            if sname == name and all(ls.get(k) == str(x) for k, x in labels.items())]
    assert len(hits) <= 1, f"{name}{labels} matches {len(hits)} series"
    return hits[0] if hits else 0.0


def _eq(a, b):
    assert a == b, (a, b)


def total(fams, name, **labels):
    fam = _family_of(name, fams)
    return sum(v for sname, ls, v in fam.samples
               if sname == name and all(ls.get(k) == str(x) for k, x in labels.items()))


def test_parser_rejects_malformed():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
    assert value(parse_prometheus(good), "a_total", x=1) == 2
    bad = [
        "a_total 1\n",  # undeclared
        "# TYPE a counter\na{x=\"1} 1\n",  # unterminated label
        "# TYPE a counter\na{x=\"\\q\"} 1\n",  # bad escape
        "# TYPE a counter\na 1\na 2\n",  # duplicate series
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
        "# TYPE a gauge\n# TYPE a gauge\n",
        "# TYPE a counter\na -1\n",
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_prometheus(text)


# --------------------------------------------------------------------------------------
# fixtures

TOKEN = "t0k-en_Secret.42"


def admin_get(c, path, token=None, method="GET", body=b""):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return get(c.admin_port, path, headers=headers, method=method, body=body)


def scrape(c, token=None):
    r = admin_get(c, "/metrics", token)
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain; version=0.0.4"), r.headers
    return parse_prometheus(r.body.decode("utf-8"))


def eventually(c, check, token=None, timeout=3.0):
    """Scrapes until @check(families) stops raising AssertionError; returns the families.
    A worker counts a request when the last byte was written, which may be a moment after the
    client has read the response."""
    deadline = time.monotonic() + timeout
    while True:
        fams = scrape(c, token)
        try:
            check(fams)
            return fams
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)


@pytest.fixture(scope="module")
def org():
    from origins import Origin
    o = Origin({
        "/p/ok": Normal(200, b"proxied\n", headers={"Cache-Control": "no-store"}),
        "/p/missing": Normal(404, b"nope\n"),
        "/p/slow": Slow(delay_headers=1.5, body=b"late\n"),
        "/c/obj": Normal(200, b"cacheable object\n", headers={"Cache-Control": "max-age=60"}),
        "/c/swr": Normal(200, b"swr object\n",
                         headers={"Cache-Control": "max-age=1, stale-while-revalidate=60"}),
        "/c/slow": Stream(b"slow cacheable\n", headers={"Cache-Control": "max-age=60"},
                          delay_headers=0.5),
    }).start()
    yield o
    o.stop()


def base_config(org, **extra):
    cfg = {
        "server": {"workers": 2, "header_timeout": "5s", "shutdown_grace": "5s"},
        "upstreams": {
            "o": {"peers": [{"address": org.address}], "retries": 0},
            "dead": {"peers": [{"address": f"127.0.0.1:{free_port()}", "weight": 3}],
                     "retries": 0, "connect_timeout": "1s"},
        },
        "caches": {"main": {"memory": {"size": "4MiB"}}},
        "routes": [
            {"name": "hello", "match": {"path": "/hello"}, "static": {"body": "hello\n"}},
            {"name": "cached", "match": {"path_prefix": "/c/"}, "upstream": "o", "cache": "main"},
            {"name": "dead", "match": {"path_prefix": "/dead"}, "upstream": "dead"},
            {"name": "proxy", "match": {"path_prefix": "/p/"}, "upstream": "o"},
        ],
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def srv(cairn_module, org):
    return cairn_module(base_config(org))


# --------------------------------------------------------------------------------------
# /metrics


def test_metrics_move_by_the_traffic_sent(srv):
    before = scrape(srv)
    for _ in range(5):
        assert get(srv.port, "/hello").status == 200
    for _ in range(3):
        assert get(srv.port, "/p/ok").status == 200
    for _ in range(2):
        assert get(srv.port, "/p/missing").status == 404
    assert get(srv.port, "/nothing-matches").status == 404

    def check(after):
        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("cairn_requests_total", route="hello", code=200) == 5
        assert delta("cairn_requests_total", route="proxy", code=200) == 3
        assert delta("cairn_requests_total", route="proxy", code=404) == 2
        assert delta("cairn_requests_total", route="-", code=404) == 1
        assert total(after, "cairn_requests_total") - total(before, "cairn_requests_total") == 11
        assert delta("cairn_request_duration_seconds_count") == 11
        assert delta("cairn_request_duration_seconds_bucket", le="+Inf") == 11
        assert delta("cairn_request_duration_seconds_sum") > 0
        assert delta("cairn_response_body_bytes_total", route="hello") == 5 * len(b"hello\n")
        assert delta("cairn_upstream_requests_total", upstream="o", code=200) == 3
        assert delta("cairn_upstream_requests_total", upstream="o", code=404) == 2
        assert delta("cairn_upstream_errors_total", upstream="o", kind="connect") == 0

    eventually(srv, check)


def test_metrics_families_and_process(srv):
    fams = scrape(srv)
    for name, typ in [
        ("cairn_requests_total", "counter"),
        ("cairn_request_duration_seconds", "histogram"),
        ("cairn_cache_lookups_total", "counter"),
        ("cairn_cache_objects", "gauge"),
        ("cairn_cache_bytes", "gauge"),
        ("cairn_cache_lock_waiters", "gauge"),
        ("cairn_cache_lock_wait_seconds", "histogram"),
        ("cairn_origin_fetches_in_flight", "gauge"),
        ("cairn_origin_fetches_queued", "gauge"),
        ("cairn_origin_fetch_queue_wait_seconds", "histogram"),
        ("cairn_upstream_requests_total", "counter"),
        ("cairn_upstream_errors_total", "counter"),
        ("cairn_connections", "gauge"),
        ("cairn_process_resident_memory_bytes", "gauge"),
        ("cairn_process_open_fds", "gauge"),
        ("cairn_process_start_time_seconds", "gauge"),
        ("cairn_uptime_seconds", "gauge"),
        ("cairn_config_generation", "gauge"),
        ("cairn_config_reloads_total", "counter"),
    ]:
        assert name in fams, f"{name} missing"
        assert fams[name].type == typ, f"{name}: {fams[name].type}"
        assert fams[name].help, f"{name}: no HELP"
    # Every family is named cairn_*; the configured names exist before any traffic.
    assert all(n.startswith("cairn_") for n in fams)
    for up in ("o", "dead"):
        assert ("cairn_origin_fetches_in_flight", {"upstream": up}, 0.0) in fams[
            "cairn_origin_fetches_in_flight"].samples
        assert value(fams, "cairn_upstream_errors_total", upstream=up, kind="timeout") == 0
    assert value(fams, "cairn_origin_fetch_queue_wait_seconds_count", upstream="o",
                 outcome="timeout") == 0
    assert value(fams, "cairn_cache_lock_waiters") == 0
    assert value(fams, "cairn_process_resident_memory_bytes") > 1 << 20
    assert value(fams, "cairn_process_open_fds") > 3
    start = value(fams, "cairn_process_start_time_seconds")
    assert time.time() - 600 < start <= time.time() + 1
    assert value(fams, "cairn_uptime_seconds") > 0
    assert value(fams, "cairn_workers") == 2
    assert value(fams, "cairn_config_generation") == 1
    assert value(fams, "cairn_config_reloads_total", result="ok") == 0
    assert value(fams, "cairn_config_reloads_total", result="error") == 0
    info = fams["cairn_build_info"].samples
    assert len(info) == 1 and info[0][2] == 1 and info[0][1]["version"]


def test_upstream_errors_counted_by_kind(srv):
    before = scrape(srv)
    assert get(srv.port, "/dead").status == 502

    def check(after):
        assert (value(after, "cairn_upstream_errors_total", upstream="dead", kind="connect")
                - value(before, "cairn_upstream_errors_total", upstream="dead", kind="connect")) == 1
        assert (value(after, "cairn_requests_total", route="dead", code=502)
                - value(before, "cairn_requests_total", route="dead", code=502)) == 1
        assert (total(after, "cairn_upstream_requests_total", upstream="dead")
                == total(before, "cairn_upstream_requests_total", upstream="dead"))

    eventually(srv, check)


def test_cache_metrics(srv):
    before = scrape(srv)
    r1 = get(srv.port, "/c/obj")
    r2 = get(srv.port, "/c/obj")
    assert r1.status == r2.status == 200 and r2.body == b"cacheable object\n"

    def check(after):
        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("cairn_cache_requests_total", cache="main", status="miss") == 1
        assert delta("cairn_cache_requests_total", cache="main", status="hit") == 1
        assert delta("cairn_cache_lookups_total", cache="main", tier="memory", result="hit") == 1
        assert delta("cairn_cache_lookups_total", cache="main", tier="memory", result="miss") >= 1
        assert value(after, "cairn_cache_objects", cache="main", tier="memory") >= 1
        assert value(after, "cairn_cache_bytes", cache="main", tier="memory") > 0
        assert delta("cairn_cache_inserts_total", cache="main", tier="memory") == 1
        assert delta("cairn_upstream_requests_total", upstream="o", code=200) == 1
        assert delta("cairn_requests_total", route="cached", code=200) == 2

    eventually(srv, check)


def test_stale_while_revalidate_counts_one_request(cairn, org):
    srv = cairn(base_config(org))
    assert get(srv.port, "/c/swr").status == 200
    time.sleep(2.2)  # Age counts whole seconds: 2 > max-age=1
    before = scrape(srv)
    seen = len(org.requests)
    r = get(srv.port, "/c/swr")
    assert r.status == 200 and "ttl=-" in r.header("cache-status", ""), r  # a stale hit

    def check(after):
        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("cairn_cache_requests_total", cache="main", status="stale") == 1
        assert delta("cairn_requests_total", route="cached", code=200) == 1
        assert total(after, "cairn_requests_total") - total(before, "cairn_requests_total") == 1
        # The background revalidation reached the origin and is counted there.
        assert delta("cairn_upstream_requests_total", upstream="o", code=200) == 1

    eventually(srv, check)
    assert len(org.requests) == seen + 1


def test_coalesced_requests(srv, org):
    before = scrape(srv)
    results = []

    def fetch():
        results.append(get(srv.port, "/c/slow", timeout=10))

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert [r.status for r in results] == [200] * 3

    def check(after):
        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("cairn_cache_requests_total", cache="main", status="miss") == 1
        assert delta("cairn_cache_requests_total", cache="main", status="coalesced") == 2
        assert delta("cairn_upstream_requests_total", upstream="o", code=200) == 1
        assert delta("cairn_requests_total", route="cached", code=200) == 3

    eventually(srv, check)


def test_connection_gauges(srv):
    def conns():
        f = scrape(srv)
        return (value(f, "cairn_connections", state="active"),
                value(f, "cairn_connections", state="idle"))

    base_active, base_idle = conns()
    idle = RawConn(srv.port)
    assert idle.request("GET", "/hello").status == 200  # keep-alive: now idle
    busy = RawConn(srv.port, timeout=10)
    busy.send(b"GET /p/slow HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        deadline = time.monotonic() + 1.0
        while True:
            active, idl = conns()
            if active >= base_active + 1 and idl >= base_idle + 1:
                break
            assert time.monotonic() < deadline, (active, idl)
            time.sleep(0.05)
        assert busy.read_response().status == 200
    finally:
        idle.close()
        busy.close()
    deadline = time.monotonic() + 3.0
    while conns() != (base_active, base_idle):
        assert time.monotonic() < deadline, conns()
        time.sleep(0.05)


def test_client_gone_is_499(srv):
    before = scrape(srv)
    c = RawConn(srv.port)
    c.send(b"GET /p/slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    c.close()
    deadline = time.monotonic() + 5
    while True:
        after = scrape(srv)
        d = (value(after, "cairn_requests_total", route="proxy", code=499)
             - value(before, "cairn_requests_total", route="proxy", code=499))
        if d == 1:
            break
        assert d == 0 and time.monotonic() < deadline
        time.sleep(0.05)


def test_concurrent_scrapes_while_serving(srv):
    """Workers update their counters while the admin thread reads them."""
    stop = threading.Event()
    sent = [0]

    def load():
        with RawConn(srv.port) as c:
            while not stop.is_set():
                assert c.request("GET", "/hello").status == 200
                sent[0] += 1

    before = scrape(srv)
    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            scrape(srv)
    finally:
        stop.set()
        for t in threads:
            t.join()
    eventually(srv, lambda after: _eq(
        value(after, "cairn_requests_total", route="hello", code=200)
        - value(before, "cairn_requests_total", route="hello", code=200), sent[0]))


# --------------------------------------------------------------------------------------
# /config, /upstreams, errors


def test_config_shows_running_config(srv, org):
    r = admin_get(srv, "/config")
    assert r.status == 200
    assert r.header("content-type").startswith("application/yaml")
    text = r.body.decode()
    assert f"listen: 127.0.0.1:{srv.port}" in text
    assert org.address in text
    assert "name: hello" in text and "cached" in text
    assert "workers: 2" in text


def test_upstreams_json(srv, org):
    get(srv.port, "/p/ok")
    r = admin_get(srv, "/upstreams")
    assert r.status == 200 and r.header("content-type") == "application/json"
    doc = json.loads(r.body)
    ups = {u["name"]: u for u in doc["upstreams"]}
    assert set(ups) == {"o", "dead"}
    assert ups["o"]["peers"] == [{"address": org.address, "weight": 1}]
    assert ups["dead"]["peers"][0]["weight"] == 3
    assert ups["o"]["requests"] >= 1 and ups["o"]["responses"]["200"] >= 1
    assert ups["o"]["requests"] == sum(ups["o"]["responses"].values())
    assert ups["o"]["fetches_in_flight"] == 0 and ups["o"]["fetches_queued"] == 0
    assert set(ups["o"]["errors"]) == {"connect", "timeout", "protocol", "closed", "other"}
    assert doc["generation"] == 1


def test_not_found_and_method_not_allowed(srv):
    assert admin_get(srv, "/nope").status == 404
    assert admin_get(srv, "/metrics/").status == 404
    for path in ("/metrics", "/config", "/upstreams", "/healthz", "/readyz"):
        r = admin_get(srv, path, method="POST", body=b"x")
        assert r.status == 405, (path, r)
        assert r.header("allow") == "GET, HEAD"
        r = admin_get(srv, path, method="DELETE")
        assert r.status == 405 and r.header("allow") == "GET, HEAD"
    r = admin_get(srv, "/config/reload")
    assert r.status == 405 and r.header("allow") == "POST"
    with RawConn(srv.admin_port) as c:
        r = c.request("HEAD", "/metrics")
        assert r.status == 200 and r.body == b"" and int(r.header("content-length")) > 1000


# --------------------------------------------------------------------------------------
# bearer token


@pytest.fixture(scope="module")
def secured(cairn_module, org, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    import subprocess
    cert, key = d / "c.pem", d / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    cfg = base_config(org, admin={"listen": f"127.0.0.1:{free_port()}", "token": TOKEN})
    cfg["listeners"] = [
        {"listen": f"127.0.0.1:{free_port()}"},
        {"listen": f"127.0.0.1:{free_port()}", "name": "tls",
         "tls": {"cert": str(cert), "key": str(key)}},
    ]
    c = cairn_module(cfg)
    c.tls_key = str(key)
    return c


def test_token_required(secured):
    for path in ("/metrics", "/config", "/upstreams", "/readyz", "/nope"):
        r = admin_get(secured, path)
        assert r.status == 401, (path, r)
        assert r.header("www-authenticate", "").startswith("Bearer")
        for bad in (TOKEN[:-1], TOKEN + "x", "", TOKEN.upper()):
            r = get(secured.admin_port, path, headers={"Authorization": f"Bearer {bad}"})
            assert r.status == 401, (path, bad)
        r = get(secured.admin_port, path, headers={"Authorization": f"Basic {TOKEN}"})
        assert r.status == 401
    assert admin_get(secured, "/metrics", TOKEN).status == 200
    assert admin_get(secured, "/upstreams", TOKEN).status == 200
    assert admin_get(secured, "/readyz", TOKEN).status == 200
    assert admin_get(secured, "/nope", TOKEN).status == 404
    r = get(secured.admin_port, "/metrics", headers={"Authorization": f"bearer   {TOKEN}"})
    assert r.status == 200
    # Liveness stays open for probes.
    assert admin_get(secured, "/healthz").status == 200
    # Parsed with the token too.
    fams = scrape(secured, TOKEN)
    assert "cairn_requests_total" in fams


def test_config_redacts_secrets(secured):
    r = admin_get(secured, "/config", TOKEN)
    assert r.status == 200
    text = r.body.decode()
    assert TOKEN not in text
    assert secured.tls_key not in text
    assert re.search(r"^  token: \"<redacted>\"$", text, re.M), text
    assert re.search(r"^      key: \"<redacted>\"$", text, re.M), text
    assert "cert: " in text and "c.pem" in text


# --------------------------------------------------------------------------------------
# reload


def test_reload_endpoint(cairn, org):
    cfg = base_config(org)
    c = cairn(cfg)
    assert get(c.port, "/hello").status == 200
    # A renamed route set: "hello" moves to the end; counts follow the name.
    cfg2 = base_config(org)
    cfg2["routes"] = cfg2["routes"][1:] + [cfg2["routes"][0]] + [
        {"name": "new", "match": {"path": "/new"}, "static": {"body": "new\n"}}]
    cfg2["admin"] = {"listen": f"127.0.0.1:{c.admin_port}"}
    cfg2["listeners"] = [{"listen": f"127.0.0.1:{c.port}"}]
    c.config_path.write_text(to_yaml(cfg2))
    r = admin_get(c, "/config/reload", method="POST")
    assert r.status == 200, r
    doc = json.loads(r.body)
    assert doc["status"] == "ok" and doc["generation"] == 2
    assert get(c.port, "/new").status == 200
    assert get(c.port, "/hello").status == 200

    def check(fams):
        assert value(fams, "cairn_config_generation") == 2
        assert value(fams, "cairn_config_reloads_total", result="ok") == 1
        assert value(fams, "cairn_requests_total", route="hello", code=200) == 2
        assert value(fams, "cairn_requests_total", route="new", code=200) == 1

    eventually(c, check)
    assert "name: new" in admin_get(c, "/config").body.decode()

    c.config_path.write_text("routes: [{static: {}, bogus_key: 1}]\n")
    r = admin_get(c, "/config/reload", method="POST")
    assert r.status == 500
    doc = json.loads(r.body)
    assert doc["status"] == "error" and doc["error"] and doc["generation"] == 2
    fams = scrape(c)
    assert value(fams, "cairn_config_generation") == 2
    assert value(fams, "cairn_config_reloads_total", result="error") == 1
    assert get(c.port, "/new").status == 200
