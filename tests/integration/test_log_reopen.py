"""SIGUSR1 reopens the error and access logs (log rotation): after the files were moved
away, new lines go to fresh files at the configured paths, old lines stay in the moved ones."""
import json
import os
import signal
import time

from helpers import get, static_route


def wait_for(pred, timeout=5.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_sigusr1_reopens_both_logs(cairn, tmp_path):
    access = tmp_path / "access.log"
    errors = tmp_path / "error.log"
    c = cairn({"server": {"workers": 1, "access_log": str(access), "error_log": str(errors),
                          "log_level": "info"},
               "routes": [static_route("ok\n", path="/")]})
    assert get(c.port, "/?before=1").status == 200
    assert wait_for(lambda: "before=1" in read(access)), "first request not logged"
    os.rename(access, str(access) + ".1")
    os.rename(errors, str(errors) + ".1")
    c.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: access.exists() and errors.exists()), \
        "SIGUSR1 did not recreate the log files at their configured paths"
    assert get(c.port, "/?after=1").status == 200
    assert wait_for(lambda: "after=1" in read(access)), "request after the reopen not logged"
    new_lines = [json.loads(line) for line in read(access).splitlines()]
    old_lines = [json.loads(line) for line in read(str(access) + ".1").splitlines()]
    assert [r["path"] for r in new_lines] == ["/?after=1"], f"new access log: {new_lines}"
    assert [r["path"] for r in old_lines] == ["/?before=1"], f"rotated access log: {old_lines}"
    assert "error log reopened" in read(errors) and "access log reopened" in read(errors), \
        f"the error log was not reopened at its path: {read(errors)!r}"
    assert "listening on" in read(str(errors) + ".1"), "the startup lines left the old file"
    assert "listening on" not in read(errors), "old lines were copied into the new error log"
