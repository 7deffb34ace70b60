"""Upstream failures: refused (502), slow (504), truncated bodies, bad framing, resets,
custom error pages, body timeout while proxying."""
import socket
import time

import pytest

from helpers import ConnectionClosed, RawConn, free_port, get, proxy_config
from origins import BadFraming, HugeHeaders, Normal, Origin, Reset, Slow, Truncated


@pytest.fixture(scope="module")
def o():
    org = Origin({
        "/ok": Normal(200, b"fine\n"),
        "/slow": Slow(delay_headers=3.0),
        "/slow-body": Slow(delay_headers=0, chunk_delay=3.0, chunks=2, body=b"a" * 100),
        "/truncated": Truncated(declared=100_000, send=1000),
        "/truncated-chunked": Truncated(declared=5000, send=100, chunked=True),
        "/cl-te": BadFraming("cl+te"),
        "/bad-status": BadFraming("bad-status"),
        "/garbage": BadFraming("garbage"),
        "/double-cl": BadFraming("double-cl"),
        "/reset": Reset(),
        "/reset-partial": Reset(partial=b"HTTP/1.1 200 OK\r\nContent-Le"),
        "/huge-headers": HugeHeaders(size=100_000),
    }).start()
    yield org
    org.stop()


@pytest.fixture(scope="module")
def srv(cairn_module, o):
    return cairn_module(proxy_config(o, upstream_extra={"read_timeout": "1s", "retries": 0},
                                     server={"body_timeout": "1s"}))


def assert_error(r, status):
    assert r.status == status, f"expected {status}, got {r}"
    assert r.body and r.header("Content-Type"), f"{status} without body/Content-Type: {r}"


def test_connection_refused_502(cairn):
    c = cairn(proxy_config(f"127.0.0.1:{free_port()}", upstream_extra={"retries": 0}))
    t0 = time.monotonic()
    r = get(c.port, "/x")
    assert_error(r, 502)
    assert time.monotonic() - t0 < 2, "a refused connection must fail fast"


@pytest.fixture
def blackhole():
    """A 127.0.0.1 port whose accept queue is full: SYNs are dropped, connect() hangs."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fill = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(s)
    time.sleep(0.1)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.fail("could not build a connect-timeout target (accept queue not full)")
    except (socket.timeout, TimeoutError):
        pass
    finally:
        probe.close()
    yield port
    for s in fill:
        s.close()
    lst.close()


def test_connect_timeout_504(cairn, blackhole):
    c = cairn(proxy_config(f"127.0.0.1:{blackhole}",
                           upstream_extra={"connect_timeout": "500ms", "retries": 0}))
    t0 = time.monotonic()
    r = get(c.port, "/x", timeout=5)
    dt = time.monotonic() - t0
    assert r.status == 504, f"connect timeout must give 504 (docs/proxy.md), got {r}"
    assert r.body and r.header("Content-Type"), r
    assert 0.4 <= dt < 2.0, f"connect_timeout: 500ms took {dt:.2f}s"


def test_read_timeout_504(srv):
    t0 = time.monotonic()
    r = get(srv.port, "/slow", timeout=5)
    dt = time.monotonic() - t0
    assert_error(r, 504)
    assert 0.8 <= dt <= 2.5, f"504 after {dt:.2f}s, expected ~1s (read_timeout: 1s)"


def test_read_timeout_mid_body_aborts(srv):
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"GET /slow-body HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        try:
            r = c.read_response(timeout=4)
        except ConnectionClosed:
            r = None
        dt = time.monotonic() - t0
        assert r is None or r.status == 504, \
            f"a body stalled past read_timeout must abort the client response, got {r}"
        assert dt <= 2.5, f"took {dt:.2f}s"


def test_truncated_body_aborts_client(srv):
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"GET /truncated HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionClosed):
            r = c.read_response(timeout=4)
            raise AssertionError(f"truncated origin body delivered as a complete response: {r}")


def test_truncated_chunked_body_aborts_client(srv):
    with RawConn(srv.port, timeout=5) as c:
        c.send(b"GET /truncated-chunked HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionClosed):
            r = c.read_response(timeout=4)
            raise AssertionError(f"truncated chunked body delivered as complete: {r}")


@pytest.mark.parametrize("path", ["/cl-te", "/bad-status", "/garbage", "/double-cl"])
def test_bad_framing_502(srv, path):
    r = get(srv.port, path)
    assert_error(r, 502)


def test_reset_before_response_502(srv):
    assert_error(get(srv.port, "/reset"), 502)


def test_reset_mid_head_502(srv):
    assert_error(get(srv.port, "/reset-partial"), 502)


def test_huge_response_headers_502(srv):
    assert_error(get(srv.port, "/huge-headers", timeout=5), 502)


def test_server_survives_upstream_failures(srv):
    for p in ("/reset", "/cl-te", "/truncated"):
        try:
            get(srv.port, p, timeout=4)
        except ConnectionClosed:
            pass
    r = get(srv.port, "/ok")
    assert r.status == 200 and r.body == b"fine\n", r


def test_error_pages_custom_502(cairn):
    cfg = proxy_config(f"127.0.0.1:{free_port()}", upstream_extra={"retries": 0},
                       route_extra={"error_pages": {502: {"body": "custom bad gateway page\n"}}})
    c = cairn(cfg)
    r = get(c.port, "/")
    assert r.status == 502, r
    assert r.body == b"custom bad gateway page\n", f"error_pages body not used: {r}"
    assert r.header("Content-Type"), r


def test_body_timeout_while_proxying_408(cairn, origin):
    org = origin({"/up": Normal(200, b"never\n")})
    c = cairn(proxy_config(org, server={"body_timeout": "1s"}))
    with RawConn(c.port, timeout=5) as s:
        s.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"p" * 100)
        t0 = time.monotonic()
        r = s.read_response(timeout=4)
        dt = time.monotonic() - t0
    assert_error(r, 408)
    assert dt <= 2.5, f"408 after {dt:.2f}s (body_timeout: 1s)"


def test_error_pages_504_and_file(cairn, origin, tmp_path):
    page = tmp_path / "504.html"
    page.write_text("<h1>upstream too slow</h1>\n")
    org = origin({"/slow": Slow(delay_headers=3.0)})
    c = cairn(proxy_config(org, upstream_extra={"read_timeout": "500ms", "retries": 0},
                           route_extra={"error_pages": {504: {"file": str(page)}}}))
    r = get(c.port, "/slow", timeout=5)
    assert r.status == 504, r
    assert r.body == b"<h1>upstream too slow</h1>\n", f"error_pages file not used: {r}"
    assert (r.header("Content-Type") or "").startswith("text/html"), r


def test_error_pages_on_files_404(cairn, tmp_path):
    (tmp_path / "www").mkdir()
    c = cairn({"routes": [{"match": {"path_prefix": "/"}, "files": {"root": str(tmp_path / "www")},
                           "error_pages": {404: {"body": "no such file here\n"}}}]})
    r = get(c.port, "/missing.txt")
    assert r.status == 404 and r.body == b"no such file here\n", r

