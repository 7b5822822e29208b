#!/usr/bin/python3
"""gyre side by side with uWSGI's Tornado loop engine over uwsgi, FastCGI and HTTP, loaded with wrk.

    make bench                        # = /usr/bin/python3 bench/bench.py
    /usr/bin/python3 bench/bench.py --duration 3 --warmup 1 --rounds 1 --no-write   # a smoke run
    ... --only threads                # only the --threads group (--only tornado: the others)
    ... --only cache-redis            # only the Redis cache row (issue 12)
    ... --only parked                 # only the parked-requests memory rows (issue 13)

What runs (everything in a private temp dir, removed at the end). Each protocol gets its own pair
of backend processes (gyre and uWSGI, both `--tornado 100 --greenlet`, one process each, no
master, serving bench/app.py), started before that protocol's cases and stopped after them:

    uwsgi         wrk -> nginx (nginx-conf/uwsgi.conf)   -> unix socket -> backend --socket
    fcgi-keep     wrk -> nginx (nginx-conf/fastcgi.conf) -> unix socket -> backend --fastcgi-socket
                  (the template as is: fastcgi_keep_conn on, upstream keepalive 32)
    fcgi-nokeep   wrk -> nginx (the same template, with its `fastcgi_keep_conn on;` and
                  `keepalive 32;` lines commented out by this script: one connection per request)
                                                          -> unix socket -> backend --fastcgi-socket
    http          wrk -> backend --http-socket 127.0.0.1:PORT, straight, no nginx

Every nginx (worker_processes 1) is rendered from a project template with only the @PORT@
@SOCKET@ @PREFIX@ placeholders filled, exactly as tests/integration does (plus, for
fcgi-nokeep, the two directives removed).

Cases (wrk -t2, --latency): over uwsgi, hello world at 50 connections, a 64 KiB response at 50, a
1 MiB POST at 10, a 20 ms core suspension (greenlet + IOLoop.call_later) at 200; then hello world
at 50 connections over FastCGI with keep-conn, FastCGI without keep-conn, and direct HTTP.

The "threads" group (issue 11) runs the same way with `--threads N` instead of `--tornado 100
--greenlet` (gyre `--threads N`; uWSGI `--plugin python3 --threads N`, no loop engine; one
process, no master):

    threads-uwsgi wrk -> nginx (nginx-conf/uwsgi.conf) -> unix socket -> backend --socket,
                  --threads 8: hello world at 50 connections; a blocking app (/sleep:
                  time.sleep(0.02), then a small body) at 50
    threads-http  wrk -> backend --http-socket, --threads 4: hello world at 10 connections; then
                  the same while SLOW_CLIENTS (8) slow clients (raw sockets, small SO_RCVBUF and
                  an Ethernet MSS, see SlowClient) each read a 256 KiB response at ~10 KiB/s.
                  wrk's run is capped at SLOW_WRK_MAX s; when it ends, every slow client must
                  still be connected and reading (checked: "slow-client check FAILED" otherwise)

It reports, besides req/s and p99, the backend's CPU per request (µs) and its RSS after the case,
with gyre/uWSGI ratios, in the section "Threads (issue 11)".

The "cache" group (issue 12, `--only cache`) measures uwsgi.cache_* under contention: both
servers `--tornado 100 --greenlet --master --processes 2 --cache2 name=bench,items=1000,
blocksize=1024` behind nginx (uwsgi), wrk at 50 connections on /cache?n=10 (10 cache_get + 10
cache_update of 100-byte values over 64 keys, per request) and, as the baseline of the same
set-up, /hello. CPU counts the master and its workers. Section "Cache (issue 12)".

The "cache-redis" group (issue 12, `--only cache-redis`) is the cache group's /cache?n=10 case
with gyre's cache on Redis: gyre `--cache2 name=bench,...,store=redis+unix://SOCK` on a
redis-server this script starts (unix socket, no persistence), uWSGI on its local cache as in
the cache group (uWSGI has no Redis store). It shows what sharing a cache between hosts costs:
20 Redis round trips per request, each suspending only its core. Section "Cache on Redis (issue
12)".

The "issue13" group (`--only issue13`): hello world at 50 connections behind nginx-conf/uwsgi.conf
for gyre, uWSGI AND the C responder (bench/c_responder.c, built by this script into build/bench/:
the floor of CPU per request), rounds interleaved; and the 20 ms suspend at 200 connections with
`--tornado 200` (the tornado group's row has 100 cores, so half the ideal). Section "Suspend
cost and the C floor (issue 13)", with CPU/request ratios to the responder and the fraction of
the ideal req/s.

The "parked" group (issue 13, `--only parked`) is bench/parked.py, run after the others: 1,000 and
10,000 requests suspended on an IOLoop timer in one process of each server, and its resident
memory then, per parked request too, with gyre's own accounting from its --stats JSON. Section
"Parked requests (issue 13)". With either issue 13 group, the report ends with "Issue 13
targets": each target, its measured value, PASS/FAIL.

The "websocket" group (issue 14, `--only websocket`) is bench/wsbench.py: websocket echo round
trips over 50 sockets (--duration, --warmup, --rounds apply) and 10,000 idle websockets' RSS,
gyre vs uWSGI's tornado engine and its async mode, over --http-socket, app bench/ws_app.py. A
gyre without the websocket API gets "no websocket API yet" in its rows. Section "WebSockets
(issue 14)".

Checks: each backend must answer /hello over its own protocol straight on its socket before it
counts as up; before each case, the case's route is requested once per backend through the very
path wrk will use (nginx or direct) and the body must be exactly what the app sends. For
FastCGI and HTTP, a raw probe also sends two requests on one connection (FCGI_KEEP_CONN set, or
an HTTP/1.1 request without `Connection: close`) and reports whether the backend kept the
connection: that is what decides how the backend behaves under nginx's upstream pool or wrk's
persistent connections.

Order: for each case, ROUNDS rounds of gyre then uWSGI (gyre/uWSGI/gyre/uWSGI), each measured
run preceded by a short warm-up with the same parameters. The summary keeps, per backend, the
round with the BEST req/s (its p99 and CPU with it); errors are the SUM over all measured rounds.
Every round is listed in the detail table, with the CPU the backend used and the CPU used by
everything else on the machine (other people's work: the noise).

Writes bench/RESULTS.md (overwritten) and prints the same Markdown.
"""

import argparse
import atexit
import collections
import datetime
import hashlib
import os
import platform
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import parked  # bench/parked.py: the parked-requests group
import wsbench  # bench/wsbench.py: the websocket group (issue 14)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BENCH = os.path.join(ROOT, "bench")
APP = os.path.join(BENCH, "app.py")
REDIS_SERVER = "/usr/bin/redis-server"
GYRE = os.environ.get("GYRE_BIN", os.path.join(ROOT, "gyre"))
UWSGI_TEMPLATE = os.path.join(ROOT, "nginx-conf", "uwsgi.conf")
FASTCGI_TEMPLATE = os.path.join(ROOT, "nginx-conf", "fastcgi.conf")
RESULTS = os.path.join(BENCH, "RESULTS.md")
UWSGI_PLUGINS_DIR = "/usr/lib/uwsgi/plugins"

POST_BYTES = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
HELLO = b"Hello, World!"


def without_keep_conn(conf):
    """fastcgi.conf with its `fastcgi_keep_conn on;` and upstream `keepalive N;` directives
    commented out: nginx then opens one FastCGI connection per request and the backend closes it
    after FCGI_END_REQUEST. Each directive must be found exactly once, or the template changed
    under us and the variant would silently be wrong."""
    for pattern in (r"^([ \t]*)(fastcgi_keep_conn[ \t]+on;)", r"^([ \t]*)(keepalive[ \t]+\d+;)"):
        conf, n = re.subn(pattern, r"\1# \2  # removed by bench/bench.py (no-keep-conn variant)",
                          conf, flags=re.M)
        if n != 1:
            raise SystemExit("nginx-conf/fastcgi.conf: expected exactly one line matching %r, "
                             "found %d; fix without_keep_conn() in bench/bench.py" % (pattern, n))
    return conf


# How each protocol is set up. wire: what the backend socket speaks (raw probes); flag: the
# command-line option, the same for gyre and uWSGI; template/transform: the nginx in front (None:
# wrk talks to the backend directly); group: "tornado" (`--tornado 100 --greenlet`) or "threads"
# (issue 11: `--threads N`, no Tornado, the request on an OS thread); threads: that N; probe:
# whether the keep-alive probe runs before the group's cases.
TORNADO_GROUP, THREADS_GROUP, CACHE_GROUP, CACHE_REDIS_GROUP, PARKED_GROUP = (
    "tornado", "threads", "cache", "cache-redis", "parked")
# Issue 13's wrk rows (the C responder's floor, the 20 ms suspend on 200 cores) and issue 14's
# websocket group (bench/wsbench.py, no wrk).
ISSUE13_GROUP, WEBSOCKET_GROUP = "issue13", "websocket"
GROUPS = (TORNADO_GROUP, THREADS_GROUP, CACHE_GROUP, CACHE_REDIS_GROUP, ISSUE13_GROUP,
          PARKED_GROUP, WEBSOCKET_GROUP)
# The parked group (issue 13) is bench/parked.py's: no wrk cases, its own section.
PARKED_COUNTS = (1000, 10000)
WS_IDLE = 10000  # the websocket group's idle websockets in one worker (issue 14)
# The cache group's processes: a master, two workers sharing one cache (issue 12).
CACHE_ARGS = ["--master", "--processes", "2", "--cache2", "name=bench,items=1000,blocksize=1024"]
CACHE_OPS = 10
PROTOS = collections.OrderedDict([
    ("uwsgi", dict(wire="uwsgi", flag="--socket", template=UWSGI_TEMPLATE, transform=None,
                   label="uwsgi via nginx", group=TORNADO_GROUP, probe=False)),
    ("fcgi-keep", dict(wire="fastcgi", flag="--fastcgi-socket", template=FASTCGI_TEMPLATE,
                       transform=None, label="FastCGI via nginx, keep-conn", group=TORNADO_GROUP,
                       probe=True)),
    ("fcgi-nokeep", dict(wire="fastcgi", flag="--fastcgi-socket", template=FASTCGI_TEMPLATE,
                         transform=without_keep_conn, label="FastCGI via nginx, no keep-conn",
                         group=TORNADO_GROUP, probe=False)),
    ("http", dict(wire="http", flag="--http-socket", template=None, transform=None,
                  label="HTTP/1.1 direct, no nginx", group=TORNADO_GROUP, probe=True)),
    ("threads-uwsgi", dict(wire="uwsgi", flag="--socket", template=UWSGI_TEMPLATE, transform=None,
                           label="uwsgi via nginx, --threads 8", group=THREADS_GROUP, threads=8,
                           probe=False)),
    ("threads-http", dict(wire="http", flag="--http-socket", template=None, transform=None,
                          label="HTTP/1.1 direct, --threads 4", group=THREADS_GROUP, threads=4,
                          probe=True)),
    ("cache-uwsgi", dict(wire="uwsgi", flag="--socket", template=UWSGI_TEMPLATE, transform=None,
                         label="uwsgi via nginx, 2 workers, --cache2", group=CACHE_GROUP,
                         probe=False)),
    # The same with gyre's cache on a redis-server that runs for the group (uWSGI's stays local).
    ("cache-redis", dict(wire="uwsgi", flag="--socket", template=UWSGI_TEMPLATE, transform=None,
                         label="uwsgi via nginx, 2 workers, --cache2 (gyre: Redis; uWSGI: local)",
                         group=CACHE_REDIS_GROUP, probe=False, redis=True)),
    # Issue 13: hello world behind the same nginx for gyre, uWSGI and the C responder (the
    # floor: bench/c_responder.c), round after round in one run; and the 20 ms suspend with
    # as many cores as connections (200), so that the ideal 200 / 20 ms is reachable.
    ("floor", dict(wire="uwsgi", flag="--socket", template=UWSGI_TEMPLATE, transform=None,
                   label="uwsgi via nginx (gyre, uWSGI and the C responder)", group=ISSUE13_GROUP,
                   probe=False, servers=("gyre", "uWSGI", "C responder"))),
    ("suspend200", dict(wire="uwsgi", flag="--socket", template=UWSGI_TEMPLATE, transform=None,
                        label="uwsgi via nginx, --tornado 200", group=ISSUE13_GROUP, probe=False,
                        cores=200)),
])
RESPONDER = "C responder"
RESPONDER_SRC = os.path.join(BENCH, "c_responder.c")
RESPONDER_BIN = os.path.join(ROOT, "build", "bench", "c_responder")
RESPONDER_BODY = b"Hello World"  # its 11 bytes; the app's /hello sends HELLO (13)
SUSPEND_SECONDS = 0.020  # bench/app.py's /suspend


def case_servers(case):
    """Who serves the case: gyre and uWSGI, and for the floor case the C responder too."""
    return PROTOS[case.proto].get("servers", SERVERS)


def ideal_rps(case):
    """The suspend cases' ceiling: each connection (at most one per core) gets one response
    per 20 ms suspension."""
    return min(case.conns, PROTOS[case.proto].get("cores", 100)) / SUSPEND_SECONDS

# slow: how many slow clients read SLOW_PATH while wrk loads `path` (0: none).
Case = collections.namedtuple("Case", "key proto path conns method expect label slow",
                              defaults=(0,))

# The slow-client case (threads group). K raw-socket clients each ask for SLOW_PATH (256 KiB) and
# read it at SLOW_RATE bytes/s, SLOW_CHUNK at a time, with a small receive buffer and an Ethernet
# MSS (see SlowClients); meanwhile wrk measures /hello. A server whose threads write the response
# themselves has them held by the slow readers; gyre hands a write that would block to its loop.
SLOW_CLIENTS = 8
SLOW_PATH = "/256k"
SLOW_BODY = b"y" * (256 * 1024)
SLOW_RATE = 10 * 1024
SLOW_CHUNK = 1024
SLOW_RCVBUF = 4096
SLOW_MSS = 1460
# wrk's run in the slow-client case lasts at most this long (whatever --duration says), so that
# the whole case stays bounded (about 10 s with the clients' start) and the slow clients, which
# need ~16 s to get past what the kernel buffers, are still reading when wrk stops.
SLOW_WRK_MAX = 8
SLOW_START_TIMEOUT = 10

# What the response body must be is checked before each case, through the path wrk uses.
CASES = [
    Case("hello", "uwsgi", "/hello", 50, "GET", HELLO, "hello world, c=50"),
    Case("64k", "uwsgi", "/64k", 50, "GET", b"x" * 65536, "64 KiB response, c=50"),
    Case("post 1 MiB", "uwsgi", "/post", 10, "POST", str(POST_BYTES).encode(), "1 MiB POST, c=10"),
    Case("suspend 20 ms", "uwsgi", "/suspend", 200, "GET", b"suspended 20 ms\n",
         "suspend 20 ms, c=200"),
    Case("fcgi-keep hello", "fcgi-keep", "/hello", 50, "GET", HELLO, "hello world, c=50"),
    Case("fcgi-nokeep hello", "fcgi-nokeep", "/hello", 50, "GET", HELLO, "hello world, c=50"),
    Case("http hello", "http", "/hello", 50, "GET", HELLO, "hello world, c=50"),
    Case("threads hello", "threads-uwsgi", "/hello", 50, "GET", HELLO, "hello world, c=50"),
    Case("threads sleep", "threads-uwsgi", "/sleep", 50, "GET", b"slept 20 ms\n",
         "blocking app (time.sleep 20 ms), c=50"),
    Case("threads http hello", "threads-http", "/hello", 10, "GET", HELLO,
         "hello world, c=10, no slow clients"),
    Case("threads slow clients", "threads-http", "/hello", 10, "GET", HELLO,
         "hello world, c=10, while %d slow clients read %d KiB at %d KiB/s"
         % (SLOW_CLIENTS, len(SLOW_BODY) // 1024, SLOW_RATE // 1024), slow=SLOW_CLIENTS),
    Case("cache hello", "cache-uwsgi", "/hello", 50, "GET", HELLO,
         "hello world (the baseline: no cache call), c=50"),
    Case("cache get+set", "cache-uwsgi", "/cache?n=%d" % CACHE_OPS, 50, "GET",
         b"cache %d\n" % CACHE_OPS,
         "%d cache_get + %d cache_update per request, c=50" % (CACHE_OPS, CACHE_OPS)),
    Case("cache-redis get+set", "cache-redis", "/cache?n=%d" % CACHE_OPS, 50, "GET",
         b"cache %d\n" % CACHE_OPS, "%d cache_get + %d cache_update per request, c=50"
         % (CACHE_OPS, CACHE_OPS)),
    Case("floor hello", "floor", "/hello", 50, "GET", HELLO, "hello world, c=50"),
    Case("suspend 20 ms 200 cores", "suspend200", "/suspend", 200, "GET", b"suspended 20 ms\n",
         "suspend 20 ms, c=200, 200 cores"),
]
SERVERS = ("gyre", "uWSGI")


def case_title(case):
    """Unique, for logs and the detail table: the label and the protocol."""
    return "%s, %s" % (case.label, PROTOS[case.proto]["label"])


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


def start_redis(tmp, sock):
    """redis-server on the unix socket sock (no TCP, no persistence), answering PING."""
    if not os.access(REDIS_SERVER, os.X_OK):
        raise SystemExit("%s not found: run `make deps`" % REDIS_SERVER)
    logf = open(os.path.join(tmp, "redis.log"), "wb")
    proc = popen([REDIS_SERVER, "--port", "0", "--unixsocket", sock, "--save", "",
                  "--appendonly", "no", "--dir", tmp], logf)

    def pong():
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(sock)
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
    wait_for(lambda: proc.poll() is not None or pong(), 10, "redis-server on " + sock)
    if proc.poll() is not None:
        raise RuntimeError("redis-server exited:\n" + read_tail(logf.name))
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


def proc_cpu_split(pid):
    """(user, system) CPU seconds of one process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


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


def tree_cpu_seconds(pid):
    """CPU seconds of pid and its children (a master's workers; none without a master). A child
    that exits during a run takes its seconds with it: no worker is recycled in these runs."""
    return proc_cpu_seconds(pid) + sum(proc_cpu_seconds(c) for c in children_of(pid))


def background_cpu(seconds):
    """% of one CPU the machine is busy while we run nothing (the noise floor)."""
    b0 = machine_busy_seconds()
    time.sleep(seconds)
    return 100.0 * (machine_busy_seconds() - b0) / seconds


def machine_busy_seconds():
    """CPU seconds (all CPUs) spent not idle since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return (sum(vals[:8]) - idle) / CLK_TCK


def unix_conns(path):
    """How many connections are established on the unix socket `path` (its accepted side), e.g.
    the idle upstream connections nginx keeps open to a FastCGI backend."""
    try:
        out = subprocess.run(["ss", "-xnH"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    n = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[1] == "ESTAB" and f[4] == path:
            n += 1
    return n


# ---- raw protocol clients (readiness and keep-alive probes, straight to a backend) -----------

CGI_ENV = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "SCRIPT_NAME": "",
           "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
           "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000"}


class Reader:
    """A socket with a read buffer; EOFError when the peer closed before `n` bytes came."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the backend")
        self.buf += chunk

    def exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until(self, sep):
        while sep not in self.buf:
            self._more()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def rest(self):
        try:
            while True:
                self._more()
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out


def split_cgi_response(data, status_from_header):
    """(status code, body) of an HTTP response, or of a CGI-style one (a `Status:` header,
    200 without it) when status_from_header."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers in %r" % data[:200])
    lines = head.decode("latin-1").split("\r\n")
    if not status_from_header:
        return int(lines[0].split()[1]), body
    status = 200
    for line in lines:
        k, _, v = line.partition(":")
        if k.strip().lower() == "status":
            status = int(v.split()[0])
    return status, body


def uwsgi_exchange(sock, path):
    env = dict(CGI_ENV, PATH_INFO=path, REQUEST_URI=path)
    data = b"".join(len(k).to_bytes(2, "little") + k.encode() + len(v).to_bytes(2, "little")
                    + v.encode() for k, v in env.items())
    sock.sendall(b"\0" + len(data).to_bytes(2, "little") + b"\0" + data)
    return split_cgi_response(Reader(sock).rest(), status_from_header=False)


def fcgi_record(rtype, rid, content=b""):
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), 0, 0) + content


def fcgi_pair(k, v):
    k, v = k.encode(), v.encode()
    return b"".join((bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000))
                    for n in (len(k), len(v))) + k + v


def fcgi_exchange(reader, path, keep, rid=1):
    """One FastCGI RESPONDER request (FCGI_KEEP_CONN if `keep`): (status, body)."""
    params = b"".join(fcgi_pair(k, v) for k, v in dict(CGI_ENV, PATH_INFO=path,
                                                       REQUEST_URI=path).items())
    reader.sock.sendall(fcgi_record(1, rid, struct.pack(">HB5x", 1, 1 if keep else 0))
                        + fcgi_record(4, rid, params) + fcgi_record(4, rid)
                        + fcgi_record(5, rid))
    out = b""
    while True:
        _, rtype, r, clen, plen, _ = struct.unpack(">BBHHBB", reader.exact(8))
        content = reader.exact(clen)
        reader.exact(plen)
        if r != rid:
            continue
        if rtype == 6:  # FCGI_STDOUT
            out += content
        elif rtype == 3:  # FCGI_END_REQUEST
            return split_cgi_response(out, status_from_header=True)


def http_exchange(reader, path):
    """One HTTP/1.1 GET, persistent (no Connection: close): (status, body)."""
    reader.sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
    head = reader.until(b"\r\n\r\n")
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    if not m:
        raise ValueError("no Content-Length in %r" % head[:200])
    status, _ = split_cgi_response(head, status_from_header=False)
    return status, reader.exact(int(m.group(1)))


def describe_exc(e):
    return "%s: %s" % (type(e).__name__, e)


# ---- the servers --------------------------------------------------------------------------------

class Backend:
    """One app server process (gyre or uWSGI) on one protocol: a unix socket, or for HTTP a
    127.0.0.1 port."""

    def __init__(self, name, proto, argv_fn, tmp, stop_signal, ok_exit=(0,)):
        self.name = name
        self.proto = proto
        self.wire = PROTOS[proto]["wire"]
        self.ok_exit = ok_exit
        self.tmp = tmp
        self.tag = "%s-%s" % (name.lower().replace(" ", "_"), proto)  # paths in nginx.conf
        if self.wire == "http":
            self.socket = None
            self.port = free_port()
            self.addr = "127.0.0.1:%d" % self.port
        else:
            self.socket = os.path.join(tmp, self.tag + ".sock")
            self.addr = self.socket
        self.argv = argv_fn(PROTOS[proto], self.addr)
        self.stop_signal = stop_signal
        self.starts = 0
        self.events = []  # crashes, restarts: reported verbatim
        self.proc = None
        self.log_path = None
        # What /hello answers: the app's body, or the C responder's own (it has no routes).
        self.hello = RESPONDER_BODY if name == RESPONDER else HELLO

    def body_for(self, expect):
        """The body this backend must send where the app sends `expect`."""
        return self.hello if expect == HELLO else expect

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.tmp, "%s-%d.log" % (self.tag, self.starts))
        if self.socket and os.path.exists(self.socket):
            os.unlink(self.socket)
        self.logf = open(self.log_path, "wb")
        self.proc = popen(self.argv, self.logf, cwd=ROOT)
        wait_for(lambda: self.proc.poll() is not None or self._serves(), 20,
                 "%s to serve %s on %s" % (self.name, self.wire, self.addr))
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited at start with %s:\n%s"
                               % (self.name, self.proc.returncode, read_tail(self.log_path)))

    def connect(self, timeout=2):
        if self.socket:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.socket)
            except OSError:
                s.close()
                raise
            return s
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, path):
        """One raw request in the backend's own protocol, straight to its socket."""
        with self.connect() as s:
            if self.wire == "uwsgi":
                return uwsgi_exchange(s, path)
            if self.wire == "fastcgi":
                return fcgi_exchange(Reader(s), path, keep=False)
            return http_exchange(Reader(s), path)

    def _serves(self):
        if self.socket and not os.path.exists(self.socket):
            return False
        try:
            return self.request("/hello") == (200, self.hello)
        except (OSError, EOFError, ValueError, struct.error):
            return False

    def keepalive_probe(self):
        """Two /hello requests on one connection (FastCGI: FCGI_KEEP_CONN set; HTTP: no
        Connection: close). ("kept" | "closed" | "failed", a sentence saying what happened)."""
        what = ("%s, FCGI_KEEP_CONN set" % self.name if self.wire == "fastcgi"
                else "%s, HTTP/1.1 without `Connection: close`" % self.name)

        def exchange(r):
            if self.wire == "fastcgi":
                return fcgi_exchange(r, "/hello", keep=True)
            return http_exchange(r, "/hello")
        try:
            with self.connect() as s:
                r = Reader(s)
                try:
                    first = exchange(r)
                except Exception as e:
                    return "failed", "%s: the first request failed: %s" % (what, describe_exc(e))
                if first != (200, HELLO):
                    return "failed", "%s: the first request got %r" % (what, first)
                try:
                    second = exchange(r)
                except (OSError, EOFError) as e:
                    return "closed", ("%s: answered the first request, then closed the "
                                      "connection; the second request on it got no answer (%s)"
                                      % (what, describe_exc(e)))
                except Exception as e:
                    return "failed", "%s: the second request failed: %s" % (what, describe_exc(e))
                if second != (200, HELLO):
                    return "failed", "%s: the second request on the connection got %r" % (
                        what, second)
                return "kept", "%s: kept the connection, answered both requests on it" % what
        except OSError as e:
            return "failed", "%s: could not connect: %s" % (what, describe_exc(e))

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
        self.events.append("%s (%s) %s during %s. Log tail:\n%s"
                           % (self.name, self.proto, how, when, read_tail(self.log_path, 40)))
        log("!! %s (%s) %s during %s; restarting it" % (self.name, self.proto, how, when))
        self.logf.close()
        self.start()
        return False

    def stop(self):
        if self.proc is None:
            return
        rc = kill_proc(self.proc, self.stop_signal, 10)
        self.logf.close()
        if rc is not None and rc not in self.ok_exit and not (rc < 0 and -rc == self.stop_signal):
            self.events.append("%s (%s) exited with status %s on %s when stopped after its cases"
                               % (self.name, self.proto, rc, signal.Signals(self.stop_signal).name))


class Nginx:
    """A private nginx in the foreground, rendered from a project template."""

    def __init__(self, tmp, backend):
        self.name = backend.tag
        self.prefix = os.path.join(tmp, "nginx-" + backend.tag)
        os.makedirs(self.prefix)
        self.port = free_port()
        spec = PROTOS[backend.proto]
        with open(spec["template"]) as f:
            conf = f.read()
        if spec["transform"]:
            conf = spec["transform"](conf)
        conf = (conf.replace("@PORT@", str(self.port)).replace("@SOCKET@", backend.socket)
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


class Target:
    """Where wrk sends a case's load for one backend: its nginx, or the backend itself."""

    def __init__(self, backend, nginx):
        self.backend = backend
        self.nginx = nginx
        self.url = nginx.url if nginx else "http://" + backend.addr


# ---- slow clients (the threads group's slow-client case) ---------------------------------------

class SlowClient:
    """One real slow reader: a raw TCP socket asking for SLOW_PATH over HTTP and reading the
    answer at SLOW_RATE bytes/s, SLOW_CHUNK at a time, in its own thread.

    Its receive buffer is small (SO_RCVBUF) and it announces an Ethernet MSS (TCP_MAXSEG, set
    before connect: the MSS the server sees in the SYN). Without the latter, loopback's 64 KiB
    MSS lets the server's send-buffer autotuning take the whole 256 KiB response into the
    kernel at once (measured: ~252 KiB not yet sent, right after the request), and no server
    thread would ever wait for a slow reader; with it the kernel keeps ~70-90 KiB, as over a
    real network, and the rest is the server's to hold."""

    def __init__(self, port, index):
        import threading
        self.index = index
        self.port = port
        self.lock = threading.Lock()
        self.received = 0          # bytes, head included
        self.first_byte = None     # monotonic time of the first byte of the answer
        self.finished = None       # monotonic time it stopped reading on its own
        self.outcome = None        # why it stopped on its own: "complete", "EOF", an error
        self.head = b""
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SLOW_MSS)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % SLOW_PATH.encode())
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="slow-client-%d" % index,
                                       daemon=True)
        self.thread.start()

    def _run(self):
        """Paced: at most SLOW_RATE bytes/s on average since the first byte, so a client kept
        waiting (its connection still in the server's backlog) does not read faster later."""
        self.sock.settimeout(0.2)
        expected = None
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self.first_byte is not None:
                    allowed = SLOW_CHUNK + SLOW_RATE * (now - self.first_byte) - self.received
                    if allowed < SLOW_CHUNK:
                        self.stop.wait((SLOW_CHUNK - allowed) / SLOW_RATE)
                        continue
                try:
                    data = self.sock.recv(SLOW_CHUNK)
                except socket.timeout:
                    continue
                if not data:
                    self._end("EOF after %d bytes" % self.received)
                    return
                with self.lock:
                    if self.first_byte is None:
                        self.first_byte = time.monotonic()
                    self.received += len(data)
                    if expected is None:
                        self.head += data
                        if b"\r\n\r\n" in self.head:
                            head = self.head.split(b"\r\n\r\n", 1)[0]
                            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                            expected = len(head) + 4 + (int(m.group(1)) if m else 1 << 40)
                        self.head = self.head[:4096]
                if expected is not None and self.received >= expected:
                    self._end("complete")
                    return
        except OSError as e:
            self._end(describe_exc(e))

    def _end(self, outcome):
        with self.lock:
            self.finished = time.monotonic()
            self.outcome = outcome

    def snapshot(self):
        with self.lock:
            return dict(index=self.index, received=self.received, first_byte=self.first_byte,
                        finished=self.finished, outcome=self.outcome, started=self.started,
                        status=self.head.split(b"\r\n", 1)[0].decode("latin-1", "replace"))

    def close(self):
        self.stop.set()
        self.thread.join(5)
        try:
            self.sock.close()
        except OSError:
            pass


class SlowClients:
    """K SlowClients against one backend's --http-socket, started before wrk and checked when
    wrk has finished: each must still be connected and reading (or waiting for the server to
    take it: a server with all its threads held does not even accept the rest), and none may
    have read faster than SLOW_RATE allows."""

    def __init__(self, backend, k, threads):
        self.backend = backend
        self.k = k
        self.threads = threads
        self.clients = []

    def start(self):
        """Connect all K, then wait (bounded) until the server is answering at least as many of
        them as it has threads (all K, or `threads` for 2 s): wrk then starts with the server's
        threads busy with slow readers, on either server."""
        for i in range(self.k):
            try:
                self.clients.append(SlowClient(self.backend.port, i))
            except OSError as e:  # measure() turns this into a run without numbers
                raise RuntimeError("slow client %d could not send its request to %s: %s"
                                   % (i, self.backend.name, describe_exc(e)))
        need = min(self.k, self.threads)
        t0 = time.monotonic()
        deadline = t0 + SLOW_START_TIMEOUT
        enough_since = None
        while time.monotonic() < deadline:
            n = self.answered()
            if n >= self.k:
                break
            if n >= need:
                enough_since = enough_since or time.monotonic()
                if time.monotonic() - enough_since >= 2:
                    break
            time.sleep(0.05)
        return time.monotonic() - t0

    def answered(self):
        return sum(1 for c in self.clients if c.snapshot()["first_byte"] is not None)

    def check(self):
        """At wrk's end: (a summary dict, a list of problems; empty if the clients were real
        and slow and still reading)."""
        now = time.monotonic()
        snaps = [c.snapshot() for c in self.clients]
        problems = []
        answered = [x for x in snaps if x["first_byte"] is not None]
        done = [x for x in snaps if x["finished"] is not None]
        for x in done:
            problems.append("slow client %d had stopped before wrk finished: %s (%d bytes)"
                            % (x["index"], x["outcome"], x["received"]))
        for x in answered:
            if not x["status"].startswith("HTTP/1.") or " 200" not in x["status"]:
                problems.append("slow client %d got %r" % (x["index"], x["status"]))
            # The pacing allows one chunk ahead; 10% on top for the timer's slack.
            limit = SLOW_CHUNK + 1.1 * SLOW_RATE * (now - x["first_byte"])
            if x["received"] > limit:
                problems.append("slow client %d read %d bytes in %.1f s: faster than %d B/s"
                                % (x["index"], x["received"], now - x["first_byte"], SLOW_RATE))
        if len(answered) < min(self.k, self.threads):
            problems.append("only %d of %d slow clients were being answered (the server has "
                            "%d threads)" % (len(answered), self.k, self.threads))
        rates = [x["received"] / max(now - x["first_byte"], 1e-3) for x in answered]
        summary = dict(k=self.k, answered=len(answered), reading=len(answered) - len(
            [x for x in answered if x["finished"] is not None]), done=len(done),
            kib_min=min((x["received"] for x in answered), default=0) / 1024.0,
            kib_max=max((x["received"] for x in answered), default=0) / 1024.0,
            rate_max=max(rates, default=0.0) / 1024.0,
            oldest=max((now - x["started"] for x in snaps), default=0.0))
        return summary, problems

    def close(self):
        for c in self.clients:
            c.close()


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
    if not r["requests"]:  # no response at all: wrk prints 0.00us latencies, meaningless
        r["p50"] = r["p99"] = None
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


def measure(target, case, duration, post_script, tmp):
    backend, nginx = target.backend, target.nginx
    script = post_script if case.method == "POST" else None
    pids_ng = nginx.pids() if nginx else []
    err_before = nginx.error_log().count("\n") if nginx else 0
    log_before = backend.log_offset()
    slow = slow_summary = None
    slow_problems = []
    if case.slow:
        slow = SlowClients(backend, case.slow, PROTOS[case.proto]["threads"])
    try:
        if slow:
            slow_start = slow.start()
        t0 = time.monotonic()
        busy0 = machine_busy_seconds()
        be0 = tree_cpu_seconds(backend.proc.pid)
        us0 = proc_cpu_split(backend.proc.pid)
        ng0 = sum(proc_cpu_seconds(p) for p in pids_ng)
        wrk0 = children_cpu_seconds()
        out = run_wrk(target.url + case.path, case.conns, duration, script, tmp)
        wall = time.monotonic() - t0
        if slow:
            slow_summary, slow_problems = slow.check()
            slow_summary["start"] = slow_start
    finally:
        if slow:
            slow.close()
    if slow:
        # The slow clients are gone (closed with unread data: a reset); the server's threads
        # must be free again before the next run starts.
        try:
            wait_for(lambda: not backend.alive() or backend._serves(), 30,
                     "%s to answer /hello again after the slow clients left" % backend.name)
        except RuntimeError as e:
            slow_problems.append(str(e))
    wrk_cpu = children_cpu_seconds() - wrk0
    be_cpu = tree_cpu_seconds(backend.proc.pid) - be0 if backend.alive() else float("nan")
    us1 = proc_cpu_split(backend.proc.pid)
    ng_cpu = sum(proc_cpu_seconds(p) for p in pids_ng) - ng0
    busy = machine_busy_seconds() - busy0
    r = parse_wrk(out)
    r["raw"] = out
    r["slow"] = slow_summary
    r["slow_problems"] = slow_problems
    # Backend CPU per completed request, in microseconds.
    r["cpu_per_req"] = (1e6 * be_cpu / r["requests"]) if r["requests"] and be_cpu == be_cpu \
        else float("nan")
    # The same split into user and kernel time (the process itself, not its children): where
    # the floor's CPU goes (the C responder's is nearly all the kernel's socket work).
    r["user_per_req"], r["sys_per_req"] = (
        (1e6 * (us1[0] - us0[0]) / r["requests"], 1e6 * (us1[1] - us0[1]) / r["requests"])
        if r["requests"] and be_cpu == be_cpu else (float("nan"), float("nan")))
    r["backend_cpu"] = 100.0 * be_cpu / wall
    r["nginx_cpu"] = 100.0 * ng_cpu / wall if nginx else float("nan")
    r["wrk_cpu"] = 100.0 * wrk_cpu / wall
    # Everything else on the machine, in % of one CPU: other people's tests, the noise.
    r["other_cpu"] = max(0.0, 100.0 * (busy - be_cpu - ng_cpu - wrk_cpu) / wall) \
        if be_cpu == be_cpu else float("nan")
    r["rss"] = proc_rss_mib(backend.proc.pid) if backend.alive() else float("nan")
    r["load1"] = os.getloadavg()[0]
    # nginx warns about every 1 MiB request body it buffers to a temp file (the template keeps
    # request buffering on, by design): that is expected, not an error.
    new_errors = [x for x in (nginx.error_log().splitlines()[err_before:] if nginx else [])
                  if "a client request body is buffered to a temporary file" not in x]
    r["nginx_errors"] = len(new_errors) if nginx else None
    r["nginx_error_msgs"] = normalize_counts(
        re.sub(r"^\S+ \S+ (\[\w+\]) \d+#\d+: \*\d+ ", r"\1 ", x) for x in new_errors)
    time.sleep(0.3)  # late lines, e.g. cores noticing that nginx dropped them at wrk's end
    # Upstream connections still open once the run has settled: the idle ones nginx's keepalive
    # pool holds (only FastCGI with keep-conn, and only if the backend keeps them).
    r["upstream_conns"] = unix_conns(backend.socket) if nginx else None
    new_log = backend.log_since(log_before)
    r["log_lines"] = len(new_log)
    r["log_msgs"] = normalize_counts(re.sub(r"^\[gyre \d+\] ", "", x) for x in new_log)
    if slow_summary:
        # A server may give up on a slow reader: uWSGI abandons a write that makes no progress
        # for its --socket-timeout (4 s), logging "uwsgi_response_write_body_do() TIMEOUT !!!",
        # and the response is cut short (the client still has the kernel's share to read).
        slow_summary["gave_up"] = sum(n for m, n in r["log_msgs"].items()
                                      if re.search(r"timeout|timed out", m, re.I))
    return r


def failed_run(message):
    """A measured run without numbers (wrk could not run, e.g. the backend was gone)."""
    r = parse_wrk("")
    nan = float("nan")
    r.update(raw=message, failed=True, backend_cpu=nan, cpu_per_req=nan, slow=None,
             slow_problems=[], nginx_cpu=nan, wrk_cpu=nan, user_per_req=nan, sys_per_req=nan,
             other_cpu=nan, rss=nan, load1=os.getloadavg()[0], upstream_conns=None,
             nginx_errors=None, nginx_error_msgs=collections.Counter(), log_lines=0,
             log_msgs=collections.Counter())
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


def check_case(case, targets):
    """The case's route, once per backend, through the path wrk will use (nginx or direct):
    status 200 and exactly the body the app sends. Problems are returned (and measured anyway)."""
    problems = []
    routes = [(case.path, case.method, case.expect)]
    if case.slow:  # what the slow clients will read
        routes.append((SLOW_PATH, "GET", SLOW_BODY))
    for t in targets:
        for path, method, expect in routes:
            expect = t.backend.body_for(expect)
            data = b"a" * POST_BYTES if method == "POST" else None
            req = urllib.request.Request(t.url + path, data=data, method=method)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    body = resp.read()
                    if resp.status != 200 or body != expect:
                        problems.append("%s %s over %s: status %s, %d-byte body %r..."
                                        % (t.backend.name, path, PROTOS[case.proto]["label"],
                                           resp.status, len(body), body[:60]))
            except Exception as e:  # report, and still measure
                problems.append("%s %s over %s: %s" % (t.backend.name, path,
                                                       PROTOS[case.proto]["label"],
                                                       describe_exc(e)))
    return problems


# ---- the report ---------------------------------------------------------------------------------

def cmd_out(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e


def gyre_provenance(path):
    """What exactly we benchmark: the binary's hash and build time, and the source tree state
    (other people edit and rebuild in this tree: the lead should know what was measured)."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    built = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    head = cmd_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = [line for line in cmd_out(["git", "-C", ROOT, "status", "--porcelain", "--",
                                       "proto", "server", "Makefile"]).splitlines() if line]
    return ("%s, sha256 %s..., built %s UTC, source: commit %s%s. Copied into the run's temp "
            "dir before the first case, so every case runs this same binary even if ./gyre "
            "is rebuilt meanwhile." % (cmd_out([path, "--version"]), digest,
                                       built.strftime("%Y-%m-%d %H:%M:%S"), head,
                                       " + uncommitted changes in %d file(s) under proto/, "
                                       "server/ or Makefile" % len(dirty) if dirty else ""))


def machine_info(gyre_info):
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
        ("gyre", gyre_info),
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
    failed = sum(1 for r in runs if r.get("failed"))
    extra = []
    if crashes:
        extra.append("%d crash%s" % (crashes, "es" if crashes > 1 else ""))
    if failed:
        extra.append("%d run%s without numbers: wrk failed" % (failed, "s" if failed > 1 else ""))
    return "%d%s" % (sum(r["errors"] for r in runs), " (%s)" % ", ".join(extra) if extra else "")


def ratio(a, b):
    if a is None or b is None or a != a or b != b:
        return "—"
    if b == 0:
        return "∞ (uWSGI: 0)" if a > 0 else "—"
    return "%.2fx" % (a / b)


def fmt_us(v):
    return "—" if v is None or v != v else "%.0f µs" % v


def fmt_mib(v):
    return "—" if v is None or v != v else "%.1f MiB" % v


def render_threads(L, args, cases, results, checks):
    """The section "Threads (issue 11)": --threads N without Tornado, gyre vs uWSGI."""
    L.append("## Threads (issue 11)")
    L.append("")
    L.append("`--threads N` without `--tornado`: one process, no master, each request on one of "
             "N OS threads running the app (`bench/app.py`). gyre: `gyre --threads N`; uWSGI: "
             "Debian's `uwsgi --plugin python3 --threads N` (no loop engine). Commands in Setup.")
    L.append("")
    L.append("- **uwsgi via nginx, --threads 8**: `nginx-conf/uwsgi.conf` in front, as in the "
             "uwsgi group above; hello world and a blocking app (`/sleep`: `time.sleep(0.02)` "
             "then a 12-byte body; 8 threads cap it near 8 / 20 ms = 400 req/s) at 50 "
             "connections.")
    L.append("- **HTTP/1.1 direct, --threads 4**: both servers' `--http-socket`, no nginx; "
             "wrk measures /hello at 10 connections, first alone, then while %d slow clients "
             "(raw sockets in bench.py, one thread each) each read a %d KiB response (`%s`) at "
             "%d KiB/s, %d bytes at a time, with `SO_RCVBUF` %d and `TCP_MAXSEG` %d (an "
             "Ethernet MSS: with loopback's 64 KiB MSS the kernel's send-buffer autotuning "
             "would take the whole response at once and no server thread would ever wait). "
             "The kernel then holds ~70-90 KiB of each response; a server thread that writes "
             "the rest itself is held ~16 s per slow client. wrk starts once the server is "
             "answering all %d clients, or as many as it has threads for 2 s (at most %d s), "
             "and runs min(--duration, %d s); when it finishes, every slow client must still "
             "be connected and not done, and none may have read faster than the pace allows "
             "(else \"slow-client check FAILED\" below). gyre's threads should not be held: a "
             "write that would block is handed to the loop (write-behind, 1 MiB per connection "
             "by default); uWSGI's threads write it themselves."
             % (SLOW_CLIENTS, len(SLOW_BODY) // 1024, SLOW_PATH, SLOW_RATE // 1024, SLOW_CHUNK,
                SLOW_RCVBUF, SLOW_MSS, SLOW_CLIENTS, SLOW_START_TIMEOUT, SLOW_WRK_MAX))
    L.append("- req/s, p99, CPU/request from each backend's best round (highest req/s); "
             "CPU/request = the backend's CPU (user+system) over the run / responses wrk "
             "counted; RSS = the backend's resident memory right after the case's last round; "
             "errors summed over all rounds (non-2xx + socket errors; timeouts also apart). "
             "Ratios are gyre/uWSGI: for req/s higher is better for gyre, for CPU/request and "
             "RSS lower is better for gyre.")
    L.append("")
    bests = {}
    for case in cases:
        bests[case.key] = {n: best(results[case.key][n]) for n in SERVERS}

    def flagged(case, bname):
        failed = any(p.startswith(bname + " ") for p in checks[case.key])
        return " (route check FAILED)" if failed else ""

    plain = [c for c in cases if not c.slow and PROTOS[c.proto]["wire"] != "http"]
    direct = [c for c in cases if c not in plain]
    if plain:
        L.append("| case | protocol | gyre req/s | gyre p99 | gyre CPU/req | gyre RSS | gyre "
                 "errors | uWSGI req/s | uWSGI p99 | uWSGI CPU/req | uWSGI RSS | uWSGI errors | "
                 "req/s gyre/uWSGI (higher: gyre better) | CPU/req gyre/uWSGI (lower: gyre "
                 "better) | RSS gyre/uWSGI (lower: gyre better) |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for case in plain:
            cells = []
            for bname in SERVERS:
                runs = results[case.key][bname]
                b = bests[case.key][bname]
                cells += [fmt_rps(b and b["rps"]), fmt_ms(b and b["p99"]),
                          fmt_us(b and b["cpu_per_req"]), fmt_mib(runs[-1]["rss"] if runs
                                                                 else None),
                          fmt_errors(runs) + flagged(case, bname)]
            bg, bu = bests[case.key]["gyre"], bests[case.key]["uWSGI"]
            rg, ru = results[case.key]["gyre"], results[case.key]["uWSGI"]
            cells += [ratio(bg and bg["rps"], bu and bu["rps"]),
                      ratio(bg and bg["cpu_per_req"], bu and bu["cpu_per_req"]),
                      ratio(rg[-1]["rss"] if rg else None, ru[-1]["rss"] if ru else None)]
            L.append("| %s | %s | %s |" % (case.label, PROTOS[case.proto]["label"],
                                           " | ".join(cells)))
        L.append("")
    if direct:
        L.append("Slow clients, HTTP/1.1 direct, `--threads 4`: the /hello load's numbers. "
                 "*responses*: how many /hello responses wrk got in the best round. wrk counts "
                 "a timeout only for a response that comes later than its 5 s timeout; a "
                 "request that never gets an answer is counted nowhere, so 0 req/s with 0 "
                 "errors means wrk's 10 connections waited the whole run. *slow clients* (best "
                 "round): how many the server was answering / how many were still reading "
                 "when wrk finished / the KiB each had read by then (least-most); and how many "
                 "log lines of the server's say it timed out (uWSGI abandons a write that makes "
                 "no progress for its `--socket-timeout`, 4 s: \"uwsgi_response_write_body_do() "
                 "TIMEOUT\", the slow client's response cut short, a thread freed; the slow "
                 "client still reads what the kernel holds, so it is still reading).")
        L.append("")
        L.append("| case | gyre req/s | gyre responses | gyre p99 | gyre errors (timeouts) | gyre "
                 "slow clients | uWSGI req/s | uWSGI responses | uWSGI p99 | uWSGI errors "
                 "(timeouts) | uWSGI slow clients | req/s gyre/uWSGI (higher: gyre better) |")
        L.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|")
        for case in direct:
            cells = []
            for bname in SERVERS:
                runs = results[case.key][bname]
                b = bests[case.key][bname]
                sl = b and b.get("slow")
                slow_failed = any(r.get("slow_problems") for r in runs)
                cells += [fmt_rps(b and b["rps"]), "{:,}".format(b["requests"]) if b else "—",
                          fmt_ms(b and b["p99"]),
                          "%s (%d)" % (fmt_errors(runs), sum(r["timeout"] for r in runs))
                          + flagged(case, bname),
                          ("%d/%d answered, %d reading, %.0f-%.0f KiB%s"
                           % (sl["answered"], sl["k"], sl["reading"], sl["kib_min"],
                              sl["kib_max"], "; %d write timeout(s) in its log" % sl["gave_up"]
                              if sl.get("gave_up") else "") if sl else "—")
                          + (" (slow-client check FAILED)" if slow_failed else "")]
            bg, bu = bests[case.key]["gyre"], bests[case.key]["uWSGI"]
            cells.append(ratio(bg and bg["rps"], bu and bu["rps"]))
            L.append("| %s | %s |" % (case.label, " | ".join(cells)))
        L.append("")


def render_cache_redis(L, cases, results, checks):
    """The section "Cache on Redis (issue 12)"."""
    L.append("## Cache on Redis (issue 12)")
    L.append("")
    L.append("The cache group's set-up and `/cache?n=%d` (section \"Cache (issue 12)\"), with "
             "gyre's cache on Redis: `--cache2 ...,store=redis+unix://...`, a local "
             "redis-server on a unix socket started by bench.py; %d Redis round trips per "
             "request, each suspending only its core. uWSGI: its local shared-memory cache, as "
             "in the cache group (it has no Redis store). The row shows what a cache shared "
             "between hosts costs (compare gyre here with gyre in the cache group), not two "
             "implementations of one thing. CPU/request counts gyre's master and workers, not "
             "Redis." % (CACHE_OPS, 2 * CACHE_OPS))
    L.append("")
    L.append("| case | gyre (Redis) req/s | gyre p99 | gyre CPU/req | gyre errors | uWSGI "
             "(local) req/s | uWSGI p99 | uWSGI CPU/req | uWSGI errors | req/s gyre/uWSGI |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        cells, bests = [], []
        for bname in SERVERS:
            runs = results[case.key][bname]
            b = best(runs)
            bests.append(b)
            failed = any(p.startswith(bname + " ") for p in checks[case.key])
            cells += [fmt_rps(b and b["rps"]), fmt_ms(b and b["p99"]),
                      fmt_us(b and b["cpu_per_req"]),
                      fmt_errors(runs) + (" (route check FAILED)" if failed else "")]
        bg, bu = bests
        cells.append(ratio(bg and bg["rps"], bu and bu["rps"]))
        L.append("| %s | %s |" % (case.label, " | ".join(cells)))
    L.append("")


def render_cache(L, args, cases, results, checks):
    """The section "Cache (issue 12)": uwsgi.cache_* with 2 workers on one cache."""
    L.append("## Cache (issue 12)")
    L.append("")
    L.append("Both servers `--tornado 100 --greenlet %s` (a master, 2 workers sharing one "
             "cache), `nginx-conf/uwsgi.conf` in front. `/cache?n=%d`: %d `uwsgi.cache_get` + "
             "%d `uwsgi.cache_update` of 100-byte values over 64 keys per request (bench/app.py); "
             "`/hello` is the same set-up without a cache call. CPU/request: the master's and "
             "workers' CPU over the run / responses. Ratios gyre/uWSGI: req/s higher is better "
             "for gyre, CPU/request lower." % (" ".join(CACHE_ARGS), CACHE_OPS, CACHE_OPS,
                                                CACHE_OPS))
    L.append("")
    L.append("| case | gyre req/s | gyre p99 | gyre CPU/req | gyre errors | uWSGI req/s | uWSGI p99 "
             "| uWSGI CPU/req | uWSGI errors | req/s gyre/uWSGI | CPU/req gyre/uWSGI |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        cells, bests = [], []
        for bname in SERVERS:
            runs = results[case.key][bname]
            b = best(runs)
            bests.append(b)
            failed = any(p.startswith(bname + " ") for p in checks[case.key])
            cells += [fmt_rps(b and b["rps"]), fmt_ms(b and b["p99"]),
                      fmt_us(b and b["cpu_per_req"]),
                      fmt_errors(runs) + (" (route check FAILED)" if failed else "")]
        bg, bu = bests
        cells += [ratio(bg and bg["rps"], bu and bu["rps"]),
                  ratio(bg and bg["cpu_per_req"], bu and bu["cpu_per_req"])]
        L.append("| %s | %s |" % (case.label, " | ".join(cells)))
    L.append("")


def case_by_key(cases, key):
    return next((c for c in cases if c.key == key), None)


def issue13_numbers(cases_run, results):
    """What the issue 13 targets need from the wrk rows (None where a row did not run): the
    floor case's best CPU/request per backend, and the 200-core suspend row's best round."""
    out = {"floor": None, "suspend": None}
    c = case_by_key(cases_run, "floor hello")
    if c:
        out["floor"] = {n: best(results[c.key][n]) for n in case_servers(c)}
    c = case_by_key(cases_run, "suspend 20 ms 200 cores")
    if c:
        out["suspend"] = {n: best(results[c.key][n]) for n in SERVERS}
        out["suspend_ideal"] = ideal_rps(c)
    return out


def render_issue13(L, cases_run, results, checks):
    """The section "Suspend cost and the C floor (issue 13)"."""
    L.append("## Suspend cost and the C floor (issue 13)")
    L.append("")
    L.append("- **hello world behind nginx, with the floor**: gyre, uWSGI (`--tornado 100 "
             "--greenlet`) and the C responder (bench/c_responder.c: one process, epoll, reads "
             "one uwsgi packet, answers an 11-byte `Hello World`, closes; built by bench.py "
             "into build/bench/) behind the same `nginx-conf/uwsgi.conf`, the same wrk, rounds "
             "interleaved gyre/uWSGI/C responder. CPU/request: the backend process's CPU over "
             "the run / responses; each server's ÷ the C responder's in the same run (issue "
             "13's target for gyre: ≤ 1.2).")
    L.append("- **suspend 20 ms, c=200**: `/suspend` (greenlet + `IOLoop.call_later(0.02, "
             "me.switch)`) at 200 connections. The ideal is min(connections, cores) / 20 ms: "
             "5,000 req/s on the tornado group's 100 cores, 10,000 req/s on 200 (`--tornado "
             "200`, the new row; targets for gyre: ≥ 0.95 of it at ≤ 40 µs CPU/request).")
    L.append("- From each backend's best round (highest req/s); errors summed over all rounds.")
    L.append("")
    c = case_by_key(cases_run, "floor hello")
    if c:
        bests = {n: best(results[c.key][n]) for n in case_servers(c)}
        floor = bests[RESPONDER]
        L.append("| hello world, c=50, uwsgi via nginx | req/s | p99 | CPU/req | of which "
                 "user / kernel | CPU/req ÷ C responder's | errors |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for n in case_servers(c):
            b = bests[n]
            failed = any(p.startswith(n + " ") for p in checks[c.key])
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                n, fmt_rps(b and b["rps"]), fmt_ms(b and b["p99"]), fmt_us(b and b["cpu_per_req"]),
                "%s / %s" % (fmt_us(b and b["user_per_req"]), fmt_us(b and b["sys_per_req"])),
                ratio(b and b["cpu_per_req"], floor and floor["cpu_per_req"]),
                fmt_errors(results[c.key][n]) + (" (route check FAILED)" if failed else "")))
        L.append("")
    rows = [x for x in (case_by_key(cases_run, "suspend 20 ms"),
                        case_by_key(cases_run, "suspend 20 ms 200 cores")) if x]
    if rows:
        L.append("| case | cores | ideal req/s | gyre req/s | gyre ÷ ideal | gyre CPU/req | gyre "
                 "p99 | gyre errors | uWSGI req/s | uWSGI ÷ ideal | uWSGI CPU/req | uWSGI p99 | "
                 "uWSGI errors |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in rows:
            ideal = ideal_rps(c)
            cells = []
            for n in SERVERS:
                b = best(results[c.key][n])
                failed = any(p.startswith(n + " ") for p in checks[c.key])
                cells += [fmt_rps(b and b["rps"]),
                          "%.2f" % (b["rps"] / ideal) if b and b["rps"] else "—",
                          fmt_us(b and b["cpu_per_req"]), fmt_ms(b and b["p99"]),
                          fmt_errors(results[c.key][n])
                          + (" (route check FAILED)" if failed else "")]
            L.append("| %s | %d | %s | %s |" % (c.label, PROTOS[c.proto].get("cores", 100),
                                                fmt_rps(ideal), " | ".join(cells)))
        L.append("")


def pass_fail(value, limit, fmt, higher_is_better=False):
    """(measured text, PASS/FAIL/—) of one target."""
    if value is None or value != value:
        return "not measured", "—"
    ok = value >= limit if higher_is_better else value <= limit
    return fmt % value, "PASS" if ok else "**FAIL**"


def render_issue13_targets(numbers, parked_results):
    """The table "Issue 13 targets": each target, what this run measured, pass or fail."""
    L = ["## Issue 13 targets", "",
         "Each target of issue 13 against this run's numbers (\"not measured\": its group was "
         "not run, see `--only`). Ratios are within this one run.", "",
         "| target | measured (gyre) | uWSGI, for reference | result |", "|---|---:|---:|---|"]
    g = u = None
    if parked_results:
        n = max(k[1] for k in parked_results)
        g, u = parked_results.get(("gyre", n)), parked_results.get(("uWSGI", n))
    gm = g and g.get("hwm", 0) / 1024.0
    um = u and u.get("hwm", 0) / 1024.0
    m, r = pass_fail(gm, 100.0, "%.1f MiB")
    L.append("| %s parked requests: peak RSS ≤ 100 MiB | %s | %s | %s |"
             % ("{:,}".format(n) if parked_results else "10,000", m, fmt_mib(um), r))
    m, r = pass_fail(gm / um if gm and um else None, 0.5, "%.2fx")
    L.append("| the same: peak RSS ≤ 0.5× uWSGI's | %s | — | %s |" % (m, r))
    sus = numbers.get("suspend")
    ideal = numbers.get("suspend_ideal")
    sg, su = (sus["gyre"], sus["uWSGI"]) if sus else (None, None)
    m, r = pass_fail(sg["rps"] / ideal if sg and sg["rps"] else None, 0.95, "%.2f",
                     higher_is_better=True)
    L.append("| suspend 20 ms, c=200, 200 cores: ≥ 0.95 of the ideal 10,000 req/s | %s | %s | "
             "%s |" % (m if not sg else "%s (%s req/s)" % (m, fmt_rps(sg["rps"])),
                       "%.2f" % (su["rps"] / ideal) if su and su["rps"] else "—", r))
    m, r = pass_fail(sg and sg["cpu_per_req"], 40.0, "%.0f µs")
    L.append("| the same: server CPU/request ≤ 40 µs | %s | %s | %s |"
             % (m, fmt_us(su and su["cpu_per_req"]), r))
    fl = numbers.get("floor")
    fc = fl and fl[RESPONDER] and fl[RESPONDER]["cpu_per_req"]
    fg = fl and fl["gyre"] and fl["gyre"]["cpu_per_req"]
    fu = fl and fl["uWSGI"] and fl["uWSGI"]["cpu_per_req"]
    m, r = pass_fail(fg / fc if fg and fc else None, 1.2, "%.2fx")
    L.append("| hello world behind nginx: CPU/request ≤ 1.2× the C responder's | %s | %s | %s |"
             % (m if not fc else "%s (%s vs %s)" % (m, fmt_us(fg), fmt_us(fc)),
                "%.2fx (%s)" % (fu / fc, fmt_us(fu)) if fu and fc else "—", r))
    L.append("")
    return "\n".join(L) + "\n"


def render(args, cases_run, info, results, checks, probes, started, finished, load_start,
           load_end, background, notes, backends):
    L = []
    tornado_cases = [c for c in cases_run if PROTOS[c.proto]["group"] == TORNADO_GROUP]
    threads_cases = [c for c in cases_run if PROTOS[c.proto]["group"] == THREADS_GROUP]
    cache_cases = [c for c in cases_run if PROTOS[c.proto]["group"] == CACHE_GROUP]
    cache_redis_cases = [c for c in cases_run if PROTOS[c.proto]["group"] == CACHE_REDIS_GROUP]
    L.append("# gyre vs uWSGI (Tornado loop engine + greenlet; and --threads): uwsgi and FastCGI "
             "behind nginx, HTTP direct")
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
    L.append("- background CPU (the machine busy while none of our processes ran, 3 s, in %% of "
             "one CPU, out of %d%%): %s before the runs, %s after. Other engineers share this "
             "machine." % (100 * (os.cpu_count() or 1), fmt_pct(background[0]),
                           fmt_pct(background[1])))
    L.append("")
    L.append("## Setup")
    L.append("")
    L.append("- wrk `-t2 --latency --timeout 5s`; every nginx has `worker_processes 1`, a unix "
             "socket to its backend, request and response buffering on (the defaults). "
             "Protocols:")
    L.append("  - **uwsgi via nginx**: `nginx-conf/uwsgi.conf` as is (`uwsgi_pass`, one "
             "connection per request).")
    L.append("  - **FastCGI via nginx, keep-conn**: `nginx-conf/fastcgi.conf` as is "
             "(`fastcgi_pass`, `fastcgi_keep_conn on`, upstream `keepalive 32`).")
    L.append("  - **FastCGI via nginx, no keep-conn**: the same template with its "
             "`fastcgi_keep_conn on;` and `keepalive 32;` lines commented out by bench.py (one "
             "connection per request).")
    L.append("  - **HTTP/1.1 direct, no nginx**: wrk straight at the backend's `--http-socket` "
             "on 127.0.0.1 (wrk keeps its 50 connections open; it reconnects whenever the server "
             "closes one).")
    if threads_cases:
        L.append("  - **uwsgi via nginx, --threads 8** and **HTTP/1.1 direct, --threads 4**: the "
                 "same two set-ups with `--threads N` instead of `--tornado 100 --greenlet` "
                 "(section \"Threads (issue 11)\").")
    if args.only:
        L.append("- Only the group(s) %s were run (`--only`)." % ", ".join(args.only))
    L.append("- Each protocol has its own gyre and uWSGI processes (one process each, no "
             "master, `bench/app.py`), started before that protocol's cases and stopped after "
             "them (`gyre` below is the run's private copy of ./gyre, see Machine):")
    for b in backends:
        L.append("  - %s, %s: `%s`" % (b.name, b.proto, " ".join(
            os.path.basename(a) if a.startswith(b.tmp) else a for a in b.argv)))
    L.append("- Interleaved: for each case, %d round(s) of gyre then uWSGI; each measured run "
             "(%d s) follows a %d s warm-up with the same parameters."
             % (args.rounds, args.duration, args.warmup))
    L.append("- Before each case, its route is requested once per backend through the path wrk "
             "uses (nginx, or the backend directly for HTTP); status 200 and the exact body "
             "are required. A failure is flagged in the table and listed in the notes.")
    L.append("- req/s, p99 and CPU are from each backend's **best** round (highest req/s, a "
             "round the backend survived if there is one); errors are the **sum over all "
             "measured rounds**: non-2xx/3xx responses + socket errors (connect/read/write/"
             "timeout) as wrk reports them (wrk's req/s counts error responses too). CPU is "
             "the backend process's own CPU (user+system, /proc) over the run, in % of one CPU. "
             "Every round is in the detail table.")
    L.append("")
    if tornado_cases:
        L.append("## Results")
        L.append("")
        L.append("| case | protocol | gyre req/s | gyre p99 | gyre errors | gyre CPU | uWSGI req/s "
                 "| uWSGI p99 | uWSGI errors | uWSGI CPU | ratio gyre/uWSGI (req/s) |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in tornado_cases:
        cells = []
        bests = []
        for bname in SERVERS:
            runs = results[case.key][bname]
            b = best(runs)
            bests.append(b)
            failed = any(p.startswith(bname + " ") for p in checks[case.key])
            cells += [fmt_rps(b and b["rps"]), fmt_ms(b and b["p99"]),
                      fmt_errors(runs) + (" (route check FAILED)" if failed else ""),
                      fmt_pct(b["backend_cpu"]) if b else "—"]
        bg, bu = bests
        ratio = "%.2fx" % (bg["rps"] / bu["rps"]) if bg and bu and bu["rps"] else "—"
        L.append("| %s | %s | %s | %s |" % (case.label, PROTOS[case.proto]["label"],
                                            " | ".join(cells), ratio))
    if tornado_cases:
        L.append("")
    if threads_cases:
        render_threads(L, args, threads_cases, results, checks)
    if cache_cases:
        render_cache(L, args, cache_cases, results, checks)
    if cache_redis_cases:
        render_cache_redis(L, cache_redis_cases, results, checks)
    if any(PROTOS[c.proto]["group"] == ISSUE13_GROUP for c in cases_run):
        render_issue13(L, cases_run, results, checks)
    if probes:
        L.append("## Connection reuse (raw probes, straight to each backend's socket)")
        L.append("")
        L.append("Two /hello requests on one connection, before the protocol's cases:")
        L.append("")
        for p in probes:
            L.append("- " + p)
        L.append("")
    if cases_run:  # (none when only the parked or websocket groups ran)
        L.append("## Every round")
        L.append("")
        L.append("CPU columns are in %% of one CPU over the run (%d CPUs = %d%%). *other* is the "
                 "machine's busy time (/proc/stat) minus this backend, its nginx and wrk: work by "
                 "other people (much of it invisible from here, other PID namespaces), plus kernel "
                 "time charged to no process; i.e. the noise. *log* is how many lines the backend "
                 "wrote to its own log during the run (request logging is off: these are warnings "
                 "and errors); *nginx err* the lines nginx added to its error.log (the expected "
                 "\"request body is buffered to a temporary file\" warnings left out). *upstream "
                 "conns* is how many connections to the backend's socket were still established "
                 "0.3 s after the run, i.e. idle in nginx's keepalive pool (— for direct HTTP). "
                 "RSS is the backend's resident memory after the run."
                 % (os.cpu_count() or 1, 100 * (os.cpu_count() or 1)))
        L.append("")
        L.append("| case | protocol | round | backend | req/s | p50 | p99 | errors (non2xx/conn/"
                 "read/"
                 "write/timeout) | log | nginx err | upstream conns | backend CPU | nginx CPU | "
                 "wrk CPU | other CPU | RSS |")
        L.append("|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for case in cases_run:
            for i in range(args.rounds):
                for bname in case_servers(case):
                    runs = results[case.key][bname]
                    if i >= len(runs):
                        continue
                    r = runs[i]
                    L.append("| %s | %s | %d | %s | %s | %s | %s | %d (%d/%d/%d/%d/%d) | %d | %s "
                             "| %s "
                             "| %s | %s | %s | %s | %s |" % (
                                 case.label, PROTOS[case.proto]["label"], i + 1,
                                 bname + (" **crashed**" if r.get("crashed") else "")
                                 + (" **wrk failed**" if r.get("failed") else ""),
                                 fmt_rps(r["rps"]),
                                 fmt_ms(r["p50"]), fmt_ms(r["p99"]), r["errors"], r["non2xx"],
                                 r["connect"], r["read"], r["write"], r["timeout"], r["log_lines"],
                                 "—" if r["nginx_errors"] is None else r["nginx_errors"],
                                 "—" if r["upstream_conns"] is None else r["upstream_conns"],
                                 fmt_pct(r["backend_cpu"]), fmt_pct(r["nginx_cpu"]),
                                 fmt_pct(r["wrk_cpu"]), fmt_pct(r["other_cpu"]),
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

def build_responder(dest):
    """bench/c_responder.c, compiled with the project's warnings into build/bench/ and copied
    to dest (the run's temp dir, like gyre's binary)."""
    os.makedirs(os.path.dirname(RESPONDER_BIN), exist_ok=True)
    argv = ["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
            "-Wmissing-prototypes", "-o", RESPONDER_BIN, RESPONDER_SRC]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit("building the C responder failed: %s\n%s"
                         % (" ".join(argv), p.stdout.decode("utf-8", "replace")))
    shutil.copy2(RESPONDER_BIN, dest)


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
    ap.add_argument("--duration", type=int, default=6, help="seconds per measured run (6)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="seconds of warm-up before each run (2; wrk takes whole seconds)")
    ap.add_argument("--rounds", type=int, default=2, help="measured rounds per backend per case (2)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    ap.add_argument("--only", choices=GROUPS, action="append",
                    help="run only this group of cases (repeatable): %s = the Tornado loop "
                    "engine cases, %s = the --threads cases (issue 11), %s = uwsgi.cache_* "
                    "with 2 workers (issue 12), %s = the same with gyre's cache on Redis, %s = "
                    "hello world beside the C responder and the 20 ms suspend on 200 cores "
                    "(issue 13), %s = memory of 1,000 and 10,000 parked requests (issue 13, "
                    "bench/parked.py), %s = websocket echo and 10,000 idle websockets (issue "
                    "14, bench/wsbench.py); default: all" % GROUPS)
    args = ap.parse_args()
    groups = args.only or list(GROUPS)
    cases_run = [c for c in CASES if PROTOS[c.proto]["group"] in groups]
    parked_section, parked_results, ws_section = "", {}, ""

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(_cleanup_all)

    if not os.access(GYRE, os.X_OK):
        raise SystemExit("no gyre binary at %s: run `make gyre` first" % GYRE)
    for tool in ("nginx", "uwsgi", "wrk", "ss"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit("%s not found: run `make deps`" % tool)
    plugins = uwsgi_plugins()
    # Fail now, not halfway through, if the FastCGI template no longer has what we remove.
    with open(FASTCGI_TEMPLATE) as f:
        without_keep_conn(f.read())

    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    log("load average now: %.2f %.2f %.2f on %d CPUs" % (load_start + (os.cpu_count(),)))
    tmp = tempfile.mkdtemp(prefix="gyre-bench-")
    # Our own copy: other people rebuild ./gyre in this shared tree, and a run must not mix
    # binaries (a process started after a rebuild would run the new one).
    gyre_bin = os.path.join(tmp, "gyre")
    shutil.copy2(GYRE, gyre_bin)
    gyre_info = gyre_provenance(gyre_bin)
    log("gyre: " + gyre_info)
    post_script = os.path.join(tmp, "post.lua")
    with open(post_script, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.body = string.rep("a", %d)\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n' % POST_BYTES)

    def gyre_argv(spec, addr):
        if spec["group"] == THREADS_GROUP:
            engine = ["--threads", str(spec["threads"])]
        else:
            engine = ["--tornado", str(spec.get("cores", 100)), "--greenlet"]
        if spec["group"] == CACHE_GROUP:
            engine += CACHE_ARGS
        if spec.get("redis"):  # the cache group's, with the store on the bench's redis-server
            engine += CACHE_ARGS[:-1] + [CACHE_ARGS[-1] + ",store=redis+unix://" + redis_sock]
        return [gyre_bin, spec["flag"], addr, "--wsgi-file", APP] + engine + ["--disable-logging"]

    def uwsgi_argv(spec, addr):
        if spec["group"] == THREADS_GROUP:  # the plain python3 plugin: no loop engine
            head = ["uwsgi", "--plugin", "python3"]
            engine = ["--threads", str(spec["threads"])]
        else:
            head = ["uwsgi", "--plugins", plugins]
            engine = ["--tornado", str(spec.get("cores", 100)), "--greenlet"]
        if spec["group"] in (CACHE_GROUP, CACHE_REDIS_GROUP):
            engine += CACHE_ARGS
        return head + [spec["flag"], addr, "--wsgi-file", APP] + engine + [
            "--disable-logging", "--listen", "1024"]

    def responder_argv(spec, addr):
        return [responder_bin, addr]

    redis_sock = os.path.join(tmp, "redis.sock")
    responder_bin = os.path.join(tmp, "c_responder")
    if any(c.proto == "floor" for c in cases_run):
        build_responder(responder_bin)

    all_backends, notes, probes = [], [], []
    bg_start = bg_end = float("nan")
    results = {c.key: {s: [] for s in case_servers(c)} for c in cases_run}
    checks = {c.key: [] for c in cases_run}
    http_closes_noted = set()
    try:
        log("measuring the background load (3 s, none of our processes running)")
        bg_start = background_cpu(3)
        log("background: %.0f%% of one CPU" % bg_start)

        total = sum(len(case_servers(c)) for c in cases_run) * args.rounds
        k = 0
        for proto, spec in PROTOS.items():
            cases = [c for c in cases_run if c.proto == proto]
            if not cases:
                continue
            group_backends, group_nginxes = [], []
            redis = None
            try:
                if spec.get("redis"):
                    redis = start_redis(tmp, redis_sock)
                    log("redis-server up for %s (pid %d) on %s" % (spec["label"], redis.pid,
                                                                    redis_sock))
                targets = []
                runners = {"gyre": (gyre_argv, signal.SIGTERM, (0,)),
                           # Without a master, SIGINT is uWSGI's plain exit, with status 30.
                           "uWSGI": (uwsgi_argv, signal.SIGINT, (0, 30)),
                           RESPONDER: (responder_argv, signal.SIGTERM, (0,))}
                for name in spec.get("servers", SERVERS):
                    argv_fn, stop_sig, ok_exit = runners[name]
                    b = Backend(name, proto, argv_fn, tmp, stop_sig, ok_exit)
                    all_backends.append(b)
                    group_backends.append(b)
                    b.start()
                    ng = None
                    if spec["template"]:
                        ng = Nginx(tmp, b)
                        group_nginxes.append(ng)
                    targets.append(Target(b, ng))
                    log("%s up for %s (pid %d): %s%s" % (name, spec["label"], b.proc.pid,
                                                         spec["wire"], " on " + b.addr if not ng
                                                         else " behind nginx " + ng.url))
                probe_state = {}
                if spec["probe"]:
                    for t in targets:
                        kept, text = t.backend.keepalive_probe()
                        probe_state[t.backend.name] = kept
                        probes.append("%s: %s" % (spec["label"], text))
                        log("probe: " + probes[-1])
                        if (spec["wire"] == "http" and kept == "closed"
                                and t.backend.name not in http_closes_noted):
                            http_closes_noted.add(t.backend.name)
                            notes.append(
                                "%s over direct HTTP closes the connection after every response "
                                "(its --http-socket does not do HTTP/1.1 keep-alive), without a "
                                "`Connection: close` header. wrk therefore sends its next request "
                                "on a connection the server has closed, counts a socket read "
                                "error, and reconnects: expect about one read error per "
                                "response. Each such error is a request that got no answer "
                                "(written to a closed connection); the responses wrk did count "
                                "are complete (non-2xx listed separately)." % t.backend.name)

                for case in cases:
                    # A backend that died since its last run (or was stopped by someone else on
                    # this shared machine) is recorded and restarted before its route is checked.
                    for t in targets:
                        t.backend.check_alive("the idle time before \"%s\"" % case_title(case))
                    problems = check_case(case, targets)
                    checks[case.key] = problems
                    for p in problems:
                        log("!! route check failed: " + p)
                        notes.append("route check before \"%s\" FAILED: %s" % (case_title(case), p))
                    for rnd in range(args.rounds):
                        for t in targets:
                            b = t.backend
                            k += 1
                            label = "%s round %d" % (case_title(case), rnd + 1)
                            # Died while idle (since its last run)? Recorded, and restarted.
                            b.check_alive("the idle time before " + label)
                            if args.warmup > 0:
                                try:
                                    w = parse_wrk(run_wrk(t.url + case.path, case.conns,
                                                          args.warmup, post_script
                                                          if case.method == "POST" else None,
                                                          tmp))
                                    if w["errors"]:
                                        notes.append("%s, warm-up of %s: %d errors (not counted "
                                                     "in the table)" % (b.name, label,
                                                                        w["errors"]))
                                except RuntimeError as e:
                                    notes.append("%s, warm-up of %s failed (the measured run "
                                                 "still follows):\n%s" % (b.name, label, e))
                                b.check_alive("the warm-up of " + label)
                                time.sleep(0.3)
                            try:
                                r = measure(t, case, min(args.duration, SLOW_WRK_MAX)
                                            if case.slow else args.duration, post_script, tmp)
                            except RuntimeError as e:  # wrk itself failed: no numbers
                                r = failed_run(str(e))
                            results[case.key][b.name].append(r)
                            log("[%2d/%d] %-52s %-5s %9s req/s  p99 %-10s errors %d  cpu %s "
                                "other %s" % (k, total, label, b.name, fmt_rps(r["rps"]),
                                              fmt_ms(r["p99"]), r["errors"],
                                              fmt_pct(r["backend_cpu"]), fmt_pct(r["other_cpu"])))
                            if r["slow"]:
                                sl = r["slow"]
                                log("      slow clients: %d/%d answered, %d still reading at "
                                    "wrk's end, %.0f-%.0f KiB read each, fastest %.1f KiB/s; "
                                    "wrk started %.1f s after them"
                                    % (sl["answered"], sl["k"], sl["reading"], sl["kib_min"],
                                       sl["kib_max"], sl["rate_max"], sl["start"]))
                            for p in r["slow_problems"]:
                                log("!! slow-client check failed: " + p)
                                notes.append("%s, %s: slow-client check FAILED: %s"
                                             % (b.name, label, p))
                            if r["errors"] or r["rps"] is None:
                                notes.append("%s, %s: %d errors (non-2xx %d, connect %d, read %d, "
                                             "write %d, timeout %d) out of %d responses; wrk "
                                             "said:\n%s"
                                             % (b.name, label, r["errors"], r["non2xx"],
                                                r["connect"], r["read"], r["write"], r["timeout"],
                                                r["requests"], r["raw"].strip()))
                            r["crashed"] = not b.check_alive(label)
                            time.sleep(0.5)

                    for b in group_backends:
                        runs = results[case.key][b.name]
                        if proto == "fcgi-keep" and probe_state.get(b.name) == "closed":
                            notes.append(
                                "%s ignores FCGI_KEEP_CONN and closes each FastCGI connection "
                                "(probe above), so nginx's keepalive pool keeps handing out "
                                "connections it has closed: over the measured rounds of \"%s\" "
                                "nginx logged %d error line(s) about its upstream (details "
                                "below, if any) while wrk saw %d error(s); nginx retries a "
                                "request that fails on a pooled connection on a new one, at the "
                                "cost of the failed attempt."
                                % (b.name, case_title(case),
                                   sum(r["nginx_errors"] or 0 for r in runs),
                                   sum(r["errors"] for r in runs)))
                        for key, what in (("log_msgs", "%s's own log"),
                                          ("nginx_error_msgs", "nginx's error.log (%s)")):
                            msgs = sum((r[key] for r in runs), collections.Counter())
                            if msgs:
                                notes.append("%s, %s: %d line(s) in %s during the measured runs, "
                                             "by message (count, message):\n%s"
                                             % (b.name, case_title(case), sum(msgs.values()),
                                                what % b.name, "\n".join(
                                                    "%6d  %s" % (n, m)
                                                    for m, n in msgs.most_common(8))))
            finally:
                for b in group_backends:
                    try:
                        b.stop()
                    except Exception as e:
                        notes.append("%s (%s): trouble stopping it: %s" % (b.name, proto, e))
                for n in group_nginxes:
                    try:
                        n.stop()
                    except Exception:
                        pass
                if redis:
                    kill_proc(redis, signal.SIGTERM, 10)
        if PARKED_GROUP in groups:
            log("parked requests: %s (bench/parked.py)" % ", ".join(map(str, PARKED_COUNTS)))
            parked_section, parked_results = parked.run(PARKED_COUNTS, gyre_bin)
        if WEBSOCKET_GROUP in groups:
            log("websockets: echo over %d sockets, %s idle (bench/wsbench.py)"
                % (wsbench.ECHO_SOCKETS, "{:,}".format(WS_IDLE)))
            ws_section = wsbench.run(gyre_bin, args.duration, args.warmup, WS_IDLE,
                                     rounds=args.rounds)[0]
        log("measuring the background load again (3 s, none of our processes running)")
        bg_end = background_cpu(3)
    finally:
        _cleanup_all()
        for b in all_backends:
            notes.extend(b.events)
        shutil.rmtree(tmp, ignore_errors=True)

    finished = datetime.datetime.now(datetime.timezone.utc)
    report = render(args, cases_run, machine_info(gyre_info), results, checks, probes, started,
                    finished, load_start, os.getloadavg(), (bg_start, bg_end), notes,
                    all_backends)
    if parked_section:
        report += "\n" + parked_section
    if ISSUE13_GROUP in groups or PARKED_GROUP in groups:
        report += "\n" + render_issue13_targets(issue13_numbers(cases_run, results),
                                                 parked_results)
    if ws_section:
        report += "\n" + ws_section
    print(report)
    if not args.no_write:
        with open(RESULTS, "w") as f:
            f.write(report)
        log("wrote " + os.path.relpath(RESULTS, ROOT))


if __name__ == "__main__":
    main()
