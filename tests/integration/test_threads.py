"""--threads: requests on OS threads beside the loop (issue 11), against real gyre processes and,
wherever gyre claims uWSGI's behaviour, against Debian's uWSGI `--threads` with the same
command line and the same assertions (parametrized over both servers).

    concurrency     --threads 8: 16 blocking 0.2 s requests take two rounds (0.4 s .. 0.6 s),
                    with and without --master; --threads 2: 4 x 0.3 s take >= 0.6 s
    cpu             a CPU-bound request in one thread does not hold up a sleeping one
    slow client     (gyre) 8 MiB responses (more than loopback's send buffers take) to two
                    clients that do not read, within --write-behind-size: the threads are free,
                    other requests are served, the slow clients then get every byte.
                    Documented separately: with write-behind off or too small, gyre's threads
                    are held, as uWSGI's always are
    harakiri        a pure-Python endless loop in a thread: 500 (gyre; uWSGI kills the worker),
                    a "harakiri" log line, /hello after; gyre: per core, the other thread
                    serves meanwhile, the worker stays (uWSGI's timer is the worker's: another
                    request disarms it, documented); a thread stuck in time.sleep -> "asking
                    to be replaced", a new worker
    stats           --stats: one core per thread, kind "thread", busy/idle as requests run
    environ         wsgi.multithread True with --threads > 1, False otherwise
    pool            (gyre) --tornado M --threads N: gyre.run_in_thread, the asyncio default
                    executor, exceptions carried back, gyre.sleep in a pool thread refused
    protocols       uwsgi, FastCGI and HTTP on thread cores: a 200 KiB POST echoed exactly
                    (raw clients on both servers; through nginx on gyre);
                    --max-requests replaces the worker (gyre only: uWSGI 2.0.21 stalls here,
                    see the test); SIGHUP lets an in-flight request end
    stack size      --threads-stacksize KiB is the request threads' stack size (read with
                    pthread_getattr_np in the app); 64 MiB lets a 150000-deep C recursion run

Every server runs in a session of its own and its process group is SIGKILLed at the end of its
test; every wait is a bounded wait for a condition. Timing bounds are the issue's own, measured
from the moment every request is sent. Run with -s to see the measured times.
"""
import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import (APPS, GYRE, FcgiReader, FcgiResponse, Session, connect,
                      fcgi_request_bytes, free_port, parse_response, recv_all, uwsgi_request,
                      wait_for)

APP = os.path.join(APPS, "threads_app.py")
UWSGI = shutil.which("uwsgi")
BOTH = ["gyre", pytest.param("uwsgi", marks=pytest.mark.skipif(
    UWSGI is None, reason="Debian's uwsgi is not installed"))]


# ---- servers ------------------------------------------------------------------------------------

class Server(Session):
    """gyre or Debian's uWSGI (kind) serving threads_app.py with the given options, on
    --http-socket 127.0.0.1:port (proto "http"), or on a unix socket with --socket ("uwsgi")
    or --fastcgi-socket ("fastcgi")."""

    def __init__(self, tmp, kind, *args, proto="http", app=APP, wait=True):
        self.kind = kind
        self.proto = proto
        self.port = None
        self.socket = os.path.join(tmp, "%s-%d.sock" % (kind, time.monotonic_ns()))
        if proto == "http":
            self.port = free_port()
            sock_args = ["--http-socket", "127.0.0.1:%d" % self.port]
        elif proto == "uwsgi":
            sock_args = ["--socket", self.socket]
        else:
            sock_args = ["--fastcgi-socket", self.socket]
        base = [GYRE] if kind == "gyre" else [UWSGI, "--plugin", "python3"]
        super().__init__(tmp, base + [*sock_args, "--wsgi-file", app, *args])
        if wait:
            self.wait_serving()

    def wait_serving(self, timeout=20.0):
        # /hello requests sent, answered or not: one that timed out (a slow start) is still
        # served, later, and its end can matter (uWSGI's harakiri, below).
        self.hellos_sent = 0

        def up():
            if not self.alive():
                raise AssertionError("%s exited (%s):\n%s" % (self.kind, self.proc.returncode,
                                                               self.log()))
            try:
                return self.get("/hello", timeout=2)[:2] == (200, b"hello")
            except TimeoutError:  # sent, not answered yet
                self.hellos_sent += 1
                return False
            except OSError:  # not listening yet: nothing sent
                return False
        wait_for(up, timeout, what="%s serving" % self.kind)
        self.hellos_sent += 1

    def get(self, path, timeout=10.0):
        """(status, body, headers) of one request in this server's protocol."""
        return self.request("GET", path, timeout=timeout)

    def request(self, method, path, body=b"", timeout=10.0):
        p, _, q = path.partition("?")
        if self.proto == "http":
            s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
            with s:
                s.sendall(http_bytes(method, path, body))
                raw = recv_all(s)
            status, headers, rbody = parse_response(raw)
            return status, rbody, headers
        if self.proto == "uwsgi":
            v = {"REQUEST_METHOD": method, "PATH_INFO": p, "QUERY_STRING": q,
                 "REQUEST_URI": path}
            if body:
                v["CONTENT_TYPE"] = "application/octet-stream"
            raw = uwsgi_request(self.socket, v, body, timeout=timeout)
            status, headers, rbody = parse_response(raw)
            return status, rbody, headers
        with connect(self.socket, timeout) as s:
            s.sendall(fcgi_request_bytes(path=p, query=q, method=method, body=body))
            if self.kind == "gyre":
                status, headers, rbody = FcgiReader(s).response().assert_complete()
                return status, rbody, headers
            # uWSGI does not pad its records to 8 bytes (the spec's recommendation, which
            # the strict reader checks): its STDOUT is read without those checks
            stdout, ended = FcgiReader(s).read_stdout()
        assert ended, "no END_REQUEST from uWSGI: %r" % stdout[:200]
        resp = FcgiResponse(1)
        resp.stdout = stdout
        status, headers, rbody = resp.cgi()
        return status, rbody, headers

    def pid_answer(self):
        status, body, _ = self.get("/pid")
        assert status == 200, (status, body)
        return int(body.split(b"=")[1])

    def wait_log(self, text, timeout=10.0, count=1, case=True):
        def seen():
            log = self.log() if case else self.log().lower()
            n = log.count(text if case else text.lower())
            if n < count and not self.alive():
                raise AssertionError("%s exited before %r:\n%s" % (self.kind, text, self.log()))
            return n >= count
        wait_for(seen, timeout, what="%r x%d in %s's log" % (text, count, self.kind))


@pytest.fixture
def serve(tmp_path):
    """serve(kind, *args, proto="http") -> Server; every one killed as a group at the end."""
    started = []

    def start(kind, *args, **kw):
        s = Server(str(tmp_path), kind, *args, wait=False, **kw)
        started.append(s)  # killed even if it never serves
        s.wait_serving()
        return s
    yield start
    for s in reversed(started):
        s.kill_group()


# ---- clients ------------------------------------------------------------------------------------

def http_bytes(method, path, body=b""):
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)
    if body or method == "POST":
        head += "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


class Pending:
    """One HTTP request sent at once on its own connection; finish() reads its answer."""

    def __init__(self, port, path, rcvbuf=None, timeout=15.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.small_window = bool(rcvbuf)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(http_bytes("GET", path))
        self.sent_at = time.monotonic()
        self.done_at = None

    def finish(self):
        """(status, body, headers), or (None, raw bytes, None) if the connection closed without
        a whole response head."""
        if self.small_window:
            # A receive buffer set before connect also fixed the window scale: reading 8 MiB
            # 4 KiB at a time takes about 30 s on loopback, the time a sender's --socket-timeout
            # allows for its send buffer to move. The reader, once it reads, reads quickly.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            raw = recv_all(self.sock)
        except ConnectionResetError:
            raw = b""
        finally:
            self.done_at = time.monotonic()
            self.sock.close()
        if b"\r\n\r\n" not in raw:
            return None, raw, None
        status, headers, body = parse_response(raw)
        return status, body, headers

    def close(self):
        self.sock.close()


class Background:
    """fn() in a thread: result() waits for it (bounded) and returns its value or raises."""

    def __init__(self, fn):
        self.out = {}
        self.t = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.t.start()

    def _run(self, fn):
        try:
            self.out["value"] = fn()
        except BaseException as e:  # handed to result()
            self.out["error"] = e
        self.out["at"] = time.monotonic()

    def result(self, timeout=30.0):
        self.t.join(timeout)
        assert not self.t.is_alive(), "a background request did not end within %ss" % timeout
        if "error" in self.out:
            raise self.out["error"]
        return self.out["value"]


# ---- 1. concurrency -----------------------------------------------------------------------------

@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
@pytest.mark.parametrize("kind", BOTH)
def test_eight_threads_serve_sixteen_sleeps_in_two_rounds(serve, kind, master):
    extra = ["--master"] if master else []
    s = serve(kind, "--processes", "1", "--threads", "8", *extra)
    ps = [Pending(s.port, "/sleep?s=0.2") for _ in range(16)]
    first, all_sent = ps[0].sent_at, ps[-1].sent_at
    results = [p.finish() for p in ps]
    done = max(p.done_at for p in ps)
    print("\n%s --threads 8%s: 16 x /sleep?s=0.2 done %.3f s after the last send (%.3f s after "
          "the first; sending took %.3f s)" % (kind, " --master" if master else "",
                                                done - all_sent, done - first, all_sent - first))
    assert [r[0] for r in results] == [200] * 16, results
    idents = {r[1].split()[1] for r in results}
    assert all(r[1].startswith(b"slept ") for r in results), results
    assert 2 <= len(idents) <= 8, "the requests ran on %d threads" % len(idents)
    assert done - all_sent < 0.6, "16 sleeps of 0.2 s on 8 threads took %.3f s" % (done - all_sent)
    # at most 8 at once: two rounds of 0.2 s at least
    assert done - first >= 0.4 - 0.01, "16 sleeps of 0.2 s ended after %.3f s: more than 8 " \
        "at once" % (done - first)


@pytest.mark.parametrize("kind", BOTH)
def test_two_threads_are_a_real_limit(serve, kind):
    s = serve(kind, "--processes", "1", "--threads", "2")
    ps = [Pending(s.port, "/sleep?s=0.3") for _ in range(4)]
    first, all_sent = ps[0].sent_at, ps[-1].sent_at
    results = [p.finish() for p in ps]
    done = max(p.done_at for p in ps)
    print("\n%s --threads 2: 4 x /sleep?s=0.3 done %.3f s after the first send"
          % (kind, done - first))
    assert [r[0] for r in results] == [200] * 4, results
    assert len({r[1] for r in results}) <= 2, "more than 2 threads served: %s" % results
    assert done - first >= 0.6 - 0.01, "4 x 0.3 s on 2 threads took %.3f s" % (done - first)
    assert done - all_sent < 1.5, "4 x 0.3 s on 2 threads took %.3f s" % (done - all_sent)


# ---- 2. a CPU-bound request beside a blocking one -----------------------------------------------

@pytest.mark.parametrize("kind", BOTH)
def test_cpu_bound_request_does_not_stop_a_sleeping_one(serve, kind):
    s = serve(kind, "--processes", "1", "--threads", "2")
    spin = Pending(s.port, "/spin?s=1.0")
    try:
        s.wait_log("spin start", 5)
        t0 = time.monotonic()
        status, body, _ = s.get("/sleep?s=0.1")
        took = time.monotonic() - t0
        sstatus, sbody, _ = spin.finish()
        spin_left = spin.done_at - (t0 + took)
    finally:
        spin.close()
    print("\n%s: /sleep?s=0.1 took %.3f s beside /spin?s=1.0, which ended %.3f s later"
          % (kind, took, spin_left))
    assert status == 200 and body.startswith(b"slept"), (status, body)
    assert sstatus == 200 and sbody.startswith(b"spun"), (sstatus, sbody)
    assert took < 0.6, "a 0.1 s sleep beside a CPU loop took %.3f s" % took
    assert spin_left > 0.2, "the sleep ended only %.3f s before the spin" % spin_left


# ---- 3. slow clients ----------------------------------------------------------------------------
#
# On loopback the kernel takes far more than a small receive window: with SO_RCVBUF 4096 at the
# client, the server's send buffer grows (net.ipv4.tcp_wmem, 4 MiB at most here) and a socket
# that is never read took 2.99 MB before a write would block. A 512 KiB response fits there
# whoever writes it, so it shows nothing: the responses here are 8 MiB, more than any send
# buffer of this machine can hold, and --write-behind-size is set to hold the rest.

BIG = 8 << 20


def start_slow_readers(s, n=2, route="/big"):
    """n clients with a small receive window that request route?n=BIG and read nothing, once the
    app has produced each response (its "big start" line; the app returns right after)."""
    slow = [Pending(s.port, "%s?n=%d" % (route, BIG), rcvbuf=4096, timeout=20) for _ in range(n)]
    s.wait_log("big start", 10, count=n)
    return slow


# A body from the app's iterable, and a file sent with sendfile (wsgi.file_wrapper): the rest
# of either that the socket does not take is the loop's to send.
@pytest.mark.parametrize("route", ["/big", "/bigfile"])
def test_slow_readers_do_not_hold_the_threads(serve, route):
    s = serve("gyre", "--processes", "1", "--threads", "2", "--write-behind-size", str(BIG))
    slow = start_slow_readers(s, route=route)
    try:
        times = []
        for i in range(10):
            t0 = time.monotonic()
            status, body, _ = s.get("/hello", timeout=10)
            times.append(time.monotonic() - t0)
            assert (status, body) == (200, b"hello"), (i, status, body)
        print("\ngyre --threads 2, 2 clients not reading 8 MiB: 10 x /hello, slowest %.3f s"
              % max(times))
        assert max(times) < 2.0, times
        for p in slow:
            status, body, headers = p.finish()
            assert status == 200, (status, body[:200])
            assert int(headers["content-length"]) == BIG
            assert len(body) == BIG and body == b"x" * BIG, len(body)
        assert s.get("/hello")[:2] == (200, b"hello")
    finally:
        for p in slow:
            p.close()


@pytest.mark.parametrize("kind,extra", [
    ("gyre", ["--write-behind-size", "0"]),
    ("gyre", []),
    pytest.param("uwsgi", [], marks=pytest.mark.skipif(UWSGI is None,
                                                       reason="Debian's uwsgi is not installed")),
], ids=["gyre-write-behind-0", "gyre-write-behind-1MiB", "uwsgi"])
def test_documentation_threads_held_by_slow_readers_without_write_behind(serve, kind, extra):
    """DOCUMENTATION of the bound, not a feature: a thread that must wait for the client
    (gyre with --write-behind-size 0, or a response larger than the default 1 MiB beyond what
    the kernel takes; uWSGI always, it writes from the request's thread) is held: two clients
    that do not read hold both threads, and a third request waits (2 s here)."""
    s = serve(kind, "--processes", "1", "--threads", "2", *extra)
    slow = start_slow_readers(s)
    try:
        with pytest.raises(socket.timeout):
            s.get("/hello", timeout=2)
    finally:
        for p in slow:
            p.close()


# ---- 4. harakiri --------------------------------------------------------------------------------

def wait_hello(s, timeout=15.0):
    def hello():
        try:
            return s.get("/hello", timeout=2)[:2] == (200, b"hello")
        except OSError:
            return False
    wait_for(hello, timeout, what="/hello answered by %s" % s.kind)


@pytest.mark.parametrize("kind", BOTH)
def test_harakiri_on_an_endless_python_loop(serve, kind):
    s = serve(kind, "--master", "--processes", "1", "--threads", "2", "--harakiri", "1")
    # uWSGI's harakiri timer is the worker's, and a thread clears it after closing its
    # connection, before logging the request: every start-up /hello (also one that timed out
    # on a slow start) must be logged before the spin starts, or its late clearing disarms the
    # spin's harakiri (see the test below)
    s.wait_log("GET /hello", 15, count=s.hellos_sent)
    stuck = Pending(s.port, "/forever-spin", timeout=20)
    try:
        s.wait_log("forever-spin start", 5)
        status, body, _ = stuck.finish()
        answered = stuck.done_at - stuck.sent_at
    finally:
        stuck.close()
    print("\n%s harakiri 1: /forever-spin answered %s after %.2f s" % (kind, status, answered))
    assert answered < 8.0, answered
    if kind == "gyre":
        # gyre interrupts the thread (gyre.Harakiri) and answers
        assert status == 500, (status, body, s.log())
    else:
        # uWSGI kills the worker: the connection closes without an answer
        assert status in (None, 500), (status, body)
    s.wait_log("harakiri", 10, case=False)
    wait_hello(s)
    for _ in range(3):
        assert s.get("/hello")[:2] == (200, b"hello")


def test_harakiri_interrupts_only_the_stuck_thread(serve):
    """gyre's harakiri is per core: the other thread serves meanwhile, the stuck one is
    answered 500, the worker is the same process afterwards."""
    s = serve("gyre", "--master", "--processes", "1", "--threads", "2", "--harakiri", "1")
    worker = s.pid_answer()
    stuck = Pending(s.port, "/forever-spin", timeout=20)
    try:
        s.wait_log("forever-spin start", 5)
        meanwhile = []
        while stuck.sent_at + 0.8 > time.monotonic():  # before the harakiri (1 s)
            t0 = time.monotonic()
            assert s.get("/hello", timeout=5)[:2] == (200, b"hello")
            meanwhile.append(time.monotonic() - t0)
        status, body, _ = stuck.finish()
        answered = stuck.done_at - stuck.sent_at
    finally:
        stuck.close()
    print("\ngyre harakiri 1: /forever-spin answered %s after %.2f s; %d x /hello meanwhile, "
          "slowest %.3f s" % (status, answered, len(meanwhile), max(meanwhile)))
    assert status == 500, (status, body, s.log())
    # gyre counts from the moment it accepted the connection, a little before the client
    # counts (after its connect and send)
    assert 0.9 <= answered < 5.0, answered
    assert len(meanwhile) >= 3 and max(meanwhile) < 0.5, meanwhile
    s.wait_log("harakiri", 10, case=False)
    for _ in range(3):
        assert s.get("/hello")[:2] == (200, b"hello")
    assert s.pid_answer() == worker, "the worker was replaced:\n" + s.log()


@pytest.mark.skipif(UWSGI is None, reason="Debian's uwsgi is not installed")
def test_documentation_uwsgi_harakiri_is_per_worker_with_threads(serve):
    """DOCUMENTATION of the reference, not a claim about gyre: uWSGI 2.0's harakiri timer is
    the worker's, and any thread that finishes a request clears it. A request answered by the
    other thread while one spins forever disarms the harakiri: the spinning request is still
    unanswered 4 s later (bounded; gyre answers it 500 after about 1 s, test above)."""
    s = serve("uwsgi", "--master", "--processes", "1", "--threads", "2", "--harakiri", "1")
    stuck = Pending(s.port, "/forever-spin", timeout=4)
    try:
        s.wait_log("forever-spin start", 5)
        assert s.get("/hello", timeout=5)[:2] == (200, b"hello")
        with pytest.raises(socket.timeout):
            recv_all(stuck.sock)
        assert "harakiri on worker" not in s.log().lower()
    finally:
        stuck.close()


def test_harakiri_on_a_blocking_call_recycles_the_worker(serve):
    """time.sleep cannot be interrupted by an async exception: after --harakiri-grace more
    seconds the worker asks the master to replace it; the master starts a new one."""
    s = serve("gyre", "--master", "--processes", "1", "--threads", "2", "--harakiri", "1",
              "--harakiri-grace", "1")
    worker = s.pid_answer()
    stuck = Pending(s.port, "/forever-sleep", timeout=30)
    try:
        s.wait_log("forever-sleep start", 5)
        assert s.get("/hello", timeout=5)[:2] == (200, b"hello")
        s.wait_log("asking to be replaced", 15)
        status, body, _ = stuck.finish()
        answered = stuck.done_at - stuck.sent_at
    finally:
        stuck.close()
    print("\ngyre harakiri 1 grace 1: /forever-sleep answered %s after %.2f s" % (status,
                                                                                answered))
    assert status == 500, (status, body, s.log())  # nothing was sent: an answer
    assert "harakiri" in s.log().lower()

    def new_worker():
        try:
            return s.pid_answer() != worker
        except (OSError, AssertionError):
            return False
    wait_for(new_worker, 20, what="a new worker answering /pid")
    assert s.log().count("master: started worker 1 ") >= 2, s.log()
    for _ in range(3):
        assert s.get("/hello")[:2] == (200, b"hello")


# ---- 5. stats -----------------------------------------------------------------------------------

def stats_doc(addr, timeout=5.0):
    """uwsgitop's way: connect to HOST:PORT, read until EOF, json.loads."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        return json.loads(recv_all(s).decode("utf-8", "replace"))


@pytest.mark.parametrize("kind", BOTH)
def test_stats_show_one_core_per_thread(serve, kind):
    addr = "127.0.0.1:%d" % free_port()
    s = serve(kind, "--processes", "1", "--threads", "4", "--stats", addr)

    def cores():
        return [c for w in stats_doc(addr)["workers"] for c in w["cores"]]
    wait_for(lambda: all(c["in_request"] == 0 for c in cores()), 5, what="all cores idle")
    ps = [Pending(s.port, "/sleep?s=1") for _ in range(2)]
    try:
        box = {}

        def two_busy():
            box["cores"] = cores()
            return sum(c["in_request"] for c in box["cores"]) == 2
        wait_for(two_busy, 5, what="2 cores in a request")
        cs = box["cores"]
        assert len(cs) == 4, cs
        busy = [c for c in cs if c["in_request"]]
        idle = [c for c in cs if not c["in_request"]]
        assert len(busy) == 2 and len(idle) == 2, cs
        if kind == "gyre":
            assert [c["kind"] for c in cs] == ["thread"] * 4, cs
            assert all(c["waiting"] != "idle" for c in busy), cs
            assert all(c["waiting"] == "idle" for c in idle), cs
        assert [p.finish()[0] for p in ps] == [200, 200]
    finally:
        for p in ps:
            p.close()

    def all_idle():
        box["cores"] = cores()
        return all(c["in_request"] == 0 for c in box["cores"])
    wait_for(all_idle, 5, what="all cores idle after the requests")
    if kind == "gyre":
        assert all(c["waiting"] == "idle" and c["kind"] == "thread" for c in box["cores"])
        assert sum(c["requests"] for c in box["cores"]) >= 2


# ---- 6. wsgi.multithread ------------------------------------------------------------------------

@pytest.mark.parametrize("threads,multithread", [(None, False), ("1", False), ("4", True)],
                         ids=["no-threads", "threads-1", "threads-4"])
@pytest.mark.parametrize("kind", BOTH)
def test_wsgi_multithread(serve, kind, threads, multithread):
    s = serve(kind, *(["--threads", threads] if threads else []))
    status, body, _ = s.get("/env")
    assert status == 200, body
    env = json.loads(body)
    assert env["multithread"] is multithread, env
    assert env["multiprocess"] is False and env["run_once"] is False, env
    if kind == "gyre" and threads == "4":
        assert env["main"] is False, "a thread core ran the app on the main thread"


# ---- 7. the pool beside --tornado ---------------------------------------------------------------

def test_tornado_cores_with_a_thread_pool(serve):
    s = serve("gyre", "--tornado", "10", "--threads", "4")
    # three cores wait in run_in_thread (1 s each, in pool threads) ...
    offloads = [Pending(s.port, "/offload?s=1", timeout=15) for _ in range(3)]
    try:
        first, all_sent = offloads[0].sent_at, offloads[-1].sent_at
        hellos = []
        # ... while the loop answers other requests (bounded: 10 of them, or 0.7 s)
        while time.monotonic() - first < 0.7 and len(hellos) < 10:
            t0 = time.monotonic()
            assert s.get("/hello", timeout=5)[:2] == (200, b"hello")
            hellos.append(time.monotonic() - t0)
        hellos_end = time.monotonic()
        results = [p.finish() for p in offloads]
        done = max(p.done_at for p in offloads)
    finally:
        for p in offloads:
            p.close()
    print("\ngyre --tornado 10 --threads 4: 3 x /offload?s=1 (in a pool thread) done %.3f s "
          "after the last send; /hello meanwhile: %s" % (done - all_sent,
                                                         ["%.3f" % h for h in hellos]))
    assert [r[0] for r in results] == [200] * 3, results
    names = [r[1].decode() for r in results]
    assert len(set(names)) == 3 and "MainThread" not in names, names
    assert hellos_end - first < 1.0, "the /hello requests were not answered during the offloads"
    assert len(hellos) >= 3 and max(hellos) < 0.25, hellos
    assert done - first >= 1.0 - 0.01
    assert done - all_sent < 1.6, "three 1 s offloads on 4 pool threads took %.3f s" % (
        done - all_sent)

    assert s.get("/offload-raise")[:2] == (200, b"caught ValueError: offload boom")
    status, body, _ = s.get("/executor")
    assert status == 200 and body.startswith(b"executor ") and body != b"executor MainThread", \
        body
    status, body, _ = s.get("/pool-switch", timeout=10)
    print("/pool-switch: %s %r" % (status, body))
    # gyre.sleep suspends a core; a pool thread has none: the exception says so
    assert status == 200 and body.startswith(b"error NotInCoreError: "), (status, body)
    assert b"pool thread" in body, body
    # the server goes on serving, offloads included
    assert s.get("/hello")[:2] == (200, b"hello")
    status, body, _ = s.get("/offload")
    assert status == 200 and body and body != b"MainThread", body


# ---- 8. protocols, --max-requests, reload -------------------------------------------------------

@pytest.mark.parametrize("proto", ["uwsgi", "fastcgi", "http"])
@pytest.mark.parametrize("kind", BOTH)
def test_post_echo_on_thread_cores(serve, kind, proto):
    s = serve(kind, "--processes", "1", "--threads", "4", proto=proto)
    bodies = [os.urandom(200 * 1024) for _ in range(3)]
    jobs = [Background(lambda b=b: s.request("POST", "/echo", b)) for b in bodies]
    for b, j in zip(bodies, jobs):
        status, body, _ = j.result()
        assert status == 200
        assert len(body) == len(b) and body == b, "the echo differs (%d bytes back)" % len(body)


@pytest.mark.parametrize("proto", ["uwsgi", "fastcgi"])
def test_post_echo_on_thread_cores_through_nginx(stack, proto):
    """The same through nginx (uwsgi_pass, or fastcgi_pass with kept-alive upstream
    connections): six POSTs at once on four thread cores."""
    st = stack("threads_app.py", "--threads", "4", proto=proto)
    bodies = [os.urandom(200 * 1024) for _ in range(6)]

    def post(b):
        r = requests.post(st.url + "/echo", data=b, timeout=15)
        return r.status_code, r.content
    jobs = [Background(lambda b=b: post(b)) for b in bodies]
    for b, j in zip(bodies, jobs):
        status, body = j.result()
        assert status == 200
        assert body == b, "the echo differs (%d bytes back)" % len(body)


# Not run against uWSGI: Debian's uWSGI 2.0.21 with --threads 4 --max-requests 5 (and
# --min-worker-lifetime 0, its default being 60 s) logs "...The work of process N is done.
# Seeya!" after the 5th request, then in 4 runs of 5 here kept the worker, its other threads
# still in accept(), and answered nothing more (every request timed out) until its 60 s
# worker mercy. gyre's worker asks the master for a replacement and serves until it is up.
@pytest.mark.parametrize("kind", ["gyre"])
def test_max_requests_replaces_a_threaded_worker(serve, kind):
    s = serve(kind, "--master", "--processes", "1", "--threads", "4", "--max-requests", "5",
              "--min-worker-lifetime", "0")
    first = s.pid_answer()
    pids = [first]
    # one request after the other until another worker answers (gyre's worker checks its
    # count twice a second and serves until its replacement is up: many more than 5 here)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pids[-1] == first:
        pids.append(s.pid_answer())
    assert pids[-1] != first, "still worker %d after %d requests:\n%s" % (first, len(pids),
                                                                        s.log())
    print("\n%s --threads 4 --max-requests 5: worker %d answered %d requests" % (
        kind, first, pids.index(pids[-1])))
    if kind == "gyre":
        s.wait_log("(--max-requests 5): asking to be replaced", 10)
    for _ in range(3):
        assert s.get("/hello")[:2] == (200, b"hello")


@pytest.mark.parametrize("kind", BOTH)
def test_reload_lets_an_in_flight_request_finish(serve, kind):
    s = serve(kind, "--master", "--processes", "1", "--threads", "4")
    first = s.pid_answer()
    p = Pending(s.port, "/sleep?s=1&note=1", timeout=20)
    try:
        s.wait_log("sleep start", 5)
        t0 = time.monotonic()
        s.signal(signal.SIGHUP)
        status, body, _ = p.finish()
        took = p.done_at - t0
    finally:
        p.close()
    assert status == 200 and body.startswith(b"slept"), (status, body, s.log())
    assert took >= 0.9, took

    def new_worker():
        try:
            return s.pid_answer() != first
        except (OSError, AssertionError):
            return False
    wait_for(new_worker, 20, what="a new worker after the reload")


# ---- 9. --threads-stacksize ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", BOTH)
def test_threads_stacksize_sets_the_request_threads_stack(serve, kind):
    s = serve(kind, "--processes", "1", "--threads", "4", "--threads-stacksize", "512")
    stack_lines = [l for l in s.log().splitlines() if "stack" in l.lower()
                   and ("warn" in l.lower() or "ignor" in l.lower())]
    assert stack_lines == [], stack_lines
    # four at once: every thread core holds one (uWSGI's core 0 is its main thread, whose
    # stack is the process's: only the other threads' sizes are set by the option)
    jobs = [Background(lambda: s.get("/stack?s=0.3")) for _ in range(4)]
    docs = []
    for j in jobs:
        status, body, _ = j.result()
        assert status == 200, body
        docs.append(json.loads(body))
    sizes = [d["stacksize"] for d in docs if not d["main"]]
    print("\n%s --threads-stacksize 512: request threads' stacks %s" % (kind, sizes))
    assert sizes, docs
    assert all(512 * 1024 <= n < 1024 * 1024 for n in sizes), docs
    if kind == "gyre":
        assert len(sizes) == 4, docs
    assert s.get("/recurse?n=1000")[:2] == (200, b"depth 1000 ok")


def test_large_thread_stack_allows_deep_recursion(serve):
    """150000 levels of the C JSON encoder need more than the 8 MiB a thread gets by default
    (about 100-170 bytes a level measured here); with --threads-stacksize 65536 they fit."""
    s = serve("gyre", "--processes", "1", "--threads", "2", "--thread-stacksize", "65536")
    status, body, _ = s.get("/stack")
    assert json.loads(body)["stacksize"] >= 64 << 20
    assert s.get("/recurse?n=150000", timeout=30)[:2] == (200, b"depth 150000 ok")
    assert s.get("/hello")[:2] == (200, b"hello")


@pytest.mark.parametrize("spelling", ["threads-stacksize", "threads-stack-size",
                                      "thread-stacksize", "thread-stack-size"])
def test_threads_stacksize_spellings(serve, spelling):
    s = serve("gyre", "--processes", "1", "--threads", "2", "--" + spelling, "1024")
    doc = json.loads(s.get("/stack")[1])
    assert doc["main"] is False and 1024 * 1024 <= doc["stacksize"] < 2048 * 1024, doc
