#!/usr/bin/python3
"""WebSockets (issue 14): echo round trips over 50 sockets and the memory of 10,000 idle
websockets, gyre and Debian's uWSGI side by side in one run, the same app (bench/ws_app.py).

    /usr/bin/python3 bench/wsbench.py [--duration 6] [--idle 10000] [--only echo|idle]

Servers (one process each, no master, `--http-socket 127.0.0.1:PORT`, no nginx):
    gyre           gyre --tornado C --greenlet
    uWSGI tornado  uwsgi --plugins python3,greenlet_python3,tornado_python3 --tornado C --greenlet
    uWSGI async    uwsgi --plugins python3,greenlet_python3 --async C --greenlet
(C = 100 for the echo rows, N + 16 for N idle websockets; gyre also `--max-conns C`, as in
bench/parked.py, since by default it keeps part of the fd limit in reserve.)

The client is this script: raw RFC 6455 over plain sockets, no library. The handshake is a real
one (a random Sec-WebSocket-Key, the server's Sec-WebSocket-Accept checked). Client frames are
masked, as RFC 6455 requires: each socket cycles through MASKS precomputed masked frames (each
with its own random key), so that masking costs the client nothing per message; the server
unmasks every frame all the same.

Echo: ECHO_SOCKETS websockets on /echo, each with one message in flight (a 32-byte text frame;
the next is sent when the echo is back and checked byte for byte), driven by one selectors
loop. After a warm-up, a measured run of --duration seconds: round trips/s, the server's CPU
(user+system, /proc) per round trip, and the client's own CPU in % of one core. The client is
the limit if it is near 100%: the row then says so.

Idle: N websockets on /park (the app waits in websocket_recv), opened IDLE_BATCH handshakes at a
time, then the bench waits until /parked says N (bounded) and
reads the server's VmRSS and VmHWM: RSS per idle websocket = (RSS - RSS idle) / N, the idle RSS
read after one /hello. uWSGI pings an idle websocket after 30 s (--websocket-ping-freq) and
closes it 3 s later without a pong: the measurement must be over by then (each run's time to
open all N is printed).

A server whose uwsgi module has no websocket_handshake (/has-ws says "no") gets a row saying so
("no websocket API yet") instead of numbers; any other failure is reported in its row, and the
other servers still run.

Prints a Markdown section; bench.py (`make bench`, `--only websocket`) adds it to RESULTS.md.
"""
import argparse
import base64
import hashlib
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
GYRE = os.path.join(ROOT, "gyre")
UWSGI = shutil.which("uwsgi") or "/usr/bin/uwsgi"
APP = os.path.join(BENCH, "ws_app.py")
C_CLIENT_SRC = os.path.join(BENCH, "ws_echo_client.c")
C_CLIENT_BIN = os.path.join(ROOT, "build", "bench", "ws_echo_client")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

ECHO_SOCKETS = 50
ECHO_CORES = 100
PAYLOAD = b"0123456789abcdef" * 2   # 32 bytes: a short chat message
MASKS = 64
IDLE_SPARE = 16
IDLE_BATCH = 100    # handshakes in flight at once while opening the idle websockets
IDLE_TIMEOUT = 120  # s for all N idle websockets to be open and waiting (bounded)
STALL = 10          # s without any echo: the server has stopped answering
CLIENT_LIMIT = 90   # % of one core: above it the client, not the server, may be the limit
SERVERS = ("gyre", "uWSGI tornado", "uWSGI async")
NO_API = "no websocket API yet"


def server_argv(kind, port, cores, gyre):
    common = ["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", APP]
    if kind == "gyre":
        return [gyre, *common, "--tornado", str(cores), "--greenlet", "--max-conns",
                str(cores), "--listen", "1024", "--disable-logging"]
    if kind == "uWSGI tornado":
        return [UWSGI, "--plugins", "python3,greenlet_python3,tornado_python3", *common,
                "--tornado", str(cores), "--greenlet", "--listen", "1024", "--disable-logging"]
    return [UWSGI, "--plugins", "python3,greenlet_python3", *common, "--async", str(cores),
            "--greenlet", "--listen", "1024", "--disable-logging"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=10):
    """(status, body) of one HTTP/1.0 GET on its own connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("%s not in /proc/%d/status" % (field, pid))


def machine_busy():
    """CPU seconds (all CPUs) not idle since boot (/proc/stat): with the server's and the
    client's, what else kept the machine busy during a run (other people's work)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return (sum(vals[:8]) - vals[3] - vals[4]) / CLK_TCK


def self_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Server:
    def __init__(self, kind, cores, tmp, gyre):
        self.kind = kind
        self.port = free_port()
        self.log = os.path.join(tmp, "%s-%d.log" % (kind.replace(" ", "_"), self.port))
        self.argv = server_argv(kind, self.port, cores, gyre)
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("exited at start (status %s): %s" % (self.proc.returncode,
                                                                        self.log_tail()))
            try:
                if http_get(self.port, "/hello", 2) == (200, b"Hello, World!"):
                    break
            except (OSError, ValueError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("did not answer /hello within 30 s: " + self.log_tail())
            time.sleep(0.05)

    def log_tail(self, n=8):
        try:
            with open(self.log, "rb") as f:
                return " / ".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def has_ws(self):
        return http_get(self.port, "/has-ws") == (200, b"yes")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: pgid == pid
        except ProcessLookupError:
            pass
        self.proc.wait(10)


# ---- RFC 6455, the client side ------------------------------------------------------------------

class NoWebsocketAPI(RuntimeError):
    """The server's uwsgi module does not provide the websocket API (ws_app.py's 501)."""


def masked_frame(payload, opcode=0x1, key=None):
    """One final client frame: FIN + opcode, the MASK bit, the length, the key, the payload
    XORed with the key (RFC 6455 5.3)."""
    key = key or os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    k = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
    return head + key + masked


def server_frame(payload, opcode=0x1):
    """What an echo of `payload` must be on the wire: a final, unmasked frame."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def ws_start(port, path, timeout=10):
    """A connection with its handshake request sent: (socket, key) for ws_finish."""
    key = base64.b64encode(os.urandom(16))
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), port, key))
    except BaseException:
        s.close()
        raise
    return s, key


def ws_connect(port, path, timeout=10):
    """A connected, handshaken websocket (a blocking socket), or RuntimeError saying why not."""
    return ws_finish(*ws_start(port, path, timeout), path)


def ws_finish(s, key, path):
    """The handshake's answer read and checked: the websocket, or the socket closed and
    RuntimeError saying why not."""
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("handshake on %s: the server closed after %r" % (path,
                                                                                    data[:200]))
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if lines[0].split(b" ")[1:2] == [b"501"]:
            raise NoWebsocketAPI(NO_API)
        if lines[0].split(b" ")[1:2] != [b"101"]:
            raise RuntimeError("handshake on %s: %r" % (path, data[:200]))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        got = [x.split(b":", 1)[1].strip() for x in lines[1:]
               if x.split(b":", 1)[0].strip().lower() == b"sec-websocket-accept"]
        if got != [accept]:
            raise RuntimeError("handshake on %s: Sec-WebSocket-Accept %r, expected %r"
                               % (path, got, accept))
        if rest:
            raise RuntimeError("handshake on %s: %d unexpected bytes after the response"
                               % (path, len(rest)))
        return s
    except BaseException:
        s.close()
        raise


def ws_close(s):
    """A masked close frame (1000), then the socket closed without waiting for the answer."""
    try:
        s.setblocking(False)
        s.send(masked_frame(b"\x03\xe8", opcode=0x8))
    except OSError:
        pass
    s.close()


# ---- echo ---------------------------------------------------------------------------------------

class EchoConn:
    __slots__ = ("sock", "buf", "i")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.i = 0


def build_client(dest):
    """bench/ws_echo_client.c compiled with the project's warnings into build/bench/, copied
    to dest (the run's temp dir)."""
    os.makedirs(os.path.dirname(C_CLIENT_BIN), exist_ok=True)
    argv = ["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
            "-Wmissing-prototypes", "-o", C_CLIENT_BIN, C_CLIENT_SRC]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit("building the websocket client failed: %s\n%s"
                         % (" ".join(argv), p.stdout.decode("utf-8", "replace")))
    shutil.copy2(C_CLIENT_BIN, dest)


def rates(marks):
    """The measured run's numbers from its (time, count, server CPU, client CPU, machine busy)
    at the start and end marks."""
    (t0, n0, s0, c0, b0), (t1, n1, s1, c1, b1) = marks["start"], marks["end"]
    trips, wall = n1 - n0, t1 - t0
    return dict(rate=trips / wall, trips=trips,
                cpu_per=1e6 * (s1 - s0) / trips if trips else float("nan"),
                server_cpu=100 * (s1 - s0) / wall, client_cpu=100 * (c1 - c0) / wall,
                other_cpu=max(0.0, 100 * ((b1 - b0) - (s1 - s0) - (c1 - c0)) / wall))


def echo_run_c(server, n, warmup, duration, client_bin):
    """echo_run's measurement with the C client (bench/ws_echo_client.c) driving the sockets
    this process opened and handshook."""
    socks = [ws_connect(server.port, "/echo") for _ in range(n)]
    proc = None
    try:
        fds = [s.fileno() for s in socks]
        proc = subprocess.Popen([client_bin, str(int(warmup * 1000)), str(int(duration * 1000)),
                                 PAYLOAD.decode()] + [str(fd) for fd in fds], pass_fds=fds,
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        marks = {}
        for line in proc.stdout:  # bounded: the client ends after warmup + duration, or fails
            f = line.decode().split()
            if f and f[0] in ("start", "end"):
                marks[f[0]] = (float(f[2]), int(f[1]), proc_cpu(server.proc.pid), float(f[3]),
                               machine_busy())
            else:
                raise RuntimeError("the websocket client said: %s (server log: %s)"
                                   % (line.decode().strip(), server.log_tail()))
        proc.wait(10)
        if set(marks) != {"start", "end"}:
            raise RuntimeError("the websocket client exited with %s before its end"
                               % proc.returncode)
        return rates(marks)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for s in socks:
            ws_close(s)


def echo_run(server, n, warmup, duration):
    """Round trips/s, server CPU/round trip (µs) and client CPU (% of one core) over the
    measured `duration`, after `warmup` seconds of the same load."""
    frames = [masked_frame(PAYLOAD) for _ in range(MASKS)]
    expect = server_frame(PAYLOAD)
    size = len(expect)
    conns = [EchoConn(ws_connect(server.port, "/echo")) for _ in range(n)]
    sel = selectors.EpollSelector()
    try:
        for c in conns:
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, c)
            c.sock.send(frames[0])
        count = 0
        marks = {}
        t_start = time.monotonic()
        phases = [("start", t_start + warmup), ("end", t_start + warmup + duration)]
        last = t_start
        while phases:
            now = time.monotonic()
            if now >= phases[0][1]:
                marks[phases.pop(0)[0]] = (now, count, proc_cpu(server.proc.pid), self_cpu(),
                                           machine_busy())
                continue
            events = sel.select(timeout=min(1.0, phases[0][1] - now))
            if not events:
                if time.monotonic() - last > STALL:
                    raise RuntimeError("no echo for %d s (%d round trips so far)"
                                       % (STALL, count))
                continue
            last = time.monotonic()
            for key, _ in events:
                c = key.data
                data = c.sock.recv(65536)
                if not data:
                    raise RuntimeError("the server closed a websocket after %d round trips: %s"
                                       % (count, server.log_tail()))
                buf = c.buf + data
                while len(buf) >= size:
                    if buf[:size] != expect:
                        raise RuntimeError("bad echo frame %r, expected %r" % (buf[:size],
                                                                               expect))
                    buf = buf[size:]
                    count += 1
                    c.i = (c.i + 1) % MASKS
                    if c.sock.send(frames[c.i]) != len(frames[c.i]):
                        raise RuntimeError("a %d-byte frame did not fit an empty socket "
                                           "buffer" % len(frames[c.i]))
                c.buf = buf
        return rates(marks)
    finally:
        sel.close()
        for c in conns:
            ws_close(c.sock)


# ---- idle ---------------------------------------------------------------------------------------

def idle_run(server, n):
    """N idle websockets on /park: RSS (KiB) before, once all are waiting, peak, per socket."""
    idle = proc_kib(server.proc.pid, "VmRSS")
    socks = []
    t0 = time.monotonic()
    try:
        # IDLE_BATCH handshakes in flight at a time (under the listen backlog), so that all N
        # are open in a few seconds, well before uWSGI's first ping (30 s).
        for first in range(0, n, IDLE_BATCH):
            pending = []
            try:
                for _ in range(min(IDLE_BATCH, n - first)):
                    pending.append(ws_start(server.port, "/park", timeout=30))
            finally:
                for i, (s, key) in enumerate(pending):
                    try:
                        socks.append(ws_finish(s, key, "/park"))
                    except BaseException:
                        for s2, _ in pending[i + 1:]:
                            s2.close()
                        raise
        opened = time.monotonic() - t0
        parked = 0
        while time.monotonic() - t0 < IDLE_TIMEOUT:
            status, body = http_get(server.port, "/parked", timeout=30)
            parked = int(body or 0) if status == 200 else 0
            if parked >= n:
                break
            time.sleep(0.1)
        if parked < n:
            raise RuntimeError("only %d of %d websockets waiting after %d s"
                               % (parked, n, IDLE_TIMEOUT))
        took = time.monotonic() - t0
        rss = proc_kib(server.proc.pid, "VmRSS")
        hwm = proc_kib(server.proc.pid, "VmHWM")
        return dict(idle=idle, rss=rss, hwm=hwm, per=(rss - idle) / n, opened=opened,
                    took=took)
    finally:
        for s in socks:
            s.close()


# ---- the whole group ----------------------------------------------------------------------------

def attempt(kind, cores, tmp, gyre, fn):
    """fn(server) on a fresh server of this kind: its result, NO_API, or "failed: why"."""
    try:
        server = Server(kind, cores, tmp, gyre)
    except (RuntimeError, OSError) as e:
        return "failed: %s" % e
    try:
        if not server.has_ws():
            return NO_API
        return fn(server)
    except NoWebsocketAPI:
        return NO_API
    except (RuntimeError, OSError, ValueError, IndexError) as e:
        return "failed: %s: %s" % (type(e).__name__, e)
    finally:
        server.stop()


def log(msg):
    print("[wsbench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run(gyre=GYRE, duration=6, warmup=2, idle_n=10000, parts=("echo", "idle"), rounds=1,
        client="c"):
    """(the Markdown section, the results); gyre: the binary (bench.py passes its own copy);
    client: "c" (bench/ws_echo_client.c, the default) or "python" (this file's loop)."""
    if "idle" in parts:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = idle_n + 256  # our client sockets (the server's limit is inherited too)
        if hard < need:
            raise SystemExit("wsbench: RLIMIT_NOFILE's hard limit %d is under the %d fds needed"
                             % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {"echo": {}, "idle": {}, "argv": {}}
    with tempfile.TemporaryDirectory(prefix="gyre-wsbench-") as tmp:
        if client == "c":
            client_bin = os.path.join(tmp, "ws_echo_client")
            build_client(client_bin)

            def echo(s):
                return echo_run_c(s, ECHO_SOCKETS, warmup, duration, client_bin)
        else:
            def echo(s):
                return echo_run(s, ECHO_SOCKETS, warmup, duration)
        for kind in SERVERS:
            results["argv"][kind] = server_argv(kind, 0, ECHO_CORES, gyre)
        if "echo" in parts:
            for rnd in range(rounds):
                for kind in SERVERS:
                    log("echo, %s, round %d: %d websockets, %d s + %d s warm-up"
                        % (kind, rnd + 1, ECHO_SOCKETS, duration, warmup))
                    r = attempt(kind, ECHO_CORES, tmp, gyre, echo)
                    log("  -> %s" % (r if isinstance(r, str) else
                                     "%.0f round trips/s, %.0f µs server CPU each, client "
                                     "CPU %.0f%%" % (r["rate"], r["cpu_per"], r["client_cpu"])))
                    prev = results["echo"].get(kind)
                    if prev is None or isinstance(prev, str) or (
                            not isinstance(r, str) and r["rate"] > prev["rate"]):
                        results["echo"][kind] = r  # the best round
        if "idle" in parts:
            for kind in SERVERS:
                log("idle, %s: %d websockets" % (kind, idle_n))
                r = attempt(kind, idle_n + IDLE_SPARE, tmp, gyre, lambda s: idle_run(s, idle_n))
                log("  -> %s" % (r if isinstance(r, str) else
                                 "RSS %.1f MiB (idle %.1f), %.1f KiB per websocket, opened "
                                 "in %.1f s" % (r["rss"] / 1024, r["idle"] / 1024, r["per"],
                                                r["opened"])))
                results["idle"][kind] = r
    return report(results, duration, warmup, idle_n, rounds, client), results


def report(results, duration, warmup, idle_n, rounds, client):
    out = ["## WebSockets (issue 14)", "",
           "bench/wsbench.py: the same app (bench/ws_app.py: `uwsgi.websocket_handshake()`, "
           "`websocket_recv()`, `websocket_send()`) under each server, one process, no master, "
           "`--http-socket` on 127.0.0.1, no nginx; the client is the bench's own raw RFC 6455 "
           "code (masked client frames, real handshake). uWSGI 2.0.21 serves websockets in "
           "both of its greenlet modes: `websocket_recv()` waits through the engine's "
           "`wait_read_hook` (core/websockets.c), the Tornado engine's or the async loop's, "
           "so an idle websocket holds a suspended core in either. Servers:", ""]
    for kind, argv in results["argv"].items():
        out.append("- %s: `%s`" % (kind, " ".join(os.path.basename(a) if a.startswith("/")
                                                    else a for a in argv).replace(
            "127.0.0.1:0", "127.0.0.1:PORT")))
    out.append("")
    if results["echo"]:
        out += ["**Echo**: %d websockets, one 32-byte text message in flight on each (sent "
                "again as soon as its echo is back and checked), one client process (%s). "
                "Best of %d round(s) of %d s each after a %d s warm-up. Server "
                "CPU per round trip: the server's user+system CPU over the run / round trips. "
                "Client CPU in %% of one core: near 100%% the client, not the server, is the "
                "limit. *other*: the machine's busy time (/proc/stat, both cores) minus the "
                "server's and the client's, in %% of one core: other people's work, and the "
                "kernel's loopback work charged to no process."
                % (ECHO_SOCKETS, "bench/ws_echo_client.c: an epoll loop in C over "
                            "the websockets wsbench.py opened, a fresh masking key per frame"
                            if client == "c" else "wsbench.py's selectors loop in Python, "
                            "masked frames precomputed", rounds, duration, warmup), "",
                "| server (`--tornado`/`--async` %d) | round trips/s | server CPU/round trip | "
                "server CPU | client CPU | other | round trips/s ÷ gyre's |" % ECHO_CORES,
                "|---|---:|---:|---:|---:|---:|---:|"]
        g = results["echo"].get("gyre")
        for kind, r in results["echo"].items():
            if isinstance(r, str):
                out.append("| %s | %s | — | — | — | — | — |" % (kind, r))
                continue
            out.append("| %s | {:,.0f} | %.0f µs | %.0f%% | %.0f%%%s | %.0f%% | %s |".format(
                r["rate"]) % (kind, r["cpu_per"], r["server_cpu"], r["client_cpu"],
                              " (the client may be the limit)" if r["client_cpu"] >= CLIENT_LIMIT
                              else "", r["other_cpu"], "%.2f" % (r["rate"] / g["rate"])
                          if isinstance(g, dict) and g["rate"] else "—"))
        out.append("")
    if results["idle"]:
        out += ["**Idle**: {:,} websockets open and idle in one worker (`--tornado`/`--async` "
                "N+{}; the app waits in `websocket_recv()`), opened {} handshakes at a time; "
                "resident memory once /parked says all are waiting (VmRSS; VmHWM, the peak, in "
                "brackets) and per websocket above the idle process.".format(
                    idle_n, IDLE_SPARE, IDLE_BATCH), "",
                "| server | RSS (peak) | idle RSS | per websocket | RSS ÷ gyre's | all open "
                "after |", "|---|---:|---:|---:|---:|---:|"]
        g = results["idle"].get("gyre")
        for kind, r in results["idle"].items():
            if isinstance(r, str):
                out.append("| %s | %s | — | — | — | — |" % (kind, r))
                continue
            out.append("| %s | %.1f MiB (%.1f MiB) | %.1f MiB | %.1f KiB | %s | %.1f s |"
                       % (kind, r["rss"] / 1024, r["hwm"] / 1024, r["idle"] / 1024, r["per"],
                          "%.2fx" % (r["rss"] / g["rss"]) if isinstance(g, dict) else "—",
                          r["took"]))
        out.append("")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--idle", type=int, default=10000, help="idle websockets (10000)")
    ap.add_argument("--only", choices=("echo", "idle"))
    ap.add_argument("--gyre", default=GYRE)
    ap.add_argument("--client", choices=("c", "python"), default="c",
                    help="the echo load's client: bench/ws_echo_client.c (default) or Python")
    args = ap.parse_args()
    parts = (args.only,) if args.only else ("echo", "idle")
    sys.stdout.write(run(args.gyre, args.duration, args.warmup, args.idle, parts,
                         args.rounds, args.client)[0])


if __name__ == "__main__":
    main()
