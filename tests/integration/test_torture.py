"""Concurrency torture: many clients, every route kind, aborts mixed in, 4 workers; then a
graceful exit with no sanitizer report and every completed response correct."""
import hashlib
import os
import random
import signal
import socket
import threading
import time

from helpers import ConnectionClosed, RawConn, static_route
from origins import Blob, Echo, Normal, Slow

DURATION = 3.0


def test_mixed_concurrent_traffic(cairn, origin, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    fdata = os.urandom(300_000)
    (www / "f.bin").write_bytes(fdata)
    big = Blob(1 << 20, seed=3)
    org = origin({"/p/big": big, "/p/n": Normal(200, b"n\n"), "/p/slow": Slow(delay_headers=0.2)},
                 default=Echo())
    c = cairn({
        "server": {"workers": 4, "header_timeout": "2s", "shutdown_grace": "5s"},
        "upstreams": {"o": {"peers": [{"address": org.address}], "read_timeout": "3s"}},
        "caches": {"m": {"memory": {"size": "4MiB", "max_object": "2MiB"}}},
        "routes": [
            static_route("static\n", path="/s"),
            {"match": {"path_prefix": "/f/"}, "strip_prefix": True, "files": {"root": str(www)}},
            {"match": {"path_prefix": "/p/"}, "upstream": "o"},
            {"match": {"path_prefix": "/c/"}, "upstream": "o", "cache": "m"},
        ],
    })
    stop = time.monotonic() + DURATION
    errors, counts = [], {"ok": 0}
    lock = threading.Lock()
    expect = {"/s": b"static\n", "/f/f.bin": fdata, "/p/big": big.body, "/p/n": b"n\n"}

    def client(seed):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            path = rng.choice(["/s", "/f/f.bin", "/p/big", "/p/n", "/p/slow", "/c/x", "/nope",
                               "abort", "bad", "post"])
            try:
                if path == "abort":
                    s = socket.create_connection(("127.0.0.1", c.port), timeout=2)
                    s.sendall(rng.choice([b"GET /p/big HTTP/1.1\r\nHost: x\r\n\r\n",
                                          b"GET /f/f.bin HTTP/1.1\r\nHost: x\r\n\r\n",
                                          b"POST /p/e HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\nab"]))
                    s.close()
                    continue
                with RawConn(c.port, timeout=8) as conn:
                    if path == "bad":
                        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
                        r = conn.read_response()
                        assert r.status == 400, r
                    elif path == "post":
                        body = os.urandom(rng.randint(0, 200_000))
                        r = conn.request("POST", "/p/echo", body=body)
                        assert r.status == 200 and hashlib.sha256(body).hexdigest() in r.body.decode(), r
                    else:
                        r = conn.request("GET", path)
                        if path in expect:
                            assert r.status == 200 and r.body == expect[path], \
                                f"{path}: {r.status} {len(r.body)} bytes"
                        elif path == "/nope":
                            assert r.status == 404, r
                        else:
                            assert r.status == 200, r
                with lock:
                    counts["ok"] += 1
            except (AssertionError, ConnectionClosed, OSError) as e:
                with lock:
                    errors.append(f"{path}: {e!r}"[:300])

    ts = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not errors, f"{len(errors)} failures (of {counts['ok']} ok), first: {errors[:5]}"
    assert counts["ok"] > 50, f"only {counts['ok']} requests completed in {DURATION}s"
    assert c.alive()
    code = c.stop(signal.SIGTERM, timeout=8)
    assert code == 0, f"exit {code}; stderr:\n{c.stderr_text()[-3000:]}"
