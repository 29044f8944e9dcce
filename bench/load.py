#!/usr/bin/env python3
"""Drives bench_server with wrk and writes the comparison table (see run.sh)."""
import argparse, os, re, subprocess, time, urllib.request, datetime, platform

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVERS = ["bare", "tessera", "tower-sessions"]
SCENARIOS = [
    ("A", "/", True, "existing session, views += 1"),
    ("A-read", "/read", True, "existing session, read only"),
    ("B", "/", False, "no cookie: a new session per request"),
]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def to_us(value, unit):
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def wrk(url, cookie, duration, connections):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "2s"]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 30).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: to_us(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, rps, lat.get("50"), lat.get("99"), int(errors.group(1)) if errors else 0


def session_cookie(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
        raw = r.headers.get("Set-Cookie")
    return raw.split(";")[0] if raw else None


def run_server(binary, kind, duration, connections):
    proc = subprocess.Popen(["taskset", "-c", "0", binary, kind, "0"], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[1])
    rows = []
    try:
        cookie = session_cookie(port)
        # Warm up the allocator and the code paths once.
        wrk(f"http://127.0.0.1:{port}/", cookie, 2, connections)
        for name, path, with_cookie, _ in SCENARIOS:
            rss_before = status_kb(proc.pid, "VmRSS")
            t0 = cpu_ticks(proc.pid)
            n, rps, p50, p99, bad = wrk(f"http://127.0.0.1:{port}{path}", cookie if with_cookie else None, duration, connections)
            cpu_us = (cpu_ticks(proc.pid) - t0) / CLK_TCK * 1e6 / n
            rss_after = status_kb(proc.pid, "VmRSS")
            per_session = (rss_after - rss_before) * 1024 / n if name == "B" and kind != "bare" else None
            rows.append(dict(server=kind, scenario=name, requests=n, rps=rps, p50=p50, p99=p99, cpu_us=cpu_us, bad=bad, per_session=per_session))
        peak = status_kb(proc.pid, "VmHWM")
        for r in rows:
            r["peak_rss_mb"] = peak / 1024
    finally:
        proc.kill()
        proc.wait()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--out")
    a = ap.parse_args()
    rows = []
    for kind in SERVERS:
        rows += run_server(a.server, kind, a.duration, a.connections)
    bare = {r["scenario"]: r for r in rows if r["server"] == "bare"}
    lines = [
        "| scenario | server | req/s | p50 µs | p99 µs | server CPU µs/req | added over bare µs | p99 vs bare | non-2xx | peak RSS MB | bytes/stored session |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, _, desc in SCENARIOS:
        for r in (r for r in rows if r["scenario"] == name):
            b = bare[name]
            added = "—" if r["server"] == "bare" else f"{r['cpu_us'] - b['cpu_us']:+.2f}"
            per = "—" if r["per_session"] is None else f"{r['per_session']:.0f}"
            lines.append(
                f"| {name}: {desc} | {r['server']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['cpu_us']:.2f} | "
                f"{added} | {r['p99'] / b['p99']:.2f}× | {r['bad']} | "
                f"{r['peak_rss_mb']:.1f} | {per} |"
            )
    table = "\n".join(lines)
    print(table)
    if a.out:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        with open(a.out, "w") as f:
            f.write(f"""# Load benchmark results

One run of `bash bench/run.sh` (DURATION={a.duration} s per scenario, {a.connections} connections,
wrk with 1 thread pinned to core 1, the server pinned to core 0), {datetime.date.today()}, on {cpu}
({os.cpu_count()} cores, {platform.system()} {platform.release()}).

Each server serves express-session's "views" demo, configured alike: no resave, no saving
of uninitialized sessions, no rolling, a signed browser-session cookie, an in-memory
store, tokio's multi-thread runtime. "Server CPU µs/req" is the server process's user +
system CPU time divided by the requests served; "added over bare" subtracts bare axum's
figure from the same run. "bytes/stored session" is the growth of the server's resident
memory during scenario B divided by the sessions it created. Compare ratios, not
absolute numbers: they depend on the machine.

{table}
""")


if __name__ == "__main__":
    main()
