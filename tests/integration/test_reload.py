"""Configuration reload (SIGHUP and POST /config/reload): a new generation reaches every
worker without refusing or failing a request; listeners are added and removed by address;
a broken file keeps the running generation; caches survive; in-flight requests finish on
the generation they started with."""
from __future__ import annotations

import collections
import json
import re
import signal
import socket
import threading
import time

from helpers import ConnectionClosed, RawConn, free_port, get, proxy_config, to_yaml
from origins import Normal, Slow

RELOADED = "configuration reloaded (generation"
FAILED = "reload failed:"


class Load:
    """Background clients against 127.0.0.1:@port. `fresh` threads open a new connection per
    request; `keepalive` threads reuse one connection. A keep-alive connection that the server
    closed between two requests (idle close while draining) is reopened and the request sent
    again, as HTTP clients do for idempotent requests (RFC 9112 §9.3.1): those are counted in
    `retried`, never as failures. Everything else that is not a 200 is a failure."""

    def __init__(self, port, path="/", fresh=2, keepalive=2, unix_path=None):
        self.port, self.path, self.unix_path = port, path, unix_path
        self.n_fresh, self.n_keepalive = fresh, keepalive
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []
        self.samples = []  # (start time, kind, body)
        self.failures = []
        self.refused = 0
        self.retried = 0

    def _conn(self):
        return RawConn(self.port, timeout=10, unix_path=self.unix_path)

    def _record(self, t0, kind, r):
        with self.lock:
            if r.status != 200:
                self.failures.append(f"{kind}: status {r.status} {r.body[:100]!r}")
            else:
                self.samples.append((t0, kind, r.body))

    def _fail(self, kind, e):
        with self.lock:
            if isinstance(e, ConnectionRefusedError):
                self.refused += 1
            self.failures.append(f"{kind}: {e!r}")

    def _fresh(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                with self._conn() as c:
                    r = c.request("GET", self.path, headers={"Connection": "close"})
                self._record(t0, "fresh", r)
            except Exception as e:  # noqa: BLE001
                self._fail("fresh", e)

    def _keepalive(self):
        c, used = None, 0
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                if c is None:
                    c, used = self._conn(), 0
                r = c.request("GET", self.path)
            except (ConnectionClosed, BrokenPipeError, ConnectionResetError) as e:
                c.close()
                c = None
                idle_close = not isinstance(e, ConnectionClosed) or \
                    "before any response byte" in str(e)
                if used > 0 and idle_close:
                    with self.lock:
                        self.retried += 1
                    continue
                self._fail("keepalive", e)
                continue
            except Exception as e:  # noqa: BLE001
                if c is not None:
                    c.close()
                c = None
                self._fail("keepalive", e)
                continue
            used += 1
            self._record(t0, "keepalive", r)
            if (r.header("connection") or "").lower() == "close":
                c.close()
                c = None
        if c is not None:
            c.close()

    def start(self):
        for i in range(self.n_fresh):
            self.threads.append(threading.Thread(target=self._fresh, daemon=True))
        for i in range(self.n_keepalive):
            self.threads.append(threading.Thread(target=self._keepalive, daemon=True))
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=15)
        return self

    @property
    def total(self):
        return len(self.samples) + len(self.failures)

    def bodies(self, since=0.0, kind=None):
        return collections.Counter(b for t, k, b in self.samples
                                   if t >= since and (kind is None or k == kind))

    def wait_total(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.total < n and time.monotonic() < deadline:
            time.sleep(0.02)


def base_config(body="v1\n", port=None, admin_port=None, workers=2, **server):
    cfg = {
        "server": {"workers": workers, "shutdown_grace": "5s", **server},
        "admin": {"listen": f"127.0.0.1:{admin_port or free_port()}"},
        "listeners": [{"listen": f"127.0.0.1:{port or free_port()}"}],
        "routes": [{"name": "main", "match": {"path_prefix": "/"}, "static": {"body": body}}],
    }
    return cfg


def rewrite(c, cfg):
    c.config_path.write_text(cfg if isinstance(cfg, str) else to_yaml(cfg))


def wait_log(c, pattern, count=1, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.stderr_text().count(pattern) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} x{count} not in the error log within {timeout}s:\n"
                         f"{c.stderr_text()[-3000:]}")


def reload(c, expect_ok=True):
    """SIGHUP, then waits for the outcome in the error log."""
    log = c.stderr_text()
    ok, failed = log.count(RELOADED), log.count(FAILED)
    c.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = c.stderr_text()
        if log.count(RELOADED) > ok:
            assert expect_ok, f"reload succeeded unexpectedly:\n{log[-2000:]}"
            return
        if log.count(FAILED) > failed:
            assert not expect_ok, f"reload failed:\n{log[-2000:]}"
            return
        time.sleep(0.02)
    raise AssertionError(f"no reload outcome logged within 10s:\n{c.stderr_text()[-3000:]}")


def connect_refused(port, within=2.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        except OSError:
            return True
        s.close()
        time.sleep(0.02)
    return False


def admin_post(c, path):
    with RawConn(c.admin_port, timeout=10) as a:
        return a.request("POST", path, host=f"127.0.0.1:{c.admin_port}")


# ---------------------------------------------------------------------------------------


def test_reload_under_load_changes_body_without_failures(cairn):
    cfg = base_config("v1\n")
    c = cairn(cfg)
    load = Load(c.port, fresh=3, keepalive=3).start()
    try:
        load.wait_total(200)
        before = load.total
        cfg["routes"][0]["static"]["body"] = "v2\n"
        rewrite(c, cfg)
        reload(c)
        t_reload = time.monotonic()
        load.wait_total(load.total + 300)
        time.sleep(0.3)
    finally:
        load.stop()
    print(f"reload under load: {load.total} requests ({before} before the reload), "
          f"{len(load.failures)} failed, {load.refused} refused, {load.retried} retried")
    assert not load.failures, load.failures[:10]
    assert load.bodies()[b"v1\n"] > 0
    after = load.bodies(since=t_reload + 0.2)
    assert after[b"v2\n"] > 100, after
    assert set(after) == {b"v2\n"}, f"old body served after the reload: {after}"
    # keep-alive connections opened before the reload get the new generation too
    assert load.bodies(since=t_reload + 0.2, kind="keepalive")[b"v2\n"] > 0
    assert "generation 2" in c.stderr_text()


def test_reload_adds_and_removes_listeners(cairn, tmp_path):
    p1, p2 = free_port(), free_port()
    sock = str(tmp_path / "r.sock")
    cfg = base_config("v1\n", port=p1)
    c = cairn(cfg)
    ka = RawConn(p1, timeout=5)
    assert ka.request("GET", "/").body == b"v1\n"
    cfg["listeners"] = [{"listen": f"127.0.0.1:{p2}"}, {"listen": f"unix:{sock}"}]
    cfg["routes"][0]["static"]["body"] = "v2\n"
    rewrite(c, cfg)
    reload(c)
    assert get(p2, "/").body == b"v2\n"
    with RawConn(unix_path=sock, timeout=5) as u:
        assert u.request("GET", "/").body == b"v2\n"
    assert connect_refused(p1), f"removed listener 127.0.0.1:{p1} still accepts"
    # a connection accepted on the removed listener stays and sees the new generation
    r = ka.request("GET", "/")
    assert r.status == 200 and r.body == b"v2\n", r
    ka.close()
    log = c.stderr_text()
    assert f"listening on 127.0.0.1:{p2}" in log and f"listening on unix:{sock}" in log
    assert f"no longer listening on 127.0.0.1:{p1}" in log
    # and back: the first port is bound again, the unix socket goes
    cfg["listeners"] = [{"listen": f"127.0.0.1:{p1}"}, {"listen": f"127.0.0.1:{p2}"}]
    rewrite(c, cfg)
    reload(c)
    assert get(p1, "/").status == 200 and get(p2, "/").status == 200
    c.stop()


def test_reload_listener_added_under_load_no_failures(cairn):
    """The unchanged listener keeps its sockets while another one is added and removed."""
    cfg = base_config("v1\n")
    c = cairn(cfg)
    extra = free_port()
    load = Load(c.port, fresh=2, keepalive=2).start()
    try:
        load.wait_total(100)
        for i in range(4):
            cfg["listeners"] = [cfg["listeners"][0]] + ([{"listen": f"127.0.0.1:{extra}"}]
                                                        if i % 2 == 0 else [])
            rewrite(c, cfg)
            reload(c)
            load.wait_total(load.total + 100)
    finally:
        load.stop()
    print(f"4 listener reloads under load: {load.total} requests, {len(load.failures)} failed")
    assert not load.failures, load.failures[:10]
    assert connect_refused(extra)


def test_reload_broken_file_keeps_old_generation(cairn):
    cfg = base_config("v1\n")
    c = cairn(cfg)
    good = to_yaml(cfg)
    broken = good.replace("    static:\n", "    statik:\n")
    assert broken != good
    line = broken.splitlines().index("    statik:") + 1
    rewrite(c, broken)
    reload(c, expect_ok=False)
    log = c.stderr_text()
    path = str(c.config_path)
    assert re.search(re.escape(path) + rf":{line}:5: error: .*statik", log), log[-2000:]
    assert "generation 1 keeps running" in log
    assert get(c.port, "/").body == b"v1\n"
    # YAML syntax errors too
    rewrite(c, good + "routes: [\n")
    reload(c, expect_ok=False)
    assert re.search(re.escape(path) + r":\d+:\d+: error: ", c.stderr_text().split(FAILED)[-2])
    assert get(c.port, "/").body == b"v1\n"
    # a fixed file reloads
    cfg["routes"][0]["static"]["body"] = "v2\n"
    rewrite(c, cfg)
    reload(c)
    assert get(c.port, "/").body == b"v2\n"
    assert "configuration reloaded (generation 2)" in c.stderr_text()
    c.stop()


def test_reload_unbindable_listener_keeps_old_generation(cairn):
    cfg = base_config("v1\n")
    c = cairn(cfg)
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no SO_REUSEPORT: cairn cannot join
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        new = json.loads(json.dumps(cfg))
        new["listeners"].append({"listen": f"127.0.0.1:{port}"})
        new["routes"][0]["static"]["body"] = "v2\n"
        rewrite(c, new)
        reload(c, expect_ok=False)
        log = c.stderr_text()
        assert f"listen 127.0.0.1:{port}" in log and "generation 1 keeps running" in log, log
        assert get(c.port, "/").body == b"v1\n"
    finally:
        busy.close()
    rewrite(c, new)
    reload(c)
    assert get(port, "/").body == b"v2\n"
    c.stop()


def test_reload_keeps_worker_count_and_warns(cairn):
    cfg = base_config("v1\n", workers=2)
    c = cairn(cfg)
    cfg["server"]["workers"] = 3
    cfg["routes"][0]["static"]["body"] = "v2\n"
    rewrite(c, cfg)
    reload(c)
    log = c.stderr_text()
    assert "server.workers changed (2 -> 3)" in log and "after a restart" in log, log
    assert get(c.port, "/").body == b"v2\n"
    c.stop()


def test_cache_survives_reload(cairn, origin):
    org = origin({"/c": Normal(200, b"cached body\n",
                               headers={"Cache-Control": "public, max-age=60"})})
    cfg = proxy_config(org, route_extra={"cache": "mem"})
    cfg["caches"] = {"mem": {"memory": {"size": "4MiB", "max_object": "64KiB"}}}
    cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    cfg["listeners"] = [{"listen": f"127.0.0.1:{free_port()}"}]
    c = cairn(cfg)

    def fetch():
        r = get(c.port, "/c")
        assert r.status == 200 and r.body == b"cached body\n", r
        return r.header("cache-status") or ""

    fetch()
    assert "hit" in fetch()
    cfg["routes"].insert(0, {"match": {"path": "/other"}, "static": {"body": "other\n"}})
    rewrite(c, cfg)
    reload(c)
    assert get(c.port, "/other").body == b"other\n"
    st = fetch()
    assert "hit" in st, f"cached object lost by the reload: Cache-Status {st!r}"
    # a reload that drops the cache, then one that names it again: caches live until exit
    del cfg["caches"]
    cfg["routes"][-1].pop("cache")
    rewrite(c, cfg)
    reload(c)
    assert "hit" not in fetch()
    cfg["caches"] = {"mem": {"memory": {"size": "4MiB", "max_object": "64KiB"}},
                     "more": {"memory": {"size": "1MiB", "max_object": "64KiB"}}}
    cfg["routes"][-1]["cache"] = "mem"
    rewrite(c, cfg)
    reload(c)
    assert "hit" in fetch()
    assert sum(1 for r in org.requests if r.path == "/c") == 2  # first miss + the uncached one
    c.stop()


def test_inflight_request_finishes_on_its_generation(cairn, origin):
    org = origin({"/slow": Slow(delay_headers=1.5, body=b"slow old body\n")})
    cfg = proxy_config(org, server={"workers": 2}, upstream_extra={"read_timeout": "10s"})
    cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    cfg["listeners"] = [{"listen": f"127.0.0.1:{free_port()}"}]
    cfg["routes"][0]["response_headers"] = {"set": {"X-Gen": "1"}}
    c = cairn(cfg)
    res = {}

    def run():
        try:
            with RawConn(c.port, timeout=10) as s:
                res["resp"] = s.request("GET", "/slow", timeout=10)
        except Exception as e:  # noqa: BLE001
            res["err"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    org.wait_requests(1, timeout=5)
    new = {k: v for k, v in cfg.items() if k != "upstreams"}
    new["routes"] = [{"match": {"path_prefix": "/"}, "static": {"body": "new\n"},
                      "response_headers": {"set": {"X-Gen": "2"}}}]
    rewrite(c, new)
    reload(c)
    r = get(c.port, "/slow")
    assert r.body == b"new\n" and r.header("x-gen") == "2", r
    t.join(timeout=10)
    assert "resp" in res, f"in-flight request failed across the reload: {res.get('err')!r}"
    r = res["resp"]
    assert r.status == 200 and r.body == b"slow old body\n" and r.header("x-gen") == "1", r
    c.stop()


def test_admin_reload_endpoint(cairn):
    cfg = base_config("v1\n")
    c = cairn(cfg)
    cfg["routes"][0]["static"]["body"] = "v2\n"
    rewrite(c, cfg)
    r = admin_post(c, "/config/reload")
    assert r.status == 200, r
    j = json.loads(r.body)
    assert j["status"] == "ok" and j["generation"] == 2, j
    assert get(c.port, "/").body == b"v2\n"
    rewrite(c, to_yaml(cfg).replace("    static:\n", "    statik:\n"))
    r = admin_post(c, "/config/reload")
    assert r.status == 500, r
    j = json.loads(r.body)
    assert j["status"] == "error" and j["generation"] == 2, j
    assert re.search(re.escape(str(c.config_path)) + r":\d+:\d+: ", j["error"]), j
    assert "statik" in c.stderr_text()  # every diagnostic is in the error log
    assert get(c.port, "/").body == b"v2\n"
    c.stop()


def test_many_reloads_then_clean_exit(cairn):
    """Generations pile up and go: sanitizers at exit see no leak or use-after-free."""
    cfg = base_config("v0\n")
    c = cairn(cfg)
    load = Load(c.port, fresh=1, keepalive=2).start()
    try:
        for i in range(1, 11):
            cfg["routes"][0]["static"]["body"] = f"v{i}\n"
            rewrite(c, cfg)
            reload(c)
    finally:
        load.stop()
    assert not load.failures, load.failures[:10]
    assert get(c.port, "/").body == b"v10\n"
    assert "configuration reloaded (generation 11)" in c.stderr_text()
    assert c.stop() == 0


def test_reload_renamed_listener(cairn):
    """Same address, new name: the sockets stay, connections accepted afterwards carry the
    new name (match.listener), earlier ones keep theirs."""
    cfg = base_config()
    cfg["listeners"][0]["name"] = "a"
    cfg["routes"] = [{"match": {"listener": "a"}, "static": {"body": "a\n"}},
                     {"match": {"path_prefix": "/"}, "static": {"body": "none\n"}}]
    c = cairn(cfg)
    early = RawConn(c.port, timeout=5)
    assert early.request("GET", "/").body == b"a\n"
    cfg["listeners"][0]["name"] = "b"
    cfg["routes"][0]["match"]["listener"] = "b"
    cfg["routes"][0]["static"]["body"] = "b\n"
    rewrite(c, cfg)
    reload(c)
    assert get(c.port, "/").body == b"b\n"
    assert early.request("GET", "/").body == b"none\n"  # accepted as "a"
    early.close()
    assert "no longer listening" not in c.stderr_text()
    c.stop()
