"""Proxying to an origin: byte-exact bodies both ways, forwarding headers, hop-by-hop
headers, upstream keep-alive."""
import hashlib
import json
import shutil
import subprocess

import httpx
import pytest

from helpers import RawConn, get, proxy_config
from origins import Blob, Chunked, Echo, Normal, blob

BIG_CL = Blob(5 << 20, seed=7)
BIG_CHUNKED = Blob(3 << 20, seed=8, chunked=True, chunk_size=100_000)
ODD_CHUNKED = Blob(1_000_003, seed=9, chunked=True, chunk_size=4093)


@pytest.fixture(scope="module")
def o():
    from origins import Origin
    org = Origin({
        "/plain": Normal(200, b"plain origin body\n", headers={"X-Origin": "yes", "Cache-Control": "no-store"}),
        "/created": Normal(201, b"made\n", headers={"Location": "/created/1"}),
        "/notfound": Normal(404, b"origin 404\n"),
        "/err": Normal(500, b"origin 500\n"),
        "/nocontent": Normal(204, b""),
        "/echo": Echo(),
        "/echo-body": Echo(echo_body=True),
        "/echo-chunked": Echo(echo_body=True, chunked=True),
        "/big": BIG_CL,
        "/big-chunked": BIG_CHUNKED,
        "/odd-chunked": ODD_CHUNKED,
        "/chunked": Chunked(),
        "/hop": Normal(200, b"hop\n", headers={"Connection": "X-Resp-Hop", "X-Resp-Hop": "1",
                                                "Keep-Alive": "timeout=5", "X-Kept": "k",
                                                "Proxy-Authenticate": "Basic", "Upgrade": "h2c"}),
    }).start()
    yield org
    org.stop()


@pytest.fixture(scope="module")
def srv(cairn_module, o):
    return cairn_module(proxy_config(o, server={"workers": 1}))


def echo_json(r):
    assert r.status == 200, r
    return json.loads(r.body)


def test_get_status_headers_body(srv, o):
    r = get(srv.port, "/plain")
    assert r.status == 200 and r.body == b"plain origin body\n", r
    assert r.header("X-Origin") == "yes", r
    assert r.header("Cache-Control") == "no-store", r
    assert r.header("Content-Type") == "text/plain", r


@pytest.mark.parametrize("path,status,body", [
    ("/created", 201, b"made\n"), ("/notfound", 404, b"origin 404\n"), ("/err", 500, b"origin 500\n"),
])
def test_origin_status_passed_through(srv, path, status, body):
    r = get(srv.port, path)
    assert r.status == status and r.body == body, f"origin's {status} was not passed through: {r}"


def test_204_from_origin(srv):
    with RawConn(srv.port) as c:
        r = c.request("GET", "/nocontent")
        assert r.status == 204, r
        assert r.header("Content-Length") is None and r.header("Transfer-Encoding") is None, \
            f"a 204 must carry no framing fields: {r}"
        assert c.request("GET", "/plain").body == b"plain origin body\n"


def test_query_string_forwarded(srv, o):
    r = get(srv.port, "/echo?a=1&b=%20x")
    assert echo_json(r)["target"] == "/echo?a=1&b=%20x"


@pytest.mark.parametrize("path,beh", [("/big", BIG_CL), ("/big-chunked", BIG_CHUNKED),
                                      ("/odd-chunked", ODD_CHUNKED)])
def test_large_response_sha256(srv, path, beh):
    r = get(srv.port, path, timeout=20)
    assert r.status == 200, r
    assert len(r.body) == len(beh.body), f"got {len(r.body)} bytes, expected {len(beh.body)}"
    assert hashlib.sha256(r.body).hexdigest() == beh.sha256, "response body corrupted"


def test_large_response_httpx_stream(srv):
    h = hashlib.sha256()
    with httpx.stream("GET", srv.url("/big"), timeout=20) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            h.update(chunk)
    assert h.hexdigest() == BIG_CL.sha256


def test_large_response_curl(srv, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed (scripts/install-deps.sh installs it)")
    out = tmp_path / "big.bin"
    p = subprocess.run([curl, "-sS", "-o", str(out), "-w", "%{http_code}", srv.url("/big-chunked")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout == "200", f"curl: rc={p.returncode} {p.stdout} {p.stderr}"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == BIG_CHUNKED.sha256


@pytest.mark.parametrize("size", [1 << 20, 5 << 20])
def test_post_content_length_sha256(srv, o, size):
    body = blob(size, seed=size)
    r = httpx.post(srv.url("/echo"), content=body, timeout=20)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "POST"
    assert seen["body_len"] == size, f"origin got {seen['body_len']} bytes of {size}"
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest(), "request body corrupted"


def test_post_chunked_sha256(srv, o):
    body = blob(3 << 20, seed=3)

    def gen():
        for i in range(0, len(body), 50_000):
            yield body[i:i + 50_000]

    r = httpx.post(srv.url("/echo"), content=gen(), timeout=20)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["body_len"] == len(body), seen
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest(), "chunked request body corrupted"


def test_post_roundtrip_echo(srv):
    body = blob(2 << 20, seed=11)
    r = httpx.post(srv.url("/echo-body"), content=body, timeout=20)
    assert r.status_code == 200 and r.content == body
    r = httpx.post(srv.url("/echo-chunked"), content=body, timeout=20)
    assert r.status_code == 200 and r.content == body


def test_chunked_response_reframed_or_passed(srv):
    r = get(srv.port, "/chunked")
    assert r.status == 200 and r.body == b"hello chunked world\n", r


def test_forwarding_headers(srv, o):
    r = get(srv.port, "/echo", host="front.example.test")
    seen = echo_json(r)
    hdrs = {k.lower(): v for k, v in seen["headers"]}
    assert hdrs.get("x-forwarded-for") == "127.0.0.1", f"X-Forwarded-For: {hdrs.get('x-forwarded-for')!r}"
    assert hdrs.get("x-forwarded-proto") == "http", f"X-Forwarded-Proto: {hdrs.get('x-forwarded-proto')!r}"
    assert hdrs.get("x-forwarded-host") == "front.example.test", \
        f"X-Forwarded-Host: {hdrs.get('x-forwarded-host')!r}"
    assert "1.1 cairn" in (hdrs.get("via") or ""), f"Via: {hdrs.get('via')!r}"


def test_x_forwarded_for_appends(srv, o):
    r = get(srv.port, "/echo", headers={"X-Forwarded-For": "203.0.113.9"})
    hdrs = {k.lower(): v for k, v in echo_json(r)["headers"]}
    xff = hdrs.get("x-forwarded-for", "")
    assert xff.replace(" ", "").endswith(",127.0.0.1"), f"X-Forwarded-For should end with the client: {xff!r}"


def test_hop_by_hop_request_headers_removed(srv, o):
    r = get(srv.port, "/echo", headers={
        "Connection": "keep-alive, X-Custom-Hop",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Upgrade": "foo/1",
        "Proxy-Connection": "keep-alive",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "Trailer": "X-Later",
        "X-Custom-Hop": "secret",
        "X-End-To-End": "kept",
    })
    names = {k.lower() for k, _ in echo_json(r)["headers"]}
    leaked = names & {"connection", "keep-alive", "te", "upgrade", "proxy-connection", "x-custom-hop",
                      "proxy-authorization", "trailer"}
    assert not leaked, f"hop-by-hop headers forwarded to the origin: {sorted(leaked)}"
    assert "x-end-to-end" in names, "an end-to-end header was dropped"


def test_hop_by_hop_response_headers_removed(srv):
    r = get(srv.port, "/hop")
    assert r.status == 200 and r.body == b"hop\n", r
    assert r.header("X-Resp-Hop") is None, f"header named in the origin's Connection leaked: {r}"
    assert r.header("Keep-Alive") is None, f"origin's Keep-Alive leaked: {r}"
    assert r.header("Proxy-Authenticate") is None and r.header("Upgrade") is None, r
    assert "1.1 cairn" in (r.header("Via") or ""), f"Via not appended to the response: {r}"
    assert r.header("X-Kept") == "k", r


def test_upstream_keepalive_reuse(cairn, origin):
    org = origin({"/ka": Normal(200, b"ka\n")})
    c = cairn(proxy_config(org, server={"workers": 1}))
    with RawConn(c.port) as s:
        for i in range(10):
            r = s.request("GET", "/ka")
            assert r.status == 200 and r.body == b"ka\n", f"request {i}: {r}"
    assert len(org.requests) == 10
    assert org.connections == 1, f"10 sequential requests used {org.connections} upstream connections"


def test_upstream_keepalive_reuse_across_clients(cairn, origin):
    org = origin({"/ka": Normal(200, b"ka\n")})
    c = cairn(proxy_config(org, server={"workers": 1}))
    for i in range(5):
        r = get(c.port, "/ka")
        assert r.status == 200, f"request {i}: {r}"
    assert org.connections == 1, f"5 sequential clients used {org.connections} upstream connections"


def test_head_through_proxy(srv):
    with RawConn(srv.port) as c:
        c.send(b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        h = c.read_response(head_request=True)
        assert h.status == 200 and h.header("Content-Length") == str(len(BIG_CL.body)), h
        r = c.read_response()
        assert r.body == b"plain origin body\n", f"HEAD response had a body: {r}"


def test_client_connection_close_does_not_close_upstream(cairn, origin):
    org = origin({"/ka": Normal(200, b"ka\n")})
    c = cairn(proxy_config(org, server={"workers": 1}))
    for i in range(5):
        with RawConn(c.port) as s:
            s.send(b"GET /ka HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = s.read_response()
            assert r.status == 200 and r.body == b"ka\n", r
            s.wait_closed(2)
    assert org.connections == 1, \
        f"the client's Connection: close leaked upstream: {org.connections} origin connections"
    assert all(q.header("connection") is None for q in org.requests), \
        [q.header("connection") for q in org.requests]
