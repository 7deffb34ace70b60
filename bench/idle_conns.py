#!/usr/bin/python3
"""Memory of idle keep-alive connections: start cairn (release build) with one static route,
open N connections that each complete one request and then stay idle, and report the growth
of cairn's RSS and private dirty memory per connection. Kernel socket buffers are not in RSS,
so the figure is cairn's own cost (heap + libuv handles).

usage: bench/idle_conns.py [N] [path/to/cairn]
"""
import os, resource, signal, socket, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
BIN = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "build", "cairn")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Private_Dirty"):
                out[k] = int(v.split()[0]) * 1024
    return out


port = free_port()
cfg = f"""server: {{workers: 1, access_log: "off", keepalive_timeout: 10m, log_level: warn}}
admin: {{listen: "off"}}
listeners: [{{listen: "127.0.0.1:{port}"}}]
routes: [{{static: {{status: 200, body: "ok\\n"}}}}]
"""
d = tempfile.mkdtemp()
path = os.path.join(d, "c.yaml")
open(path, "w").write(cfg)
proc = subprocess.Popen([BIN, "-c", path], stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close(); break
        except OSError:
            time.sleep(0.05)
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    # Warm-up: allocator arenas and libuv structures that exist once.
    warm = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); s.recv(4096); warm.append(s)
    time.sleep(0.5)
    before = mem(proc.pid)
    conns = []
    for i in range(N):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        conns.append(s)
        if len(conns) % 50 == 0:
            for c in conns[-50:]:
                c.recv(4096)
    for c in conns[len(conns) - len(conns) % 50:]:
        c.recv(4096)
    time.sleep(1.0)
    after = mem(proc.pid)
    for k in ("Rss", "Private_Dirty"):
        delta = after[k] - before[k]
        print(f"{k}: {before[k]/1024:.0f} KiB -> {after[k]/1024:.0f} KiB, "
              f"+{delta/1024:.0f} KiB for {N} idle connections = {delta/N:.0f} bytes/connection")
finally:
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
