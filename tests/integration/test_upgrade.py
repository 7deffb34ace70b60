"""Graceful binary upgrade: `cairn -u` waits on server.upgrade_socket, SIGQUIT makes the
running instance send it every listening socket (SCM_RIGHTS); the new process serves on them
and the old one drains and exits. No connection is refused and no request fails."""
from __future__ import annotations

import os
import signal
import socket
import time

from helpers import RawConn, free_port, get
from test_reload import Load, wait_log


def upgrade_config(tmp_path, body="old\n", workers=2, port=None, admin_port=None, **server):
    return {
        "server": {"workers": workers, "shutdown_grace": "5s",
                   "upgrade_socket": str(tmp_path / "upgrade.sock"),
                   "pid_file": str(tmp_path / "cairn.pid"), **server},
        "admin": {"listen": f"127.0.0.1:{admin_port or free_port()}"},
        "listeners": [{"listen": f"127.0.0.1:{port or free_port()}"}],
        "routes": [{"match": {"path_prefix": "/"}, "static": {"body": body}}],
    }


def start_new(cairn, cfg, tmp_path):
    """Starts `cairn -u` and waits until it listens on the upgrade socket."""
    new = cairn(cfg, extra_args=("-u",), wait=False, name="cairn-new")
    path = tmp_path / "upgrade.sock"
    deadline = time.monotonic() + 10
    while not path.exists():
        assert new.alive(), f"cairn -u exited: {new.stderr_text()[-2000:]}"
        assert time.monotonic() < deadline, "cairn -u did not create the upgrade socket"
        time.sleep(0.02)
    time.sleep(0.2)  # bind() creates the file; listen() follows at once
    return new


def upgrade(cairn, old, cfg, tmp_path):
    new = start_new(cairn, cfg, tmp_path)
    old.send_signal(signal.SIGQUIT)
    code = old.wait_exit(15)
    assert code == 0, (f"old instance exit {code}; stderr:\n{old.stderr_text()[-3000:]}\n"
                       f"new:\n{new.stderr_text()[-3000:]}")
    assert new.alive(), new.stderr_text()[-3000:]
    return new


def test_upgrade_under_load_no_refused_no_failed(cairn, tmp_path):
    cfg = upgrade_config(tmp_path, "old\n")
    old = cairn(cfg)
    load = Load(old.port, fresh=4, keepalive=4).start()
    try:
        load.wait_total(300)
        before = load.total
        cfg["routes"][0]["static"]["body"] = "new\n"
        new = upgrade(cairn, old, cfg, tmp_path)
        t_exit = time.monotonic()
        load.wait_total(load.total + 300)
        time.sleep(0.3)
    finally:
        load.stop()
    bodies = load.bodies()
    print(f"upgrade under load: {load.total} requests ({before} before SIGQUIT), "
          f"{len(load.failures)} failed, {load.refused} refused, "
          f"{load.retried} keep-alive retries after an idle close; bodies {dict(bodies)}")
    assert load.refused == 0, load.failures[:10]
    assert not load.failures, load.failures[:10]
    assert bodies[b"old\n"] > 0 and bodies[b"new\n"] > 0, bodies
    assert set(load.bodies(since=t_exit)) == {b"new\n"}
    olog, nlog = old.stderr_text(), new.stderr_text()
    assert "upgrade: sent 3 listening sockets" in olog, olog  # 2 workers + admin
    assert "serves on our sockets; draining" in olog and "cairn stopped" in olog
    assert "upgrade: received 3 listening sockets" in nlog, nlog
    assert "inherited" in nlog
    # the admin listener moved too, and the pid file names the new process
    r = get(new.admin_port, "/healthz", host="127.0.0.1")
    assert r.status == 200, r
    assert (tmp_path / "cairn.pid").read_text().strip() == str(new.pid)
    assert get(new.port, "/").body == b"new\n"
    assert new.stop() == 0


def test_upgrade_to_more_and_fewer_workers(cairn, tmp_path):
    cfg = upgrade_config(tmp_path, "gen1\n", workers=2)
    old = cairn(cfg)
    cfg["server"]["workers"] = 3
    cfg["routes"][0]["static"]["body"] = "gen2\n"
    mid = upgrade(cairn, old, cfg, tmp_path)
    assert get(mid.port, "/").body == b"gen2\n"
    assert "cairn started: 3 workers" in mid.stderr_text()
    cfg["server"]["workers"] = 1
    cfg["routes"][0]["static"]["body"] = "gen3\n"
    load = Load(mid.port, fresh=2, keepalive=2).start()
    try:
        load.wait_total(100)
        last = upgrade(cairn, mid, cfg, tmp_path)
        load.wait_total(load.total + 200)
    finally:
        load.stop()
    print(f"3 -> 1 workers under load: {load.total} requests, {len(load.failures)} failed, "
          f"{load.retried} keep-alive retries")
    assert not load.failures, load.failures[:10]
    # the one new worker listens on all three inherited sockets: none was closed
    assert "127.0.0.1:%d: 3 inherited sockets" % last.port in last.stderr_text()
    for _ in range(50):
        assert get(last.port, "/").body == b"gen3\n"
    assert last.stop() == 0


def test_upgrade_adds_listener_and_unix_socket(cairn, tmp_path):
    cfg = upgrade_config(tmp_path)
    sock = str(tmp_path / "l.sock")
    cfg["listeners"].append({"listen": f"unix:{sock}"})
    old = cairn(cfg)
    extra = free_port()
    cfg["listeners"].append({"listen": f"127.0.0.1:{extra}"})
    cfg["routes"][0]["static"]["body"] = "new\n"
    new = upgrade(cairn, old, cfg, tmp_path)
    with RawConn(unix_path=sock, timeout=5) as u:
        assert u.request("GET", "/").body == b"new\n"
    assert get(extra, "/").body == b"new\n"
    assert get(new.port, "/").body == b"new\n"
    assert f"unix:{sock}: 1 inherited socket" in new.stderr_text()
    assert new.stop() == 0


def test_failed_new_process_leaves_old_serving(cairn, tmp_path):
    cfg = upgrade_config(tmp_path, "old\n")
    old = cairn(cfg)
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no SO_REUSEPORT
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        bad = dict(cfg, listeners=cfg["listeners"] + [
            {"listen": f"127.0.0.1:{busy.getsockname()[1]}"}])
        new = start_new(cairn, bad, tmp_path)
        old.send_signal(signal.SIGQUIT)
        assert new.wait_exit(15) == 1, new.stderr_text()
        wait_log(old, "did not take over")
    finally:
        busy.close()
    assert old.alive()
    assert "still serving" in old.stderr_text()
    for _ in range(20):
        assert get(old.port, "/").body == b"old\n"
    # a later upgrade works
    cfg["routes"][0]["static"]["body"] = "new\n"
    new = upgrade(cairn, old, cfg, tmp_path)
    assert get(new.port, "/").body == b"new\n"
    assert new.stop() == 0


def test_sigquit_without_new_process_keeps_serving(cairn, tmp_path):
    cfg = upgrade_config(tmp_path)
    old = cairn(cfg)
    old.send_signal(signal.SIGQUIT)
    wait_log(old, "start `cairn -u` first")
    assert old.alive()
    assert get(old.port, "/").body == b"old\n"
    assert not os.path.exists(tmp_path / "upgrade.sock")
    assert old.stop() == 0


def test_upgrade_inflight_request_finishes_on_old(cairn, origin, tmp_path):
    from origins import Slow

    org = origin({"/slow": Slow(delay_headers=1.0, body=b"slow body from old\n")})
    cfg = upgrade_config(tmp_path)
    cfg["upstreams"] = {"o": {"peers": [{"address": org.address}], "read_timeout": "10s"}}
    cfg["routes"].insert(0, {"match": {"path": "/slow"}, "upstream": "o"})
    old = cairn(cfg)
    ka = RawConn(old.port, timeout=10)
    ka.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    org.wait_requests(1, timeout=5)
    new = upgrade(cairn, old, cfg, tmp_path)
    r = ka.read_response()
    assert r.status == 200 and r.body == b"slow body from old\n", r
    assert (r.header("connection") or "").lower() == "close"
    ka.close()
    assert new.alive()
    assert new.stop() == 0
