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
    if "50" not in lat or "99" not in lat:
        raise SystemExit(f"no latency distribution in wrk's output for {url}:\n{out}")
    return requests, rps, lat["50"], lat["99"], int(errors.group(1)) if errors else 0


def session_cookie(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
        raw = r.headers.get("Set-Cookie")
    return raw.split(";")[0] if raw else None


def start(binary, kind):
    proc = subprocess.Popen(["taskset", "-c", "0", binary, kind, "0"], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[1])
    return proc, port


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def run_all(binary, duration, connections, rounds, scenarios):
    """All three servers run side by side (idle ones cost nothing); every scenario is
    measured in `rounds` interleaved rounds (the order of the servers rotating from round
    to round), and the median round is reported, so that a burst of noise on this shared
    machine hits one round of one server, not a column."""
    servers = {kind: start(binary, kind) for kind in SERVERS}
    try:
        cookies = {kind: session_cookie(port) for kind, (_, port) in servers.items()}
        # Bare axum sets no cookie; it gets Tessera's in A and A-read, so that every
        # server parses the same request and "added over bare" is the session's own cost.
        cookies["bare"] = cookies["tessera"]
        for kind, (_, port) in servers.items():
            wrk(f"http://127.0.0.1:{port}/", cookies[kind], 2, connections)
        rows = []
        for name, path, with_cookie, _ in (s for s in SCENARIOS if s[0] in scenarios):
            samples = {kind: [] for kind in SERVERS}
            grown = {kind: [0, 0] for kind in SERVERS}
            for round_no in range(rounds):
                # Rotate the order every round, so no server always runs first or last.
                order = SERVERS[round_no % len(SERVERS):] + SERVERS[:round_no % len(SERVERS)]
                for kind in order:
                    proc, port = servers[kind]
                    rss_before = status_kb(proc.pid, "VmRSS")
                    t0 = cpu_ticks(proc.pid)
                    n, rps, p50, p99, bad = wrk(f"http://127.0.0.1:{port}{path}", cookies[kind] if with_cookie else None, duration, connections)
                    cpu_us = (cpu_ticks(proc.pid) - t0) / CLK_TCK * 1e6 / n
                    grown[kind][0] += (status_kb(proc.pid, "VmRSS") - rss_before) * 1024
                    grown[kind][1] += n
                    samples[kind].append(dict(rps=rps, p50=p50, p99=p99, cpu_us=cpu_us, bad=bad))
            for kind in SERVERS:
                s = samples[kind]
                row = dict(server=kind, scenario=name,
                           rps=median([x["rps"] for x in s]), p50=median([x["p50"] for x in s]),
                           p99=median([x["p99"] for x in s]), cpu_us=median([x["cpu_us"] for x in s]),
                           cpu_all=[x["cpu_us"] for x in s], bad=sum(x["bad"] for x in s),
                           per_session=grown[kind][0] / grown[kind][1] if name == "B" and kind != "bare" else None)
                rows.append(row)
        for kind, (proc, _) in servers.items():
            peak = status_kb(proc.pid, "VmHWM")
            for r in rows:
                if r["server"] == kind:
                    r["peak_rss_mb"] = peak / 1024
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scenarios", default="A,A-read,B", help="comma-separated subset, for a quick look")
    ap.add_argument("--out")
    a = ap.parse_args()
    rows = run_all(a.server, a.duration, a.connections, a.rounds, a.scenarios.split(","))
    bare = {r["scenario"]: r for r in rows if r["server"] == "bare"}
    lines = [
        "| scenario | server | req/s | p50 µs | p99 µs | server CPU µs/req (rounds) | added over bare µs | p99 vs bare | non-2xx | peak RSS MB | bytes/stored session |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, _, desc in SCENARIOS:
        if name not in bare:
            continue
        for r in (r for r in rows if r["scenario"] == name):
            b = bare[name]
            # Added CPU: the median over rounds of (this server - bare) in the same round,
            # which cancels the machine's drift between rounds better than a difference of
            # medians.
            paired = [c - bc for c, bc in zip(r["cpu_all"], b["cpu_all"])]
            added = "—" if r["server"] == "bare" else f"{median(paired):+.2f}"
            per = "—" if r["per_session"] is None else f"{r['per_session']:.0f}"
            lines.append(
                f"| {name}: {desc} | {r['server']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['cpu_us']:.2f} ({' / '.join(f'{c:.1f}' for c in r['cpu_all'])}) | "
                f"{added} | {r['p99'] / b['p99']:.2f}× | {r['bad']} | "
                f"{r['peak_rss_mb']:.1f} | {per} |"
            )
    table = "\n".join(lines)
    print(table)
    if a.out:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
        # Everything after the marker (the written analysis) is kept across runs.
        marker = "<!-- end of the generated run -->"
        kept = ""
        if os.path.exists(a.out):
            previous = open(a.out).read()
            if marker in previous:
                kept = previous[previous.index(marker) + len(marker):]
        with open(a.out, "w") as f:
            f.write(f"""# Load benchmark results

One run of `bash bench/run.sh` at commit {commit} ({a.rounds} interleaved rounds of DURATION={a.duration} s per
server and scenario, medians reported; {a.connections} connections, wrk with 1 thread pinned
to core 1, the servers pinned to core 0), {datetime.date.today()}, on {cpu}
({os.cpu_count()} cores, {platform.system()} {platform.release()}).

Each server serves express-session's "views" demo, configured alike: no resave, no saving
of uninitialized sessions, no rolling, a signed browser-session cookie, an in-memory
store, tokio's multi-thread runtime. "Server CPU µs/req" is the server process's user +
system CPU time divided by the requests served (median of the rounds, each round in
brackets); "added over bare" is the median over rounds of the difference from bare axum
in the same round. In A and A-read every server receives a session cookie, bare axum
included (it ignores it), so that all parse the same request. "bytes/stored session" is
the growth of the server's resident memory during scenario B divided by the sessions it
created. Compare ratios, not absolute numbers: they depend on the machine.

{table}

{marker}{kept}""")


if __name__ == "__main__":
    main()
