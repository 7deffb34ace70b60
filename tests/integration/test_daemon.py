"""Daemon mode: `cairn -d` / server.daemon, pid file, readiness, failure reporting."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import CAIRN_BIN, cairn_env, require_binary, sanitizer_report
from helpers import free_port, get, static_route, to_yaml


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


class Daemon:
    def __init__(self, tmp, cfg, pid_file, port):
        self.tmp, self.cfg, self.pid_file, self.port = tmp, cfg, pid_file, port
        self.launcher_rc = None
        self.launcher_pid = None
        self.launch_seconds = None

    def err_text(self):
        out = ""
        for name in ("launcher.err", "error.log"):
            p = self.tmp / name
            if p.exists():
                out += f"--- {name}\n" + p.read_text(errors="replace")
        return out


@pytest.fixture
def daemon(tmp_path, cairn):
    made = []

    def launch(daemon_flag=True, daemon_key=False, listen_port=None, timeout=15):
        require_binary()
        port = listen_port or free_port()
        pid_file = tmp_path / "cairn.pid"
        cfg = {
            "server": {"workers": 1, "pid_file": str(pid_file),
                       "error_log": str(tmp_path / "error.log"),
                       "access_log": str(tmp_path / "access.log"),
                       "shutdown_grace": "5s"},
            "admin": {"listen": f"127.0.0.1:{free_port()}"},
            "listeners": [{"listen": f"127.0.0.1:{port}"}],
            "routes": [static_route("daemon says hi\n")],
        }
        if daemon_key:
            cfg["server"]["daemon"] = True
        cfg_path = tmp_path / "cairn.yaml"
        cfg_path.write_text(to_yaml(cfg))
        d = Daemon(tmp_path, cfg_path, pid_file, port)
        args = [CAIRN_BIN, *(["-d"] if daemon_flag else []), "-c", str(cfg_path)]
        t0 = time.monotonic()
        with open(tmp_path / "launcher.out", "wb") as out, open(tmp_path / "launcher.err", "wb") as err:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 cwd=str(tmp_path), env=cairn_env())
            d.launcher_pid = p.pid
            try:
                d.launcher_rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError(f"daemon launcher did not return within {timeout}s:\n{d.err_text()}")
        d.launch_seconds = time.monotonic() - t0
        made.append(d)
        if pid_file.exists():
            try:
                cairn.register_pid(int(pid_file.read_text().strip()))
            except ValueError:
                pass
        return d

    yield launch
    for d in made:
        if d.pid_file.exists():
            try:
                pid = int(d.pid_file.read_text().strip())
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except (ValueError, OSError):
                pass
        rep = sanitizer_report(d.err_text())
        if rep:
            pytest.fail(f"sanitizer report from the daemon:\n{rep}", pytrace=False)


def check_daemon_lifecycle(d):
    assert d.launcher_rc == 0, f"launcher exit {d.launcher_rc}:\n{d.err_text()}"
    # ready as soon as the launcher returns: no retry loop here
    r = get(d.port, "/", timeout=2)
    assert r.status == 200 and r.body == b"daemon says hi\n", r
    assert d.pid_file.exists(), "pid_file not written"
    pid = int(d.pid_file.read_text().strip())
    assert pid != d.launcher_pid, "pid file holds the launcher's pid, not the daemon's"
    assert pid_alive(pid), f"pid {pid} from the pid file is not a live process"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "daemon still alive 5s after SIGTERM"
    deadline = time.monotonic() + 1
    while d.pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not d.pid_file.exists(), "pid file not removed at exit"


def test_daemon_flag(daemon):
    check_daemon_lifecycle(daemon(daemon_flag=True))


def test_daemon_config_key(daemon):
    check_daemon_lifecycle(daemon(daemon_flag=False, daemon_key=True))


def test_daemon_detaches_from_session(daemon):
    d = daemon()
    assert d.launcher_rc == 0, d.err_text()
    pid = int(d.pid_file.read_text().strip())
    assert os.getsid(pid) != os.getsid(0), "daemon did not start a new session (setsid)"
    os.kill(pid, signal.SIGTERM)


def test_daemon_port_in_use_fails(daemon):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        d = daemon(listen_port=port)
        assert d.launcher_rc not in (None, 0), \
            f"launcher returned {d.launcher_rc} although the listener address is in use"
        err = (d.tmp / "launcher.err").read_text(errors="replace")
        assert err.strip(), "launcher printed no error on its stderr"
        assert str(port) in err or "in use" in err.lower(), f"error does not explain the failure: {err!r}"
    finally:
        s.close()


def test_daemon_launcher_releases_pipes(tmp_path, cairn):
    """`out=$(cairn -d -c f)` must return: the daemon may not keep the launcher's
    stdout/stderr pipes open."""
    pid_file = tmp_path / "p.pid"
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(to_yaml({
        "server": {"workers": 1, "pid_file": str(pid_file), "access_log": "off",
                   "error_log": str(tmp_path / "error.log")},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "listeners": [{"listen": f"127.0.0.1:{port}"}],
        "routes": [static_route("piped\n")]}))
    try:
        p = subprocess.run([CAIRN_BIN, "-d", "-c", str(cfg)], capture_output=True,
                           timeout=10, cwd=str(tmp_path), env=cairn_env(),
                           stdin=subprocess.DEVNULL)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
                cairn.register_pid(pid)
            except ValueError:
                pid = None
    assert not timed_out, "the daemon keeps the launcher's stdout/stderr open: a caller " \
                          "capturing the output never sees EOF"
    assert p.returncode == 0, p.stderr
    assert get(port, "/").body == b"piped\n"
    if pid:
        os.kill(pid, signal.SIGTERM)
