"""Access log (json, combined, off, to a file) and the error log (file, request ids)."""
import json
import re
import signal
import time

from helpers import RawConn, get, static_route, wait_for

JSON_KEYS = {"time", "request_id", "client", "method", "path", "status", "bytes",
             "duration_ms", "route", "upstream", "cache"}

COMBINED = re.compile(
    r'^(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<target>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"')


def routes():
    return [static_route("hello body\n", path="/hello", name="hello-route")]


def stop_ok(c):
    code = c.stop(signal.SIGTERM, timeout=5)
    assert code == 0, f"cairn exited {code} on SIGTERM; stderr:\n{c.stderr_text()[-2000:]}"


def json_lines(text):
    out = []
    for ln in text.splitlines():
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except ValueError as e:
            raise AssertionError(f"access log line is not JSON ({e}): {ln!r}")
    return out


def test_access_log_json_default(cairn):
    c = cairn({"server": {"workers": 1}, "routes": routes()})
    assert get(c.port, "/hello").status == 200
    assert get(c.port, "/missing?x=1").status == 404
    stop_ok(c)
    entries = json_lines(c.stdout_text())
    assert len(entries) == 2, f"expected 2 access-log objects, got {len(entries)}: {entries}"
    for e in entries:
        missing = JSON_KEYS - set(e)
        assert not missing, f"access-log entry lacks {sorted(missing)}: {e}"
    a, b = entries
    assert a["method"] == "GET" and a["path"] == "/hello" and a["status"] == 200, a
    assert b["method"] == "GET" and b["path"].startswith("/missing") and b["status"] == 404, b
    assert a["route"] == "hello-route", f"route name not logged: {a}"
    assert isinstance(a["bytes"], int) and a["bytes"] >= len(b"hello body\n"), a
    assert isinstance(a["duration_ms"], (int, float)) and 0 <= a["duration_ms"] < 5000, a
    assert str(a["client"]).startswith("127.0.0.1"), a
    assert a["upstream"] in (None, "", "-"), f"static route logged an upstream: {a}"
    assert isinstance(a["request_id"], (str, int)) and str(a["request_id"]), a
    assert a["request_id"] != b["request_id"], "request ids must differ"
    assert isinstance(a["time"], (str, int, float)) and str(a["time"]), a


def test_access_log_written_promptly(cairn):
    c = cairn({"server": {"workers": 1, "access_log": "access.log"}, "routes": routes()})
    assert get(c.port, "/hello").status == 200
    path = c.tmp / "access.log"
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout=3,
             msg="the access log line to be written while the server runs")


def test_access_log_to_file(cairn):
    c = cairn({"server": {"workers": 1, "access_log": "access.log",
                          "access_log_format": "json"}, "routes": routes()})
    assert get(c.port, "/hello").status == 200
    stop_ok(c)
    path = c.tmp / "access.log"
    assert path.exists(), "access_log: access.log (relative to the working dir) was not created"
    entries = json_lines(path.read_text())
    assert len(entries) == 1 and entries[0]["path"] == "/hello", entries
    assert "/hello" not in c.stdout_text(), "access log also went to stdout"


def test_access_log_combined(cairn):
    c = cairn({"server": {"workers": 1, "access_log_format": "combined"}, "routes": routes()})
    r = get(c.port, "/hello?q=1", headers={"Referer": "http://ref.test/page",
                                           "User-Agent": "it-agent/1.0"})
    assert r.status == 200
    stop_ok(c)
    lines = c.access_log_lines()
    assert len(lines) == 1, f"expected one combined line, got {lines}"
    m = COMBINED.match(lines[0])
    assert m, f"not Apache combined format: {lines[0]!r}"
    assert m["host"] == "127.0.0.1", m.groupdict()
    assert m["method"] == "GET" and m["target"] == "/hello?q=1" and m["proto"] == "HTTP/1.1", m.groupdict()
    assert m["status"] == "200", m.groupdict()
    assert m["referer"] == "http://ref.test/page" and m["agent"] == "it-agent/1.0", m.groupdict()
    assert re.match(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}$", m["time"]), m["time"]


def test_access_log_off(cairn):
    c = cairn({"server": {"workers": 1, "access_log": "off"}, "routes": routes()})
    assert get(c.port, "/hello").status == 200
    assert get(c.port, "/nope").status == 404
    stop_ok(c)
    assert c.stdout_text() == "", f"access_log: off still wrote: {c.stdout_text()!r}"
    assert not (c.tmp / "off").exists(), "access_log: off created a file named 'off'"


def test_error_log_to_file(cairn):
    c = cairn({"server": {"workers": 1, "error_log": "error.log", "log_level": "debug"},
               "routes": routes()})
    assert get(c.port, "/hello").status == 200
    stop_ok(c)
    path = c.tmp / "error.log"
    assert path.exists() and path.read_text().strip(), "error_log file missing or empty"


def test_error_log_request_id_matches_access_log(cairn):
    c = cairn({"server": {"workers": 1, "log_level": "debug"}, "routes": routes()})
    with RawConn(c.port) as s:
        s.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n")
        r = s.read_response()
        assert r.status == 400, r
    time.sleep(0.2)
    stop_ok(c)
    entries = [e for e in json_lines(c.stdout_text()) if e.get("status") == 400]
    assert len(entries) == 1, f"expected one 400 access-log entry: {c.stdout_text()!r}"
    rid = entries[0]["request_id"]
    err = c.stderr_text()
    assert re.search(rf"#{re.escape(str(rid))}(?![0-9A-Za-z])", err), \
        f"error log has no line with #{rid}:\n{err[-3000:]}"


def test_access_log_proxied_request(cairn, origin):
    from helpers import proxy_config
    from origins import Normal
    org = origin({"/p": Normal(200, b"proxied\n")})
    c = cairn(proxy_config(org))
    assert get(c.port, "/p").status == 200
    stop_ok(c)
    (e,) = json_lines(c.stdout_text())
    assert e["upstream"] == "o", f"upstream not logged: {e}"
    assert e["route"] == "proxy" and e["status"] == 200 and e["path"] == "/p", e
    assert e["bytes"] >= len(b"proxied\n"), e


COMBINED_ANY = re.compile(
    r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) '
    r'"((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"')


def test_access_log_combined_every_line(cairn):
    c = cairn({"server": {"workers": 1, "access_log_format": "combined", "header_timeout": "1s"},
               "routes": routes()})
    get(c.port, "/hello", headers={"User-Agent": 'quote" and \\ backslash', "Referer": "x y"})
    with RawConn(c.port) as s:
        s.send(b"\x01garbage\r\n\r\n")
        assert s.read_response().status == 400
    get(c.port, "/nope")
    stop_ok(c)
    lines = c.access_log_lines()
    assert len(lines) == 3, f"expected 3 lines (200, 400, 404): {lines}"
    for ln in lines:
        m = COMBINED_ANY.match(ln)
        assert m, f"line does not match the Apache combined format: {ln!r}"
    assert [COMBINED_ANY.match(ln).group(6) for ln in lines] == ["200", "400", "404"], lines
    assert 'quote\\" and \\\\ backslash' in lines[0], f"User-Agent not escaped: {lines[0]!r}"


def test_access_log_json_escaping(cairn):
    c = cairn({"server": {"workers": 1}, "routes": routes()})
    r = get(c.port, "/hello?q=%22x%22", headers={"User-Agent": 'ua "quoted" \\ back'})
    assert r.status == 200, r
    with RawConn(c.port) as s:  # a method with JSON-hostile bytes is refused, but logged
        s.send(b'GE"T\\ / HTTP/1.1\r\nHost: x\r\n\r\n')
        assert s.read_response().status == 400
    stop_ok(c)
    entries = json_lines(c.stdout_text())  # every line must parse as JSON
    assert len(entries) == 2, entries
    assert entries[0]["path"] == "/hello?q=%22x%22" or entries[0]["path"] == "/hello", entries[0]


def test_log_level_filters(cairn):
    quiet = cairn({"server": {"workers": 1, "log_level": "error"}, "routes": routes()})
    assert get(quiet.port, "/hello").status == 200
    stop_ok(quiet)
    loud = cairn({"server": {"workers": 1, "log_level": "debug"}, "routes": routes()})
    with RawConn(loud.port) as s:
        s.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n")
        assert s.read_response().status == 400
    stop_ok(loud)
    assert loud.stderr_text().strip(), "log_level: debug wrote nothing to the error log"
    q = quiet.stderr_text()
    assert "[notice]" not in q and "[info]" not in q and "[debug]" not in q, \
        f"log_level: error still logs lower levels:\n{q}"


def test_upstream_failures_logged_with_request_id(cairn, origin):
    from helpers import free_port, proxy_config
    from origins import Slow
    org = origin({"/slow": Slow(delay_headers=3.0)})
    cfg = proxy_config(org, server={"log_level": "debug"},
                       upstream_extra={"read_timeout": "500ms", "retries": 0})
    cfg["upstreams"]["dead"] = {"peers": [{"address": f"127.0.0.1:{free_port()}"}], "retries": 0}
    cfg["routes"].insert(0, {"name": "dead", "match": {"path_prefix": "/dead"}, "upstream": "dead"})
    c = cairn(cfg)
    assert get(c.port, "/dead").status == 502
    assert get(c.port, "/slow", timeout=5).status == 504
    stop_ok(c)
    entries = json_lines(c.stdout_text())
    assert [e["status"] for e in entries] == [502, 504], entries
    err = c.stderr_text()
    for e in entries:
        rid = re.escape(str(e["request_id"]))
        lines = [ln for ln in err.splitlines() if re.search(rf"#{rid}(?![0-9A-Za-z])", ln)]
        assert lines, f"no error-log line with #{e['request_id']} for the {e['status']}:\n{err[-3000:]}"


def test_access_log_exactly_once_per_request(cairn, origin):
    """docs/architecture.md: every exchange is logged exactly once, including client-gone
    (499), parse errors and pipelined requests."""
    import socket
    from helpers import proxy_config
    from origins import Blob, Normal
    org = origin({"/big": Blob(4 << 20), "/n": Normal(200, b"n\n")})
    c = cairn(proxy_config(org, server={"workers": 2, "header_timeout": "1s"}))
    expected = []
    assert get(c.port, "/n").status == 200
    expected.append(("/n", 200))
    with RawConn(c.port) as s:  # 3 pipelined
        s.send(b"GET /n HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        for _ in range(3):
            assert s.read_response().status == 200
    expected += [("/n", 200)] * 3
    with RawConn(c.port) as s:
        s.send(b"GET /n HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
        assert s.read_response().status == 400
    expected.append(("-", 400))
    s = socket.create_connection(("127.0.0.1", c.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(1000)
    s.close()  # client gone mid-body
    expected.append(("/big", 499))
    time.sleep(0.5)
    stop_ok(c)
    entries = json_lines(c.stdout_text())
    got = sorted((e["path"], e["status"]) for e in entries)
    assert len(entries) == len(expected), \
        f"{len(entries)} access-log lines for {len(expected)} requests: {got}"
    assert ("/big", 499) in got or any(p == "/big" and st != 200 for p, st in got), \
        f"an aborted response was logged as complete: {got}"


def test_access_log_duration_measures_the_exchange(cairn, origin):
    from helpers import proxy_config
    from origins import Slow
    org = origin({"/slow": Slow(delay_headers=0.5, body=b"s\n")})
    c = cairn(proxy_config(org))
    assert get(c.port, "/slow").status == 200
    stop_ok(c)
    (e,) = json_lines(c.stdout_text())
    assert 450 <= e["duration_ms"] <= 3000, f"duration_ms {e['duration_ms']} for a 0.5 s exchange"
    assert e["bytes"] >= 2, e
