"""Request path normalisation (src/http/path.c, applied in src/engine/session.c): routing and
the origin see one spelling of each path, so a route that refuses /blocked/ cannot be walked
around with dot-segments, repeated slashes or percent-encoding. Raw sockets throughout:
curl and httpx normalise paths themselves."""
import json
import signal

import pytest

from helpers import RawConn, proxy_config, static_route
from origins import Origin

BLOCKED = static_route(body="blocked\n", status=403, name="blocked", path_prefix="/blocked/")

# Each names /blocked/q once the origin (or any RFC 3986 resolver) has normalised it.
BYPASSES = [
    ("/x/../blocked/q", 403),
    ("/./blocked/q", 403),
    ("//blocked/q", 403),
    ("/%62locked/q", 403),
    ("/x/%2e%2e/blocked/q", 403),
    ("/x/%2E%2E/blocked/q", 403),
    ("/x/.%2e/blocked/q", 403),
    # Climbs above the root: refused outright rather than clamped to /blocked/q.
    ("/../blocked/q", 400),
]


def config(o, **server):
    return proxy_config(o, server=server, extra_routes=[BLOCKED])


def send(c, target, method="GET"):
    conn = RawConn(c.port, timeout=5)
    r = conn.request(method, target)
    return conn, r


def only_target(o):
    """The one request target the origin saw (fails when it saw none or several)."""
    reqs = o.wait_requests(1)
    assert len(reqs) == 1, [q.target for q in reqs]
    return reqs[0].target


@pytest.fixture(scope="module")
def o():
    org = Origin().start()
    yield org
    org.stop()


@pytest.fixture(scope="module")
def srv(cairn_module, o):
    return cairn_module(config(o))


@pytest.fixture(autouse=True)
def clean_origin_log(o):
    o.reset_log()


@pytest.mark.parametrize("target,status", BYPASSES, ids=[t for t, _ in BYPASSES])
def test_bypass_forms_do_not_reach_origin(srv, o, target, status):
    conn, r = send(srv, target)
    conn.close()
    assert r.status == status, (target, r)
    assert o.requests == [], f"{target} reached the origin as {[q.target for q in o.requests]}"


def test_blocked_route_and_proxy_route_work(srv, o):
    """The control: the plain spelling is blocked, a neighbour is proxied."""
    conn, r = send(srv, "/blocked/q")
    conn.close()
    assert r.status == 403 and r.body == b"blocked\n", r
    assert o.requests == []
    conn, r = send(srv, "/blockedx/q")
    conn.close()
    assert r.status == 200, r
    assert only_target(o) == "/blockedx/q"


def test_origin_sees_normalised_path(srv, o):
    conn, r = send(srv, "/a//b/./c/%7euser")
    conn.close()
    assert r.status == 200, r
    assert only_target(o) == "/a/b/c/~user"


def test_query_is_not_touched(srv, o):
    conn, r = send(srv, "/q/../p//%7e?x=%7e//../&y=%2f")
    conn.close()
    assert r.status == 200, r
    assert only_target(o) == "/p/~?x=%7e//../&y=%2f"


def test_escapes_are_upper_cased(srv, o):
    conn, r = send(srv, "/caf%c3%a9/%2e/x%20y")
    conn.close()
    assert r.status == 200, r
    assert only_target(o) == "/caf%C3%A9/x%20y"


@pytest.mark.parametrize("target", ["/../x", "/a/../../x", "/%2e%2e/x", "/%zz", "/a%4"])
def test_refused_path_is_400_and_closes(srv, o, target):
    conn = RawConn(srv.port, timeout=5)
    # A second, valid request pipelined behind: it must not be served.
    conn.send(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"
              "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
    r = conn.read_response()
    assert r.status == 400, (target, r)
    assert (r.header("Connection") or "").lower() == "close", r
    assert conn.wait_closed(timeout=3) == b"", "a response after the 400"
    conn.close()
    assert o.requests == [], [q.target for q in o.requests]


def test_asterisk_form_is_left_alone(srv, o):
    conn, r = send(srv, "*", method="OPTIONS")
    conn.close()
    assert r.status != 400, r


def test_access_log_has_normalised_path_and_reason(cairn, origin):
    org = origin()
    c = cairn(config(org))
    for target in ("/a/./b//c", "/a/../../x"):
        conn, r = send(c, target)
        conn.close()
    assert c.stop(signal.SIGTERM) == 0
    entries = [json.loads(ln) for ln in c.access_log_lines()]
    assert [e["path"] for e in entries] == ["/a/b/c", "/a/../../x"], entries
    assert entries[1]["status"] == 400 and entries[1]["error"] == "path climbs above the root"


@pytest.mark.parametrize("mode,want", [
    (None, "/a%2Fb"),  # the default is keep
    ("keep", "/a%2Fb"),
    ("decode", "/a/b"),
])
def test_escaped_slashes_forwarded(cairn, origin, mode, want):
    org = origin()
    c = cairn(config(org, **({"escaped_slashes": mode} if mode else {})))
    conn, r = send(c, "/a%2fb")
    conn.close()
    assert r.status == 200, r
    assert only_target(org) == want


def test_escaped_slashes_decode_then_dot_segments(cairn, origin):
    org = origin()
    c = cairn(config(org, escaped_slashes="decode"))
    for target in ("/x/..%2Fblocked/q", "/x\\..\\blocked/q", "/x%5c%2e%2e%5cblocked/q"):
        conn, r = send(c, target)
        conn.close()
        assert r.status == 403, (target, r)
    assert org.requests == []


@pytest.mark.parametrize("target", ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b"])
def test_escaped_slashes_reject(cairn, origin, target):
    org = origin()
    c = cairn(config(org, escaped_slashes="reject"))
    conn, r = send(c, target)
    assert r.status == 400, (target, r)
    conn.wait_closed(timeout=3)
    conn.close()
    assert org.requests == []


def test_merge_slashes_off(cairn, origin):
    org = origin()
    c = cairn(config(org, merge_slashes=False))
    conn, r = send(c, "//a")
    assert r.status == 200, r
    assert only_target(org) == "//a"
    # Dot-segments are still removed, and climbing above the root still refused.
    org.reset_log()
    r = conn.request("GET", "/x/..//b/.")
    assert r.status == 200, r
    assert only_target(org) == "//b/"
    conn.close()
    conn, r = send(c, "/../a")
    conn.close()
    assert r.status == 400, r
