"""Interim (1xx) responses from the origin: 102 and 103 Early Hints are relayed to HTTP/1.1
clients before the final response (not to HTTP/1.0 ones), never cached, and their fields never
leak into the final response (RFC 9110 §15.2, RFC 8297)."""
import pytest

from helpers import RawConn, proxy_config
from origins.server import Raw

INTERIM = (b"HTTP/1.1 102 Processing\r\n\r\n"
           b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
           b"X-Hint: early\r\n\r\n")
FINAL = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\n"
         b"Content-Length: 6\r\n\r\nfinal\n")


@pytest.fixture
def srv(cairn, origin):
    o = origin({"/p": Raw(INTERIM + FINAL, close=False), "/c": Raw(INTERIM + FINAL, close=False)})
    cfg = proxy_config(o, match={"path_prefix": "/p"},
                       extra_routes=[{"match": {"path_prefix": "/c"}, "upstream": "o",
                                      "cache": "m"}])
    cfg["caches"] = {"m": {"memory": {"size": "1MiB"}}}
    return cairn(cfg), o


@pytest.mark.parametrize("path", ["/p", "/c"])
def test_interim_relayed_to_http11(srv, path):
    c, o = srv
    with RawConn(c.port) as conn:
        r = conn.request("GET", path, host="x")
    assert [i.status for i in r.informational] == [102, 103], r.informational
    hints = r.informational[1]
    assert hints.header("link") == "</style.css>; rel=preload; as=style"
    assert hints.header("x-hint") == "early"
    assert r.status == 200 and r.body == b"final\n", r
    assert r.header("link") is None and r.header("x-hint") is None, "1xx fields leaked"


def test_interim_not_sent_to_http10(srv):
    c, o = srv
    with RawConn(c.port) as conn:
        conn.send(b"GET /p HTTP/1.0\r\nHost: x\r\n\r\n")
        first = conn.read_response(skip_1xx=False)
    assert first.status == 200 and first.body == b"final\n", first
    assert first.header("link") is None


def test_interim_never_cached(srv):
    c, o = srv
    with RawConn(c.port) as conn:
        r1 = conn.request("GET", "/c", host="x")
        r2 = conn.request("GET", "/c", host="x")
    assert [i.status for i in r1.informational] == [102, 103]
    assert "hit" in r2.header("cache-status", ""), r2
    assert r2.informational == [], "a cache hit replayed the origin's interim responses"
    assert r2.header("link") is None and r2.body == b"final\n"
    assert len([q for q in o.requests if q.path == "/c"]) == 1
