"""Running the example programs of examples/ (built as build-asan/example_<name>) in tests:
start on a free port, wait until it accepts, stop with SIGTERM and check a clean exit."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from helpers import free_port

REPO = Path(__file__).resolve().parent.parent.parent
BUILD = Path(os.environ.get("CAIRN_BUILD") or REPO / "build-asan")
if not BUILD.is_absolute():
    BUILD = (REPO / BUILD).resolve()

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
STOP_TIMEOUT = 5.0
RELINKING = (errno.ETXTBSY, errno.EACCES, errno.ENOENT, errno.ENOEXEC)


def _env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


class Example:
    """A running example program."""

    def __init__(self, name, args, tmp: Path):
        self.name = name
        self.binary = BUILD / f"example_{name}"
        self.tmp = tmp
        self.out_path = tmp / f"{name}.stdout"
        self.err_path = tmp / f"{name}.stderr"
        self.port = None
        self.proc = None
        self.args = [str(a) for a in args]

    def start(self, attempts=3):
        for _ in range(attempts):
            self.port = free_port()
            self.proc = self._spawn()
            if self._wait_ready():
                return self
            if "address already in use" not in self.stderr().lower():
                break
        raise AssertionError(f"{self.name} did not start (exit {self.proc.poll()}); "
                             f"stderr:\n{self.stderr()[-3000:]}")

    def _spawn(self):
        # A concurrent `make asan` relinking the binary makes it briefly busy (ETXTBSY),
        # not yet executable (EACCES) or absent (ENOENT): it is back in a moment.
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
                    return subprocess.Popen(
                        [str(self.binary), str(self.port), *self.args],
                        stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=str(self.tmp),
                        env=_env(), start_new_session=True)
            except OSError as e:
                if e.errno not in RELINKING or time.monotonic() > deadline:
                    raise AssertionError(f"cannot run {self.binary} ({e}); run `make asan`")
                time.sleep(0.2)

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stdout(self):
        return self.out_path.read_bytes().decode("utf-8", "replace")

    def stderr(self):
        return self.err_path.read_bytes().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM; asserts a clean exit 0 within STOP_TIMEOUT and no sanitizer report."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {STOP_TIMEOUT}s of SIGTERM; "
                                 f"stderr:\n{self.stderr()[-3000:]}")
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            assert m not in err, f"sanitizer report from {self.name}:\n{err[-6000:]}"
        assert rc == 0, f"{self.name} exited with {rc}; stderr:\n{err[-3000:]}"

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(timeout=5)


