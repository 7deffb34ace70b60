"""Deterministic mutation run over the bad/valid request corpora against a static route and
a proxied route: cairn must answer or close every connection, stay alive, and exit cleanly
(exit 0, no sanitizer report) afterwards."""
import random
import signal
import socket

import pytest

from helpers import get, static_route
from origins import Echo
from test_h1_bad_requests import load_corpus
from test_h1_valid_requests import VALID

ITERATIONS = 300
BATCH = 50


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if not data:
            data += b"GET / HTTP/1.1\r\n\r\n"
        i = rng.randrange(len(data))
        if op == 0:
            data[i] = rng.randrange(256)
        elif op == 1:
            del data[i:i + rng.randint(1, 8)]
        elif op == 2:
            data[i:i] = rng.choice([b"\r\n", b"\n", b" ", b"\t", b":", b"\x00", b"0", b"chunked",
                                    b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n",
                                    b"\r\n\r\n", b"%", b"%2e", b"/..", b"\xff" * 50])
        elif op == 3:
            data = data[:i]
        elif op == 4:
            j = rng.randrange(len(data))
            data[i:i] = data[j:j + rng.randint(1, 40)]
        else:
            data[i:i] = bytes([data[i]]) * rng.randint(1, 300)
    return bytes(data)


def seeds():
    try:
        _, entries = load_corpus()
        out = [d for _, _, d in entries]
    except (FileNotFoundError, ValueError):
        out = []
    return out + list(VALID.values())


@pytest.mark.parametrize("kind", ["static", "proxy"])
def test_mutated_requests_do_not_break_cairn(cairn, origin, kind):
    if kind == "static":
        routes = [static_route("ok\n")]
        cfg = {"server": {"workers": 2, "header_timeout": "500ms", "body_timeout": "500ms",
                          "keepalive_timeout": "500ms"}, "routes": routes}
    else:
        org = origin(default=Echo())
        cfg = {"server": {"workers": 2, "header_timeout": "500ms", "body_timeout": "500ms",
                          "keepalive_timeout": "500ms"},
               "upstreams": {"o": {"peers": [{"address": org.address}], "read_timeout": "1s"}},
               "routes": [{"match": {"path_prefix": "/"}, "upstream": "o"}]}
    c = cairn(cfg)
    rng = random.Random(20261122 + (kind == "proxy"))
    pool = seeds()
    assert pool, "no seed requests"
    import time
    hanging = []
    for batch in range(ITERATIONS // BATCH):
        socks = []
        for _ in range(BATCH):
            data = mutate(rng, rng.choice(pool))
            s = socket.create_connection(("127.0.0.1", c.port), timeout=2)
            try:
                s.sendall(data)
            except OSError:
                pass
            socks.append((s, data))
        deadline = time.monotonic() + 3.0
        for s, data in socks:
            got = b""
            try:
                while True:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    d = s.recv(65536)
                    if not d:
                        break
                    got += d
            except (socket.timeout, TimeoutError):
                hanging.append((data, got[:100]))
            except OSError:
                pass
            finally:
                s.close()
            assert not got or got.startswith(b"HTTP/1."), f"non-HTTP bytes sent back: {got[:200]!r}"
        assert c.alive(), f"cairn died in batch {batch}; stderr:\n{c.stderr_text()[-3000:]}"
    assert not hanging, (f"{len(hanging)} connections still open 3s after a mutated request "
                         f"(timeouts are 500ms); first: {hanging[:3]}")
    assert c.alive(), f"cairn died; stderr:\n{c.stderr_text()[-3000:]}"
    r = get(c.port, "/")
    assert r.status == 200, f"cairn unhealthy after the mutation run: {r}"
    code = c.stop(signal.SIGTERM, timeout=5)
    assert code == 0, f"exit {code} after the mutation run; stderr:\n{c.stderr_text()[-3000:]}"
