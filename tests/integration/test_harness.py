"""Self-tests of the test harness (helpers + origins) without cairn: if these fail, the
other failures are not cairn's fault."""
import hashlib
import time

import pytest

from helpers import ConnectionClosed, RawConn, c_unescape, parse_responses, to_yaml
from origins import BadFraming, Blob, Chunked, Echo, Normal, Reset, Slow, Truncated


def test_c_unescape():
    assert c_unescape(r"GET / HTTP/1.1\r\nX: \x41\t\0\\") == b"GET / HTTP/1.1\r\nX: A\t\0\\"
    with pytest.raises(ValueError):
        c_unescape(r"\q")


def test_yaml_quoting():
    y = to_yaml({"a": "off", "b": "[::1]:80", "c": "1s", "d": None, "e": {502: {"body": "x\n"}}})
    assert 'a: "off"' in y and 'b: "[::1]:80"' in y and "c: 1s" in y and "d: null" in y
    assert '502:\n    body: "x\\n"' in y


def test_origin_behaviours(origin):
    big = Blob(200_000, chunked=True, chunk_size=777)
    o = origin({"/n": Normal(201, b"hi"), "/e": Echo(), "/c": Chunked(), "/b": big,
                "/slow": Slow(delay_headers=0.3), "/t": Truncated(100, 10),
                "/r": Reset(), "/clte": BadFraming("cl+te")})
    with RawConn(o.port) as c:
        r = c.request("GET", "/n")
        assert (r.status, r.body) == (201, b"hi")
        r = c.request("POST", "/e", body=b"abc")
        assert b'"body_len": 3' in r.body
        assert c.request("GET", "/c").body == b"hello chunked world\n"
        assert hashlib.sha256(c.request("GET", "/b").body).hexdigest() == big.sha256
        t0 = time.monotonic()
        assert c.request("GET", "/slow").status == 200
        assert time.monotonic() - t0 >= 0.3
    assert o.connections == 1 and len(o.requests) == 5
    with RawConn(o.port) as c, pytest.raises(ConnectionClosed):
        c.request("GET", "/t")
    with RawConn(o.port) as c, pytest.raises((ConnectionClosed, ConnectionResetError)):
        c.request("GET", "/r")
    with RawConn(o.port) as c:
        r = c.request("GET", "/clte")
        assert r.header("Content-Length") == "5" and r.chunked


def test_parse_pipelined():
    data = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
    rs = parse_responses(data)
    assert [r.status for r in rs] == [200, 404] and rs[1].body == b"x" and rs[1].informational


def test_text_config_and_fixture_aliases(start_cairn, free_port, raw):
    port, admin = free_port(), free_port()
    text = f"""\
server:
  workers: 1
admin:
  listen: "127.0.0.1:{admin}"
listeners:
  - listen: "127.0.0.1:{port}"
    name: main
routes:
  - match:
      path: /t
    static:
      body: "from text\\n"
"""
    c = start_cairn(text)
    assert c.ports == [port] and c.admin_port == admin
    data = raw(port, b"GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (r,) = parse_responses(data)
    assert r.status == 200 and r.body == b"from text\n", r
    assert c.stop() == 0
