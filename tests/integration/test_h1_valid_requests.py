"""Unusual but valid HTTP/1.1 requests must be accepted (no false 400s), and the connection
must stay in sync afterwards."""
import pytest

from helpers import RawConn, static_route

H = b"Host: x\r\n"
VALID = {
    "tchar-header-name": b"GET /v HTTP/1.1\r\n" + H + b"X-Weird!#$%&'*+-.^_`|~: v\r\n\r\n",
    "empty-value": b"GET /v HTTP/1.1\r\n" + H + b"X-Empty:\r\n\r\n",
    "ows-around-value": b"GET /v HTTP/1.1\r\n" + H + b"X-Ows: \t value \t\r\n\r\n",
    "obs-text-value": b"GET /v HTTP/1.1\r\n" + H + b"X-Latin: caf\xe9 \x80\xff\r\n\r\n",
    "lowercase-host": b"GET /v HTTP/1.1\r\nhost: x\r\n\r\n",
    "uppercase-host": b"GET /v HTTP/1.1\r\nHOST: x\r\n\r\n",
    "host-with-port": b"GET /v HTTP/1.1\r\nHost: x:8080\r\n\r\n",
    "ipv6-host": b"GET /v HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
    "cl-zero-get": b"GET /v HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
    "te-case-insensitive": b"POST /v HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-leading-zeros": b"POST /v HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n0\r\n\r\n",
    "chunk-size-uppercase-hex": b"POST /v HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    "chunk-ext-quoted": b"POST /v HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3;n=\"a;b\"\r\nabc\r\n0\r\n\r\n",
    "chunk-trailers": b"POST /v HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
    "query-chars": b"GET /v?a=b&c=%20&d=/?:@!$'()*+,;= HTTP/1.1\r\n" + H + b"\r\n",
    "long-path-segments": b"GET /v?" + b"/".join([b"seg"] * 200) + b" HTTP/1.1\r\n" + H + b"\r\n",
    "asterisk-free-options": b"OPTIONS /v HTTP/1.1\r\n" + H + b"\r\n",
    "post-cl-body": b"POST /v HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello",
    "delete-no-body": b"DELETE /v HTTP/1.1\r\n" + H + b"\r\n",
    "many-small-headers": b"GET /v HTTP/1.1\r\n" + H + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(80)) + b"\r\n",
}


@pytest.fixture(scope="module")
def srv(cairn_module):
    return cairn_module({"server": {"workers": 1, "header_timeout": "2s"},
                         "routes": [static_route("valid\n", path_prefix="/v")]})


@pytest.mark.parametrize("name", list(VALID))
def test_valid_request_accepted(srv, name):
    with RawConn(srv.port, timeout=4) as c:
        c.send(VALID[name] + b"GET /v HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"valid\n", f"{name}: valid request refused: {r}"
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == b"valid\n", f"{name}: connection out of sync: {r2}"


def test_h2c_upgrade_ignored(srv):
    with RawConn(srv.port, timeout=4) as c:
        c.send(b"GET /v HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"valid\n" and r.version == "HTTP/1.1", \
            f"an h2c upgrade offer must be ignored by an HTTP/1.1-only listener: {r}"
        assert c.request("GET", "/v").status == 200
