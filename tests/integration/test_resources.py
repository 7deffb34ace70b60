"""No descriptor leaks: after a burst of mixed traffic (good, bad, aborted, proxied,
failed upstreams, files) the process's fd count returns near its idle baseline."""
import os
import socket
import time

from helpers import RawConn, free_port, get, raw
from origins import Normal, Reset, Slow, Truncated


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_no_fd_leak_after_mixed_traffic(cairn, origin, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.txt").write_bytes(b"file\n" * 1000)
    org = origin({"/ok": Normal(200, b"ok\n"), "/reset": Reset(), "/trunc": Truncated(10000, 10),
                  "/slow": Slow(delay_headers=2.0)})
    c = cairn({
        "server": {"workers": 2, "header_timeout": "1s", "keepalive_timeout": "1s",
                   "body_timeout": "1s"},
        "upstreams": {"o": {"peers": [{"address": org.address}], "read_timeout": "500ms",
                            "retries": 0},
                      "dead": {"peers": [{"address": f"127.0.0.1:{free_port()}"}], "retries": 0}},
        "routes": [
            {"match": {"path_prefix": "/files/"}, "strip_prefix": True,
             "files": {"root": str(tmp_path / "www")}},
            {"match": {"path_prefix": "/dead"}, "upstream": "dead"},
            {"match": {"path_prefix": "/"}, "upstream": "o"},
        ],
    })
    # warm up every path once so lazily created resources exist in the baseline
    for p in ("/ok", "/files/f.txt", "/dead"):
        get(c.port, p)
    time.sleep(1.5)
    base = fd_count(c.pid)
    for i in range(10):
        paths = ["/ok", "/files/f.txt", "/files/missing", "/dead", "/reset"]
        if i % 4 == 0:
            paths.append("/slow")  # 504 after read_timeout
        for p in paths:
            try:
                get(c.port, p, timeout=3)
            except Exception:  # noqa: BLE001 (aborted responses are expected for some)
                pass
        try:
            with RawConn(c.port, timeout=3) as s:
                s.request("GET", "/trunc")
        except Exception:  # noqa: BLE001
            pass
        raw(c.port, b"\x00bad\r\n\r\n", timeout=1)
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"GET /files/f.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"GET / HTTP/1.1\r\nHos")  # left for header_timeout
        s.close()
    time.sleep(1.8)  # header/keepalive/body timeouts are 1s, read_timeout 500ms
    after = fd_count(c.pid)
    assert after <= base + 4, (f"fd count grew from {base} to {after} after mixed traffic: "
                               f"{sorted(os.readlink(f'/proc/{c.pid}/fd/{f}') for f in os.listdir(f'/proc/{c.pid}/fd'))}")
    assert get(c.port, "/ok").body == b"ok\n"
