"""Request rewriting on proxied routes: host_header, strip_prefix, rewrite_prefix, request
and response header rules."""
import pytest

from helpers import get, upstream
from origins import Echo, Normal, Origin


@pytest.fixture(scope="module")
def o():
    org = Origin({"/resp": Normal(200, b"resp\n", headers=[
        ("X-Remove-Me", "gone"), ("X-Set-Me", "origin-1"), ("X-Set-Me", "origin-2"),
        ("X-Add-Me", "origin")]),
        "/api/resp": Normal(200, b"resp\n")}, default=Echo()).start()
    yield org
    org.stop()


@pytest.fixture(scope="module")
def srv(cairn_module, o):
    return cairn_module({
        "server": {"workers": 1},
        "upstreams": {"o": upstream(o)},
        "routes": [
            {"name": "hosthdr", "match": {"path_prefix": "/hosthdr"}, "upstream": "o",
             "host_header": "backend.internal"},
            {"name": "strip", "match": {"path_prefix": "/api"}, "upstream": "o",
             "strip_prefix": True},
            {"name": "rewrite", "match": {"path_prefix": "/v1/"}, "upstream": "o",
             "rewrite_prefix": "/internal/v2/"},
            {"name": "reqhdr", "match": {"path_prefix": "/reqhdr"}, "upstream": "o",
             "request_headers": {"add": {"X-Added": "by-cairn"}, "set": {"X-Set": "set-by-cairn"},
                                 "remove": ["X-Remove"]}},
            {"name": "resphdr", "match": {"path_prefix": "/resp"}, "upstream": "o",
             "response_headers": {"add": {"X-Add-Me": "cairn"}, "set": {"X-Set-Me": "cairn"},
                                  "remove": ["X-Remove-Me"]}},
            {"name": "plain", "match": {"path_prefix": "/"}, "upstream": "o"},
        ],
    })


def seen(o):
    return o.requests[-1]


def test_host_header_rewrite(srv, o):
    r = get(srv.port, "/hosthdr/x", host="public.example.test")
    assert r.status == 200, r
    assert seen(o).header("Host") == "backend.internal", f"origin saw Host {seen(o).header('Host')!r}"
    assert seen(o).header("X-Forwarded-Host") == "public.example.test", seen(o).headers


def test_host_passed_through_by_default(srv, o):
    r = get(srv.port, "/plain", host="public.example.test")
    assert r.status == 200, r
    assert len(seen(o).header_all("Host")) == 1, f"Host duplicated: {seen(o).headers}"


def test_strip_prefix(srv, o):
    r = get(srv.port, "/api/users/7?x=1")
    assert r.status == 200, r
    assert seen(o).target == "/users/7?x=1", f"origin saw {seen(o).target!r}"


def test_strip_prefix_exact(srv, o):
    r = get(srv.port, "/api")
    assert r.status == 200, r
    assert seen(o).target == "/", f"stripping the whole path must leave '/', origin saw {seen(o).target!r}"


def test_rewrite_prefix(srv, o):
    r = get(srv.port, "/v1/items/3?q=a")
    assert r.status == 200, r
    assert seen(o).target == "/internal/v2/items/3?q=a", f"origin saw {seen(o).target!r}"


def test_unrewritten_route_keeps_path(srv, o):
    r = get(srv.port, "/plain/path?z=9")
    assert r.status == 200, r
    assert seen(o).target == "/plain/path?z=9", f"origin saw {seen(o).target!r}"


def test_request_header_rules(srv, o):
    r = get(srv.port, "/reqhdr", headers=[("X-Added", "from-client"), ("X-Set", "c1"),
                                          ("X-Set", "c2"), ("X-Remove", "secret"),
                                          ("X-Untouched", "u")])
    assert r.status == 200, r
    req = seen(o)
    assert sorted(req.header_all("X-Added")) == ["by-cairn", "from-client"], \
        f"add must keep the client's value: {req.header_all('X-Added')}"
    assert req.header_all("X-Set") == ["set-by-cairn"], f"set must replace: {req.header_all('X-Set')}"
    assert req.header("X-Remove") is None, "remove did not remove"
    assert req.header("X-Untouched") == "u"


def test_response_header_rules(srv):
    r = get(srv.port, "/resp")
    assert r.status == 200 and r.body == b"resp\n", r
    assert sorted(r.header_all("X-Add-Me")) == ["cairn", "origin"], r.header_all("X-Add-Me")
    assert r.header_all("X-Set-Me") == ["cairn"], r.header_all("X-Set-Me")
    assert r.header("X-Remove-Me") is None, r
