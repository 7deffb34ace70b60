"""Byte fidelity through the proxy: targets, repeated headers, odd header bytes, early
origin responses, failover between peers."""
import json

import pytest

from helpers import RawConn, free_port, get, proxy_config
from origins import Echo, Func, Normal, Origin


@pytest.fixture(scope="module")
def o():
    def early_413(origin, req, sock):
        sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
        return False

    org = Origin({
        "/cookies": Normal(200, b"c\n", headers=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2"),
                                                 ("Set-Cookie", "c=3, d=4")]),
        "/odd": Normal(200, b"odd\n", headers=[("X-Utf8", "caf\xc3\xa9".encode("latin-1").decode("latin-1")),
                                               ("X-Empty", ""), ("X-Spaces", "a  b")]),
        "/early": Func(early_413, before_body=True),
    }, default=Echo()).start()
    yield org
    org.stop()


@pytest.fixture(scope="module")
def srv(cairn_module, o):
    return cairn_module(proxy_config(o))


def target_seen(srv, target):
    r = get(srv.port, target)
    assert r.status == 200, r
    return json.loads(r.body)["target"]


@pytest.mark.parametrize("target", [
    "/a%2Fb/%20c",
    "/p?a=%2F&b=%zz&c",
    "/p?q=1&q=2&empty=&flag",
    "/~user/x;param=1",
    "/sp%C3%A9cial",
])
def test_target_forwarded_verbatim(srv, target):
    assert target_seen(srv, target) == target, "the target must reach the origin unchanged"


def test_target_forwarded_normalised(srv):
    """An already normal path is forwarded verbatim (above); any other spelling reaches the
    origin in its normal form (docs/http1.md, test_path_normalisation.py)."""
    assert target_seen(srv, "/%7Euser/x;param=1") == "/~user/x;param=1"


def test_repeated_response_headers_kept(srv):
    r = get(srv.port, "/cookies")
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2", "c=3, d=4"], \
        f"Set-Cookie headers merged or lost: {r.header_all('Set-Cookie')}"


def test_odd_response_header_bytes(srv):
    r = get(srv.port, "/odd")
    assert r.header("X-Utf8") == "caf\xc3\xa9", f"non-ASCII header bytes changed: {r.header('X-Utf8')!r}"
    assert r.header("X-Empty") == "", f"empty header value lost: {r.headers}"
    assert r.header("X-Spaces") == "a  b", r.headers


def test_repeated_request_headers_kept(srv, o):
    r = get(srv.port, "/echo", headers=[("X-Multi", "1"), ("X-Multi", "2"), ("Accept", "a/b"),
                                        ("Cookie", "k=v"), ("Authorization", "Bearer t")])
    hs = json.loads(r.body)["headers"]
    assert [v for k, v in hs if k.lower() == "x-multi"] == ["1", "2"], hs
    assert ["Bearer t"] == [v for k, v in hs if k.lower() == "authorization"], hs


def test_large_request_header_forwarded(srv):
    big = "v" * 6000
    r = get(srv.port, "/echo", headers={"X-Large": big})
    hs = json.loads(r.body)["headers"]
    assert [v for k, v in hs if k.lower() == "x-large"] == [big], "a 6 KB header was not forwarded intact"


def test_origin_answers_before_body(srv):
    """The origin refuses the upload before reading it; the client gets the 413."""
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"u" * 1000)
        r = c.read_response(timeout=4)
    assert r.status == 413 and r.body == b"too large", f"origin's early answer not relayed: {r}"


def test_failover_to_second_peer(cairn, origin):
    live = origin({"/f": Normal(200, b"live\n")})
    cfg = proxy_config(live, upstream_extra={"retries": 1})
    cfg["upstreams"]["o"]["peers"] = [{"address": f"127.0.0.1:{free_port()}"},
                                      {"address": live.address}]
    c = cairn(cfg)
    for i in range(6):
        r = get(c.port, "/f")
        assert r.status == 200 and r.body == b"live\n", f"request {i} not failed over: {r}"


def test_round_robin_over_peers(cairn, origin):
    a = origin({"/rr": Normal(200, b"a\n")})
    b = origin({"/rr": Normal(200, b"b\n")})
    cfg = proxy_config(a)
    cfg["upstreams"]["o"]["peers"] = [{"address": a.address}, {"address": b.address}]
    c = cairn(cfg)
    bodies = [get(c.port, "/rr").body for _ in range(10)]
    assert b"a\n" in bodies and b"b\n" in bodies, f"10 requests all went to one peer: {bodies}"


@pytest.mark.parametrize("framing", ["cl", "chunked"])
def test_body_that_looks_like_a_request_is_not_split(srv, o, framing):
    inner = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    if framing == "cl":
        req = b"POST /outer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner
    else:
        req = (b"POST /outer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n")
    before = len(o.requests)
    with RawConn(srv.port) as c:
        c.send(req)
        r = c.read_response()
        assert r.status == 200, r
        r2 = c.request("GET", "/after")
        assert r2.status == 200, r2
    seen = o.requests[before:]
    assert [q.target for q in seen] == ["/outer", "/after"], \
        f"origin saw {[q.target for q in seen]}: a request body was parsed as a request"
    assert seen[0].body == inner, seen[0].body


def test_large_response_header_within_buffer(cairn, origin):
    from origins import HugeHeaders
    org = origin({"/h": HugeHeaders(size=30000, count=1)})
    c = cairn(proxy_config(org))
    r = get(c.port, "/h")
    assert r.status == 200 and r.body == b"ok\n", r
    assert r.header("X-Huge-0") == "h" * 30000, "a 30 KB response header (buffer_size 64KiB) was mangled"


def test_expect_continue_origin_rejects_without_body(srv):
    """The origin refuses before the body: the client, still waiting to send its body,
    gets the final 413 without having to send anything."""
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n"
               b"Expect: 100-continue\r\n\r\n")
        r = c.read_response(timeout=3)
    assert r.status == 413 and r.body == b"too large", f"origin's early refusal not relayed: {r}"
