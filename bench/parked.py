#!/usr/bin/python3
"""Memory of parked requests (issue 13): N requests held suspended in one worker, gyre and
uWSGI's Tornado loop engine side by side in one run.

    /usr/bin/python3 bench/parked.py [--counts 1000,10000] [--no-write]

For each N and each server: one process, no master, `--tornado N+16 --listen 4096` on a unix
socket (gyre also `--max-conns N+16`: by default it keeps part of the fd limit in reserve) (uWSGI: `--plugins python3,greenlet_python3,tornado_python3 ... --greenlet`), serving
bench/park_app.py. The bench opens N raw uwsgi connections, each asking /park (the core counts
itself and suspends on an IOLoop timer, greenlet.parent.switch() as the seed does), waits until
/parked says N (bounded), then reads the server's VmRSS and VmHWM (/proc/PID/status). RSS per
parked request is (RSS parked - RSS idle) / N, the idle RSS read after one /hello. The
connections are then closed and the server killed.

gyre also runs with `--stats SOCK`: once all N are parked (and its once-a-second accounting
counts them) its stats JSON is read and whatever accounts for the parked requests' memory is
printed, byte counts also per parked request (issue 13's breakdown: the workers' "memory"
object: greenlet stacks, connections, environ; or any other top-level/worker/core field the
uWSGI-shaped stats did not have before issue 13, see STATS_BASE_*): "n/a" if there is none.

Prints a Markdown section; bench.py (`make bench`) runs it and adds the section to RESULTS.md.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
GYRE = os.path.join(ROOT, "gyre")
UWSGI = shutil.which("uwsgi") or "/usr/bin/uwsgi"
APP = os.path.join(BENCH, "park_app.py")
PARK_TIMEOUT = 180  # seconds for N connections to be parked (bounded)
SPARE_CORES = 16
TARGET_PEAK_MIB = 100      # issue 13: 10,000 parked requests at a peak of at most 100 MiB,
TARGET_RATIO = 0.5         # and at most 0.5x uWSGI's in the same run
# The stats JSON's fields before issue 13 (top level, per worker, per core): anything else is
# the lead's new accounting and is printed as the breakdown.
STATS_BASE_TOP = {"version", "pid", "uid", "gid", "cwd", "listen_queue", "listen_queue_errors",
                  "load", "signal_queue", "sockets", "workers", "metrics", "caches", "locks"}
STATS_BASE_WORKER = {"id", "pid", "accepting", "requests", "delta_requests", "exceptions",
                     "harakiri_count", "signals", "signal_queue", "status", "rss", "vsz",
                     "running_time", "last_spawn", "respawn_count", "tx", "avg_rt", "uptime",
                     "apps", "cores"}
# (gyre's workers[].memory, issue 13, is printed: it is the breakdown.)
STATS_BASE_CORE = {"id", "requests", "static_requests", "routed_requests", "offloaded_requests",
                   "write_errors", "read_errors", "in_request", "waiting", "kind", "vars",
                   "req_info"}


def uwsgi_packet(path):
    pairs = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
             "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "bench", "SERVER_PORT": "80",
             "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "bench"}
    body = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) +
                    v.encode() for k, v in pairs.items())
    return struct.pack("<BHB", 0, len(body), 0) + body


def ask(sock_path, path, timeout=10):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(uwsgi_packet(path))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[-1]


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("%s not in /proc/%d/status" % (field, pid))


def read_stats(path, timeout=30):
    """gyre's stats JSON from its --stats unix socket (one document per connection)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def settled_stats(path, n, timeout=10):
    """The stats once gyre's memory accounting (refreshed once a second, the workers'
    "memory" object) counts the N parked requests; at once if the stats have no such object,
    the last one read after `timeout` s otherwise (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = read_stats(path)
        mems = [w.get("memory") for w in stats.get("workers", [])]
        mems = [m for m in mems if isinstance(m, dict)]
        if not mems or time.monotonic() > deadline or any(
                max(m.get("parked_cores", 0), m.get("busy_cores", 0)) >= n for m in mems):
            return stats
        time.sleep(0.2)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def stats_breakdown(stats, n):
    """[(name, value text)] of the parked-memory accounting in gyre's stats, [] if none: the
    top-level "parked_memory" object (or any new top-level field), new worker fields, and new
    per-core numeric fields summed over the cores (and divided by the N parked requests)."""
    out = []

    def flat(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                flat("%s.%s" % (prefix, k), x)
        elif is_number(v) and prefix.endswith("bytes"):  # also per parked request
            out.append((prefix, "{:,} ({:,.0f} per request)".format(v, v / n)))
        elif is_number(v):
            out.append((prefix, "{:,}".format(v) if isinstance(v, int) else "%.1f" % v))
        else:
            out.append((prefix, json.dumps(v)[:120]))
    for k, v in stats.items():
        if k not in STATS_BASE_TOP:
            flat(k, v)
    core_sums = {}
    for w in stats.get("workers", []):
        for k, v in w.items():
            if k not in STATS_BASE_WORKER:
                flat("workers[%s].%s" % (w.get("id"), k), v)
        for c in w.get("cores", []):
            for k, v in c.items():
                if k in STATS_BASE_CORE:
                    continue
                items = [(k, v)] if not isinstance(v, dict) else [
                    ("%s.%s" % (k, k2), v2) for k2, v2 in v.items()]  # one level of nesting
                for name, x in items:
                    if is_number(x):
                        core_sums[name] = core_sums.get(name, 0) + x
    for k, total in sorted(core_sums.items()):
        out.append(("cores[].%s (sum; per parked request)" % k,
                    "{:,} ({:,.0f})".format(total, total / n)))
    return out


def start(kind, sock, cores, logf, gyre=GYRE, stats=None):
    common = ["--socket", sock, "--wsgi-file", APP, "--tornado", str(cores), "--listen", "4096"]
    if kind == "gyre":  # its default connection limit keeps fds in reserve for the cores' use
        argv = [gyre, *common, "--max-conns", str(cores)] + (["--stats", stats] if stats else [])
    else:
        argv = [UWSGI, "--plugins", "python3,greenlet_python3,tornado_python3", *common,
                "--greenlet", "--disable-logging"]
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited at start (status %s)" % (kind, proc.returncode))
        try:
            if ask(sock, "/hello", timeout=2).startswith(b"Hello"):
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s did not answer within 30 s" % kind)


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def measure(kind, n, tmp, gyre=GYRE):
    sock = os.path.join(tmp, "%s-%d.sock" % (kind, n))
    stats = os.path.join(tmp, "%s-%d.stats" % (kind, n)) if kind == "gyre" else None
    with open(os.path.join(tmp, "%s-%d.log" % (kind, n)), "wb") as logf:
        proc = start(kind, sock, n + SPARE_CORES, logf, gyre, stats)
        clients = []
        try:
            idle = proc_status_kib(proc.pid, "VmRSS")
            packet = uwsgi_packet("/park")
            t0 = time.monotonic()
            for _ in range(n):
                c = socket.socket(socket.AF_UNIX)
                c.connect(sock)  # blocking: a full backlog waits for the server's accept
                c.sendall(packet)
                clients.append(c)
            parked = 0
            while time.monotonic() - t0 < PARK_TIMEOUT:
                try:  # behind thousands of accepts, the answer may take a while
                    parked = int(ask(sock, "/parked", timeout=PARK_TIMEOUT) or 0)
                except OSError:
                    continue
                if parked >= n:
                    break
                time.sleep(0.2)
            if parked < n:
                raise RuntimeError("%s: only %d of %d requests parked within %d s"
                                   % (kind, parked, n, PARK_TIMEOUT))
            took = time.monotonic() - t0
            rss = proc_status_kib(proc.pid, "VmRSS")
            hwm = proc_status_kib(proc.pid, "VmHWM")
            breakdown = None
            if stats:
                try:
                    breakdown = stats_breakdown(settled_stats(stats, n), n)
                except (OSError, ValueError) as e:
                    breakdown = [("stats unreadable", "%s: %s" % (type(e).__name__, e))]
            return dict(idle=idle, rss=rss, hwm=hwm, per=(rss - idle) / n, took=took,
                        breakdown=breakdown)
        finally:
            for c in clients:
                c.close()
            stop(proc)


def mib(kib):
    return "%.1f MiB" % (kib / 1024)


def report(counts, results):
    out = ["## Parked requests (issue 13)", "",
           "N requests suspended on an IOLoop timer in one process (`--tornado N+%d --listen "
           "4096`, raw uwsgi on a unix socket, bench/parked.py): resident memory once all N are "
           "parked (VmRSS; VmHWM, the peak, in brackets) and per parked request above the idle "
           "process." % SPARE_CORES, "",
           "| N | gyre RSS (peak) | uWSGI RSS (peak) | peak ratio gyre/uWSGI | gyre per request "
           "| uWSGI per request | idle gyre / uWSGI |",
           "|---|---|---|---|---|---|---|"]
    for n in counts:
        g, u = results[("gyre", n)], results[("uWSGI", n)]
        out.append("| %d | %s (%s) | %s (%s) | %.2fx | %.1f KiB | %.1f KiB | %s / %s |" % (
            n, mib(g["rss"]), mib(g["hwm"]), mib(u["rss"]), mib(u["hwm"]),
            g["hwm"] / u["hwm"], g["per"], u["per"], mib(g["idle"]), mib(u["idle"])))
    out.append("")
    n = max(counts)
    g, u = results[("gyre", n)], results[("uWSGI", n)]
    peak, rel = g["hwm"] / 1024, g["hwm"] / u["hwm"]
    out.append(("" if n == 10000 else "(The targets are set for N = 10,000; this run's "
                "largest N is smaller.) ") + "Targets (issue 13) at N = {:,}: gyre's peak "
               "≤ {} MiB: {:.1f} MiB, **{}**; "
               "≤ {}x uWSGI's: {:.2f}x, **{}**.".format(
                   n, TARGET_PEAK_MIB, peak, "PASS" if peak <= TARGET_PEAK_MIB else "FAIL",
                   TARGET_RATIO, rel, "PASS" if rel <= TARGET_RATIO else "FAIL"))
    out.append("")
    out.append("gyre's own accounting of the parked requests (its `--stats` JSON once all N "
               "were parked; fields the stats had before issue 13 left out):")
    out.append("")
    names = []
    for n in counts:
        for name, _ in results[("gyre", n)].get("breakdown") or []:
            if name not in names:
                names.append(name)
    if not names:
        out.append("n/a (no such field in this gyre's stats)")
    else:
        out.append("| field | %s |" % " | ".join("N = {:,}".format(n) for n in counts))
        out.append("|---|%s" % ("---:|" * len(counts)))
        for name in names:
            vals = [dict(results[("gyre", n)].get("breakdown") or []).get(name, "—")
                    for n in counts]
            out.append("| `%s` | %s |" % (name, " | ".join(vals)))
    return "\n".join(out) + "\n"


def run(counts, gyre=GYRE):
    """(the Markdown section for these N, the results by (server, N)); gyre: the binary
    (bench.py passes its own copy)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(counts) + 256  # each: the bench's client sockets, the server's (inherited)
    if hard < need:
        raise SystemExit("parked: RLIMIT_NOFILE's hard limit %d is under the %d fds needed"
                         % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {}
    with tempfile.TemporaryDirectory(prefix="gyre-parked-") as tmp:
        for n in counts:
            for kind in ("gyre", "uWSGI"):
                print("parked: %s, N=%d ..." % (kind, n), file=sys.stderr, flush=True)
                results[(kind, n)] = measure(kind.lower(), n, tmp, gyre)
    return report(counts, results), results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1000,10000")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    sys.stdout.write(run(counts)[0])


if __name__ == "__main__":
    main()
