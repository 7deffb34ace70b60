"""The example programs in examples/ (lessons 6, 8, 9, 10, 11, 13 and 25 of the Pingora
guide, written against the public C API).

Each test starts $CAIRN_BUILD/example_<name> (default build-asan) on a free port in front of
recording origins, checks what the client and the origins saw, then stops it with SIGTERM:
it must exit 0 within 5 s without a sanitizer report.
"""
from __future__ import annotations

import json
import time

import pytest

from helpers import RawConn, free_port, get, wait_for
from origins.server import Normal

from example_proc import Example


@pytest.fixture
def example(tmp_path):
    """example(name, *args) -> a started Example; call .stop() at the end of the test."""
    started = []

    def start(name, *args):
        ex = Example(name, args, tmp_path)
        started.append(ex)
        return ex.start()

    yield start
    for ex in started:
        ex.kill()


def stdout_lines(ex):
    return [ln for ln in ex.stdout().splitlines() if ln.strip()]


# --------------------------------------------------------------------------------------
# Lesson 6: the simple forwarder


def test_lesson06_forwarder(example, origin):
    blue = origin(default=Normal(body=b"Response from BLUE\n",
                                 headers=[("X-Origin", "blue"), ("Cache-Control", "max-age=5")]))
    ex = example("lesson06_forwarder", blue.address)

    r = get(ex.port, "/", host="client.example")
    assert r.status == 200, r
    assert r.body == b"Response from BLUE\n"
    assert r.header("X-Origin") == "blue"
    assert r.header("Cache-Control") == "max-age=5"
    assert r.header("Content-Type") == "text/plain"

    req = blue.wait_requests(1)[-1]
    assert req.target == "/"
    assert req.header_all("host") == ["blue.pingora.local"], req.headers
    ex.stop()


# --------------------------------------------------------------------------------------
# Lesson 8: request and response header edits


def test_lesson08_headers(example, origin):
    green = origin(default=Normal(body=b"Response from GREEN\n"))
    ex = example("lesson08_headers", green.address)

    r = get(ex.port, "/page", headers=[("User-Agent", "curl/8.0"),
                                       ("x-pingora-proxy", "spoofed"),
                                       ("X-Keep", "1")])
    assert r.status == 200, r
    assert r.body == b"Response from GREEN\n"
    assert r.header_all("X-Edited-By") == ["Pingora"], r.headers

    req = green.wait_requests(1)[-1]
    assert req.header_all("X-Pingora-Proxy") == ["true"], req.headers
    assert "user-agent" not in req.header_names(), req.headers
    assert req.header("X-Keep") == "1"
    assert req.header_all("host") == ["green.pingora.local"]
    ex.stop()


def test_lesson08_response_filter_sees_error_responses(example):
    """response_filter runs for cairn's own error responses too (hooks.h)."""
    ex = example("lesson08_headers", f"127.0.0.1:{free_port()}")
    r = get(ex.port, "/")
    assert r.status == 502, r
    assert r.header_all("X-Edited-By") == ["Pingora"], r.headers
    ex.stop()


# --------------------------------------------------------------------------------------
# Lesson 9: routing in request_filter with cairn_req_set_upstream and no configured routes


def test_lesson09_routing(example, origin):
    blue = origin(default=Normal(body=b"Response from BLUE\n"))
    green = origin(default=Normal(body=b"Response from GREEN\n"))
    ex = example("lesson09_routing", blue.address, green.address)

    r = get(ex.port, "/blue/x")
    assert (r.status, r.body) == (200, b"Response from BLUE\n"), r
    r = get(ex.port, "/green")
    assert (r.status, r.body) == (200, b"Response from GREEN\n"), r
    # A plain prefix match, as in the tutorial.
    r = get(ex.port, "/blueberry")
    assert (r.status, r.body) == (200, b"Response from BLUE\n"), r

    assert [q.target for q in blue.requests] == ["/blue/x", "/blueberry"]
    assert [q.target for q in green.requests] == ["/green"]
    assert blue.requests[0].header("host") == "blue.pingora.local"
    assert green.requests[0].header("host") == "green.pingora.local"

    conns = (blue.connections, green.connections)
    r = get(ex.port, "/invalid")
    assert r.status == 404, r
    assert r.header("Content-Length") == "0" and r.body == b""
    assert r.header("Cache-Control") == "private, no-store"
    time.sleep(0.2)
    assert len(blue.requests) == 2 and len(green.requests) == 1
    assert (blue.connections, green.connections) == conns
    ex.stop()


def test_lesson09_connection_usable_after_hook_404(example, origin):
    """A response written by request_filter leaves the client connection usable, also when
    the refused request had a body cairn never read."""
    blue = origin(default=Normal(body=b"Response from BLUE\n"))
    green = origin(default=Normal(body=b"Response from GREEN\n"))
    ex = example("lesson09_routing", blue.address, green.address)
    with RawConn(ex.port) as c:
        assert c.request("GET", "/invalid").status == 404
        r = c.request("GET", "/green")
        assert (r.status, r.body) == (200, b"Response from GREEN\n"), r
        assert c.request("POST", "/nope", body=b"x" * 5000).status == 404
        r = c.request("GET", "/blue")
        assert (r.status, r.body) == (200, b"Response from BLUE\n"), r
    assert [q.target for q in blue.requests] == ["/blue"]
    assert [q.target for q in green.requests] == ["/green"]
    ex.stop()


# --------------------------------------------------------------------------------------
# Lesson 10: query rewriting


@pytest.mark.parametrize("target,expected", [
    ("/search?q=rust&debug=true&sort=asc", "/search?q=rust&sort=asc&ref=pingora"),
    ("/x", "/x?ref=pingora"),
    ("/y?&&debug=1&a=1&debugx=2&debug=&", "/y?a=1&debugx=2&ref=pingora"),
    ("/z?debug=only", "/z?ref=pingora"),
])
def test_lesson10_query(example, origin, target, expected):
    o = origin()
    ex = example("lesson10_query", o.address)

    r = get(ex.port, target)
    assert r.status == 200, r
    assert o.wait_requests(1)[-1].target == expected

    query = target.split("?", 1)[1] if "?" in target else ""
    wait_for(lambda: len(stdout_lines(ex)) >= 2, msg="the hook's two log lines")
    assert stdout_lines(ex) == [f"Original Query: '{query}'", f"Rewritten URI: {expected}"]
    ex.stop()


# --------------------------------------------------------------------------------------
# Lesson 11: response header edits


def test_lesson11_response(example, origin):
    date = "Tue, 01 Jan 2030 00:00:00 GMT"
    o = origin(default=Normal(body=b"hello\n", headers=[
        ("Date", date),
        ("X-App-Name", "http-echo"),
        ("X-App-Version", "1.2.3"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; Path=/; HttpOnly"),
        ("X-Content-Type-Options", "sniff-away"),
    ]))
    ex = example("lesson11_response", o.address)

    r = get(ex.port, "/")
    assert r.status == 200, r
    assert r.body == b"hello\n"
    assert not r.has("X-App-Version"), r.headers
    assert r.header_all("X-App-Name") == ["http-echo"]
    assert r.header_all("X-Content-Type-Options") == ["nosniff"]
    assert r.header_all("Date") == [date]
    assert r.header_all("X-Legacy-Date") == [date]
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    ex.stop()


def test_lesson11_response_without_upstream_date(example, origin):
    """The upstream sent no Date: cairn writes its own after the hooks, so there is nothing
    to copy and X-Legacy-Date is absent."""
    o = origin(default=Normal(body=b"hello\n", headers=[("X-App-Version", "9")]))
    ex = example("lesson11_response", o.address)
    r = get(ex.port, "/")
    assert r.status == 200, r
    assert r.has("Date")
    assert not r.has("X-App-Version")
    assert not r.has("X-Legacy-Date")
    assert r.header("X-Content-Type-Options") == "nosniff"
    ex.stop()


# --------------------------------------------------------------------------------------
# Lesson 13: custom error responses from fail_to_proxy


def _json_error(code):
    return (f'{{"status": "error", "code": {code}, '
            f'"message": "We caught a custom error!"}}').encode()


def test_lesson13_errors(example, origin):
    o = origin(default=Normal(body=b"Response from BLUE\n"))
    ex = example("lesson13_errors", o.address)

    r = get(ex.port, "/")
    assert (r.status, r.body) == (200, b"Response from BLUE\n"), r

    r = get(ex.port, "/oops")
    assert r.status == 400, r
    assert r.body == _json_error(400)
    assert json.loads(r.body) == {"status": "error", "code": 400,
                                  "message": "We caught a custom error!"}
    assert r.header_all("Content-Type") == ["application/json"]
    assert r.header("Content-Length") == str(len(r.body))
    time.sleep(0.1)
    assert [q.target for q in o.requests] == ["/"]
    ex.stop()
    assert "Fail to proxy: 400" in ex.stderr()


def test_lesson13_errors_connection_refused(example):
    closed = free_port()  # nothing listens there
    ex = example("lesson13_errors", f"127.0.0.1:{closed}")

    with RawConn(ex.port) as c:
        r = c.request("GET", "/anything")
    assert r.status == 502, r
    assert r.body == _json_error(502)
    assert r.header_all("Content-Type") == ["application/json"]
    assert r.header("Content-Length") == str(len(r.body))
    ex.stop()
    assert "Fail to proxy: 502" in ex.stderr()


def test_lesson13_fail_to_proxy_sees_the_cause(example):
    """fail_to_proxy's err argument names the real cause of a refused connection."""
    closed = free_port()
    ex = example("lesson13_errors", f"127.0.0.1:{closed}")
    assert get(ex.port, "/").status == 502
    ex.stop()
    line = next((ln for ln in ex.stderr().splitlines() if ln.startswith("Fail to proxy:")), None)
    assert line == "Fail to proxy: 502 (ECONNREFUSED)", (
        f"fail_to_proxy was told {line!r}: the upstream failure did not reach the hook "
        "(src/engine/forward.c on_error() stores it in s->last_err; without it "
        "src/engine/session.c cn_session_error() falls back to EIO/ETIMEDOUT/EPROTO)")


# --------------------------------------------------------------------------------------
# Lesson 25: upstream connection reuse, reported by the logging hook


def test_lesson25_pool(example, origin):
    o = origin(default=Normal(body=b"pooled\n"))
    ex = example("lesson25_pool", o.address)

    for i in range(2):
        r = get(ex.port, f"/r{i}")  # a new client connection each time
        assert (r.status, r.body) == (200, b"pooled\n"), r
        wait_for(lambda: len(stdout_lines(ex)) > i, msg=f"log line of request {i}")

    assert o.connections == 1, f"origin accepted {o.connections} connections"
    assert [q.conn_id for q in o.requests] == [1, 1]
    assert stdout_lines(ex) == ["Request Complete. Reused Connection: false",
                                "Request Complete. Reused Connection: true"]
    ex.stop()


def test_lesson25_pool_one_client_connection(example, origin):
    """The tutorial's `curl URL URL`: two requests on one client connection."""
    o = origin(default=Normal(body=b"pooled\n"))
    ex = example("lesson25_pool", o.address)
    with RawConn(ex.port) as c:
        for i in range(2):
            r = c.request("GET", f"/c{i}")
            assert (r.status, r.body) == (200, b"pooled\n"), r
    wait_for(lambda: len(stdout_lines(ex)) >= 2, msg="two log lines")
    assert o.connections == 1
    assert stdout_lines(ex) == ["Request Complete. Reused Connection: false",
                                "Request Complete. Reused Connection: true"]
    ex.stop()


def test_lesson25_logging_once_per_failed_request(example):
    """logging runs exactly once per request, also when the upstream is unreachable."""
    ex = example("lesson25_pool", f"127.0.0.1:{free_port()}")
    for _ in range(2):
        assert get(ex.port, "/").status == 502
    wait_for(lambda: len(stdout_lines(ex)) >= 2, msg="two log lines")
    time.sleep(0.2)
    assert stdout_lines(ex) == ["Request Complete. Reused Connection: false"] * 2
    ex.stop()
