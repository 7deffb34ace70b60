"""Proxy under pressure: concurrency, pipelining, slow readers, clients that vanish."""
import hashlib
import socket
import threading
import time

import pytest

from helpers import RawConn, get, proxy_config
from origins import Blob, Echo, Normal, Origin, Slow

BIG = Blob(4 << 20, seed=21)


@pytest.fixture(scope="module")
def o():
    org = Origin({"/big": BIG, "/slow": Slow(delay_headers=0.5, body=b"s" * 1000),
                  "/n/*": Normal(200, b"n\n")}, default=Echo()).start()
    yield org
    org.stop()


@pytest.fixture(scope="module")
def srv(cairn_module, o):
    return cairn_module(proxy_config(o, server={"workers": 2}))


def test_pipelined_proxied_requests_in_order(srv):
    with RawConn(srv.port, timeout=10) as c:
        c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10)))
        targets = []
        import json
        for i in range(10):
            r = c.read_response()
            assert r.status == 200, r
            targets.append(json.loads(r.body)["target"])
    assert targets == [f"/p{i}" for i in range(10)], f"pipelined proxied responses: {targets}"


def test_concurrent_distinct_bodies(srv):
    errors, results = [], {}

    def worker(i):
        body = (b"%04d-" % i) * (2000 + i * 37)
        try:
            with RawConn(srv.port, timeout=15) as c:
                r = c.request("POST", f"/c{i}", body=body)
                results[i] = (r.status, r.body, hashlib.sha256(body).hexdigest())
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert not errors, f"concurrent requests failed: {errors[:5]}"
    import json
    for i, (status, body, sha) in results.items():
        assert status == 200
        seen = json.loads(body)
        assert seen["target"] == f"/c{i}" and seen["body_sha256"] == sha, \
            f"request {i} got someone else's response or a corrupted body: {seen}"
    assert len(results) == 40


def test_slow_reader_gets_everything(srv):
    """Backpressure: a client that stalls, then reads in small sips, still gets the exact
    4 MiB. (SO_RCVBUF stays >= 256 KiB: smaller windows hit delayed-ACK stalls on
    loopback that have nothing to do with cairn.)"""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)  # let every buffer on the path fill up
    data = bytearray()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        d = s.recv(32768)
        if not d:
            break
        data += d
        if len(data) >= len(BIG.body) + 100 and b"\r\n\r\n" in data:
            head, _, body = bytes(data).partition(b"\r\n\r\n")
            if len(body) >= len(BIG.body):
                break
        time.sleep(0.001)
    s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert len(body) == len(BIG.body), f"slow reader got {len(body)} of {len(BIG.body)} bytes"
    assert hashlib.sha256(body).hexdigest() == BIG.sha256, "slow reader got corrupted bytes"


def test_client_vanishes_mid_response(srv):
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        s.close()
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()  # before the origin answers
    time.sleep(0.8)
    r = get(srv.port, "/n/after")
    assert r.status == 200 and r.body == b"n\n", f"cairn unhealthy after clients vanished: {r}"
    assert srv.alive()


def test_client_vanishes_mid_request_body(srv, o):
    before = len(o.requests)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"POST /partial HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    time.sleep(0.2)
    s.close()
    time.sleep(0.5)
    assert not [q for q in o.requests[before:] if q.target == "/partial"], \
        "origin received a complete request although the client sent 5000 of 100000 bytes"
    assert get(srv.port, "/n/after").status == 200
    assert srv.alive()


def test_many_sequential_connections(srv):
    for i in range(200):
        r = get(srv.port, "/n/%d" % i)
        assert r.status == 200, f"request {i}: {r}"
