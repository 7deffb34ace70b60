"""Fixtures for cairn's integration tests.

    def test_x(cairn):
        c = cairn({"routes": [{"match": {"path": "/"}, "static": {"body": "hi"}}]})
        r = get(c.port, "/")

`cairn(config, extra_args=(), wait=True, cwd=None, env=None)` starts the real binary
($CAIRN_BIN, default build-asan/cairn) with the YAML written to a temporary directory
(which is also its working directory). A dict config gets an admin listener and one
listener on free ports unless it has its own. stdout (access log) and stderr (error log)
go to files. Teardown kills the process group if still alive (SIGKILL; SIGTERM first with
CAIRN_IT_TEARDOWN=term) and fails the test when stderr or a *.log file in its directory holds
a sanitizer report (AddressSanitizer, UBSan `runtime error:`, LeakSanitizer; set
CAIRN_IT_ALLOW_LEAKS=1 to ignore leaks).

`origin(routes, **kw)` starts an `origins.Origin` stopped at teardown.
`cairn_cli(*args)` runs the binary to completion (checks, --version, ...).
"""
from __future__ import annotations

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from helpers import RawConn, free_port, to_yaml  # noqa: E402
from origins import Origin  # noqa: E402

REPO = HERE.parent.parent
CAIRN_BIN = os.environ.get("CAIRN_BIN") or str(REPO / "build-asan" / "cairn")
if not os.path.isabs(CAIRN_BIN):
    CAIRN_BIN = str((REPO / CAIRN_BIN).resolve()) if (REPO / CAIRN_BIN).exists() else CAIRN_BIN

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")
if os.environ.get("CAIRN_IT_ALLOW_LEAKS"):
    SANITIZER_MARKERS = SANITIZER_MARKERS[:2]

STARTUP_TIMEOUT = 10.0
# CAIRN_IT_TEARDOWN=term: teardown sends SIGTERM (5 s) before SIGKILL, so exit-time reports
# (leaks, use-after-free during shutdown) are checked for every test, not only for the tests
# that stop cairn themselves. Default: SIGKILL at once.
GRACEFUL_TEARDOWN = os.environ.get("CAIRN_IT_TEARDOWN", "") == "term"


def cairn_env(extra=None):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


def require_binary():
    if not os.path.isfile(CAIRN_BIN) or not os.access(CAIRN_BIN, os.X_OK):
        pytest.fail(f"CAIRN_BIN={CAIRN_BIN} is not an executable file: run `make asan` "
                    f"(or set CAIRN_BIN)", pytrace=False)


def sanitizer_report(text: str):
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0:
            return text[max(0, i - 200): i + 3000]
    return None


def _read(path):
    try:
        return Path(path).read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _parse_addr(text):
    """('tcp', host, port) or ('unix', path, None) for a listen string."""
    text = str(text).strip()
    if text.startswith("unix:"):
        return ("unix", text[5:], None)
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text)
    if m:
        return ("tcp", m.group(1), int(m.group(2)))
    m = re.match(r"^([^:]+):(\d+)$", text)
    if m:
        return ("tcp", m.group(1), int(m.group(2)))
    return ("unknown", text, None)


class Cairn:
    """A running cairn process started by the `cairn` fixture."""

    def __init__(self, proc, tmpdir, config_path, listeners, admin, stdout_path, stderr_path):
        self.proc = proc
        self.tmp = Path(tmpdir)
        self.config_path = Path(config_path)
        self.listeners = listeners  # [('tcp', host, port) | ('unix', path, None)]
        self.admin = admin  # ('tcp', host, port) or None when "off"
        self.stdout_path = Path(stdout_path)
        self.stderr_path = Path(stderr_path)
        self.killed_by_fixture = False

    @property
    def pid(self):
        return self.proc.pid

    @property
    def ports(self):
        return [p for kind, _, p in self.listeners if kind == "tcp"]

    @property
    def port(self):
        return self.ports[0]

    @property
    def admin_port(self):
        return self.admin[2] if self.admin else None

    def url(self, path="/", i=0):
        return f"http://127.0.0.1:{self.ports[i]}{path}"

    def stderr_text(self):
        return _read(self.stderr_path)

    def stdout_text(self):
        return _read(self.stdout_path)

    def alive(self):
        return self.proc.poll() is None

    def conn(self, timeout=5.0, i=0) -> RawConn:
        kind, host, port = self.listeners[i]
        if kind == "unix":
            return RawConn(unix_path=host, timeout=timeout)
        return RawConn(port, host=host, timeout=timeout)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends @sig and waits up to @timeout s; returns the exit code (negative = killed
        by a signal). Raises AssertionError when the process does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"cairn (pid {self.pid}) did not exit within {timeout}s of {sig!r}; "
                    f"stderr tail:\n{self.stderr_text()[-3000:]}")
        return self.proc.returncode

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def access_log_lines(self):
        return [ln for ln in self.stdout_text().splitlines() if ln.strip()]

    def wait_ready(self, timeout=STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"cairn exited with code {self.proc.returncode} during startup; "
                    f"config {self.config_path}:\n{self.config_path.read_text()}\n"
                    f"stderr:\n{self.stderr_text()[-4000:]}")
            try:
                if self.admin:
                    _, host, port = self.admin
                    with RawConn(port, host=host, timeout=1.0) as c:
                        r = c.request("GET", "/healthz", host=f"{host}:{port}", timeout=1.0)
                        if r.status == 200:
                            return self
                        last = f"/healthz answered {r.status}"
                else:
                    kind, host, port = self.listeners[0]
                    if kind == "unix":
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.settimeout(1.0)
                        s.connect(host)
                    else:
                        s = socket.create_connection((host, port), timeout=1.0)
                    s.close()
                    return self
            except (OSError, AssertionError, ValueError) as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(
            f"cairn not ready within {timeout}s (last: {last}); "
            f"stderr:\n{self.stderr_text()[-4000:]}")


def prepare_config(config, tmpdir):
    """Returns (yaml_text, listeners, admin) for a dict or YAML text config."""
    if isinstance(config, (dict,)):
        cfg = copy.deepcopy(config)
        if "admin" not in cfg:
            cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
        if "listeners" not in cfg:
            cfg["listeners"] = [{"listen": f"127.0.0.1:{free_port()}"}]
        text = to_yaml(cfg)
        admin_listen = (cfg.get("admin") or {}).get("listen", "127.0.0.1:9901")
        listeners = [_parse_addr(lst["listen"]) for lst in cfg["listeners"]]
    else:
        text = str(config)
        m = re.search(r"^admin:\s*\n(?:[ \t]+.*\n)*?[ \t]+listen:\s*[\"']?([^\"'\n#]+)", text, re.M)
        m2 = re.search(r"^admin:\s*\{\s*listen:\s*[\"']?([^\"'},]+)", text, re.M)
        admin_listen = (m.group(1) if m else m2.group(1) if m2 else "127.0.0.1:9901").strip()
        ls = re.search(r"^listeners:\s*\n((?:[ \t-].*\n?)*)", text, re.M)
        listeners = []
        if ls:
            for mm in re.finditer(r"listen:\s*[\"']?([^\"'\n,}#]+)", ls.group(1)):
                listeners.append(_parse_addr(mm.group(1).strip()))
    admin = None if str(admin_listen).strip() == "off" else _parse_addr(admin_listen)
    return text, listeners, admin


class CairnFactory:
    """Starts cairn processes and cleans them up; see the module docstring."""

    def __init__(self, tmp_path_factory):
        self.tmpf = tmp_path_factory
        self.started: list[Cairn] = []
        self.extra_pids: list[int] = []

    def __call__(self, config, extra_args=(), wait=True, cwd=None, env=None, name="cairn"):
        require_binary()
        tmp = self.tmpf.mktemp(name)
        out_path, err_path = tmp / "stdout.log", tmp / "stderr.log"
        if config is None:  # the embedded default configuration
            cfg_path = None
            listeners, admin = [("tcp", "127.0.0.1", 8080)], ("tcp", "127.0.0.1", 9901)
            argv = [CAIRN_BIN, *extra_args]
        else:
            text, listeners, admin = prepare_config(config, tmp)
            cfg_path = tmp / "cairn.yaml"
            cfg_path.write_text(text)
            argv = [CAIRN_BIN, "-c", str(cfg_path), *extra_args]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    cwd=str(cwd or tmp), env=cairn_env(env),
                                    start_new_session=True)
        c = Cairn(proc, tmp, cfg_path or tmp / "<embedded>", listeners, admin, out_path,
                  err_path)
        self.started.append(c)
        if wait:
            c.wait_ready()
        return c

    def register_pid(self, pid):
        """A pid (e.g. a daemon's) to SIGKILL at teardown."""
        self.extra_pids.append(pid)

    def cleanup(self):
        problems = []
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for c in self.started:
            if c.proc.poll() is None and GRACEFUL_TEARDOWN:
                try:
                    c.proc.send_signal(signal.SIGTERM)
                    c.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if c.proc.poll() is None:
                c.killed_by_fixture = True
                try:
                    os.killpg(c.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    c.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    problems.append(f"pid {c.pid} survived SIGKILL")
            else:
                # ended by itself: kill anything it left behind in its process group
                try:
                    os.killpg(c.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            texts = [c.stderr_text()]
            for f in sorted(c.tmp.glob("*.log")):
                if f != c.stderr_path:
                    texts.append(_read(f))
            rep = sanitizer_report("\n".join(texts))
            if rep:
                problems.append(f"sanitizer report in cairn (pid {c.pid}) stderr:\n{rep}")
        self.started.clear()
        self.extra_pids.clear()
        return problems


@pytest.fixture
def cairn(tmp_path_factory):
    f = CairnFactory(tmp_path_factory)
    yield f
    problems = f.cleanup()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def cairn_module(tmp_path_factory):
    """Like `cairn`, but processes live for the whole test module."""
    f = CairnFactory(tmp_path_factory)
    yield f
    problems = f.cleanup()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def cairn_cli(tmp_path):
    """Runs cairn to completion: cairn_cli(*args, timeout=10, cwd=None) -> CompletedProcess
    (text mode). Fails when stderr holds a sanitizer report."""

    def run(*args, timeout=10, cwd=None, env=None, input=None):
        require_binary()
        try:
            p = subprocess.run([CAIRN_BIN, *map(str, args)], capture_output=True, text=True,
                               timeout=timeout, cwd=str(cwd or tmp_path), env=cairn_env(env),
                               stdin=subprocess.DEVNULL if input is None else None,
                               input=input, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"`cairn {' '.join(map(str, args))}` did not finish within "
                                 f"{timeout}s; stderr: {e.stderr!r}")
        rep = sanitizer_report(p.stderr or "")
        assert rep is None, f"sanitizer report from `cairn {' '.join(map(str, args))}`:\n{rep}"
        return p

    return run


@pytest.fixture
def origin():
    started = []

    def start(routes=None, **kw):
        o = Origin(routes, **kw).start()
        started.append(o)
        return o

    yield start
    for o in started:
        o.stop()


@pytest.fixture
def write_config(tmp_path):
    """write_config(text, name='c.yaml') -> Path"""

    def w(text, name="c.yaml"):
        p = tmp_path / name
        p.write_text(text if isinstance(text, str) else to_yaml(text))
        return p

    return w



@pytest.fixture
def start_cairn(cairn):
    """Alias of `cairn`: start_cairn(config_yaml_text_or_dict, extra_args=[], wait=True)."""
    return cairn


@pytest.fixture(name="free_port")
def free_port_fixture():
    """The helpers.free_port function, as a fixture."""
    return free_port


@pytest.fixture(name="raw")
def raw_fixture():
    """helpers.raw(port, data, timeout=3.0, host=..., unix_path=None) -> bytes."""
    from helpers import raw as raw_fn
    return raw_fn
