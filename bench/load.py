#!/usr/bin/env python3
"""Drives bench_server with wrk and writes the comparison table (see run.sh)."""
import argparse, os, re, socket, subprocess, threading, time, urllib.request, datetime, platform

CLK_TCK = os.sysconf("SC_CLK_TCK")
SETS = {
    "memory": ["bare", "tessera", "tower-sessions"],
    "redis": ["bare", "tessera-redis", "tessera-redis-hash", "tower-sessions-redis", "express-redis"],
    "pg": ["bare", "tessera-pg", "tower-sessions-pg", "express-pg"],
    # Only for --user-index: where the user's set and the sessions live in different slots.
    "redis-cluster": ["tessera-redis-cluster", "tessera-redis-cluster-hash"],
}
SERVERS = SETS["memory"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    lat = {p: to_us(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if "50" not in lat or "99" not in lat:
        raise SystemExit(f"no latency distribution in wrk's output for {url}:\n{out}")
    return requests, rps, lat["50"], lat["99"], int(errors.group(1)) if errors else 0


def session_cookie(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
        raw = r.headers.get("Set-Cookie")
    return raw.split(";")[0] if raw else None


def start(binary, kind):
    if kind.startswith("express-"):
        cmd = ["node", os.path.join(ROOT, "bench", "node", "views.js"), kind.split("-", 1)[1], "0"]
    else:
        cmd = [binary, kind, "0"]
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening "):
        raise SystemExit(f"{kind} did not start: {line!r}")
    return proc, int(line.split()[1])


def redis_url():
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    return url if "/" in url[len("redis://"):] else url + "/15"


def redis_cli(*args, url=None):
    return subprocess.run(["redis-cli", "-u", url or redis_url(), *args], capture_output=True, text=True, timeout=30).stdout


def redis_info(key, url=None):
    for line in redis_cli("INFO", url=url).splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return None


def psql(sql):
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tessera_bench")
    return subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, timeout=60).stdout.strip()


def store_pids(store):
    """The processes of the store, whose CPU time is the store's share of a request."""
    if store == "redis":
        pid = redis_info("process_id")
        return [int(pid)] if pid else []
    if store == "pg":
        out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    return []


def store_ticks(store):
    """CPU ticks of every process of the store now, by pid (PostgreSQL forks a backend
    per connection, so the set changes)."""
    ticks = {}
    for pid in store_pids(store):
        try:
            ticks[pid] = cpu_ticks(pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass  # a backend that ended meanwhile
    return ticks


def ticks_since(before, after):
    """Ticks spent between two snapshots; a process started meanwhile counts whole."""
    return sum(t - before.get(pid, 0) for pid, t in after.items() if t >= before.get(pid, 0))


def redis_nodes(store):
    """(url, database) of every Redis server of `store`: one, or each cluster node."""
    if store == "redis-cluster":
        urls = os.environ.get("REDIS_CLUSTER_URLS",
                              "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103")
        return [(u, "0") for u in urls.split(",")]
    return [(redis_url(), redis_url().rsplit("/", 1)[1])]


def calibrate(store, port, path, cookie, n=300):
    """Round trips (top-level store commands) and bytes sent to the store per request,
    counted over `n` sequential requests: Redis' MONITOR on every node (commands run
    inside a script are not round trips and are left out) and their input byte counters;
    PostgreSQL's committed transactions (every statement here is its own transaction)."""
    def send():
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if cookie:
            req.add_header("Cookie", cookie)
        with urllib.request.urlopen(req) as r:
            r.read()
    if store not in ("redis", "redis-cluster"):
        return None, None
    nodes = redis_nodes(store)
    done = threading.Event()
    watched = []
    for url, db in nodes:
        host, port_ = url[len("redis://"):].split("/")[0].rsplit(":", 1)
        monitor = socket.create_connection((host, int(port_)))
        monitor.sendall(b"MONITOR\r\n")
        seen = bytearray()

        def read(monitor=monitor, seen=seen):
            monitor.settimeout(0.2)
            while not done.is_set():
                try:
                    chunk = monitor.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                seen.extend(chunk)
        reader = threading.Thread(target=read)
        reader.start()
        watched.append((url, db, monitor, seen, reader))
    time.sleep(0.2)
    before = sum(int(redis_info("total_net_input_bytes", url)) for url, _ in nodes)
    for _ in range(n):
        send()
    after = sum(int(redis_info("total_net_input_bytes", url)) for url, _ in nodes)
    time.sleep(0.5)
    done.set()
    commands = 0
    for url, db, monitor, seen, reader in watched:
        reader.join()
        monitor.close()
        # "+1700000000.123456 [15 127.0.0.1:5555] "GET" ...": a command a client sent
        # (a script's own commands show as "[15 lua]").
        lines = seen.decode("utf-8", "replace").split("\r\n")
        commands += sum(1 for l in lines if f"[{db} 127.0.0.1:" in l)
    return commands / n, (after - before) / n


class PgProxy:
    """A TCP proxy to PostgreSQL that counts round trips: the times a client sends after
    the server has answered (a batch such as Bind, Execute, Sync, Sync written at once is
    one round trip, however many messages it holds)."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.trips = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            turn = {"client": False}
            threading.Thread(target=self.down, args=(server, client, turn), daemon=True).start()
            threading.Thread(target=self.up, args=(client, server, turn), daemon=True).start()

    def down(self, server, client, turn):
        try:
            while (chunk := server.recv(65536)):
                with self.lock:
                    turn["client"] = False
                client.sendall(chunk)
        except OSError:
            pass
        client.close()

    def up(self, client, server, turn):
        try:
            while (chunk := client.recv(65536)):
                with self.lock:
                    if not turn["client"]:
                        self.trips += 1
                        turn["client"] = True
                server.sendall(chunk)
        except OSError:
            pass
        server.close()


def calibrate_pg(binary, kind, path, cookie, n=300):
    """Round trips per request of `kind`, counted by a fresh instance of it that talks to
    PostgreSQL through a counting proxy."""
    url = os.environ["DATABASE_URL"]
    hostport = url.split("@", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    proxy = PgProxy((host, int(port)))
    env = dict(os.environ, DATABASE_URL=url.replace(hostport, f"127.0.0.1:{proxy.port}"))
    if kind.startswith("express-"):
        cmd = ["node", os.path.join(ROOT, "bench", "node", "views.js"), kind.split("-", 1)[1], "0"]
    else:
        cmd = [binary, kind, "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        port_ = int(line.split()[1])

        def send():
            req = urllib.request.Request(f"http://127.0.0.1:{port_}{path}")
            if cookie:
                req.add_header("Cookie", cookie)
            with urllib.request.urlopen(req) as r:
                r.read()
        for _ in range(5):  # connections made, statements prepared
            send()
        with proxy.lock:
            proxy.trips = 0
        for _ in range(n):
            send()
        time.sleep(0.2)
        with proxy.lock:
            return proxy.trips / n
    finally:
        proc.kill()
        proc.wait()
        proxy.listener.close()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def reset_store(store):
    if store == "redis":
        redis_cli("FLUSHDB")
    elif store == "redis-cluster":
        for url, _ in redis_nodes(store):
            redis_cli("FLUSHDB", url=url)
    elif store == "pg":
        # connect-pg-simple's own DDL names every table's key "session_pkey": make its
        # table here, with the same shape.
        psql('CREATE TABLE IF NOT EXISTS "session_express" ("sid" varchar NOT NULL COLLATE "default", '
             '"sess" json NOT NULL, "expire" timestamp(6) NOT NULL, '
             'CONSTRAINT "session_express_pkey" PRIMARY KEY ("sid"))')
        psql('CREATE INDEX IF NOT EXISTS "IDX_session_express_expire" ON "session_express" ("expire")')
        for table in ["session", "session_express"]:
            psql(f'TRUNCATE TABLE "{table}"') if psql(f"SELECT to_regclass('\"{table}\"')") else None
        if psql("SELECT to_regclass('tower_sessions.session')"):
            psql("TRUNCATE TABLE tower_sessions.session")


def pin(pids, cpus):
    for pid in pids:
        subprocess.run(["taskset", "-pc", cpus, str(pid)], capture_output=True)


def run_all(binary, duration, connections, rounds, scenarios, servers=None, store="memory"):
    """All three servers run side by side (idle ones cost nothing); every scenario is
    measured in `rounds` interleaved rounds (the order of the servers rotating from round
    to round), and the median round is reported, so that a burst of noise on this shared
    machine hits one round of one server, not a column."""
    order_all = servers or SERVERS
    reset_store(store)
    # The store shares core 1 with wrk, so that core 0 is the server's alone (its
    # connections' PostgreSQL backends, forked after this, inherit the pinning).
    pin(store_pids(store), "1")
    servers = {kind: start(binary, kind) for kind in order_all}
    pids = store_pids(store)
    pin(pids, "1")
    try:
        cookies = {kind: session_cookie(port) for kind, (_, port) in servers.items()}
        # Bare axum sets no cookie; it gets Tessera's in A and A-read, so that every
        # server parses the same request and "added over bare" is the session's own cost.
        cookies["bare"] = cookies[order_all[1]]
        for kind, (_, port) in servers.items():
            wrk(f"http://127.0.0.1:{port}/", cookies[kind], 2, connections)
        rows = []
        for name, path, with_cookie, _ in (s for s in SCENARIOS if s[0] in scenarios):
            samples = {kind: [] for kind in order_all}
            grown = {kind: [0, 0] for kind in order_all}
            for round_no in range(rounds):
                # Rotate the order every round, so no server always runs first or last.
                order = order_all[round_no % len(order_all):] + order_all[:round_no % len(order_all)]
                for kind in order:
                    proc, port = servers[kind]
                    rss_before = status_kb(proc.pid, "VmRSS")
                    t0, s0 = cpu_ticks(proc.pid), store_ticks(store)
                    n, rps, p50, p99, bad = wrk(f"http://127.0.0.1:{port}{path}", cookies[kind] if with_cookie else None, duration, connections)
                    cpu_us = (cpu_ticks(proc.pid) - t0) / CLK_TCK * 1e6 / n
                    store_us = ticks_since(s0, store_ticks(store)) / CLK_TCK * 1e6 / n
                    grown[kind][0] += (status_kb(proc.pid, "VmRSS") - rss_before) * 1024
                    grown[kind][1] += n
                    samples[kind].append(dict(rps=rps, p50=p50, p99=p99, cpu_us=cpu_us, store_us=store_us, bad=bad))
            for kind in order_all:
                s = samples[kind]
                cookie = cookies[kind] if with_cookie else None
                if kind == "bare":
                    trips, sent = None, None
                elif store == "pg":
                    trips, sent = calibrate_pg(binary, kind, path, cookie), None
                else:
                    trips, sent = calibrate(store, servers[kind][1], path, cookie)
                row = dict(server=kind, scenario=name,
                           rps=median([x["rps"] for x in s]), p50=median([x["p50"] for x in s]),
                           p99=median([x["p99"] for x in s]), cpu_us=median([x["cpu_us"] for x in s]),
                           cpu_all=[x["cpu_us"] for x in s], bad=sum(x["bad"] for x in s),
                           store_us=median([x["store_us"] for x in s]), trips=trips, sent=sent,
                           per_session=grown[kind][0] / grown[kind][1] if name == "B" and kind != "bare" and store == "memory" else None)
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
        pin(store_pids(store), f"0-{os.cpu_count() - 1}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scenarios", default="A,A-read,B", help="comma-separated subset, for a quick look")
    ap.add_argument("--out")
    ap.add_argument("--set", default="memory", choices=sorted(SETS),
                    help="memory, redis or pg; redis-cluster with --user-index only")
    ap.add_argument("--user-index", action="store_true",
                    help="round trips and bytes of Tessera's requests with and without a user")
    a = ap.parse_args()
    if a.user_index:
        return user_index(a)
    if a.set == "redis-cluster":
        raise SystemExit("--set redis-cluster measures the per-user index only: add --user-index")
    if a.set != "memory":
        return network(a)
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


def network(a):
    """The Redis or PostgreSQL set: one section of RESULTS.md, between its markers."""
    rows = run_all(a.server, a.duration, a.connections, a.rounds, a.scenarios.split(","), SETS[a.set], a.set)
    bare = {r["scenario"]: r for r in rows if r["server"] == "bare"}
    store = {"redis": "Redis", "pg": "PostgreSQL"}[a.set]
    lines = [
        f"| scenario | server | req/s | p50 µs | p99 µs | server CPU µs/req (rounds) | added over bare µs | {store} CPU µs/req | round trips/req | bytes to {store}/req | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, _, desc in SCENARIOS:
        if name not in bare:
            continue
        for r in (r for r in rows if r["scenario"] == name):
            b = bare[name]
            paired = [c - bc for c, bc in zip(r["cpu_all"], b["cpu_all"])]
            added = "—" if r["server"] == "bare" else f"{median(paired):+.1f}"
            trips = "—" if r["trips"] is None else f"{r['trips']:.2f}"
            sent = "—" if r["sent"] is None else f"{r['sent']:.0f}"
            store_us = "—" if r["server"] == "bare" else f"{r['store_us']:.1f}"
            lines.append(
                f"| {name}: {desc} | {r['server']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | "
                f"{r['cpu_us']:.1f} ({' / '.join(f'{c:.0f}' for c in r['cpu_all'])}) | {added} | {store_us} | {trips} | {sent} | {r['bad']} |"
            )
    table = "\n".join(lines)
    print(table)
    if not a.out:
        return
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
    begin, end = f"<!-- begin {a.set} run -->", f"<!-- end {a.set} run -->"
    section = f"""{begin}
## {store}: one run

One run of `SET={a.set} bash bench/run.sh` at commit {commit} ({a.rounds} interleaved rounds of {a.duration} s per server
and scenario, medians reported; {a.connections} connections, the servers pinned to core 0, wrk and
{store} to core 1), {datetime.date.today()}, on {cpu} ({os.cpu_count()} cores).

Every server serves the "views" demo on {store}, configured alike (no resave, no saving of
uninitialized sessions, no rolling, a signed browser-session cookie); Tessera sets
`touch_after` to 60 s. "{store} CPU" is the store's processes' CPU time per request in the
same rounds. "Round trips" and "bytes" are counted over 300 sequential requests after the
timed rounds: {"commands the server sent (MONITOR, without the commands a script runs) and Redis' input byte counter" if a.set == "redis" else "by a fresh instance of each server talking to PostgreSQL through a proxy that counts the times a client speaks after the server answered"}.

{table}
{end}"""
    previous = open(a.out).read() if os.path.exists(a.out) else ""
    if begin in previous and end in previous:
        head, rest = previous.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = previous.rstrip() + "\n\n" + section + "\n"
    with open(a.out, "w") as f:
        f.write(text)


def user_index(a):
    """What the per-user index costs a network store: round trips and bytes per request
    of Tessera's servers, on a session without a user and on one tied to a user
    (`/login` calls `set_user`), counted as in `calibrate`."""
    kinds = [k for k in SETS[a.set] if k.startswith("tessera")]
    reset_store(a.set)
    print(f"| server | request | no user: round trips | tied to a user: round trips | no user: bytes | tied: bytes |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in kinds:
        proc, port = start(a.server, kind)
        try:
            anonymous = session_cookie(port)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as r:
                tied = r.headers.get("Set-Cookie").split(";")[0]
            for name, path in [("changed (A)", "/"), ("read only (A-read)", "/read")]:
                if a.set == "pg":
                    plain = (calibrate_pg(a.server, kind, path, anonymous), None)
                    user = (calibrate_pg(a.server, kind, path, tied), None)
                else:
                    plain = calibrate(a.set, port, path, anonymous)
                    user = calibrate(a.set, port, path, tied)
                fmt = lambda v: "-" if v is None else f"{v:.2f}"
                print(f"| {kind} | {name} | {fmt(plain[0])} | {fmt(user[0])} | {fmt(plain[1])} | {fmt(user[1])} |")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
