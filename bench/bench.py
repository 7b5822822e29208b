#!/usr/bin/python3
"""gyre side by side with uWSGI's Tornado loop engine, both behind nginx, loaded with wrk.

    make bench                        # = /usr/bin/python3 bench/bench.py
    /usr/bin/python3 bench/bench.py --duration 3 --warmup 1 --rounds 1 --no-write   # a smoke run

What runs (everything in a private temp dir, removed at the end):

    wrk -> nginx A (127.0.0.1, worker_processes 1) -> unix socket -> gyre  --tornado 100 --greenlet
    wrk -> nginx B (same template, same shape)     -> unix socket -> uWSGI --tornado 100 --greenlet

Both nginx instances are rendered from the project template nginx-conf/uwsgi.conf, unchanged
(only the @PORT@ @SOCKET@ @PREFIX@ placeholders filled), exactly as tests/integration does. Both
backends serve bench/app.py, one process each, no master.

Cases (wrk -t2, --latency): hello world at 50 connections, a 64 KiB response at 50, a 1 MiB
POST at 10, a 20 ms core suspension (greenlet + IOLoop.call_later) at 200.

Order: for each case, ROUNDS rounds of gyre then uWSGI (gyre/uWSGI/gyre/uWSGI), each measured
run preceded by a short warm-up with the same parameters. The summary keeps, per backend, the
round with the BEST req/s (its p99 with it); errors are the SUM over all measured rounds. Every
round is listed in the detail table, with the CPU the backend used and the CPU used by
everything else on the machine (other people's work: the noise).

Writes bench/RESULTS.md (overwritten) and prints the same Markdown.
"""

import argparse
import atexit
import collections
import datetime
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BENCH = os.path.join(ROOT, "bench")
APP = os.path.join(BENCH, "app.py")
GYRE = os.environ.get("GYRE_BIN", os.path.join(ROOT, "gyre"))
NGINX_TEMPLATE = os.path.join(ROOT, "nginx-conf", "uwsgi.conf")
RESULTS = os.path.join(BENCH, "RESULTS.md")
UWSGI_PLUGINS_DIR = "/usr/lib/uwsgi/plugins"

POST_BYTES = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# name, path, connections, method, what the response body must be (checked once before load)
CASES = [
    ("hello", "/hello", 50, "GET", b"Hello, World!"),
    ("64k", "/64k", 50, "GET", b"x" * 65536),
    ("post 1 MiB", "/post", 10, "POST", str(POST_BYTES).encode()),
    ("suspend 20 ms", "/suspend", 200, "GET", b"suspended 20 ms\n"),
]
CASE_LABEL = {
    "hello": "hello world, c=50",
    "64k": "64 KiB response, c=50",
    "post 1 MiB": "1 MiB POST, c=10",
    "suspend 20 ms": "suspend 20 ms, c=200",
}

# Every process we start, so that they can be stopped whatever happens.
_PROCS = []


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))


def kill_proc(proc, sig, timeout):
    """Stop one process we started (by its pid; its own process group), escalating to SIGKILL."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return proc.poll()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session=True: pgid == pid, ours alone
    except (ProcessLookupError, PermissionError):
        proc.kill()
    return proc.wait(10)


def _cleanup_all():
    for proc in reversed(_PROCS):
        try:
            kill_proc(proc, signal.SIGKILL, 5)
        except Exception:
            pass


def _on_signal(signum, frame):
    raise SystemExit("interrupted by signal %d" % signum)


def popen(argv, logf, **kw):
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, **kw)
    _PROCS.append(proc)
    return proc


def read_tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def proc_cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def background_cpu(seconds):
    """% of one CPU the machine is busy while we generate no load (our servers idle)."""
    b0 = machine_busy_seconds()
    time.sleep(seconds)
    return 100.0 * (machine_busy_seconds() - b0) / seconds


def machine_busy_seconds():
    """CPU seconds (all CPUs) spent not idle since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return (sum(vals[:8]) - idle) / CLK_TCK


# ---- the servers --------------------------------------------------------------------------------

class Backend:
    """One app server process (gyre or uWSGI) on a unix socket."""

    def __init__(self, name, argv_fn, tmp, stop_signal, ok_exit=(0,)):
        self.name = name
        self.ok_exit = ok_exit
        self.tmp = tmp
        self.socket = os.path.join(tmp, name.lower() + ".sock")
        self.argv = argv_fn(self.socket)
        self.stop_signal = stop_signal
        self.starts = 0
        self.events = []  # crashes, restarts: reported verbatim
        self.proc = None
        self.log_path = None

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.tmp, "%s-%d.log" % (self.name.lower(), self.starts))
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.logf = open(self.log_path, "wb")
        self.proc = popen(self.argv, self.logf, cwd=ROOT)
        wait_for(lambda: self.proc.poll() is not None or self._serves(), 20,
                 "%s to serve on %s" % (self.name, self.socket))
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited at start with %s:\n%s"
                               % (self.name, self.proc.returncode, read_tail(self.log_path)))

    def _serves(self):
        """One raw uwsgi-protocol request for /hello, straight to the socket."""
        if not os.path.exists(self.socket):
            return False
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/hello", "REQUEST_URI": "/hello",
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
               "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1"}
        data = b"".join(len(k).to_bytes(2, "little") + k.encode() + len(v).to_bytes(2, "little")
                        + v.encode() for k, v in env.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(self.socket)
                s.sendall(b"\0" + len(data).to_bytes(2, "little") + b"\0" + data)
                out = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
            return out.endswith(b"Hello, World!")
        except OSError:
            return False

    def log_offset(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        """The backend's log lines written since `offset`, e.g. errors logged under load."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, when):
        """After a run: if the process died, record how (exit status, log tail) and restart it."""
        if self.alive():
            return True
        rc = self.proc.returncode
        how = ("killed by signal %d (%s)" % (-rc, signal.Signals(-rc).name) if rc < 0
               else "exited with status %d" % rc)
        self.events.append("%s %s during %s. Log tail:\n%s"
                           % (self.name, how, when, read_tail(self.log_path, 40)))
        log("!! %s %s during %s; restarting it" % (self.name, how, when))
        self.logf.close()
        self.start()
        return False

    def stop(self):
        if self.proc is None:
            return
        rc = kill_proc(self.proc, self.stop_signal, 10)
        self.logf.close()
        if rc is not None and rc not in self.ok_exit and not (rc < 0 and -rc == self.stop_signal):
            self.events.append("%s exited with status %s on %s at the end of the benchmark"
                               % (self.name, rc, signal.Signals(self.stop_signal).name))


class Nginx:
    """A private nginx in the foreground, rendered from the project template."""

    def __init__(self, tmp, name, socket_path):
        self.name = name
        self.prefix = os.path.join(tmp, "nginx-" + name.lower())
        os.makedirs(self.prefix)
        self.port = free_port()
        with open(NGINX_TEMPLATE) as f:
            conf = f.read()
        conf = (conf.replace("@PORT@", str(self.port)).replace("@SOCKET@", socket_path)
                .replace("@PREFIX@", self.prefix))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.url = "http://127.0.0.1:%d" % self.port
        self.logf = open(os.path.join(self.prefix, "stdout.log"), "wb")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = popen([nginx, "-p", self.prefix + "/", "-c", self.conf, "-g", "daemon off;"],
                          self.logf)

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited:\n" + self.error_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(listening, 15, "nginx on port %d" % self.port)

    def error_log(self):
        try:
            with open(os.path.join(self.prefix, "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pids(self):
        return [self.proc.pid] + children_of(self.proc.pid)

    def stop(self):
        kill_proc(self.proc, signal.SIGQUIT, 10)
        self.logf.close()


# ---- wrk ----------------------------------------------------------------------------------------

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_time_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        return None
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "requests": 0, "non2xx": 0,
         "connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = parse_time_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["connect"], r["read"], r["write"], r["timeout"] = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    r["errors"] = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def run_wrk(url, conns, duration, script, tmp):
    argv = ["wrk", "-t2", "-c%d" % conns, "-d%ds" % duration, "--timeout", "5s", "--latency"]
    if script:
        argv += ["-s", script]
    argv.append(url)
    with open(os.path.join(tmp, "wrk.out"), "w+b") as outf:
        proc = popen(argv, outf)
        try:
            proc.wait(duration + 20)  # bounded: wrk stops itself after `duration`
        except subprocess.TimeoutExpired:
            kill_proc(proc, signal.SIGKILL, 5)
            raise RuntimeError("wrk did not finish within %ss: %s" % (duration + 20, argv))
        finally:
            _PROCS.remove(proc)
        outf.seek(0)
        out = outf.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError("wrk exited with %s: %s\n%s" % (proc.returncode, argv, out))
    return out


def children_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(backend, nginx, case, duration, post_script, tmp):
    name, path, conns, method, _ = case
    script = post_script if method == "POST" else None
    pids_ng = nginx.pids()
    err_before = nginx.error_log().count("\n")
    log_before = backend.log_offset()
    t0 = time.monotonic()
    busy0 = machine_busy_seconds()
    be0 = proc_cpu_seconds(backend.proc.pid)
    ng0 = sum(proc_cpu_seconds(p) for p in pids_ng)
    wrk0 = children_cpu_seconds()
    out = run_wrk(nginx.url + path, conns, duration, script, tmp)
    wall = time.monotonic() - t0
    wrk_cpu = children_cpu_seconds() - wrk0
    be_cpu = proc_cpu_seconds(backend.proc.pid) - be0 if backend.alive() else float("nan")
    ng_cpu = sum(proc_cpu_seconds(p) for p in pids_ng) - ng0
    busy = machine_busy_seconds() - busy0
    r = parse_wrk(out)
    r["raw"] = out
    r["backend_cpu"] = 100.0 * be_cpu / wall
    r["nginx_cpu"] = 100.0 * ng_cpu / wall
    r["wrk_cpu"] = 100.0 * wrk_cpu / wall
    # Everything else on the machine, in % of one CPU: other people's tests, the noise.
    r["other_cpu"] = max(0.0, 100.0 * (busy - be_cpu - ng_cpu - wrk_cpu) / wall) \
        if be_cpu == be_cpu else float("nan")
    r["rss"] = proc_rss_mib(backend.proc.pid) if backend.alive() else float("nan")
    r["load1"] = os.getloadavg()[0]
    # nginx warns about every 1 MiB request body it buffers to a temp file (the template keeps
    # request buffering on, by design): that is expected, not an error.
    new_errors = [x for x in nginx.error_log().splitlines()[err_before:]
                  if "a client request body is buffered to a temporary file" not in x]
    r["nginx_errors"] = len(new_errors)
    r["nginx_error_msgs"] = normalize_counts(
        re.sub(r"^\S+ \S+ (\[\w+\]) \d+#\d+: \*\d+ ", r"\1 ", x) for x in new_errors)
    time.sleep(0.3)  # late lines, e.g. cores noticing that nginx dropped them at wrk's end
    new_log = backend.log_since(log_before)
    r["log_lines"] = len(new_log)
    r["log_msgs"] = normalize_counts(re.sub(r"^\[gyre \d+\] ", "", x) for x in new_log)
    return r


def collapse_tracebacks(lines):
    """A Python traceback becomes one line: where it was raised and the exception itself."""
    out, tb = [], None
    for line in lines:
        if tb is not None:
            if line.startswith((" ", "\t")) or not line.strip():
                if line.strip().startswith("File "):
                    tb["where"] = line.strip()
                continue
            out.append("Traceback (%s): %s" % (tb["where"], line.strip()))
            tb = None
        elif line.strip() == "Traceback (most recent call last):":
            tb = {"where": "?"}
        else:
            out.append(line)
    if tb is not None:
        out.append("Traceback (%s), cut short" % tb["where"])
    return out


def normalize_counts(lines):
    """Distinct messages (numbers, addresses and paths blanked out) with how often each came."""
    c = collections.Counter()
    for line in collapse_tracebacks(list(lines)):
        line = re.sub(r"/tmp/gyre-bench-[^/ ]+", "TMP", line.strip())
        line = re.sub(r"0x[0-9a-f]+|\b\d+\b", "N", line)
        c[line[:300]] += 1
    return c


def check_routes(nginx, backend_name):
    """One request per route through nginx; the body must be exactly what the app sends."""
    problems = []
    for name, path, _, method, expect in CASES:
        data = b"a" * POST_BYTES if method == "POST" else None
        req = urllib.request.Request(nginx.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = resp.read()
                if resp.status != 200 or body != expect:
                    problems.append("%s %s: status %s, %d-byte body %r..."
                                    % (backend_name, path, resp.status, len(body), body[:60]))
        except Exception as e:  # report, and still measure
            problems.append("%s %s: %s" % (backend_name, path, e))
    return problems


# ---- the report ---------------------------------------------------------------------------------

def cmd_out(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e


def machine_info():
    import greenlet
    import tornado
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [
        ("nproc", "%s (CPU: %s)" % (cmd_out(["nproc"]), cpu)),
        ("kernel", platform.release()),
        ("OS", cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        ("nginx", cmd_out(["nginx", "-v"]).replace("nginx version: ", "")),
        ("uwsgi", cmd_out(["uwsgi", "--version"])
         + " (Debian uwsgi-core + python3, greenlet_python3, tornado_python3 plugins)"),
        ("gyre", cmd_out([GYRE, "--version"])),
        ("python", platform.python_version()),
        ("tornado", tornado.version),
        ("greenlet", greenlet.__version__),
        ("wrk", cmd_out(["wrk", "--version"]).splitlines()[0].split(" Copyright")[0].strip()),
    ]


def fmt_rps(v):
    return "—" if v is None else "{:,.0f}".format(v)


def fmt_ms(v):
    if v is None or v != v:
        return "—"
    return "%.2f ms" % v if v < 100 else "%.0f ms" % v


def fmt_pct(v):
    return "—" if v != v else "%.0f%%" % v


def best(runs):
    """The round with the highest req/s, preferring rounds the backend survived."""
    ok = [r for r in runs if r["rps"] is not None]
    ok = [r for r in ok if not r.get("crashed")] or ok
    return max(ok, key=lambda r: r["rps"]) if ok else None


def fmt_errors(runs):
    crashes = sum(1 for r in runs if r.get("crashed"))
    return "%d%s" % (sum(r["errors"] for r in runs),
                     " (%d crash%s)" % (crashes, "es" if crashes > 1 else "") if crashes else "")


def render(args, info, results, started, finished, load_start, load_end, background, notes,
           backends):
    L = []
    L.append("# gyre vs uWSGI (Tornado loop engine + greenlet), behind nginx")
    L.append("")
    L.append("Produced by `make bench` (`/usr/bin/python3 bench/bench.py`), %s UTC; took %.0f s."
             % (started.strftime("%Y-%m-%d %H:%M"), (finished - started).total_seconds()))
    L.append("")
    L.append("## Machine")
    L.append("")
    for k, v in info:
        L.append("- %s: %s" % (k, v))
    L.append("- load average (1/5/15 min) at start: %s; at end: %s"
             % (" ".join("%.2f" % x for x in load_start), " ".join("%.2f" % x for x in load_end)))
    L.append("- background CPU (the machine busy while the servers sat idle, 3 s, in %% of one CPU,"
             " out of %d%%): %s before the runs, %s after. Other engineers share this machine."
             % (100 * (os.cpu_count() or 1), fmt_pct(background[0]), fmt_pct(background[1])))
    L.append("")
    L.append("## Setup")
    L.append("")
    L.append("- wrk (`-t2 --latency --timeout 5s`) -> nginx (one instance per backend, both "
             "rendered from `nginx-conf/uwsgi.conf`: worker_processes 1, uwsgi_pass to a unix "
             "socket, request and response buffering on) -> the backend serving `bench/app.py`.")
    for b in backends:
        L.append("- %s: `%s`" % (b.name, " ".join(os.path.basename(a) if a.startswith(b.tmp)
                                                   else a for a in b.argv)))
    L.append("- Interleaved: for each case, %d round(s) of gyre then uWSGI; each measured run "
             "(%d s) follows a %d s warm-up with the same parameters."
             % (args.rounds, args.duration, args.warmup))
    L.append("- req/s and p99 are from each backend's **best** round (highest req/s, a round "
             "the backend survived if there is one); errors are the **sum over all measured "
             "rounds**: non-2xx/3xx responses + socket errors (connect/read/write/timeout) as wrk "
             "reports them (wrk's req/s counts error responses too). Every round is in the "
             "detail table.")
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("| case | gyre req/s | gyre p99 | gyre errors | uWSGI req/s | uWSGI p99 | "
             "uWSGI errors | ratio gyre/uWSGI (req/s) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        g, u = results[case[0]]["gyre"], results[case[0]]["uWSGI"]
        bg, bu = best(g), best(u)
        ratio = ("%.2fx" % (bg["rps"] / bu["rps"])
                 if bg and bu and bu["rps"] else "—")
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            CASE_LABEL[case[0]],
            fmt_rps(bg and bg["rps"]), fmt_ms(bg and bg["p99"]), fmt_errors(g),
            fmt_rps(bu and bu["rps"]), fmt_ms(bu and bu["p99"]), fmt_errors(u),
            ratio))
    L.append("")
    L.append("## Every round")
    L.append("")
    L.append("CPU columns are in %% of one CPU over the run (%d CPUs = %d%%). *other* is the "
             "machine's busy time (/proc/stat) minus this backend, its nginx and wrk: work by "
             "other people (much of it invisible from here, other PID namespaces), plus kernel "
             "time charged to no process; i.e. the noise. *log* is how many lines the backend "
             "wrote to its own log during the run (request logging is off: these are warnings "
             "and errors); *nginx err* the lines nginx added to its error.log (the expected "
             "\"request body is buffered to a temporary file\" warnings left out). RSS is the "
             "backend's resident memory after the run."
             % (os.cpu_count() or 1, 100 * (os.cpu_count() or 1)))
    L.append("")
    L.append("| case | round | backend | req/s | p50 | p99 | errors (non2xx/conn/read/write/timeout)"
             " | log | nginx err | backend CPU | nginx CPU | wrk CPU | other CPU | RSS |")
    L.append("|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        for i in range(args.rounds):
            for bname in ("gyre", "uWSGI"):
                runs = results[case[0]][bname]
                if i >= len(runs):
                    continue
                r = runs[i]
                L.append("| %s | %d | %s | %s | %s | %s | %d (%d/%d/%d/%d/%d) | %d | %d | %s | %s |"
                         " %s | %s | %s |" % (
                             CASE_LABEL[case[0]], i + 1,
                             bname + (" **crashed**" if r.get("crashed") else ""), fmt_rps(r["rps"]),
                             fmt_ms(r["p50"]), fmt_ms(r["p99"]), r["errors"], r["non2xx"],
                             r["connect"], r["read"], r["write"], r["timeout"],
                             r["log_lines"], r["nginx_errors"], fmt_pct(r["backend_cpu"]),
                             fmt_pct(r["nginx_cpu"]), fmt_pct(r["wrk_cpu"]),
                             fmt_pct(r["other_cpu"]),
                             "—" if r["rss"] != r["rss"] else "%.0f MiB" % r["rss"]))
    L.append("")
    L.append("## Notes")
    L.append("")
    L.append("wrk stops with requests in flight, and nginx then drops its upstream connections: "
             "a few \"client went away\" / broken-pipe lines per run from either backend "
             "(up to one per connection, so up to 200 in the suspend case) are expected, not "
             "failures. A backend crash, if any, is reported below with its exit status and log "
             "tail, and the backend is restarted for the remaining runs.")
    L.append("")
    if notes:
        for n in notes:
            if "\n" in n:
                head, rest = n.split("\n", 1)
                L.append("- " + head)
                L.append("")
                L.append("```")
                L.append(rest)
                L.append("```")
                L.append("")
            else:
                L.append("- " + n)
    else:
        L.append("- No errors, crashes or failed checks in any run.")
    L.append("")
    return "\n".join(L)


# ---- main ---------------------------------------------------------------------------------------

def uwsgi_plugins():
    have = set(f[:-len("_plugin.so")] for f in os.listdir(UWSGI_PLUGINS_DIR)
               if f.endswith("_plugin.so"))
    need = ["python3", "greenlet_python3", "tornado_python3"]
    missing = [p for p in need if p not in have]
    if missing:
        raise SystemExit("uWSGI plugins missing from %s: %s (make deps installs them)"
                         % (UWSGI_PLUGINS_DIR, ", ".join(missing)))
    return ",".join(need)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured run (8)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run (2)")
    ap.add_argument("--rounds", type=int, default=2, help="measured rounds per backend per case (2)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(_cleanup_all)

    if not os.access(GYRE, os.X_OK):
        raise SystemExit("no gyre binary at %s: run `make gyre` first" % GYRE)
    for tool in ("nginx", "uwsgi", "wrk"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit("%s not found: run `make deps`" % tool)
    plugins = uwsgi_plugins()

    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    log("load average now: %.2f %.2f %.2f on %d CPUs" % (load_start + (os.cpu_count(),)))
    tmp = tempfile.mkdtemp(prefix="gyre-bench-")
    post_script = os.path.join(tmp, "post.lua")
    with open(post_script, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.body = string.rep("a", %d)\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n' % POST_BYTES)

    backends, nginxes, notes = [], {}, []
    bg_start = bg_end = float("nan")
    results = {c[0]: {"gyre": [], "uWSGI": []} for c in CASES}
    try:
        gyre = Backend("gyre", lambda s: [GYRE, "--socket", s, "--wsgi-file", APP,
                                          "--tornado", "100", "--greenlet", "--disable-logging"],
                       tmp, signal.SIGTERM)
        uwsgi = Backend("uWSGI", lambda s: ["uwsgi", "--plugins", plugins, "--socket", s,
                                            "--wsgi-file", APP, "--tornado", "100", "--greenlet",
                                            "--disable-logging", "--listen", "1024"],
                        # Without a master, SIGINT is uWSGI's plain exit, with status 30.
                        tmp, signal.SIGINT, ok_exit=(0, 30))
        backends = [gyre, uwsgi]
        for b in backends:
            b.start()
            nginxes[b.name] = Nginx(tmp, b.name, b.socket)
            log("%s up (pid %d) behind nginx %s" % (b.name, b.proc.pid, nginxes[b.name].url))
            notes.extend(check_routes(nginxes[b.name], b.name))
        for n in notes:
            log("!! route check: " + n)
        log("measuring the background load (3 s, servers up, no load from us)")
        bg_start = background_cpu(3)
        log("background: %.0f%% of one CPU" % bg_start)

        total = len(CASES) * args.rounds * 2
        k = 0
        for case in CASES:
            for rnd in range(args.rounds):
                for b in backends:
                    k += 1
                    ng = nginxes[b.name]
                    label = "%s round %d" % (CASE_LABEL[case[0]], rnd + 1)
                    if args.warmup > 0:
                        w = parse_wrk(run_wrk(ng.url + case[1], case[2], args.warmup,
                                              post_script if case[3] == "POST" else None, tmp))
                        if w["errors"]:
                            notes.append("%s, warm-up of %s: %d errors (not counted in the table)"
                                         % (b.name, label, w["errors"]))
                        b.check_alive("the warm-up of " + label)
                        time.sleep(0.3)
                    r = measure(b, ng, case, args.duration, post_script, tmp)
                    results[case[0]][b.name].append(r)
                    log("[%2d/%d] %-24s %-5s %9s req/s  p99 %-10s errors %d  cpu %s other %s"
                        % (k, total, label, b.name, fmt_rps(r["rps"]), fmt_ms(r["p99"]),
                           r["errors"], fmt_pct(r["backend_cpu"]), fmt_pct(r["other_cpu"])))
                    if r["errors"] or r["rps"] is None:
                        notes.append("%s, %s: %d errors (non-2xx %d, connect %d, read %d, write %d,"
                                     " timeout %d) out of %d responses; wrk said:\n%s"
                                     % (b.name, label, r["errors"], r["non2xx"], r["connect"],
                                        r["read"], r["write"], r["timeout"], r["requests"],
                                        r["raw"].strip()))
                    r["crashed"] = not b.check_alive(label)
                    time.sleep(0.5)

        for case in CASES:
            for b in backends:
                runs = results[case[0]][b.name]
                for key, what in (("log_msgs", "%s's own log"), ("nginx_error_msgs",
                                                                 "nginx's error.log (%s)")):
                    msgs = sum((r[key] for r in runs), collections.Counter())
                    if msgs:
                        notes.append("%s, %s: %d line(s) in %s during the measured runs, "
                                     "by message (count, message):\n%s"
                                     % (b.name, CASE_LABEL[case[0]], sum(msgs.values()),
                                        what % b.name, "\n".join("%6d  %s" % (n, m) for m, n in
                                                                 msgs.most_common(8))))
        log("measuring the background load again (3 s, no load from us)")
        bg_end = background_cpu(3)
    finally:
        for b in backends:
            try:
                b.stop()
            except Exception as e:
                notes.append("%s: trouble stopping it: %s" % (b.name, e))
        for n in nginxes.values():
            try:
                n.stop()
            except Exception:
                pass
        _cleanup_all()
        for b in backends:
            notes.extend(b.events)
        shutil.rmtree(tmp, ignore_errors=True)

    finished = datetime.datetime.now(datetime.timezone.utc)
    report = render(args, machine_info(), results, started, finished, load_start,
                    os.getloadavg(), (bg_start, bg_end), notes, backends)
    print(report)
    if not args.no_write:
        with open(RESULTS, "w") as f:
            f.write(report)
        log("wrote " + os.path.relpath(RESULTS, ROOT))


if __name__ == "__main__":
    main()
