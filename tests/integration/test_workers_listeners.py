"""Worker threads, IPv6 and unix-socket listeners, several listeners, match.listener."""
import os
import shutil
import tempfile

import pytest

from helpers import RawConn, free_port, get, ipv6_loopback_available, static_route


def thread_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def thread_names(pid):
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def test_workers_threads(cairn):
    one = cairn({"server": {"workers": 1}, "routes": [static_route()]})
    three = cairn({"server": {"workers": 3}, "routes": [static_route()]})
    n1, n3 = thread_count(one.pid), thread_count(three.pid)
    assert n3 >= 3, f"workers: 3 but only {n3} threads ({thread_names(three.pid)})"
    assert n3 >= n1 + 2, (f"workers: 3 has {n3} threads vs {n1} for workers: 1 "
                          f"({thread_names(three.pid)} vs {thread_names(one.pid)})")
    for c in (one, three):
        assert get(c.port, "/").status == 200


def test_workers_all_serve(cairn):
    c = cairn({"server": {"workers": 4}, "routes": [static_route("w\n")]})
    conns = [RawConn(c.port) for _ in range(40)]
    try:
        for s in conns:
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in conns:
            assert s.read_response().body == b"w\n"
    finally:
        for s in conns:
            s.close()


def test_ipv6_listener(cairn):
    if not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    port = free_port()
    c = cairn({"listeners": [{"listen": f"[::1]:{port}"}],
               "routes": [static_route("over v6\n")]})
    with RawConn(port, host="::1") as s:
        r = s.request("GET", "/", host=f"[::1]:{port}")
    assert r.status == 200 and r.body == b"over v6\n", r
    assert c.alive()


def test_unix_listener(cairn):
    d = tempfile.mkdtemp(prefix="cairn-it-", dir="/tmp")
    try:
        path = os.path.join(d, "c.sock")
        c = cairn({"listeners": [{"listen": f"unix:{path}"}],
                   "routes": [static_route("over unix\n")]})
        assert os.path.exists(path), "unix socket file not created"
        with RawConn(unix_path=path) as s:
            r = s.request("GET", "/")
            r2 = s.request("GET", "/")
        assert r.status == 200 and r.body == b"over unix\n", r
        assert r2.body == b"over unix\n", r2
        c.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unix_listener_logs_client(cairn):
    d = tempfile.mkdtemp(prefix="cairn-it-", dir="/tmp")
    try:
        path = os.path.join(d, "c.sock")
        c = cairn({"listeners": [{"listen": f"unix:{path}"}],
                   "routes": [static_route("over unix\n")]})
        with RawConn(unix_path=path) as s:
            assert s.request("GET", "/").status == 200
        code = c.stop()
        assert code == 0, f"exit {code}"
        assert "/" in c.stdout_text(), "no access-log line for a unix-socket request"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_several_listeners_and_match_listener(cairn):
    p1, p2 = free_port(), free_port()
    c = cairn({
        "listeners": [{"listen": f"127.0.0.1:{p1}", "name": "public"},
                      {"listen": f"127.0.0.1:{p2}", "name": "internal"}],
        "routes": [static_route("public\n", listener="public", path_prefix="/"),
                   static_route("internal\n", listener="internal", path_prefix="/")],
    })
    assert get(p1, "/").body == b"public\n"
    assert get(p2, "/").body == b"internal\n"
    assert c.ports == [p1, p2]


def test_listener_port_in_use_fails(cairn, tmp_path):
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        c = cairn({"listeners": [{"listen": f"127.0.0.1:{port}"}], "routes": [static_route()]},
                  wait=False)
        code = c.wait_exit(5)
        assert code is not None and code != 0, \
            f"cairn must fail when its listener address is in use (exit {code})"
        assert str(port) in c.stderr_text(), f"error does not name the port:\n{c.stderr_text()}"
    finally:
        s.close()


def test_admin_off(cairn):
    port = free_port()
    c = cairn({"admin": {"listen": "off"}, "listeners": [{"listen": f"127.0.0.1:{port}"}],
               "routes": [static_route("no admin\n")]})
    assert c.admin_port is None
    assert get(port, "/").body == b"no admin\n"
    assert c.stop() == 0


def test_ipv6_upstream_peer(cairn, origin):
    if not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    from helpers import proxy_config
    from origins import Normal
    org = origin({"/six": Normal(200, b"from v6 origin\n")}, host="::1")
    c = cairn(proxy_config(org))
    r = get(c.port, "/six")
    assert r.status == 200 and r.body == b"from v6 origin\n", r
