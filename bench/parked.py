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

Prints a Markdown section; bench.py (`make bench`) runs it and adds the section to RESULTS.md.
"""
import argparse
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


def start(kind, sock, cores, logf, gyre=GYRE):
    common = ["--socket", sock, "--wsgi-file", APP, "--tornado", str(cores), "--listen", "4096"]
    if kind == "gyre":  # its default connection limit keeps fds in reserve for the cores' use
        argv = [gyre, *common, "--max-conns", str(cores)]
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
    with open(os.path.join(tmp, "%s-%d.log" % (kind, n)), "wb") as logf:
        proc = start(kind, sock, n + SPARE_CORES, logf, gyre)
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
            return dict(idle=idle, rss=rss, hwm=hwm, per=(rss - idle) / n, took=took)
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
    out.append("Targets (issue 13): 10,000 parked at a peak of at most 100 MiB, and at most 0.5x "
               "uWSGI's.")
    return "\n".join(out) + "\n"


def run(counts, gyre=GYRE):
    """The Markdown section for these N; gyre: the binary (bench.py passes its own copy)."""
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
    return report(counts, results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1000,10000")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    sys.stdout.write(run(counts))


if __name__ == "__main__":
    main()
