"""Signals and graceful shutdown: SIGTERM drains in-flight requests, SIGINT is fast."""
import signal
import socket
import threading
import time

from helpers import RawConn, get, proxy_config, static_route
from origins import Slow

SLOW_BODY = b"slow origin body " * 1000


def start_inflight(c, path="/slow"):
    """Starts a request in a thread; returns (thread, result dict)."""
    res = {}

    def run():
        try:
            with RawConn(c.port, timeout=10) as s:
                res["resp"] = s.request("GET", path, timeout=10)
                res["t"] = time.monotonic()
        except Exception as e:  # noqa: BLE001
            res["err"] = e
            res["t"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def connect_refused(port, within=1.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        except ConnectionRefusedError:
            return True
        except OSError:
            return True
        s.close()
        time.sleep(0.05)
    return False


def slow_setup(cairn, origin, grace="30s"):
    o = origin({"/slow": Slow(delay_headers=2.0, body=SLOW_BODY)})
    cfg = proxy_config(o, server={"shutdown_grace": grace, "workers": 2},
                       upstream_extra={"read_timeout": "10s"})
    return o, cairn(cfg)


def test_sigterm_drains_inflight(cairn, origin):
    o, c = slow_setup(cairn, origin)
    t, res = start_inflight(c)
    o.wait_requests(1, timeout=3)  # the request is now in flight at the origin
    t_sig = time.monotonic()
    c.send_signal(signal.SIGTERM)
    assert connect_refused(c.port, within=1.0), "new connections still accepted after SIGTERM"
    t.join(timeout=8)
    assert "resp" in res, f"in-flight request failed during graceful shutdown: {res.get('err')!r}"
    r = res["resp"]
    assert r.status == 200 and r.body == SLOW_BODY, f"in-flight response incomplete: {r}"
    code = c.wait_exit(max(0.1, 5 - (time.monotonic() - t_sig)))
    assert code is not None, "cairn still running 5s after SIGTERM (shutdown_grace is 30s)"
    assert code == 0, f"exit code {code} after graceful SIGTERM"
    exited = time.monotonic()
    assert exited - res["t"] < 1.5, f"exit {exited - res['t']:.2f}s after the last response"


def test_sigterm_readyz_says_draining_until_exit(cairn, origin):
    """Kubernetes-style drain: during a graceful stop the traffic listener refuses new
    connections, but the admin listener stays: /readyz answers 503 (so a probe takes the
    instance out of rotation), /healthz and /metrics still answer, and the admin port closes
    when the process exits."""
    o, c = slow_setup(cairn, origin)
    r = get(c.admin_port, "/readyz")
    assert (r.status, r.body) == (200, b"ready\n"), r
    t, res = start_inflight(c)
    o.wait_requests(1, timeout=3)
    c.send_signal(signal.SIGTERM)
    assert connect_refused(c.port, within=1.0), "traffic listener still accepting after SIGTERM"
    r = get(c.admin_port, "/readyz")
    assert (r.status, r.body) == (503, b"draining\n"), r
    assert get(c.admin_port, "/healthz").status == 200
    m = get(c.admin_port, "/metrics")
    assert m.status == 200 and b"# TYPE cairn_" in m.body, m
    t.join(timeout=8)
    assert "resp" in res and res["resp"].status == 200, res
    code = c.wait_exit(5)
    assert code == 0, f"exit code {code} after graceful SIGTERM"
    assert connect_refused(c.admin_port, within=1.0), "admin port still open after exit"


def test_sigterm_idle_exits_fast(cairn):
    c = cairn({"server": {"shutdown_grace": "30s"}, "routes": [static_route()]})
    with RawConn(c.port) as s:  # an idle keep-alive connection must not delay exit
        assert s.request("GET", "/").status == 200
        t0 = time.monotonic()
        c.send_signal(signal.SIGTERM)
        code = c.wait_exit(1.0)
        dt = time.monotonic() - t0
    assert code is not None, "idle cairn did not exit within 1s of SIGTERM"
    assert code == 0, f"exit code {code}"
    assert dt <= 1.0


def test_sigint_idle_exits_fast(cairn):
    c = cairn({"routes": [static_route()]})
    c.send_signal(signal.SIGINT)
    code = c.wait_exit(1.0)
    assert code is not None, "cairn did not exit within 1s of SIGINT"


def test_sigint_with_inflight_exits_fast(cairn, origin):
    o, c = slow_setup(cairn, origin)
    t, res = start_inflight(c)
    o.wait_requests(1, timeout=3)
    c.send_signal(signal.SIGINT)
    code = c.wait_exit(1.0)
    assert code is not None, "cairn did not exit within 1s of SIGINT with a request in flight"
    t.join(timeout=5)
    assert "err" in res or res["resp"].status != 200 or len(res["resp"].body) < len(SLOW_BODY), \
        "SIGINT is a fast stop: the slow request should not have completed"


def test_sigterm_grace_expires(cairn, origin):
    o = origin({"/slow": Slow(delay_headers=6.0)})
    c = cairn(proxy_config(o, server={"shutdown_grace": "1s"},
                           upstream_extra={"read_timeout": "10s"}))
    t, res = start_inflight(c)
    o.wait_requests(1, timeout=3)
    t0 = time.monotonic()
    c.send_signal(signal.SIGTERM)
    code = c.wait_exit(3.0)
    assert code is not None, "shutdown_grace: 1s was not enforced (still running after 3s)"
    assert time.monotonic() - t0 >= 0.8, "exited before the grace period with a request in flight"
    t.join(timeout=3)



def test_sigterm_closes_idle_keepalive_while_draining(cairn, origin):
    o, c = slow_setup(cairn, origin)
    idle = RawConn(c.port, timeout=5)
    assert idle.request("GET", "/fast-404-or-proxy").status in (200, 404, 502)
    t, res = start_inflight(c)
    o.wait_requests(2, timeout=3)
    c.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    idle.wait_closed(1.5)
    assert time.monotonic() - t0 < 1.5
    idle.close()
    t.join(timeout=8)
    assert "resp" in res and res["resp"].status == 200 and res["resp"].body == SLOW_BODY, res
    assert c.wait_exit(3) == 0


def test_sigterm_drains_many_inflight(cairn, origin):
    o = origin({"/slow": Slow(delay_headers=1.0, body=SLOW_BODY)})
    c = cairn(proxy_config(o, server={"shutdown_grace": "30s", "workers": 3},
                           upstream_extra={"read_timeout": "10s"}))
    runs = [start_inflight(c) for _ in range(20)]
    o.wait_requests(20, timeout=5)
    c.send_signal(signal.SIGTERM)
    for t, _ in runs:
        t.join(timeout=8)
    bad = [res for _, res in runs if "resp" not in res or res["resp"].status != 200
           or res["resp"].body != SLOW_BODY]
    assert not bad, f"{len(bad)} of 20 in-flight requests did not complete: {bad[:3]}"
    assert c.wait_exit(3) == 0


def test_sigterm_during_upload_completes(cairn, origin):
    from origins import Echo
    import hashlib
    import json
    o = origin(default=Echo())
    c = cairn(proxy_config(o, server={"shutdown_grace": "30s", "body_timeout": "5s"}))
    body = bytes(range(256)) * 400  # 100 KiB
    with RawConn(c.port, timeout=10) as s:
        s.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:1000])
        time.sleep(0.3)
        c.send_signal(signal.SIGTERM)
        for i in range(1000, len(body), 20000):
            time.sleep(0.1)
            s.send(body[i:i + 20000])
        r = s.read_response(timeout=5)
    assert r.status == 200, f"an upload in progress at SIGTERM was cut: {r}"
    assert json.loads(r.body)["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert c.wait_exit(3) == 0
