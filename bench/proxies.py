"""Adapters of bench/run.py: start cairn, nginx, Varnish and HAProxy with configurations
generated into a private temporary directory, on free loopback ports, pinned to one core.
Nothing here reads or writes a system configuration or binds a system port.

With tls={"cert", "key", "pem"} (make_cert) the listener terminates TLS with that
certificate; Varnish has no TLS (tls_capable = False)."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_cert(directory):
    """A self-signed ECDSA P-256 certificate for bench.local (and 127.0.0.1), made with the
    openssl command line into directory. Returns {"cert", "key", "pem" (cert + key, for
    HAProxy's crt)}."""
    os.makedirs(directory, exist_ok=True)
    cert, key, pem = (os.path.join(directory, n) for n in ("cert.pem", "key.pem", "both.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=bench.local",
                    "-addext", "subjectAltName=DNS:bench.local,IP:127.0.0.1"],
                   check=True, capture_output=True)
    with open(pem, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return {"cert": cert, "key": key, "pem": pem}


_CLIENT_CTX = None


def _client_ctx():
    global _CLIENT_CTX
    if _CLIENT_CTX is None:
        _CLIENT_CTX = ssl.create_default_context()
        _CLIENT_CTX.check_hostname = False
        _CLIENT_CTX.verify_mode = ssl.CERT_NONE
    return _CLIENT_CTX


def http_get(port, path, timeout=2.0, headers="", tls=False):
    """One HTTP/1.1 GET on a fresh connection (over TLS with tls=True); returns
    (status, headers_text, body_len)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with (_client_ctx().wrap_socket(raw, server_hostname="bench.local") if tls else raw) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            try:
                r = s.recv(1 << 20)
            except ssl.SSLEOFError:  # closed without close_notify
                break
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
    tls_capable = True
    workers = 1  # run.py --workers

    def __init__(self, workdir, origin_port, core="0", tls=None):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        if tls and not self.tls_capable:
            raise ValueError(f"{self.name} has no TLS")
        self.tls = tls
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
                status, _, _ = http_get(self.port, "/c/1k", timeout=1.0, tls=bool(self.tls))
                if status == 200:
                    return
            except OSError:  # ssl.SSLError included
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
        tls = ""
        if self.tls:
            tls = f'    tls: {{cert: "{self.tls["cert"]}", key: "{self.tls["key"]}"}}\n'
        with open(os.path.join(d, "cairn.yaml"), "w") as f:
            f.write(f"""server:
  workers: {self.workers}
  access_log: "off"
  log_level: warn
  pid_file: "{d}/cairn.pid"
  upgrade_socket: "{d}/cairn.upgrade.sock"
admin: {{listen: "off"}}
listeners:
  - listen: "127.0.0.1:{self.port}"
{tls}upstreams:
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
        listen, tls = f"127.0.0.1:{self.port}", ""
        if self.tls:
            # defaults otherwise: session tickets on, no session cache (TLS 1.3 resumes with
            # tickets), ssl_ecdh_curve auto
            listen += " ssl"
            tls = (f"\n    ssl_certificate {self.tls['cert']};"
                   f"\n    ssl_certificate_key {self.tls['key']};"
                   f"\n    ssl_protocols TLSv1.2 TLSv1.3;")
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""user root;
worker_processes {self.workers};
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
    listen {listen};{tls}
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
    tls_capable = False
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
        # TLS: `bind ... ssl crt cert+key`, HAProxy 2.6's defaults otherwise (TLS 1.2+,
        # tickets on, a 20,000-entry session cache)
        tls = f" ssl crt {self.tls['pem']}" if self.tls else ""
        with open(os.path.join(self.dir, "haproxy.cfg"), "w") as f:
            f.write(f"""global
  nbthread {self.workers}
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
  bind 127.0.0.1:{self.port}{tls}
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
