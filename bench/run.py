#!/usr/bin/python3
"""cairn's proxy benchmark: cairn against nginx, Varnish and HAProxy, same origin, same machine.

Each proxy runs with one worker pinned to core 0; the origin (build/bench_origin) and the load
generator (wrk, or a Python client for the stampede) run on core 1. For each scenario every proxy
is started once with a fresh cache, then the repetitions are interleaved (A B C D A B C D ...).
Every measured run appends one JSON line to bench/results/runs.jsonl; the medians of this
invocation, with ratios to nginx, go to bench/results/latest.md.

TLS scenarios (tls-*) terminate TLS on the proxy's listener with one ECDSA P-256 certificate
made with `openssl` in the run's workdir; proxies without TLS (Varnish) are left out of them.
wrk's TLS handshakes are counted (full / resumed) by an LD_PRELOAD shim, bench/wrk_tls_shim.c,
built into the workdir; in tls-churn the shim also drops the session before each handshake,
since wrk would otherwise resume on every reconnect.

usage: bench/run.py [--scenarios hit-1k,pass-1k] [--proxies cairn,nginx] [--reps 3]
                    [--duration 5] [--warmup 1] [--connections 64] [--no-idle]
                    [--workers 1] [--proxy-cores 0]
"""
import argparse
import datetime
import json
import os
import platform
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies as px  # noqa: E402

ROOT = px.ROOT
BENCH = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH, "results")
ORIGIN_BIN = os.path.join(ROOT, "build", "bench_origin")
LOAD_CORE = "1"
PROXY_CORE = "0"

SCENARIOS = {
    # name: (kind, path, extra wrk args[, TLS: {"fresh": drop wrk's session before each
    # handshake (a full one every time), "expect": "keepalive" | "full" | "resumed"}])
    "hit-1k": ("wrk", "/c/1k", []),
    "hit-16k": ("wrk", "/c/16k", []),
    "hit-100k": ("wrk", "/c/100k", []),
    "hit-1m": ("wrk", "/c/1m", []),
    "pass-1k": ("wrk", "/nostore/1k", []),
    "conn-churn": ("wrk", "/c/1k", ["-H", "Connection: close"]),
    "stampede": ("stampede", "/slow/", []),
    "tls-hit-1k": ("wrk", "/c/1k", [], {"fresh": False, "expect": "keepalive"}),
    "tls-churn": ("wrk", "/c/1k", ["-H", "Connection: close"], {"fresh": True, "expect": "full"}),
    "tls-resume": ("wrk", "/c/1k", ["-H", "Connection: close"], {"fresh": False, "expect": "resumed"}),
}


def scenario(name):
    """(kind, path, extra, tls options or None)"""
    t = SCENARIOS[name]
    return t[0], t[1], t[2], (t[3] if len(t) > 3 else None)


ALL_PROXIES = ["cairn", "nginx", "varnish", "haproxy"]

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def git_rev():
    r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip()


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def core_times():
    """(busy, total, steal) jiffies per CPU from /proc/stat (busy includes steal)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(x) for x in parts[1:]] + [0] * 8
                idle = vals[3] + vals[4]
                out[int(parts[0][3:])] = (sum(vals[:8]) - idle, sum(vals[:8]), vals[7])
    return out


def core_busy(t0, t1):
    res = {}
    for c in t0:
        db, dt = t1[c][0] - t0[c][0], t1[c][1] - t0[c][1]
        res[str(c)] = round(db / dt, 3) if dt else None
    return res


def core_steal(t0, t1):
    """Share of each core's time the hypervisor gave to someone else."""
    res = {}
    for c in t0:
        ds, dt = t1[c][2] - t0[c][2], t1[c][1] - t0[c][1]
        res[str(c)] = round(ds / dt, 3) if dt else None
    return res


def wait_quiet(max_wait, threshold=0.15, probe=0.5):
    """Wait (at most max_wait seconds) until, over a short probe, every core is less than
    threshold busy: other work on the machine would distort the run. Returns the seconds waited
    and the last probe's busy shares."""
    t_start = time.time()
    while True:
        t0 = core_times()
        time.sleep(probe)
        busy = core_busy(t0, core_times())
        if all(b is not None and b < threshold for b in busy.values()) or time.time() - t_start >= max_wait:
            return round(time.time() - t_start, 1), busy


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release()}


class Origin:
    def __init__(self, origin_bin=ORIGIN_BIN):
        self.port = px.free_port()
        self.proc = subprocess.Popen(["taskset", "-c", LOAD_CORE, origin_bin, str(self.port)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("bench_origin did not start")

    def stats(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /__stats HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                r = s.recv(1 << 20)
                if not r:
                    break
                data += r
        return json.loads(data.partition(b"\r\n\r\n")[2])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def build_tls_shim(workdir):
    """Compile bench/wrk_tls_shim.c into workdir; returns the .so path."""
    out = os.path.join(workdir, "wrk_tls_shim.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", out, os.path.join(BENCH, "wrk_tls_shim.c"),
                    "-ldl", "-lssl", "-lcrypto"], check=True, capture_output=True)
    return out


def run_wrk(port, path, duration, connections, extra, timeout_s=10, tls=None):
    """tls: None (http://) or {"shim": .so path, "fresh": bool}: https://, with wrk's TLS
    handshakes counted by the shim; the result then has "tls": {"full", "resumed", ...}."""
    script = os.path.join(tempfile.gettempdir(), f"cairn-bench-wrk-{os.getpid()}.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    scheme, env, stats = "http", None, None
    if tls:
        scheme = "https"
        stats = os.path.join(tempfile.gettempdir(), f"cairn-bench-wrk-tls-{os.getpid()}.json")
        env = dict(os.environ, LD_PRELOAD=tls["shim"], CAIRN_BENCH_TLS_STATS=stats,
                   CAIRN_BENCH_TLS_FRESH="1" if tls["fresh"] else "0")
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
           f"--timeout={timeout_s}s", "-s", script] + extra + [f"{scheme}://127.0.0.1:{port}{path}"]
    tls_stats = None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env)
        if stats and os.path.exists(stats):
            with open(stats) as f:
                tls_stats = json.load(f)
    finally:
        os.unlink(script)
        if stats and os.path.exists(stats):
            os.unlink(stats)
    for line in r.stdout.splitlines():
        if line.startswith("WRKJSON "):
            w = json.loads(line[len("WRKJSON "):])
            if tls:
                if tls_stats is None:
                    raise RuntimeError("wrk ran without the TLS shim's counts")
                w["tls"] = tls_stats
            return w
    raise RuntimeError(f"wrk failed: {r.stdout[-500:]} {r.stderr[-500:]}")


def tls_check(tls_stats, requests, connections, expect):
    """Did wrk do the handshakes the scenario is about? Returns a problem or None."""
    full, resumed = tls_stats["full"], tls_stats["resumed"]
    hs = full + resumed
    if tls_stats.get("failed"):
        return f"{tls_stats['failed']} failed handshakes"
    if expect == "keepalive":
        return None if hs <= 2 * connections else f"{hs} handshakes for {requests} keep-alive requests"
    if hs < 0.95 * requests:
        return f"wrk did not reconnect per request: {hs} handshakes for {requests} requests"
    if expect == "full" and resumed:
        return f"{resumed} resumed handshakes in a full-handshake scenario"
    # the first handshake of each connection slot is a full one
    if expect == "resumed" and full > 2 * connections:
        return f"only {resumed} of {hs} handshakes resumed"
    return None


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def stampede_client(port, path, n, timeout=15.0):
    """n connections, opened first; then one GET each, sent back to back; per-request latency
    from its send to the last body byte. Runs on the load core (the caller is pinned there)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    time.sleep(0.3)  # let the proxy accept them all
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    ep = select.epoll()
    state = {}
    start = time.perf_counter()
    for s in socks:
        state[s.fileno()] = {"s": s, "t0": time.perf_counter(), "buf": b"", "need": None,
                             "done": None, "status": 0}
        s.send(req)
        ep.register(s.fileno(), select.EPOLLIN)
    pending = n
    deadline = time.perf_counter() + timeout
    while pending and time.perf_counter() < deadline:
        for fd, _ in ep.poll(0.5):
            st = state[fd]
            try:
                data = st["s"].recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                st["done"] = st["done"] or -1
                ep.unregister(fd)
                pending -= 1
                continue
            st["buf"] += data
            if st["need"] is None and b"\r\n\r\n" in st["buf"]:
                head, _, body = st["buf"].partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                st["status"] = int(lines[0].split()[1])
                clen = 0
                for ln in lines[1:]:
                    k, _, v = ln.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v.strip())
                st["need"] = len(head) + 4 + clen
            if st["need"] is not None and len(st["buf"]) >= st["need"]:
                st["done"] = time.perf_counter()
                ep.unregister(fd)
                pending -= 1
    wall = time.perf_counter() - start
    lat, errors = [], 0
    for st in state.values():
        if isinstance(st["done"], float) and st["status"] == 200:
            lat.append((st["done"] - st["t0"]) * 1e6)
        else:
            errors += 1
        st["s"].close()
    ep.close()
    return {"requests": len(lat), "errors": errors, "wall_us": wall * 1e6,
            "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99),
            "max_us": max(lat) if lat else None, "min_us": min(lat) if lat else None}


def measure(proxy, origin, scenario, rep, args, run_id):
    kind, path, extra, tlsopt = globals()["scenario"](scenario)
    tls = {"shim": args.tls_shim, "fresh": tlsopt["fresh"]} if tlsopt else None
    pids = proxy.pids()
    rec = {"run_id": run_id, "scenario": scenario, "proxy": proxy.name, "rep": rep,
           "git": args.git, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
               timespec="seconds"), "proxy_version": proxy.version_str,
           "connections": args.connections if kind == "wrk" else args.stampede_n,
           "loadavg_before": loadavg(), "machine": args.machine, "binaries": args.binaries,
           "workers": args.workers, "proxy_cores": args.proxy_cores}
    if kind == "wrk":
        rec["quiet_wait_s"], rec["idle_probe"] = wait_quiet(args.wait_quiet)
        # warm-up: fills the cache (and the upstream keep-alive pool), then the measured run
        px.http_get(proxy.port, path, tls=bool(tls))
        if args.warmup > 0:
            run_wrk(proxy.port, path, args.warmup, args.connections, extra, tls=tls)
        o0 = origin.stats()["total"]
        c0 = px.cpu_us(pids)
        k0 = core_times()
        w = run_wrk(proxy.port, path, args.duration, args.connections, extra, tls=tls)
        k1 = core_times()
        c1 = px.cpu_us(pids)
        rec["core_busy"] = core_busy(k0, k1)
        rec["core_steal"] = core_steal(k0, k1)
        o1 = origin.stats()["total"]
        n = w["requests"]
        dur_s = w["duration_us"] / 1e6
        rec.update({"requests": n, "duration_s": round(dur_s, 3),
                    "rps": round(n / dur_s, 1) if dur_s else 0.0,
                    "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
                    "max_ms": w["max_us"] / 1000, "errors": sum(w["errors"].values()),
                    "errors_detail": w["errors"],
                    "bytes": w["bytes"]})
        if tls:
            t = w["tls"]
            hs = t["full"] + t["resumed"]
            rec["tls"] = dict(t, handshakes_per_s=round(hs / dur_s, 1) if dur_s else 0.0,
                              handshakes_per_req=round(hs / n, 3) if n else None)
            problem = tls_check(t, n, args.connections, tlsopt["expect"])
            if problem:
                rec["tls"]["problem"] = problem
    else:
        key = f"{path}{scenario}-{proxy.name}-{rep}-{uuid.uuid4().hex[:8]}"
        rec["quiet_wait_s"], rec["idle_probe"] = wait_quiet(args.wait_quiet)
        o0 = origin.stats()["total"]
        c0 = px.cpu_us(pids)
        k0 = core_times()
        s = stampede_client(proxy.port, key, args.stampede_n)
        k1 = core_times()
        c1 = px.cpu_us(pids)
        rec["core_busy"] = core_busy(k0, k1)
        rec["core_steal"] = core_steal(k0, k1)
        st = origin.stats()
        o1 = st["total"]
        n = s["requests"]
        rec.update({"requests": n, "duration_s": round(s["wall_us"] / 1e6, 3),
                    "rps": None, "p50_ms": s["p50_us"] / 1000 if n else None,
                    "p99_ms": s["p99_us"] / 1000 if n else None,
                    "max_ms": s["max_us"] / 1000 if n else None, "errors": s["errors"],
                    "origin_requests_key": st["paths"].get(key, 0)})
    cpu = c1 - c0
    rec["proxy_cpu_us"] = cpu
    rec["cpu_us_per_req"] = round(cpu / n, 2) if n else None
    rec["proxy_cpu_util"] = round(cpu / (rec["duration_s"] * 1e6), 3) if rec["duration_s"] else None
    rec["rss_kib"] = px.rss_kib(proxy.pids())
    rec["origin_requests"] = o1 - o0
    rec["loadavg_after"] = loadavg()
    return rec


def run_idle(args):
    """bench/idle_conns.py: heap of an idle keep-alive connection (cairn only)."""
    cmd = [sys.executable, os.path.join(BENCH, "idle_conns.py"), str(args.idle_n), px.Cairn.binary]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = {"output": r.stdout.strip()}
    for line in r.stdout.splitlines():
        k = line.split(":")[0]
        if "bytes/connection" in line:
            out[k] = int(line.rsplit("=", 1)[1].split()[0])
    return out


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt_num(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(v, base):
    if v is None or not base:
        return ""
    r = v / base
    return f" ({r:.2f}×)" if r >= 0.1 else f" ({r:.3f}×)"


def summarize(records, proxies, scenarios):
    table = {}
    for sc in scenarios:
        for p in proxies:
            rs = [r for r in records if r["scenario"] == sc and r["proxy"] == p and "error" not in r]
            if not rs:
                continue
            table[(sc, p)] = {
                "n": len(rs),
                "rps": med([r["rps"] for r in rs]),
                "p50_ms": med([r["p50_ms"] for r in rs]),
                "p99_ms": med([r["p99_ms"] for r in rs]),
                "cpu_us_per_req": med([r["cpu_us_per_req"] for r in rs]),
                "util": med([r["proxy_cpu_util"] for r in rs]),
                "core0": med([r.get("core_busy", {}).get("0") for r in rs]),
                "core1": med([r.get("core_busy", {}).get("1") for r in rs]),
                "rss_mib": med([r["rss_kib"] / 1024 for r in rs]),
                "origin": med([r["origin_requests"] for r in rs]),
                "origin_all": [r["origin_requests"] for r in rs],
                "errors": sum(r["errors"] for r in rs),
            }
            if all("tls" in r for r in rs):
                table[(sc, p)]["tls"] = {
                    "full": sum(r["tls"]["full"] for r in rs),
                    "resumed": sum(r["tls"]["resumed"] for r in rs),
                    "hs_per_s": med([r["tls"]["handshakes_per_s"] for r in rs]),
                    "hs_per_req": med([r["tls"]["handshakes_per_req"] for r in rs]),
                    "suite": f"{rs[0]['tls']['version']} {rs[0]['tls']['cipher']}",
                    "problems": [r["tls"]["problem"] for r in rs if r["tls"].get("problem")],
                }
    return table


def targets(table, proxies, scenarios, idle):
    lines = []
    peers = [p for p in proxies if p != "cairn"]
    for sc in scenarios:
        c = table.get((sc, "cairn"))
        if not c:
            continue
        if sc.startswith("tls-"):
            ps = {p: table[(sc, p)] for p in peers if (sc, p) in table}
            if not ps:
                continue
            bp = max(ps, key=lambda p: ps[p]["rps"] or 0)
            bc = min((p for p in ps if ps[p]["cpu_us_per_req"] is not None),
                     key=lambda p: ps[p]["cpu_us_per_req"])
            lines.append(
                f"- `{sc}` (a comparison, no target): req/s {fmt_num(c['rps'])} vs best peer "
                f"{bp} {fmt_num(ps[bp]['rps'])} ({c['rps'] / ps[bp]['rps']:.2f}×); CPU/req "
                f"{c['cpu_us_per_req']:.1f} µs vs {bc} {ps[bc]['cpu_us_per_req']:.1f} "
                f"({c['cpu_us_per_req'] / ps[bc]['cpu_us_per_req']:.2f}×)")
        elif sc.startswith("hit-") or sc == "pass-1k":
            ps = [table[(sc, p)] for p in peers if (sc, p) in table]
            if not ps:
                continue
            best_rps = max(ps, key=lambda t: t["rps"] or 0)["rps"]
            best_cpu = min(t["cpu_us_per_req"] for t in ps if t["cpu_us_per_req"] is not None)
            best_p99 = min(t["p99_ms"] for t in ps if t["p99_ms"] is not None)
            ok = lambda b: "met" if b else "**missed**"  # noqa: E731
            lines.append(
                f"- `{sc}`: req/s {fmt_num(c['rps'])} vs best peer {fmt_num(best_rps)}: "
                f"{ok(c['rps'] > best_rps)}; CPU/req {c['cpu_us_per_req']:.1f} µs vs "
                f"{best_cpu:.1f}: {ok(c['cpu_us_per_req'] < best_cpu)}; p99 {c['p99_ms']:.2f} ms vs "
                f"{best_p99:.2f}: {ok(c['p99_ms'] <= best_p99)}")
        elif sc == "stampede":
            one = all(o == 1 for o in c["origin_all"])
            p99ok = c["p99_ms"] is not None and c["p99_ms"] <= 220
            lines.append(
                f"- `stampede`: origin requests per repetition {c['origin_all']}: "
                f"{'met' if one else '**missed**'} (target exactly 1); p99 {fmt_num(c['p99_ms'], 1)} ms: "
                f"{'met' if p99ok else '**missed**'} (target ≤ 220 ms)")
    if idle and "Private_Dirty" in idle:
        b = idle["Private_Dirty"]
        lines.append(f"- idle keep-alive connection: {b} bytes of private dirty memory "
                     f"(heap + libuv) per connection (RSS: {idle.get('Rss', '?')} bytes): "
                     f"{'met' if b <= 1024 else '**missed**'} (target ≤ 1 KiB)")
    return lines


def write_markdown(path, table, proxies, scenarios, args, meta, idle, records=()):
    L = []
    busy = [r for r in records if any((b or 0) >= 0.15 for b in r.get("idle_probe", {}).values())]
    L.append(f"# cairn benchmark — {meta['date']}")
    L.append("")
    L.append(f"git `{meta['git']}`; {meta['machine']['nproc']} cores, {meta['machine']['cpu']}, "
             f"kernel {meta['machine']['kernel']}; {args.workers} worker(s) per proxy on core(s) "
             f"{args.proxy_cores}, wrk/origin on core "
             f"{LOAD_CORE}; {args.reps} interleaved repetitions of {args.duration} s "
             f"(after {args.warmup} s warm-up), wrk -t1 -c{args.connections}; stampede: "
             f"{args.stampede_n} concurrent requests for a new 200 ms key per repetition.")
    L.append(f"Load average before: {meta['load_before']}, after: {meta['load_after']}. "
             f"Runs that started while other work kept a core ≥ 15% busy (after waiting up to "
             f"{args.wait_quiet:g} s): {len(busy)} of {len(records)}.")
    steals = [v for r in records for v in r.get("core_steal", {}).values() if v is not None]
    if steals:
        L.append(f"Hypervisor steal time per core and run: median {statistics.median(steals):.1%}, "
                 f"max {max(steals):.1%}.")
    L.append("Versions: " + ", ".join(f"{p} {meta['versions'].get(p, '')}" for p in proxies) + "; "
             f"cairn binary sha256 {meta['binaries']['cairn']['sha256']}… built "
             f"{meta['binaries']['cairn']['built']} (one copy used for every run).")
    L.append("")
    L.append("Medians over the repetitions; (×) = ratio to nginx. CPU = proxy utime+stime per "
             "request; util = proxy CPU time / wall time (1.00 = its core is saturated); RSS = "
             "proxy process tree at the end of the run; origin = origin requests during the "
             "measured run; cores = busy share of core 0 (proxy) / core 1 (wrk + origin) over "
             "the run, everything on the machine included.")
    L.append("")
    L.append("| scenario | proxy | req/s | p50 ms | p99 ms | CPU µs/req | util | cores | RSS MiB | origin reqs | errors |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in scenarios:
        base = table.get((sc, "nginx"))
        for p in proxies:
            t = table.get((sc, p))
            if not t:
                continue
            rps = "—" if t["rps"] is None else fmt_num(t["rps"]) + (ratio(t["rps"], base["rps"]) if base and p != "nginx" else "")
            p99 = fmt_num(t["p99_ms"], 2) + (ratio(t["p99_ms"], base["p99_ms"]) if base and p != "nginx" else "")
            cpu = fmt_num(t["cpu_us_per_req"], 1) + (ratio(t["cpu_us_per_req"], base["cpu_us_per_req"]) if base and p != "nginx" else "")
            origin = fmt_num(t["origin"]) if sc != "stampede" else "/".join(str(o) for o in t["origin_all"])
            L.append(f"| {sc} | {p} | {rps} | {fmt_num(t['p50_ms'], 2)} | {p99} | {cpu} | "
                     f"{fmt_num(t['util'], 2)} | {fmt_num(t['core0'], 2)}/{fmt_num(t['core1'], 2)} | {fmt_num(t['rss_mib'], 1)} | {origin} | {t['errors']} |")
    L.append("")
    tls_rows = [(sc, p, table[(sc, p)]["tls"]) for sc in scenarios for p in proxies
                if (sc, p) in table and "tls" in table[(sc, p)]]
    if tls_rows:
        L.append("## TLS handshakes (counted in wrk by bench/wrk_tls_shim.c)")
        L.append("")
        L.append("Sums over the repetitions' measured runs; handshakes/s and per request are medians.")
        L.append("")
        L.append("| scenario | proxy | full | resumed | handshakes/s | per request | suite | problems |")
        L.append("|---|---|---:|---:|---:|---:|---|---|")
        for sc, p, t in tls_rows:
            L.append(f"| {sc} | {p} | {t['full']:,} | {t['resumed']:,} | {fmt_num(t['hs_per_s'])} | "
                     f"{fmt_num(t['hs_per_req'], 3)} | {t['suite']} | {'; '.join(t['problems']) or 'none'} |")
        L.append("")
    L.append("## Targets (reported, not asserted)")
    L.append("")
    L.extend(targets(table, proxies, scenarios, idle) or ["- (cairn not measured)"])
    L.append("")
    if idle:
        L.append("## Idle keep-alive connections (bench/idle_conns.py)")
        L.append("")
        L.append("```")
        L.append(idle.get("output", ""))
        L.append("```")
        L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--proxies", default=",".join(ALL_PROXIES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured run (wrk takes whole seconds)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load before each run (0 = one request)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--stampede-n", type=int, default=500)
    ap.add_argument("--idle-n", type=int, default=10000)
    ap.add_argument("--wait-quiet", type=float, default=30,
                    help="before each run, wait up to this many seconds for every core to be "
                         "under 15%% busy (other work on the machine); 0 = do not wait")
    ap.add_argument("--no-idle", action="store_true", help="skip bench/idle_conns.py")
    ap.add_argument("--workers", type=int, default=1,
                    help="workers (nginx worker_processes, HAProxy nbthread, cairn server.workers)")
    ap.add_argument("--proxy-cores", default=PROXY_CORE,
                    help="taskset -c list the proxies run on (wrk and the origin stay on core "
                         f"{LOAD_CORE})")
    ap.add_argument("--out", default=RESULTS, help="directory of runs.jsonl and latest.md")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    proxies = [p for p in args.proxies.split(",") if p]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s}; known: {', '.join(SCENARIOS)}")
    for p in proxies:
        if p not in px.ADAPTERS:
            sys.exit(f"unknown proxy {p}; known: {', '.join(px.ADAPTERS)}")
    for b in (ORIGIN_BIN, px.Cairn.binary):
        if not os.path.exists(b):
            sys.exit(f"{b} missing: run `make build` first")
    if os.cpu_count() < 2:
        sys.exit("needs at least 2 cores")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # the stampede client and everything we spawn run on the load core
    os.sched_setaffinity(0, {int(LOAD_CORE)})

    os.makedirs(args.out, exist_ok=True)
    args.git = git_rev()
    args.machine = machine()
    run_id = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    meta = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "git": args.git,
            "machine": machine(), "load_before": loadavg(), "versions": {}}
    workdir = tempfile.mkdtemp(prefix="cairn-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    cert = None
    args.tls_shim = None
    if any(scenario(s)[3] for s in scenarios):
        cert = px.make_cert(os.path.join(workdir, "tls"))
        args.tls_shim = build_tls_shim(workdir)
    print(f"bench: {len(scenarios)} scenarios × {len(proxies)} proxies × {args.reps} reps, "
          f"{args.duration}s each; workdir {workdir}; load {meta['load_before']}", flush=True)
    args.binaries = px.snapshot_binaries(workdir, ORIGIN_BIN)
    meta["binaries"] = args.binaries
    print(f"bench: cairn binary sha256 {args.binaries['cairn']['sha256']} built "
          f"{args.binaries['cairn']['built']} (copied to the workdir)", flush=True)
    origin = Origin(args.binaries["bench_origin"]["path"])
    records = []
    jsonl = open(os.path.join(args.out, "runs.jsonl"), "a")
    try:
        for sc in scenarios:
            running = {}
            tls = scenario(sc)[3]
            for p in proxies:
                if tls and not px.ADAPTERS[p].tls_capable:
                    print(f"  {sc}: {p} left out (no TLS)", flush=True)
                    continue
                inst = px.ADAPTERS[p](os.path.join(workdir, sc), origin.port, core=args.proxy_cores,
                                      tls=cert if tls else None)
                inst.workers = args.workers
                inst.start()
                inst.version_str = inst.version()
                meta["versions"][p] = inst.version_str
                running[p] = inst
            try:
                for rep in range(args.reps):
                    for p in running:
                        inst = running[p]
                        if not inst.alive():
                            print(f"  {p} died; restarting: {inst.tail_log()[-300:]}", flush=True)
                            inst.start()
                        try:
                            rec = measure(inst, origin, sc, rep, args, run_id)
                        except Exception as e:  # a failed run is recorded, not fatal
                            rec = {"run_id": run_id, "scenario": sc, "proxy": p, "rep": rep,
                                   "git": args.git, "error": repr(e),
                                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
                        if not inst.alive():
                            rec["error"] = rec.get("error", "") + f" proxy exited: {inst.tail_log()[-300:]}"
                        records.append(rec)
                        jsonl.write(json.dumps(rec) + "\n")
                        jsonl.flush()
                        if "error" in rec:
                            print(f"  {sc:10} {p:8} rep {rep}: ERROR {rec['error'][:200]}", flush=True)
                        else:
                            rps = "" if rec["rps"] is None else f"{rec['rps']:>10,.0f} req/s "
                            if "tls" in rec:
                                t = rec["tls"]
                                rps += (f"[tls {t['full']} full {t['resumed']} resumed, "
                                        f"{t['handshakes_per_req']}/req{' ' + t['problem'] if t.get('problem') else ''}] ")
                            print(f"  {sc:10} {p:8} rep {rep}: {rps}p50 {rec['p50_ms']:.2f} ms "
                                  f"p99 {rec['p99_ms']:.2f} ms cpu {rec['cpu_us_per_req']} µs/req "
                                  f"util {rec['proxy_cpu_util']} cores {rec['core_busy']} steal {rec['core_steal']} rss {rec['rss_kib'] // 1024} MiB "
                                  f"origin {rec['origin_requests']} err {rec['errors']}", flush=True)
            finally:
                for inst in running.values():
                    inst.stop()
    finally:
        origin.stop()
        jsonl.close()
    idle = None
    if not args.no_idle and "cairn" in proxies:
        print("bench: idle keep-alive connections (bench/idle_conns.py)", flush=True)
        try:
            idle = run_idle(args)
            with open(os.path.join(args.out, "runs.jsonl"), "a") as f:
                f.write(json.dumps({"run_id": run_id, "scenario": "idle-conns", "proxy": "cairn",
                                    "git": args.git, "connections": args.idle_n,
                                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                    **idle}) + "\n")
        except Exception as e:
            idle = {"output": f"failed: {e!r}"}
    meta["load_after"] = loadavg()
    table = summarize(records, proxies, scenarios)
    md = write_markdown(os.path.join(args.out, "latest.md"), table, proxies, scenarios, args, meta, idle, records)
    print()
    print(md)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
