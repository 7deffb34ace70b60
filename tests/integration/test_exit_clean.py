"""Graceful exit after real traffic: SIGTERM must end with exit 0 and without any sanitizer
report (ASan, UBSan, LeakSanitizer; the `cairn` fixture checks stderr at teardown).
Each scenario runs a few rounds because shutdown races depend on timing."""
import os
import signal
import threading

import pytest

from helpers import RawConn, get, proxy_config, raw, static_route
from origins import Blob, Normal, Slow

ROUNDS = 3


def stop_clean(c):
    code = c.stop(signal.SIGTERM, timeout=5)
    assert code == 0, f"exit {code} after SIGTERM; stderr tail:\n{c.stderr_text()[-3000:]}"


def close_requests(port, paths):
    for p in paths:
        raw(port, f"GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), timeout=3)


@pytest.mark.parametrize("rnd", range(ROUNDS))
def test_exit_clean_static(cairn, rnd):
    c = cairn({"server": {"workers": 2}, "routes": [static_route("s\n", path="/s")]})
    close_requests(c.port, ["/s", "/nope", "/s"])
    with RawConn(c.port) as s:
        s.request("GET", "/s")
        stop_clean(c)


@pytest.mark.parametrize("rnd", range(ROUNDS))
def test_exit_clean_files(cairn, tmp_path, rnd):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_bytes(b"A\n" * 1000)
    (tmp_path / "www" / "big.bin").write_bytes(os.urandom(400_000))
    c = cairn({"server": {"workers": 2},
               "routes": [{"match": {"path_prefix": "/"}, "files": {"root": str(tmp_path / "www")}}]})
    close_requests(c.port, ["/a.txt", "/a.txt", "/big.bin", "/missing", "/a.txt"])
    s = RawConn(c.port)
    s.send(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    s.close()  # client gone mid-file
    stop_clean(c)


@pytest.mark.parametrize("rnd", range(ROUNDS))
def test_exit_clean_proxy(cairn, origin, rnd):
    org = origin({"/n": Normal(200, b"n\n"), "/big": Blob(1 << 20), "/slow": Slow(delay_headers=0.3)})
    c = cairn(proxy_config(org, server={"workers": 2, "shutdown_grace": "2s"}))
    close_requests(c.port, ["/n", "/big", "/n"])
    with RawConn(c.port) as s:
        assert s.request("GET", "/n").status == 200
    s = RawConn(c.port)
    s.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    s.close()
    s2 = RawConn(c.port)
    s2.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    got = {}

    def finish():  # in flight at SIGTERM: read the answer, then hang up (ends lingering close)
        try:
            got["r"] = s2.read_response(timeout=3)
        finally:
            s2.close()

    t = threading.Thread(target=finish)
    t.start()
    stop_clean(c)
    t.join(3)
    assert got.get("r") is not None and got["r"].status == 200, f"in-flight request lost: {got}"


@pytest.mark.parametrize("rnd", range(ROUNDS))
def test_exit_clean_cache(cairn, origin, rnd):
    org = origin({"/c": Normal(200, b"cached\n" * 100, headers={"Cache-Control": "max-age=60"})})
    cfg = proxy_config(org, route_extra={"cache": "m"})
    cfg["caches"] = {"m": {"memory": {"size": "1MiB", "max_object": "64KiB"}}}
    c = cairn(cfg)
    for _ in range(3):
        assert get(c.port, "/c").status == 200
    stop_clean(c)


@pytest.mark.parametrize("rnd", range(ROUNDS))
def test_exit_clean_after_errors(cairn, rnd):
    c = cairn({"server": {"workers": 1, "max_header_size": "2KiB", "header_timeout": "1s"},
               "routes": [static_route()]})
    raw(c.port, b"\x00\x01garbage\r\n\r\n", timeout=2)
    raw(c.port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"h" * 5000 + b"\r\n\r\n", timeout=2)
    raw(c.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", timeout=2)
    half = RawConn(c.port)
    half.send(b"GET / HTTP/1.1\r\nHo")
    stop_clean(c)
    half.close()
