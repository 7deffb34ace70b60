"""Static and redirect routes, route matching, and the 404 for unmatched requests."""
import pytest

from helpers import RawConn, get, static_route


@pytest.fixture(scope="module")
def srv(cairn_module):
    return cairn_module({
        "server": {"workers": 1},
        "routes": [
            {"name": "hello", "match": {"path": "/hello"},
             "static": {"status": 201, "headers": {"X-Test": "yes-static", "Content-Type": "text/x-test"},
                        "body": "hello static\n"}},
            {"name": "empty", "match": {"path": "/empty"}, "static": {"status": 204}},
            {"name": "teapot", "match": {"path": "/teapot"},
             "static": {"status": 418, "body": "short and stout\n"}},
            {"name": "moved", "match": {"path": "/old"},
             "redirect": {"to": "https://example.test/new", "status": 302}},
            {"name": "moved-default", "match": {"path": "/old-default"},
             "redirect": {"to": "https://example.test/default"}},
            {"name": "moved-keep", "match": {"path_prefix": "/keep/"},
             "redirect": {"to": "https://example.test/kept/", "status": 308, "keep_path": True}},
            {"name": "hosted", "match": {"host": "api.example.test", "path_prefix": "/"},
             "static": {"body": "api host\n"}},
            {"name": "wild", "match": {"host": ["*.wild.test"], "path_prefix": "/"},
             "static": {"body": "wildcard host\n"}},
            {"name": "posts", "match": {"path": "/m", "methods": ["POST", "PUT"]},
             "static": {"body": "post or put\n"}},
            {"name": "hdr", "match": {"path": "/h", "headers": {"X-Key": "secret"}},
             "static": {"body": "header matched\n"}},
            {"name": "hdr-present", "match": {"path": "/h", "headers": {"X-Any": None}},
             "static": {"body": "header present\n"}},
            {"name": "q", "match": {"path": "/q", "query": {"v": "2"}},
             "static": {"body": "query v=2\n"}},
            {"name": "q-present", "match": {"path": "/q", "query": {"flag": None}},
             "static": {"body": "query flag\n"}},
            {"name": "re", "match": {"path_regex": "^/items/[0-9]+$"},
             "static": {"body": "regex item\n"}},
            {"name": "prefix", "match": {"path_prefix": "/pre/"},
             "static": {"body": "prefix\n"}},
        ],
    })


def test_static_status_headers_body(srv):
    r = get(srv.port, "/hello")
    assert r.status == 201, r
    assert r.header("X-Test") == "yes-static", r
    assert r.header("Content-Type") == "text/x-test", r
    assert r.body == b"hello static\n", r
    assert r.header("Content-Length") == str(len(b"hello static\n")), r


def test_static_204_has_no_body(srv):
    with RawConn(srv.port) as c:
        r = c.request("GET", "/empty")
        assert r.status == 204, r
        assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None, \
            f"a 204 must carry no framing fields (RFC 9110 8.6): {r}"
        # the connection must still be in sync: a second request works
        r2 = c.request("GET", "/hello")
        assert r2.status == 201 and r2.body == b"hello static\n", r2


def test_static_arbitrary_status(srv):
    r = get(srv.port, "/teapot")
    assert r.status == 418 and r.body == b"short and stout\n", r


def test_unmatched_is_404_with_body(srv):
    r = get(srv.port, "/no/such/route")
    assert r.status == 404, r
    assert r.body and len(r.body) < 1024, f"404 should have a short non-empty body: {r}"
    assert r.header("Content-Type"), f"404 without Content-Type: {r}"


def test_redirect_status_and_location(srv):
    r = get(srv.port, "/old")
    assert r.status == 302, r
    assert r.header("Location") == "https://example.test/new", r


def test_redirect_default_status_is_301(srv):
    r = get(srv.port, "/old-default")
    assert r.status == 301, r
    assert r.header("Location") == "https://example.test/default", r


def test_redirect_keep_path(srv):
    r = get(srv.port, "/keep/a/b.html")
    assert r.status == 308, r
    assert r.header("Location") == "https://example.test/kept/a/b.html", r


def test_match_exact_path_does_not_match_prefix(srv):
    r = get(srv.port, "/hello/more")
    assert r.status == 404, f"path: /hello must not match /hello/more: {r}"


def test_match_host_exact(srv):
    assert get(srv.port, "/x", host="api.example.test").body == b"api host\n"
    assert get(srv.port, "/x", host="API.Example.Test").body == b"api host\n", \
        "host match must be case-insensitive"
    assert get(srv.port, "/x", host="api.example.test:8080").body == b"api host\n", \
        "host match must ignore the port"
    assert get(srv.port, "/x", host="other.test").status == 404


def test_match_host_wildcard(srv):
    assert get(srv.port, "/", host="a.wild.test").body == b"wildcard host\n"
    assert get(srv.port, "/", host="x.y.wild.test").body == b"wildcard host\n"
    r = get(srv.port, "/", host="wild.test")
    assert r.status == 404, f"*.wild.test must not match the bare domain: {r}"


def test_match_methods(srv):
    assert get(srv.port, "/m", method="POST", body=b"x").body == b"post or put\n"
    assert get(srv.port, "/m", method="PUT", body=b"x").body == b"post or put\n"
    r = get(srv.port, "/m")
    assert r.status in (404, 405), f"GET must not match methods [POST, PUT]: {r}"


def test_match_headers(srv):
    assert get(srv.port, "/h", headers={"X-Key": "secret"}).body == b"header matched\n"
    assert get(srv.port, "/h", headers={"X-Key": "wrong", "X-Any": ""}).body == b"header present\n"
    assert get(srv.port, "/h", headers={"X-Key": "wrong"}).status == 404


def test_match_query(srv):
    assert get(srv.port, "/q?v=2").body == b"query v=2\n"
    assert get(srv.port, "/q?a=1&flag").body == b"query flag\n"
    assert get(srv.port, "/q?v=3").status == 404


def test_match_regex(srv):
    assert get(srv.port, "/items/123").body == b"regex item\n"
    assert get(srv.port, "/items/abc").status == 404


def test_match_prefix(srv):
    assert get(srv.port, "/pre/anything/here").body == b"prefix\n"


def test_head_static_has_no_body(srv):
    with RawConn(srv.port) as c:
        c.send(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /teapot HTTP/1.1\r\nHost: x\r\n\r\n")
        h = c.read_response(head_request=True)
        assert h.status == 201, h
        assert h.header("Content-Length") == str(len(b"hello static\n")), \
            f"HEAD must announce the GET Content-Length: {h}"
        g = c.read_response()
        assert g.status == 418 and g.body == b"short and stout\n", \
            f"HEAD response carried a body (next response out of sync): {g}"


def test_first_matching_route_wins(cairn):
    c = cairn({"routes": [static_route("first\n", path_prefix="/"),
                          static_route("second\n", path="/x")]})
    assert get(c.port, "/x").body == b"first\n"


def test_absolute_form_host_wins_for_routing(srv):
    from helpers import raw, parse_responses
    data = raw(srv.port, b"GET http://api.example.test/x HTTP/1.1\r\nHost: other.test\r\n"
                         b"Connection: close\r\n\r\n")
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body == b"api host\n", \
        f"absolute-form authority must override Host for routing (RFC 9112 3.2.2): {r}"


def test_static_utf8_and_large_bodies(cairn):
    utf8 = "héllo ✓ — ünïcode\n"
    big = "0123456789abcdef" * 8192  # 128 KiB
    c = cairn({"routes": [static_route(utf8, path="/u"), static_route(big, path="/big")]})
    r = get(c.port, "/u")
    assert r.body == utf8.encode("utf-8"), r
    assert r.header("Content-Length") == str(len(utf8.encode("utf-8"))), \
        f"Content-Length must count bytes, not characters: {r}"
    r = get(c.port, "/big")
    assert r.body == big.encode() and r.header("Content-Length") == str(len(big)), \
        f"128 KiB static body wrong ({len(r.body)} bytes)"


def test_static_default_status_and_empty_body(cairn):
    c = cairn({"routes": [{"match": {"path": "/e"}, "static": {}}]})
    r = get(c.port, "/e")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == "0", r


def test_redirect_relative_and_query(cairn):
    c = cairn({"routes": [
        {"match": {"path": "/rel"}, "redirect": {"to": "/elsewhere", "status": 307}},
        {"match": {"path_prefix": "/kp/"}, "redirect": {"to": "/new/", "keep_path": True}},
    ]})
    r = get(c.port, "/rel")
    assert r.status == 307 and r.header("Location") == "/elsewhere", r
    r = get(c.port, "/kp/x/y")
    assert r.status == 301 and r.header("Location") == "/new/x/y", r


def test_host_list(cairn):
    c = cairn({"routes": [static_route("multi\n", host=["a.test", "b.test"], path_prefix="/")]})
    assert get(c.port, "/", host="a.test").body == b"multi\n"
    assert get(c.port, "/", host="b.test").body == b"multi\n"
    assert get(c.port, "/", host="c.test").status == 404


def test_redirect_consumes_request_body(srv):
    with RawConn(srv.port) as c:
        c.send(b"POST /old HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 302, r
        r2 = c.read_response()
        assert r2.status == 201 and r2.body == b"hello static\n", f"redirect did not consume the body: {r2}"
