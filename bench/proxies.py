"""Adapters of bench/run.py: start cairn, nginx, Varnish and HAProxy with configurations
generated into a private temporary directory, on free loopback ports, pinned to one core.
Nothing here reads or writes a system configuration or binds a system port."""
import os
import shutil
import signal
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_get(port, path, timeout=2.0, headers=""):
    """One HTTP/1.1 GET on a fresh connection; returns (status, headers_text, body_len)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            r = s.recv(1 << 20)
            if not r:
                break
            data += r
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    return status, "\n".join(lines[1:]), len(body)


def proc_tree(pid):
    """pid and all its descendants (nginx master + worker, varnishd manager + child)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_us(pids):
    """utime+stime (all threads, /proc/<pid>/stat fields 14 and 15) of pids, in microseconds."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total * 1_000_000 // CLK_TCK


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def snapshot_binaries(workdir, origin_bin):
    """Copy build/cairn and build/bench_origin into workdir and use the copies: other people
    may rebuild build/ while a benchmark runs, and every run must use the same binary.
    Returns {name: {"path", "sha256", "built"}}."""
    import datetime
    import hashlib
    out = {}
    d = os.path.join(workdir, "bin")
    os.makedirs(d, exist_ok=True)
    bins = [("cairn", Cairn.binary), ("bench_origin", origin_bin)]
    if CairnBase.binary:
        bins.append(("cairn-base", CairnBase.binary))
    for name, src in bins:
        dst = os.path.join(d, name)
        shutil.copy2(src, dst)
        with open(dst, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        built = datetime.datetime.fromtimestamp(os.stat(dst).st_mtime, datetime.timezone.utc)
        out[name] = {"path": dst, "sha256": digest, "built": built.isoformat(timespec="seconds")}
    Cairn.binary = out["cairn"]["path"]
    if CairnBase.binary:
        CairnBase.binary = out["cairn-base"]["path"]
    return out


class Proxy:
    name = "?"

    def __init__(self, workdir, origin_port, core="0"):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.origin_port = origin_port
        self.port = free_port()
        self.core = core
        self.proc = None
        self.log = None

    def command(self):
        raise NotImplementedError

    def write_config(self):
        pass

    def start(self, timeout=30.0):
        self.write_config()
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")
        cmd = ["taskset", "-c", self.core] + self.command()
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail_log()}")
            try:
                status, _, _ = http_get(self.port, "/c/1k", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.port}: {self.tail_log()}")

    def tail_log(self):
        try:
            with open(os.path.join(self.dir, "stderr.log"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return proc_tree(self.proc.pid) if self.alive() else []

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                # the whole session we created (the proxy and its children), by group id
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def version(self):
        return ""


class Cairn(Proxy):
    name = "cairn"
    binary = os.path.join(ROOT, "build", "cairn")

    def write_config(self):
        d = self.dir
        with open(os.path.join(d, "cairn.yaml"), "w") as f:
            f.write(f"""server:
  workers: 1
  access_log: "off"
  log_level: warn
  pid_file: "{d}/cairn.pid"
  upgrade_socket: "{d}/cairn.upgrade.sock"
admin: {{listen: "off"}}
listeners:
  - listen: "127.0.0.1:{self.port}"
upstreams:
  origin:
    peers: [{{address: "127.0.0.1:{self.origin_port}"}}]
    keepalive_pool: 1024
caches:
  main:
    memory: {{size: 256MiB, max_object: 8MiB}}
routes:
  - upstream: origin
    cache: main
""")

    def command(self):
        return [self.binary, "-c", os.path.join(self.dir, "cairn.yaml")]

    def version(self):
        try:
            return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""


class Nginx(Proxy):
    name = "nginx"
    binary = "/usr/sbin/nginx"

    def write_config(self):
        d = self.dir
        os.makedirs(os.path.join(d, "cache"), exist_ok=True)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush off;  # on: 100 KiB hits stall ~40 ms on loopback (see bench/README.md)
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy_temp;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  proxy_cache_path {d}/cache levels=1:2 keys_zone=main:64m max_size=256m inactive=1h use_temp_path=off;
  upstream origin {{
    server 127.0.0.1:{self.origin_port};
    keepalive 1024;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache main;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_lock_age 10s;
      add_header X-Cache $upstream_cache_status;
    }}
  }}
}}
""")

    def command(self):
        return [self.binary, "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
                "-c", os.path.join(self.dir, "nginx.conf"), "-g", "daemon off;"]

    def version(self):
        r = subprocess.run([self.binary, "-v"], capture_output=True, text=True)
        return r.stderr.strip().split("/")[-1]


class Varnish(Proxy):
    name = "varnish"
    binary = "/usr/sbin/varnishd"

    def command(self):
        return [self.binary, "-F", "-n", os.path.join(self.dir, "varnish"), "-j", "none",
                "-T", "none", "-a", f"127.0.0.1:{self.port}", "-b", f"127.0.0.1:{self.origin_port}",
                "-s", "malloc,256m", "-p", "thread_pools=1", "-p", "thread_pool_min=10",
                "-p", "thread_pool_max=1000"]

    def stop(self):
        super().stop()
        shutil.rmtree(os.path.join(self.dir, "varnish"), ignore_errors=True)

    def version(self):
        r = subprocess.run([self.binary, "-V"], capture_output=True, text=True)
        out = (r.stdout + r.stderr).split("\n")[0]
        return out.split("(")[-1].split()[0] if "(" in out else out


class HAProxy(Proxy):
    name = "haproxy"
    binary = "/usr/sbin/haproxy"

    def write_config(self):
        with open(os.path.join(self.dir, "haproxy.cfg"), "w") as f:
            f.write(f"""global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
cache main
  total-max-size 256
  max-object-size 8388608
  max-age 3600
frontend fe
  bind 127.0.0.1:{self.port}
  http-request cache-use main
  http-response cache-store main
  http-response set-header X-Cache-Status HIT if !{{ srv_id -m found }}
  default_backend be
backend be
  http-reuse always
  server origin 127.0.0.1:{self.origin_port} maxconn 10000
""")

    def command(self):
        return [self.binary, "-f", os.path.join(self.dir, "haproxy.cfg"), "-db"]

    def version(self):
        r = subprocess.run([self.binary, "-v"], capture_output=True, text=True)
        return r.stdout.split("\n")[0].split()[2] if r.stdout else ""


class CairnBase(Cairn):
    """Another cairn binary (CAIRN_BASE_BIN, e.g. built from an older commit) measured side by
    side with the current one: `--proxies cairn,cairn-base` gives before/after ratios."""
    name = "cairn-base"
    binary = os.environ.get("CAIRN_BASE_BIN", "")

    def version(self):
        return "base " + os.path.basename(os.path.dirname(self.binary) or "?")


ADAPTERS = {"cairn-base": CairnBase, "cairn": Cairn, "nginx": Nginx, "varnish": Varnish, "haproxy": HAProxy}
