#!/usr/bin/python3
"""Profile of a keep-alive cache hit: system calls per request (strace), software counters
(perf stat) and where the CPU goes (perf record), for cairn and, for comparison, its peers.
Same adapters, pinning and origin as bench/run.py. Writes bench/results/profile.md.

usage: bench/profile.py [--proxies cairn,nginx,varnish,haproxy] [--perf-proxies cairn]
                        [--requests 1000] [--path /c/1k] [--duration 4]
"""
import argparse
import datetime
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxies as px  # noqa: E402
import run as bench  # noqa: E402


def keepalive_client(port, n, path):
    """n GETs, one after the other, on one keep-alive connection."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            r = s.recv(1 << 20)
            if not r:
                raise RuntimeError("connection closed")
            buf += r
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:100])
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        clen = int(m.group(1))
        while len(rest) < clen:
            rest += s.recv(1 << 20)
        buf = rest[clen:]
    s.close()


def attach(cmd_prefix, pids, out, err):
    args = list(cmd_prefix)
    for p in pids:
        args += ["-p", str(p)]
    errf = open(err, "w")
    proc = subprocess.Popen(args + ["-o", out] if out else args, stdout=subprocess.DEVNULL,
                            stderr=errf, start_new_session=True)
    return proc, errf


def wait_attached(err, pids, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(err) as f:
            if f.read().count("attached") >= 1:
                time.sleep(0.3)
                return
        time.sleep(0.05)
    time.sleep(0.5)


def stop_tool(proc, errf):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    errf.close()


def strace_count(inst, n, path, wd):
    out, err = os.path.join(wd, f"{inst.name}.strace-c"), os.path.join(wd, f"{inst.name}.strace-c.err")
    keepalive_client(inst.port, 20, path)  # warm: object cached, connection code paths hot
    proc, errf = attach(["strace", "-c", "-f", "-U", "name,calls,errors"], inst.pids(), out, err)
    wait_attached(err, inst.pids())
    keepalive_client(inst.port, n, path)
    time.sleep(0.2)
    stop_tool(proc, errf)
    rows = []
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit() and not line.startswith("-"):
                name = parts[0]
                if name == "total":
                    continue
                errors = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
                rows.append((name, int(parts[1]), errors))
    rows.sort(key=lambda r: -r[1])
    return rows


def strace_sequence(inst, path, wd):
    """The system calls of the second request on a keep-alive connection."""
    out, err = os.path.join(wd, f"{inst.name}.strace-seq"), os.path.join(wd, f"{inst.name}.strace-seq.err")
    proc, errf = attach(["strace", "-f", "-s", "40"], inst.pids(), out, err)
    wait_attached(err, inst.pids())
    keepalive_client(inst.port, 4, path)
    time.sleep(0.2)
    stop_tool(proc, errf)
    with open(out) as f:
        lines = [ln.rstrip("\n") for ln in f]
    starts = [i for i, ln in enumerate(lines) if '"GET ' in ln and re.search(r"\b(read|recvfrom|recvmsg|readv)\(", ln)]
    if len(starts) < 3:
        return lines[-40:]
    seg = lines[starts[1]:starts[2]]
    clean = []
    for ln in seg:
        ln = re.sub(r"^\d+\s+", "", ln)
        if len(ln) > 150:
            ln = ln[:147] + "..."
        clean.append(ln)
    return clean


def ticks(pids):
    u = s = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fl = st[st.rfind(")") + 2:].split()
        u += int(fl[11])
        s += int(fl[12])
    return u, s


def perf_stat(inst, path, duration, connections, wd):
    err = os.path.join(wd, f"{inst.name}.perfstat")
    pids = inst.pids()
    bench.run_wrk(inst.port, path, 1, connections, [])
    proc, errf = attach(["perf", "stat", "-x", ",", "-e",
                         "task-clock,context-switches,cpu-migrations,page-faults"],
                        [",".join(str(p) for p in pids)], None, err)
    time.sleep(0.3)
    u0, s0 = ticks(pids)
    w = bench.run_wrk(inst.port, path, duration, connections, [])
    u1, s1 = ticks(pids)
    stop_tool(proc, errf)
    res = {"requests": w["requests"], "rps": w["requests"] / (w["duration_us"] / 1e6),
           "user_share": (u1 - u0) / max(1, (u1 - u0) + (s1 - s0))}
    with open(err) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) >= 3 and parts[0] and parts[0][0].isdigit():
                try:
                    res[parts[2]] = float(parts[0])
                except ValueError:
                    pass
    return res


def perf_record(inst, path, duration, connections, wd):
    data = os.path.join(wd, f"{inst.name}.perf.data")
    err = data + ".err"
    bench.run_wrk(inst.port, path, 1, connections, [])
    proc, errf = attach(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-o", data],
                        inst.pids(), None, err)
    time.sleep(0.5)
    bench.run_wrk(inst.port, path, duration, connections, [])
    stop_tool(proc, errf)

    def report(*extra):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio"] + list(extra),
                           capture_output=True, text=True)
        return [ln.rstrip() for ln in r.stdout.splitlines() if re.match(r"^\s+\d+\.\d+%", ln)]

    dso = report("--no-children", "--sort", "dso", "-g", "none")
    flat = report("--no-children", "--sort", "dso,symbol", "-g", "none")
    incl = [ln for ln in report("--children", "--sort", "dso,symbol", "-g", "none")
            if "[.]" in ln and not re.search(r"\[\.\] 0x[0-9a-f]+", ln)]
    return {"dso": dso[:8], "flat": flat[:30], "user_flat": [ln for ln in flat if "[.]" in ln][:25],
            "inclusive": incl[:35]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default="cairn,nginx,varnish,haproxy")
    ap.add_argument("--perf-proxies", default="cairn", help="proxies to perf record (perf stat: all)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--path", default="/c/1k")
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--out", default=os.path.join(bench.RESULTS, "profile.md"))
    args = ap.parse_args()
    proxies = [p for p in args.proxies.split(",") if p]
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    os.sched_setaffinity(0, {int(bench.LOAD_CORE)})
    have_perf = shutil.which("perf") and subprocess.run(
        ["perf", "stat", "-e", "task-clock", "true"], capture_output=True).returncode == 0
    wd = tempfile.mkdtemp(prefix="cairn-bench-prof-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    bins = px.snapshot_binaries(wd, bench.ORIGIN_BIN)
    origin = bench.Origin(bins["bench_origin"]["path"])
    L = [f"# Keep-alive request profile (`{args.path}`) — {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
         "", f"git `{bench.git_rev()}`; load average {bench.loadavg()}; object `{args.path}`; "
         f"proxies pinned to core {bench.PROXY_CORE}, clients and origin on core {bench.LOAD_CORE}.", ""]
    L[2] += (f" cairn binary sha256 {bins['cairn']['sha256']}… built {bins['cairn']['built']}.")
    seqs, counts, stats, records = {}, {}, {}, {}
    try:
        for p in proxies:
            inst = px.ADAPTERS[p](wd, origin.port, core=bench.PROXY_CORE)
            inst.start()
            try:
                counts[p] = strace_count(inst, args.requests, args.path, wd)
                seqs[p] = strace_sequence(inst, args.path, wd)
                if have_perf:
                    bench.wait_quiet(30)
                    stats[p] = perf_stat(inst, args.path, args.duration, args.connections, wd)
                    if p in args.perf_proxies.split(","):
                        bench.wait_quiet(30)
                        records[p] = perf_record(inst, args.path, args.duration, args.connections, wd)
            finally:
                inst.stop()
            print(f"profile: {p} done", flush=True)
    finally:
        origin.stop()

    n = args.requests
    L.append(f"## System calls per keep-alive request for `{args.path}` (strace -c -f, {n} sequential "
             f"requests on one connection)")
    L.append("")
    names = []
    for p in proxies:
        for name, c, _ in counts.get(p, []):
            if name not in names and c >= n * 0.05:
                names.append(name)
    L.append("| syscall | " + " | ".join(proxies) + " |")
    L.append("|---|" + "---:|" * len(proxies))
    for name in names:
        cells = []
        for p in proxies:
            row = next((r for r in counts.get(p, []) if r[0] == name), None)
            if not row:
                cells.append("")
            else:
                e = f" ({row[2] / n:.2f} failed)" if row[2] else ""
                cells.append(f"{row[1] / n:.2f}{e}")
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    L.append("| **total** | " + " | ".join(f"**{sum(r[1] for r in counts.get(p, [])) / n:.2f}**" for p in proxies) + " |")
    L.append("")
    L.append("Syscalls under 0.05 per request are left out of the rows but counted in the total "
             "(it includes the idle timers of the window, a few calls in all).")
    L.append("")
    for p in proxies:
        L.append(f"### {p}: the system calls of one keep-alive request (the 2nd on a connection)")
        L.append("")
        L.append("```")
        L.extend(seqs.get(p, []))
        L.append("```")
        L.append("")
    if have_perf:
        L.append(f"## perf stat (software counters; wrk -t1 -c{args.connections}, {args.duration} s, `{args.path}`)")
        L.append("")
        L.append("The VM exposes no hardware counters (cycles, instructions: not supported).")
        L.append("")
        L.append("| proxy | req/s | task-clock µs/req | context switches/req | page faults/req | user share of CPU |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for p in proxies:
            s = stats.get(p)
            if not s:
                continue
            r = s["requests"] or 1
            L.append(f"| {p} | {s['rps']:,.0f} | {s.get('task-clock', 0) * 1000 / r:.1f} | "
                     f"{s.get('context-switches', 0) / r:.3f} | {s.get('page-faults', 0) / r:.4f} | "
                     f"{s['user_share']:.0%} |")
        L.append("")
        for p, rec in records.items():
            L.append(f"## perf record: {p} (cpu-clock, 499 Hz, dwarf call graphs)")
            L.append("")
            L.append("By object:")
            L.append("```")
            L.extend(rec["dso"])
            L.append("```")
            L.append("Hottest symbols (self):")
            L.append("```")
            L.extend(rec["flat"])
            L.append("```")
            L.append("User-space symbols (self):")
            L.append("```")
            L.extend(rec["user_flat"])
            L.append("```")
            L.append("User-space call paths (inclusive, children included):")
            L.append("```")
            L.extend(rec["inclusive"])
            L.append("```")
            L.append("")
    else:
        L.append("perf is not usable here: skipped.")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))
    shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
