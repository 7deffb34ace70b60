"""Large cached bodies live in a file-backed region (core/fmem.c) and go to clients with
sendfile(2). What a user must see: the same bytes as the origin for every size and framing,
ranges across segment boundaries, memory handed back on purge, and — the property that makes
sendfile safe — bytes already queued in a socket do not change when their segments are freed
and reused by another object."""
import hashlib
import json
import socket
import time

import pytest

from helpers import RawConn, proc_status_kib, proxy_config, wait_for
from origins import Blob

MAX_AGE = {"Cache-Control": "max-age=600"}
SIZES = [16384, 65536, 65537, 102400, 1048579]


def sha(b):
    return hashlib.sha256(b).hexdigest()


def start(cairn, origin, routes, size="64MiB"):
    org = origin(routes)
    cfg = proxy_config(org, route_extra={"cache": "c"})
    cfg["caches"] = {"c": {"memory": {"size": size, "max_object": "16MiB"}}}
    return cairn(cfg), org


def get(c, path, headers=None, method="GET"):
    with RawConn(c.port, timeout=10) as conn:
        return conn.request(method, path, headers, host=f"127.0.0.1:{c.port}", timeout=10)


def shmem_kib(pid):
    return proc_status_kib(pid, "RssShmem")


def purge(c, path):
    body = json.dumps({"url": f"http://127.0.0.1:{c.port}{path}", "soft": False}).encode()
    with RawConn(c.admin_port) as conn:
        r = conn.request("POST", "/cache/purge", {"Content-Type": "application/json"}, body,
                         host=f"127.0.0.1:{c.admin_port}")
    assert r.status == 200 and json.loads(r.body) == {"purged": 1}, r


@pytest.mark.parametrize("chunked", [False, True])
def test_large_bodies_are_the_origins_bytes(cairn, origin, chunked):
    blobs = {f"/b{n}": Blob(n, seed=n, chunked=chunked, chunk_size=10000, headers=MAX_AGE)
             for n in SIZES}
    c, org = start(cairn, origin, blobs)
    for path, b in blobs.items():
        for want in ("fwd=uri-miss", "hit"):
            r = get(c, path)
            assert r.status == 200 and want in r.header("cache-status"), (path, r)
            assert len(r.body) == len(b.body) and sha(r.body) == b.sha256, (path, want)
        h = get(c, path, method="HEAD")
        assert h.status == 200 and h.body == b"" and int(h.header("content-length")) == len(b.body)
    assert len(org.requests) == len(blobs), "every object is fetched once"
    # A range across the first segment boundary (64 KiB) and one inside the second segment.
    big = blobs["/b1048579"].body
    for first, last in ((65530, 65545), (70000, 70010), (0, 0), (1048578, 1048578)):
        r = get(c, "/b1048579", {"Range": f"bytes={first}-{last}"})
        assert r.status == 206 and r.body == big[first:last + 1], (first, last, r)


def test_purge_returns_the_memory(cairn, origin):
    b = Blob(8 << 20, seed=7, headers=MAX_AGE)
    c, _ = start(cairn, origin, {"/big": b})
    before = shmem_kib(c.pid)
    assert sha(get(c, "/big").body) == b.sha256
    assert sha(get(c, "/big").body) == b.sha256
    held = shmem_kib(c.pid)
    assert held - before >= 7 << 10, f"RssShmem {before} -> {held} KiB for an 8 MiB object"
    purge(c, "/big")
    wait_for(lambda: shmem_kib(c.pid) <= before + 1024, timeout=5,
             msg=f"RssShmem back near {before} KiB after the purge (it held {held} KiB)")


def test_reused_segments_do_not_change_bytes_in_flight(cairn, origin):
    """A client that has not read its response holds the object's pages in its socket; the
    object is purged and a different object fills the freed segments; the client then reads
    the original bytes, not the new ones."""
    a = Blob(3 << 20, seed=11, headers=MAX_AGE)
    b = Blob(3 << 20, seed=12, headers=MAX_AGE)
    c, _ = start(cairn, origin, {"/a": a, "/b": b})
    assert sha(get(c, "/a").body) == a.sha256  # stored
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.connect(("127.0.0.1", c.port))
    try:
        s.sendall(f"GET /a HTTP/1.1\r\nHost: 127.0.0.1:{c.port}\r\n\r\n".encode())
        time.sleep(0.5)  # cairn hands the whole hit to the kernel; nothing is read yet
        purge(c, "/a")   # the session has ended: the object and its segments are freed
        assert sha(get(c, "/b").body) == b.sha256  # stored into the freed segments
        assert sha(get(c, "/b").body) == b.sha256
        s.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0] and b"hit" in head, head
        while len(body) < len(a.body):
            chunk = s.recv(1 << 20)
            assert chunk, f"connection closed after {len(body)} of {len(a.body)} bytes"
            body += chunk
        assert sha(body) == a.sha256, "bytes already sent changed when their segments were reused"
    finally:
        s.close()
