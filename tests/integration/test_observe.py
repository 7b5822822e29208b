"""Observability and systemd integration: --stats (uwsgitop's JSON), --stats-http, --metrics-http
(Prometheus text format), socket activation (LISTEN_FDS) and sd_notify (NOTIFY_SOCKET).

Everything here is read from the outside, the way the real consumers read it:

    stats       uwsgitop's way: connect to the unix socket or HOST:PORT, read until EOF,
                json.loads; keys and types of uWSGI's shape, and values that move with real
                traffic (requests, tx, exceptions, per-core "waiting" while requests are
                suspended on a timer, a future, the app's own switch, a slow request body),
                respawn_count after a SIGKILL, the listen queue while the backlog fills
    metrics     a scrape over HTTP, parsed here (# HELP / # TYPE, samples with labels):
                requests by class, exceptions, in-flight, suspended cores by waiting label,
                the duration histogram, the listen queue, respawns
    systemd     gyre exec'd by Debian's systemd-socket-activate on one unix socket, two (matched
                by path in either order, by order when the path differs) and TCP; sd_notify
                messages received on a unix datagram socket with SO_PASSCRED, so the sender
                pid of every message is known: READY=1 (single process and master), only the
                master speaks, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM
    edges       a worker being replaced (old and new process share worker id 1), HTTP clients
                with a small receive window, a stats client that does not read

Every gyre is started in a session of its own and its whole process group is SIGKILLed at the
end of the test whatever happened; every wait is bounded. Run with -s to see one stats document
and one metrics scrape (printed for the docs).
"""
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (APPS, GYRE, FcgiReader, Session, connect, fcgi_request_bytes, free_port,
                      parse_response, recv_all, uwsgi_packet, uwsgi_request, wait_for)

APP = os.path.join(APPS, "obs_app.py")
ACTIVATE = "/usr/bin/systemd-socket-activate"

BANNER = re.compile(r"\] gyre \S+ \(Python [^)]*\) pid (\d+)(?: \(worker (\d+)\))?: "
                    r"\d+ cores? on (.*)$", re.M)
WAITING = {"idle", "running", "fd-read", "fd-write", "timer", "future", "app-suspended",
           "app-fd", "websocket"}


# ---- processes ---------------------------------------------------------------------------------

class Proc(Session):
    """gyre (or systemd-socket-activate exec'ing gyre) in a session of its own."""

    def __init__(self, tmp, argv, env=None):
        super().__init__(tmp, argv, env=env, cwd=tmp)
        self.tmp = tmp

    def wait_log(self, pattern, timeout=10.0, count=1):
        def seen():
            n = len(re.findall(pattern, self.log(), re.M))
            if n < count and not self.alive():
                raise AssertionError("gyre exited (%s) before %r:\n%s"
                                     % (self.proc.returncode, pattern, self.log()))
            return n >= count
        wait_for(seen, timeout, what=repr(pattern) + " in gyre's log")

    def banners(self):
        """[(pid, worker id or None, sockets text)]"""
        return [(int(p), int(w) if w else None, s) for p, w, s in BANNER.findall(self.log())]


@pytest.fixture
def run(tmp_path):
    """run(*gyre_args, activate=None, env=None) -> Proc. activate: the list of
    systemd-socket-activate options (e.g. ["-l", path]) to exec gyre under."""
    started = []

    def start(*args, activate=None, env=None):
        argv = [GYRE, *args]
        if activate is not None:
            argv = [ACTIVATE, *activate, *argv]
        p = Proc(str(tmp_path), argv, env=env)
        started.append(p)
        return p
    yield start
    for p in reversed(started):
        p.kill_group()


# ---- stats: read the way uwsgitop reads it -----------------------------------------------------

def stats_raw(addr, timeout=5.0):
    """uwsgitop: a unix socket path or HOST:PORT; connect, read until EOF."""
    if ":" in addr and "/" not in addr:
        host, port = addr.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, int(port)))
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
    js = b""
    try:
        while True:
            data = s.recv(4096)
            if len(data) < 1:
                break
            js += data
    finally:
        s.close()
    return js.decode("utf8", "ignore")


def stats(addr):
    return json.loads(stats_raw(addr))


def exact_type(value, t):
    # JSON true/false would come back as bool, a subclass of int: uWSGI sends numbers
    return type(value) is t


TOP_KEYS = {"version": str, "pid": int, "uid": int, "gid": int, "cwd": str,
            "listen_queue": int, "load": int, "sockets": list, "workers": list}
SOCKET_KEYS = {"name": str, "proto": str, "queue": int, "max_queue": int}
WORKER_KEYS = {"id": int, "pid": int, "accepting": int, "requests": int, "exceptions": int,
               "status": str, "rss": int, "vsz": int, "running_time": int,
               "respawn_count": int, "tx": int, "avg_rt": int, "cores": list}
CORE_KEYS = {"id": int, "requests": int, "in_request": int, "waiting": str}


def check_shape(doc, ncores):
    for keys, obj, what in [(TOP_KEYS, doc, "document")]:
        for k, t in keys.items():
            assert k in obj, "%s lacks %r: %s" % (what, k, sorted(obj))
            assert exact_type(obj[k], t), "%s[%r] = %r is not %s" % (what, k, obj[k], t)
    for s in doc["sockets"]:
        for k, t in SOCKET_KEYS.items():
            assert k in s and exact_type(s[k], t), (k, s)
    for w in doc["workers"]:
        for k, t in WORKER_KEYS.items():
            assert k in w, "worker lacks %r: %s" % (k, sorted(w))
            assert exact_type(w[k], t), "worker[%r] = %r is not %s" % (k, w[k], t)
        assert w["status"] in ("idle", "busy"), w["status"]
        assert w["accepting"] in (0, 1)
        assert w["rss"] > 0 and w["vsz"] >= w["rss"], (w["rss"], w["vsz"])
        assert w["avg_rt"] == (w["running_time"] // w["requests"] if w["requests"] else 0), w
        assert [c["id"] for c in w["cores"]] == list(range(ncores))
        for c in w["cores"]:
            for k, t in CORE_KEYS.items():
                assert k in c and exact_type(c[k], t), (k, c)
            assert c["waiting"] in WAITING, c["waiting"]
            assert c["in_request"] == (0 if c["waiting"] == "idle" else 1), c
    assert doc["listen_queue"] == sum(s["queue"] for s in doc["sockets"])


def cores_of(doc):
    return [(w, c) for w in doc["workers"] for c in w["cores"]]


def total(doc, key):
    return sum(w[key] for w in doc["workers"])


def settled(addr, n):
    """n requests counted and every core released: a worker counts a request when its response
    is complete, and releases the core a moment later (the client may see both in between)."""
    d = stats(addr)
    return (total(d, "requests") == n and all(w["status"] == "idle" for w in d["workers"])
            and all(c["waiting"] == "idle" for _, c in cores_of(d)))


def wait_settled(addr, n, timeout=3.0):
    wait_for(lambda: settled(addr, n), timeout, what="%d requests counted, all cores idle" % n)


def wait_workers(stats_addr, proc, n, timeout=15.0):
    """The master's stats list n live workers, each accepting (its app is loaded)."""
    box = {}

    def ready():
        if not proc.alive():
            raise AssertionError("gyre exited (%s):\n%s" % (proc.proc.returncode, proc.log()))
        try:
            doc = stats(stats_addr)
        except (OSError, ValueError):
            return False
        box["doc"] = doc
        return len(doc["workers"]) == n and all(w["accepting"] == 1 for w in doc["workers"])
    wait_for(ready, timeout, what="%d accepting workers in the stats" % n)
    return box["doc"]


# ---- clients -----------------------------------------------------------------------------------

def req(path, query="", **vars):
    v = {"PATH_INFO": path, "QUERY_STRING": query,
         "REQUEST_URI": path + ("?" + query if query else "")}
    v.update(vars)
    return v


def get(sock, path, query=""):
    """(status, body) of one raw uwsgi request."""
    status, _, body = parse_response(uwsgi_request(sock, req(path, query)))
    return status, body


class Pending:
    """A request sent and left in flight: finish() reads its response."""

    def __init__(self, addr, data):
        if isinstance(addr, tuple):
            self.s = socket.create_connection(addr, timeout=10)
        else:
            self.s = connect(addr)
        self.s.sendall(data)

    def send(self, data):
        self.s.sendall(data)

    def finish(self):
        try:
            return parse_response(recv_all(self.s))
        finally:
            self.s.close()

    def close(self):
        self.s.close()


def suspended_requests(sock):
    """One request in each of gyre's waits (20 s ones; the body is never completed here)."""
    ps = {
        "timer": Pending(sock, uwsgi_packet(req("/gsleep", "s=20"))),
        "future": Pending(sock, uwsgi_packet(req("/wait", "s=20"))),
        "app-suspended": Pending(sock, uwsgi_packet(req("/suspend", "s=20"))),
        # the head and 10 bytes of a 100-byte body, then the client stalls
        "fd-read": Pending(sock, uwsgi_packet(req("/body", REQUEST_METHOD="POST",
                                                  CONTENT_LENGTH="100")) + b"b" * 10),
    }
    return ps


def waiting_counts(doc):
    counts = {}
    for _, c in cores_of(doc):
        counts[c["waiting"]] = counts.get(c["waiting"], 0) + 1
    return counts


# ---- Prometheus text format, parsed here -------------------------------------------------------

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        assert m, "bad label set %r at %d" % (text, pos)
        assert m.group(1) not in labels, "label %r twice in %r" % (m.group(1), text)
        labels[m.group(1)] = (m.group(2).replace('\\"', '"').replace("\\n", "\n")
                              .replace("\\\\", "\\"))
        pos = m.end()
    return labels


def family_of(name, families):
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and families.get(name[:-len(suffix)], {}).get("type") in (
                "histogram", "summary"):
            return name[:-len(suffix)]
    return None


def parse_prometheus(text):
    """{family: {"help", "type", "samples": [(name, labels, value)]}}, checking the format:
    HELP and TYPE once per family and before its samples, a family's samples together, no
    series (name and label set) twice, every value a float, every line ending in a newline."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families, order, seen_done, series = {}, [], set(), {}
    current = None
    for line in text.split("\n")[:-1]:
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert METRIC_NAME.match(name), line
                f = families.setdefault(name, {"help": None, "type": None, "samples": []})
                key = parts[1].lower()
                assert f[key] is None, "second # %s for %s" % (parts[1], name)
                assert not f["samples"], "# %s for %s after its samples" % (parts[1], name)
                f[key] = parts[3] if len(parts) > 3 else ""
                if key == "type":
                    assert f["type"] in ("counter", "gauge", "histogram", "summary",
                                         "untyped"), line
                if name != current:
                    assert name not in seen_done, "family %s split" % name
                    if current:
                        seen_done.add(current)
                    current = name
                    order.append(name)
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        fam = family_of(m.group(1), families)
        assert fam, "sample %r of no declared family" % line
        assert fam == current, "sample %r outside its family's block" % line
        value = float(m.group(4))  # also +Inf, -Inf, NaN
        labels = parse_labels(m.group(3) or "")
        key = (m.group(1), tuple(sorted(labels.items())))
        if key in series:
            raise AssertionError("duplicate series in one scrape: %r (and %r)"
                                 % (series[key], line))
        series[key] = line
        families[fam]["samples"].append((m.group(1), labels, value))
    for name, f in families.items():
        assert f["type"] is not None and f["help"] is not None, "%s lacks HELP or TYPE" % name
    return families


def scrape(port, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, r.status
        ctype = r.getheader("Content-Type", "")
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
        assert int(r.getheader("Content-Length")) == len(body)
        return body.decode()
    finally:
        c.close()


def metric(fams, name, **labels):
    """Sum of the samples of name whose labels include labels."""
    fam = family_of(name, fams)
    assert fam, "no family for %s in %s" % (name, sorted(fams))
    return sum(v for n, ls, v in fams[fam]["samples"]
               if n == name and all(ls.get(k) == str(x) for k, x in labels.items()))


def samples(fams, name):
    fam = family_of(name, fams)
    return [(ls, v) for n, ls, v in fams[fam]["samples"] if n == name]


# ---- (1) the stats document --------------------------------------------------------------------

def start_master(run, tmp, *extra, processes=2, cores=4):
    st = os.path.join(tmp, "stats.sock")
    sock = os.path.join(tmp, "app.sock")
    g = run("--master", "--processes", str(processes), "--tornado", str(cores), "--socket", sock,
            "--wsgi-file", APP, "--stats", st, *extra)
    doc = wait_workers(st, g, processes)
    return g, sock, st, doc


def test_stats_shape_and_counters(run, tmp_path):
    tmp = str(tmp_path)
    g, sock, st, doc = start_master(run, tmp, "--listen", "77")
    check_shape(doc, 4)
    version = subprocess.run([GYRE, "--version"], capture_output=True, text=True, timeout=10)
    assert doc["version"] and doc["version"] in version.stdout + version.stderr
    assert doc["pid"] == g.pid, "stats pid %s is not the master's %s" % (doc["pid"], g.pid)
    assert (doc["uid"], doc["gid"]) == (os.getuid(), os.getgid())
    assert os.path.realpath(doc["cwd"]) == os.path.realpath(tmp)
    assert doc["listen_queue"] == 0 and doc["load"] == 0
    assert [(s["name"], s["proto"], s["queue"], s["max_queue"]) for s in doc["sockets"]] == [
        (sock, "uwsgi", 0, 77)]
    workers = {p for p, w, _ in g.banners() if w}
    assert sorted(w["id"] for w in doc["workers"]) == [1, 2]
    assert {w["pid"] for w in doc["workers"]} == workers and g.pid not in workers
    for w in doc["workers"]:
        assert (w["requests"], w["exceptions"], w["tx"], w["respawn_count"]) == (0, 0, 0, 0)
        assert (w["status"], w["running_time"], w["avg_rt"]) == ("idle", 0, 0)
        assert all(c["requests"] == 0 and c["waiting"] == "idle" for c in w["cores"])

    # N requests of 100 body bytes: the workers' requests sum to N, tx to 100 N
    n = 7
    for _ in range(n):
        assert get(sock, "/hello", "n=100") == (200, b"x" * 100)
    wait_settled(st, n)
    doc = stats(st)
    check_shape(doc, 4)
    assert total(doc, "tx") == 100 * n
    assert total(doc, "exceptions") == 0
    assert sum(c["requests"] for _, c in cores_of(doc)) == n, \
        "the cores' requests do not add up to the workers'"
    assert all(w["running_time"] > 0 for w in doc["workers"] if w["requests"])

    # an app that raises: exceptions counts it, tx grows by the 500's body
    raised = []
    for _ in range(2):
        status, _, body = parse_response(uwsgi_request(sock, req("/raise")))
        assert status == 500
        raised.append(len(body))
    wait_settled(st, n + 2)
    doc = stats(st)
    assert total(doc, "exceptions") == 2
    assert total(doc, "tx") == 100 * n + sum(raised)
    assert all(w["status"] == "idle" for w in doc["workers"])
    assert all(w["respawn_count"] == 0 for w in doc["workers"])
    # a graceful stop removes the stats socket along with the app's
    g.signal(signal.SIGTERM)
    assert g.wait_exit(15) == 0, g.log()
    assert not os.path.exists(st) and not os.path.exists(sock)


def test_stats_core_waiting_states(run, tmp_path):
    g, sock, st, _ = start_master(run, str(tmp_path))
    ps = suspended_requests(sock)
    try:
        want = {"timer": 1, "future": 1, "app-suspended": 1, "fd-read": 1}

        def all_waiting():
            counts = waiting_counts(stats(st))
            return all(counts.get(k, 0) == v for k, v in want.items())
        wait_for(all_waiting, 5, what="a core in each wait: %s" % want)
        raw = stats_raw(st)
        doc = json.loads(raw)
        print("\n=== stats document (--master --processes 2 --tornado 4; 4 requests "
              "suspended: timer, future, app-suspended, fd-read) ===\n" + raw)
        check_shape(doc, 4)
        counts = waiting_counts(doc)
        assert counts == {"idle": 4, **want}, counts
        busy = [c for _, c in cores_of(doc) if c["in_request"]]
        assert len(busy) == 4 and all(c["waiting"] in want for c in busy)
        for w in doc["workers"]:
            n = sum(1 for c in w["cores"] if c["in_request"])
            assert w["status"] == ("busy" if n else "idle"), w
        # the body completed, its core goes idle (the 20 s waits end with the test)
        ps["fd-read"].send(b"b" * 90)
        status, _, body = ps["fd-read"].finish()
        assert (status, body) == (200, b"len=100")
        wait_for(lambda: waiting_counts(stats(st)).get("fd-read", 0) == 0, 3,
                 what="the body core to go idle")
    finally:
        for p in ps.values():
            p.close()


def test_stats_short_waits_end_idle(run, tmp_path):
    """Suspensions that end: the cores go back to idle, every request is counted once."""
    g, sock, st, _ = start_master(run, str(tmp_path), processes=1, cores=4)
    ps = [Pending(sock, uwsgi_packet(req(p, "s=0.6")))
          for p in ("/gsleep", "/wait", "/suspend")]
    wait_for(lambda: {c["waiting"] for _, c in cores_of(stats(st))} >=
             {"timer", "future", "app-suspended"}, 3, what="three suspended cores")
    results = [p.finish() for p in ps]
    assert [(s, b) for s, _, b in results] == [(200, b"slept"), (200, b"done"),
                                                (200, b"resumed")]
    wait_settled(st, 3)
    doc = stats(st)
    check_shape(doc, 4)
    assert all(c["waiting"] == "idle" and c["in_request"] == 0 for _, c in cores_of(doc))
    assert sum(c["requests"] for _, c in cores_of(doc)) == 3
    w = doc["workers"][0]
    # three requests of >= 0.6 s each: running_time is in microseconds
    assert 3 * 600000 <= w["running_time"] < 3 * 600000 + 1500000, w["running_time"]
    assert w["avg_rt"] == w["running_time"] // 3


def test_stats_and_metrics_after_sigkill_respawn(run, tmp_path):
    mport = free_port()
    g, sock, st, doc = start_master(run, str(tmp_path), "--metrics-http", "127.0.0.1:%d" % mport)
    fams = parse_prometheus(scrape(mport))
    assert {ls["worker"]: v for ls, v in samples(fams, "gyre_worker_respawns_total")} == {
        "1": 0, "2": 0}
    old = {w["id"]: w["pid"] for w in doc["workers"]}
    os.kill(old[1], signal.SIGKILL)
    g.wait_log(r"master: worker 1 \(pid %d\) killed by signal 9" % old[1], timeout=5)

    def respawned():
        d = stats(st)
        ws = {w["id"]: w for w in d["workers"]}
        return (sorted(ws) == [1, 2] and ws[1]["pid"] != old[1] and ws[1]["accepting"] == 1)
    wait_for(respawned, 10, what="worker 1 respawned and accepting")
    doc = stats(st)
    check_shape(doc, 4)
    ws = {w["id"]: w for w in doc["workers"]}
    assert len(doc["workers"]) == 2, "the dead worker's slot is still listed: %s" % doc["workers"]
    assert ws[1]["respawn_count"] == 1 and ws[2]["respawn_count"] == 0, ws
    assert ws[2]["pid"] == old[2]
    fams = parse_prometheus(scrape(mport))
    assert {ls["worker"]: v for ls, v in samples(fams, "gyre_worker_respawns_total")} == {
        "1": 1, "2": 0}
    # and the new worker serves
    pids = {get(sock, "/pid")[1] for _ in range(6)}
    assert pids <= {b"pid=%d" % ws[1]["pid"], b"pid=%d" % old[2]}


def test_stats_tcp_plain_and_http(run, tmp_path):
    tmp = str(tmp_path)
    sock = os.path.join(tmp, "app.sock")
    port, hport = free_port(), free_port()
    plain = run("--master", "--processes", "1", "--tornado", "2", "--socket", sock,
                "--wsgi-file", APP, "--stats", "127.0.0.1:%d" % port)
    doc = wait_workers("127.0.0.1:%d" % port, plain, 1)
    check_shape(doc, 2)
    assert doc["pid"] == plain.pid
    assert get(sock, "/hello", "n=3") == (200, b"xxx")
    wait_settled("127.0.0.1:%d" % port, 1)

    sock2 = os.path.join(tmp, "app2.sock")
    g = run("--master", "--processes", "1", "--tornado", "2", "--socket", sock2,
            "--wsgi-file", APP, "--stats", "127.0.0.1:%d" % hport, "--stats-http")

    def http_doc():
        c = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
        try:
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            return r, body
        finally:
            c.close()

    def ready():
        try:
            r, body = http_doc()
        except OSError:
            return False
        d = json.loads(body)
        return len(d["workers"]) == 1 and d["workers"][0]["accepting"] == 1
    wait_for(ready, 15, what="the --stats-http document with an accepting worker")
    assert get(sock2, "/hello", "n=4") == (200, b"xxxx")
    r, body = http_doc()
    assert r.status == 200 and r.version == 10, (r.status, r.version)
    assert r.getheader("Content-Type") == "application/json"
    assert int(r.getheader("Content-Length")) == len(body)
    d = json.loads(body)
    check_shape(d, 2)
    assert d["pid"] == g.pid
    assert set(d) == set(doc), set(d) ^ set(doc)
    assert set(d["workers"][0]) == set(doc["workers"][0])
    assert total(d, "requests") == 1 and total(d, "tx") == 4
    # uwsgitop pointed at it reads the HTTP response as it is: head, then the same JSON
    raw = stats_raw("127.0.0.1:%d" % hport)
    head, _, js = raw.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200 OK\r\n"), head
    assert json.loads(js)["pid"] == g.pid


@pytest.mark.parametrize("proto", ["uwsgi", "http"])
def test_stats_memory_accounts_parked_requests(run, tmp_path, proto):
    """gyre's own "memory" object (issue 13): what N parked requests hold, and that it empties.
    Over HTTP too, whose parser's slots (header fields, params) are the worker's, not each
    connection's: a connection there was 20 KiB of them."""
    tmp = str(tmp_path)
    sock, st = os.path.join(tmp, "app.sock"), os.path.join(tmp, "stats.sock")
    flag = "--socket" if proto == "uwsgi" else "--http-socket"
    g = run(flag, sock, "--wsgi-file", APP, "--tornado", "12", "--stats", st)
    wait_workers(st, g, 1)
    n = 10
    request = (uwsgi_packet(req("/suspend", "s=3")) if proto == "uwsgi" else
               b"GET /suspend?s=3 HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n"
               b"Connection: close\r\n\r\n")
    ps = [Pending(sock, request) for _ in range(n)]
    try:
        # refreshed once a second by the worker: wait until it has seen all ten
        wait_for(lambda: stats(st)["workers"][0]["memory"]["parked_cores"] == n, 5,
                 what="the memory accounting to count %d parked requests" % n)
        m = stats(st)["workers"][0]["memory"]
        print("\n=== memory with %d requests parked: %s" % (n, m))
        assert m["busy_cores"] == n and m["greenlets"] >= n
        # each greenlet's Python frames start on a 1 KiB chunk of gyre's pool
        assert m["frame_stack_bytes"] == m["greenlets"] * 1024, m
        # greenlet saved part of each core's C stack; each environ is a dict with its values
        assert n * 512 <= m["greenlet_stack_bytes"] <= n * 65536, m
        assert n * 256 <= m["environ_bytes"] <= n * 16384, m
        assert m["connections"] == n
        # each a struct, its params and a buffer the size of a small head (1 KiB, not 32)
        assert n * 1024 <= m["connection_alloc_bytes"] <= n * 4096, m
        assert 0 < m["connection_buffered_bytes"] <= m["connection_alloc_bytes"]
        results = [p.finish() for p in ps]
        assert all(r[0] == 200 for r in results)
        wait_for(lambda: stats(st)["workers"][0]["memory"]["busy_cores"] == 0, 5,
                 what="the accounting to see the requests done")
        m = stats(st)["workers"][0]["memory"]
        assert (m["parked_cores"], m["greenlet_stack_bytes"], m["environ_bytes"]) == (0, 0, 0)
    finally:
        for p in ps:
            p.close()


def test_frame_stacks_of_abandoned_greenlets_go_back_to_the_pool(run, tmp_path):
    """A core's greenlet takes a frame-stack chunk from gyre's pool (frame_stack.c); a greenlet
    killed because nothing could resume it gives it back, so the pool, sized for the cores, is
    never spent by greenlets that are gone."""
    tmp = str(tmp_path)
    sock, st = os.path.join(tmp, "app.sock"), os.path.join(tmp, "stats.sock")
    g = run("--socket", sock, "--wsgi-file", APP, "--tornado", "2", "--stats", st)
    wait_workers(st, g, 1)
    for _ in range(6):  # three times the cores
        assert get(sock, "/abandon")[0] == 500
    assert get(sock, "/hello")[0] == 200
    # refreshed once a second: wait for a view with the last request done on a new greenlet
    wait_for(lambda: stats(st)["workers"][0]["memory"]["greenlets"] >= 1, 5,
             what="the accounting to see a live greenlet")
    m = stats(st)["workers"][0]["memory"]
    assert m["busy_cores"] == 0 and 1 <= m["greenlets"] <= 2, m
    assert m["frame_stack_bytes"] == m["greenlets"] * 1024, m
    assert g.log().count("abandoned: the app suspended its greenlet and nothing can resume it") == 6


def test_stats_single_process(run, tmp_path):
    tmp = str(tmp_path)
    sock, st = os.path.join(tmp, "app.sock"), os.path.join(tmp, "stats.sock")
    g = run("--socket", sock, "--wsgi-file", APP, "--tornado", "3", "--stats", st)
    doc = wait_workers(st, g, 1)
    check_shape(doc, 3)
    assert doc["pid"] == g.pid
    assert [(w["id"], w["pid"], w["respawn_count"]) for w in doc["workers"]] == [(1, g.pid, 0)]
    for _ in range(3):
        assert get(sock, "/hello", "n=10")[0] == 200
    assert get(sock, "/missing")[0] == 404
    p = Pending(sock, uwsgi_packet(req("/gsleep", "s=0.8")))
    try:
        wait_for(lambda: "timer" in [c["waiting"] for _, c in cores_of(stats(st))], 3,
                 what="a core waiting on a timer")
        doc = stats(st)
        check_shape(doc, 3)
        w = doc["workers"][0]
        assert w["status"] == "busy"
        assert [c["in_request"] for c in w["cores"]].count(1) == 1
        assert (w["requests"], w["tx"]) == (4, 30 + len(b"not found: /missing"))
        assert p.finish()[0] == 200
    finally:
        p.close()
    wait_settled(st, 5)
    doc = stats(st)
    assert doc["workers"][0]["status"] == "idle"
    assert sum(c["requests"] for _, c in cores_of(doc)) == 5


# ---- (2) Prometheus ----------------------------------------------------------------------------

EXPECTED_FAMILIES = {
    "gyre_requests_total": "counter", "gyre_exceptions_total": "counter",
    "gyre_requests_in_flight": "gauge", "gyre_worker_respawns_total": "counter",
    "gyre_cores_suspended": "gauge", "gyre_request_duration_seconds": "histogram",
    "gyre_listen_queue": "gauge", "gyre_response_bytes_total": "counter",
}


def check_histogram(fams, worker=None):
    """Buckets cumulative and monotonic by le, +Inf == _count; returns {le: count}, sum, count."""
    sel = {} if worker is None else {"worker": str(worker)}
    buckets = {}
    for ls, v in samples(fams, "gyre_request_duration_seconds_bucket"):
        if all(ls.get(k) == x for k, x in sel.items()):
            le = float(ls["le"])
            buckets[le] = buckets.get(le, 0) + v
    les = sorted(buckets)
    assert les[-1] == float("inf"), les
    counts = [buckets[le] for le in les]
    assert counts == sorted(counts), "buckets not cumulative: %s" % list(zip(les, counts))
    count = metric(fams, "gyre_request_duration_seconds_count", **sel)
    ssum = metric(fams, "gyre_request_duration_seconds_sum", **sel)
    assert buckets[float("inf")] == count
    return buckets, ssum, count


def test_metrics_requests_in_flight_and_suspended(run, tmp_path):
    mport = free_port()
    g, sock, st, _ = start_master(run, str(tmp_path), "--metrics-http", "127.0.0.1:%d" % mport)
    fams = parse_prometheus(scrape(mport))
    for name, t in EXPECTED_FAMILIES.items():
        assert fams.get(name, {}).get("type") == t, (name, fams.get(name))
    assert metric(fams, "gyre_requests_total") == 0

    sent = 0
    for path, status in [("/hello", 200)] * 3 + [("/missing", 404)] * 2 + [("/raise", 500)]:
        s, _, body = parse_response(uwsgi_request(sock, req(path)))
        assert s == status
        sent += len(body)
    wait_for(lambda: (lambda f: metric(f, "gyre_requests_total") == 6 and
                      metric(f, "gyre_requests_in_flight") == 0)(parse_prometheus(scrape(mport))),
             3, what="6 requests in the metrics, none in flight")
    fams = parse_prometheus(scrape(mport))
    by_class = {}
    for ls, v in samples(fams, "gyre_requests_total"):
        # pid keeps an old and a new process of one worker id apart during a reload
        assert set(ls) == {"worker", "pid", "class"} and ls["worker"] in ("1", "2"), ls
        by_class[ls["class"]] = by_class.get(ls["class"], 0) + v
    assert by_class == {"other": 0, "1xx": 0, "2xx": 3, "3xx": 0, "4xx": 2, "5xx": 1}, by_class
    assert metric(fams, "gyre_exceptions_total") == 1
    assert metric(fams, "gyre_response_bytes_total") == sent
    assert metric(fams, "gyre_requests_in_flight") == 0
    assert metric(fams, "gyre_cores_suspended") == 0
    _, _, count = check_histogram(fams)
    assert count == 6

    ps = suspended_requests(sock)
    try:
        want = {"timer": 1, "future": 1, "app-suspended": 1, "fd-read": 1}

        def seen():
            f = parse_prometheus(scrape(mport))
            return all(metric(f, "gyre_cores_suspended", waiting=k) == v for k, v in want.items())
        wait_for(seen, 5, what="the suspended cores in the metrics")
        text = scrape(mport)
        print("\n=== metrics scrape (--master --processes 2 --tornado 4; after 3 x 200, "
              "2 x 404, 1 x 500; 4 requests suspended) ===\n" + text)
        fams = parse_prometheus(text)
        assert metric(fams, "gyre_requests_in_flight") == 4
        assert metric(fams, "gyre_cores_suspended", waiting="fd-write") == 0
        labels = {ls["waiting"] for ls, _ in samples(fams, "gyre_cores_suspended")}
        assert labels == {"fd-read", "fd-write", "timer", "future", "app-suspended", "app-fd",
                          "websocket"}, labels
        # the same picture as the stats document
        counts = waiting_counts(stats(st))
        assert {k: counts.get(k, 0) for k in want} == want
    finally:
        for p in ps.values():
            p.close()


def test_metrics_histogram_single_process(run, tmp_path):
    tmp = str(tmp_path)
    mport = free_port()
    sock = os.path.join(tmp, "app.sock")
    g = run("--socket", sock, "--wsgi-file", APP, "--tornado", "4",
            "--metrics-http", "127.0.0.1:%d" % mport)

    def up():
        assert g.alive(), g.log()
        try:
            return scrape(mport, timeout=1) is not None
        except OSError:
            return False
    wait_for(up, 15, what="--metrics-http")
    ps = [Pending(sock, uwsgi_packet(req("/gsleep", "s=0.2"))) for _ in range(3)]
    assert [p.finish()[0] for p in ps] == [200] * 3
    assert get(sock, "/hello")[0] == 200 and get(sock, "/hello")[0] == 200
    wait_for(lambda: metric(parse_prometheus(scrape(mport)), "gyre_requests_total") == 5, 3,
             what="5 requests")
    fams = parse_prometheus(scrape(mport))
    assert {ls["worker"] for ls, _ in samples(fams, "gyre_requests_total")} == {"1"}
    buckets, ssum, count = check_histogram(fams, worker=1)
    assert count == 5
    assert sorted(buckets)[:-1] == [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                    5, 10], sorted(buckets)
    assert buckets[0.1] == 2, buckets     # the two /hello
    assert buckets[0.25] == 5, buckets    # and the three 0.2 s sleeps
    assert 0.6 <= ssum < 0.6 + 0.15, ssum
    assert metric(fams, "gyre_requests_total", **{"class": "2xx"}) == 5
    assert metric(fams, "gyre_worker_respawns_total") == 0


def http_request(path):
    return ("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path).encode()


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_listen_queue_fills(run, tmp_path, kind):
    """--tornado 1, one request suspended for 2 s: one more parsed request waits in gyre, the
    rest in the kernel's backlog, where stats and metrics see them."""
    tmp = str(tmp_path)
    st = os.path.join(tmp, "stats.sock")
    mport = free_port()
    if kind == "unix":
        addr = sock = os.path.join(tmp, "app.sock")
        args, name, proto = ["--socket", sock], sock, "uwsgi"
        packet = lambda p, q="": uwsgi_packet(req(p, q))  # noqa: E731
    else:
        port = free_port()
        addr, name, proto = ("127.0.0.1", port), "127.0.0.1:%d" % port, "http"
        args = ["--http-socket", name]
        packet = lambda p, q="": http_request(p + ("?" + q if q else ""))  # noqa: E731
    g = run("--master", "--processes", "1", "--tornado", "1", "--wsgi-file", APP, *args,
            "--stats", st, "--metrics-http", "127.0.0.1:%d" % mport)
    wait_workers(st, g, 1)
    slow = Pending(addr, packet("/gsleep", "s=2"))
    others = []
    try:
        wait_for(lambda: cores_of(stats(st))[0][1]["waiting"] == "timer", 3,
                 what="the slow request on the only core")
        others = [Pending(addr, packet("/hello", "n=1")) for _ in range(5)]
        # 1 core busy, 1 request parsed into gyre's queue, 4 in the kernel's backlog
        # The backlog shows 4 as soon as the worker has accepted the fifth connection; it stops
        # accepting once that one's head is parsed and queued: wait for both.
        def settled():
            d = stats(st)
            return d["listen_queue"] == 4 and d["workers"][0]["accepting"] == 0
        wait_for(settled, 3, what="4 connections in the backlog, the worker not accepting")
        doc = stats(st)
        check_shape(doc, 1)
        assert doc["sockets"][0]["queue"] == 4 and doc["load"] == 4
        fams = parse_prometheus(scrape(mport))
        assert samples(fams, "gyre_listen_queue") == [({"socket": name, "proto": proto}, 4)]
        assert metric(fams, "gyre_requests_in_flight") == 1
        assert metric(fams, "gyre_cores_suspended", waiting="timer") == 1
        status, _, body = slow.finish()
        assert (status, body) == (200, b"slept")
        assert [p.finish()[0] for p in others] == [200] * 5
    finally:
        slow.close()
        for p in others:
            p.close()
    wait_settled(st, 6)
    doc = stats(st)
    assert doc["listen_queue"] == 0 and doc["workers"][0]["accepting"] == 1
    assert metric(parse_prometheus(scrape(mport)), "gyre_listen_queue") == 0
    # core 0 served all 6; the first (the slow one) was followed on the same core by one taken
    # straight from gyre's queue of parsed requests
    assert sum(c["requests"] for _, c in cores_of(doc)) == 6, \
        "core 0 served all 6 requests but counts %s" % doc["workers"][0]["cores"][0]["requests"]


# ---- (1)+(2) while a worker is being replaced, and clients that read slowly --------------------

def reloading_master(run, tmp):
    """One worker with a 3 s request in flight, then SIGHUP: until that request ends, the old
    process (finishing it) and its replacement are both alive for worker id 1."""
    mport = free_port()
    g, sock, st, doc = start_master(run, tmp, "--metrics-http", "127.0.0.1:%d" % mport,
                                    processes=1, cores=2)
    old = doc["workers"][0]["pid"]
    slow = Pending(sock, uwsgi_packet(req("/gsleep", "s=3")))
    wait_for(lambda: "timer" in [c["waiting"] for _, c in cores_of(stats(st))], 3,
             what="the slow request")
    g.signal(signal.SIGHUP)
    g.wait_log(r"master: worker 1 \(pid %d\) replaced by pid \d+" % old, timeout=10)
    g.wait_log(r"\] Hangup: graceful stop, 1 connection", timeout=5)
    wait_for(lambda: len(stats(st)["workers"]) == 2 and all(
        w["pid"] == old or w["accepting"] for w in stats(st)["workers"]), 5,
        what="the old worker and its accepting replacement")
    assert old in [w["pid"] for w in stats(st)["workers"]]
    return g, sock, st, mport, old, slow


def test_metrics_no_duplicate_series_during_reload(run, tmp_path):
    g, sock, st, mport, old, slow = reloading_master(run, str(tmp_path))
    try:
        text = scrape(mport)
        # two processes for worker id 1 must not give two series with the same labels: that is
        # not valid exposition (Prometheus drops the duplicates, promtool rejects the scrape)
        fams = parse_prometheus(text)
        assert metric(fams, "gyre_requests_in_flight") == 1
        assert slow.finish()[0] == 200
    finally:
        slow.close()


def test_stats_old_worker_not_accepting_during_reload(run, tmp_path):
    g, sock, st, mport, old, slow = reloading_master(run, str(tmp_path))
    try:
        doc = stats(st)
        check_shape(doc, 2)
        by_pid = {w["pid"]: w for w in doc["workers"]}
        assert len(by_pid) == 2, doc["workers"]
        new = [p for p in by_pid if p != old][0]
        assert by_pid[new]["accepting"] == 1
        assert by_pid[old]["status"] == "busy"
        # the old worker closed its listening sockets in its graceful stop: it accepts nothing
        assert by_pid[old]["accepting"] == 0, \
            "the worker finishing its requests after SIGHUP still says accepting=1"
        assert slow.finish()[0] == 200
    finally:
        slow.close()


def read_slowly(port, request, rcvbuf=2048, timeout=5.0):
    """A client with a small receive window (a scraper on a slow link, or a big document): send
    the request, then read in small pieces until EOF. (head, body, error)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    data, err = b"", None
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        time.sleep(0.1)
        while True:
            d = s.recv(1024)
            if not d:
                break
            data += d
            time.sleep(0.005)
    except OSError as e:
        err = e
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body, err


@pytest.mark.parametrize("what", ["metrics-http", "stats-http"])
def test_http_document_whole_for_a_slow_reader(run, tmp_path, what):
    """The request an HTTP client sends is never read: closing a TCP socket with unread input
    sends RST, and the kernel throws away what was not yet transmitted."""
    tmp = str(tmp_path)
    sport, mport = free_port(), free_port()
    run("--master", "--processes", "2", "--tornado", "4", "--socket",
             os.path.join(tmp, "app2.sock"), "--wsgi-file", APP,
             "--stats", "127.0.0.1:%d" % sport, "--stats-http",
             "--metrics-http", "127.0.0.1:%d" % mport)
    wait_for(lambda: len(json.loads(read_slowly(sport, b"GET / HTTP/1.0\r\n\r\n",
                                                 rcvbuf=1 << 20)[1] or b"{}")
                         .get("workers", [])) == 2, 15, what="gyre's two workers")
    port = mport if what == "metrics-http" else sport
    # control: the same slow reader sending no request (uwsgitop's way) gets it all
    head, body, err = read_slowly(port, b"")
    m = re.search(r"Content-Length: (\d+)", head)
    assert m and err is None and len(body) == int(m.group(1)), (head, len(body), err)
    request = (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.42.0\r\n"
               b"Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
               b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")
    head, body, err = read_slowly(port, request)
    m = re.search(r"Content-Length: (\d+)", head)
    assert head.startswith("HTTP/1.0 200 OK") and m, head
    assert err is None and len(body) == int(m.group(1)), \
        "got %d of %s bytes, then %r" % (len(body), m.group(1), err)


def test_stats_client_that_does_not_read_does_not_stall_requests(run, tmp_path):
    """Without a master the stats are served on the worker's loop: a blocking send to a stats
    client that does not read stops every request of the process meanwhile."""
    tmp = str(tmp_path)
    sock, st = os.path.join(tmp, "app.sock"), os.path.join(tmp, "stats.sock")
    g = run("--socket", sock, "--wsgi-file", APP, "--tornado", "1000", "--stats", st)
    wait_workers(st, g, 1)
    assert len(stats_raw(st)) > 200000  # a document larger than a socket's buffers
    p = Pending(sock, uwsgi_packet(req("/gsleep", "s=0.3")))
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        lazy.connect(st)  # and never reads
        time.sleep(0.05)
        t0 = time.monotonic()
        assert get(sock, "/hello") == (200, b"xxxxx")
        took = time.monotonic() - t0
        status, _, body = p.finish()
        slept = time.monotonic() - t0
        assert (status, body) == (200, b"slept")
        assert took < 0.5, "a 0-ms request took %.2f s while a stats client did not read" % took
        assert slept < 0.8, "a 0.3 s sleep ended after %.2f s" % slept
    finally:
        lazy.close()
        p.close()


class Trickler:
    """Slow clients: each connects and sends one byte of a request every `every` seconds, from
    one thread, until stopped or `limit` seconds have passed (every loop bounded)."""

    def __init__(self, addrs, request, every=0.3, limit=20.0):
        self.socks = []
        for addr in addrs:
            if isinstance(addr, tuple):
                s = socket.create_connection(addr, timeout=5)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5)
                s.connect(addr)
            self.socks.append(s)
        self.request, self.every, self.limit = request, every, limit
        self.closed_at = {}         # index -> seconds after start when the server closed it
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self.stop.is_set() and time.monotonic() - self.t0 < self.limit:
            byte = self.request[i % len(self.request):][:1]   # never the end of the head
            for k, s in enumerate(self.socks):
                if k in self.closed_at:
                    continue
                try:
                    s.sendall(byte)
                    s.setblocking(False)
                    try:
                        if s.recv(65536) == b"":
                            self.closed_at[k] = time.monotonic() - self.t0
                    except BlockingIOError:
                        pass
                    finally:
                        s.setblocking(True)
                except OSError:
                    self.closed_at[k] = time.monotonic() - self.t0
            i = i + 1 if i + 1 < len(self.request) else 0
            self.stop.wait(self.every)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def test_stats_and_metrics_answer_while_slow_clients_trickle(run, tmp_path):
    """Issue 8 (2): a client sending one byte every 0.3 s held the stats thread (every recv had
    a fresh timeout), and /metrics and the stats stopped answering. Several of them on both
    sockets now: a scraper still gets /metrics and the --stats-http JSON, every time, at once,
    and the slow ones are cut off by their whole-request deadline."""
    tmp = str(tmp_path)
    sport, mport = free_port(), free_port()
    sock = os.path.join(tmp, "app.sock")
    g = run("--master", "--processes", "1", "--tornado", "2", "--socket", sock,
            "--wsgi-file", APP, "--stats", "127.0.0.1:%d" % sport, "--stats-http",
            "--metrics-http", "127.0.0.1:%d" % mport)

    def up():
        try:
            return "gyre_requests_total{" in scrape(mport, 2.0)
        except OSError:
            return False
    wait_for(up, 15, what="a scrape listing a worker")
    # never a complete head: "\r\n\r\n" is not in it
    head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Pad: "
    slow = Trickler([("127.0.0.1", mport)] * 4 + [("127.0.0.1", sport)] * 4, head + b"a" * 200)
    try:
        # the slow ones are connected and have sent bytes before the scrapes start
        wait_for(lambda: time.monotonic() - slow.t0 > 0.7, 2, what="slow clients under way")
        for i in range(5):
            text, took = timed(scrape, mport, 5.0)
            assert took < 2.0, "scrape %d took %.2f s behind slow clients" % (i, took)
            check_histogram(parse_prometheus(text))
            raw, took = timed(stats_raw, "127.0.0.1:%d" % sport, 5.0)
            assert took < 2.0, "stats %d took %.2f s behind slow clients" % (i, took)
            h, _, js = raw.partition("\r\n\r\n")
            assert h.startswith("HTTP/1.0 200 OK\r\n"), h
            assert json.loads(js)["pid"] == g.pid
        # each slow client is closed by its deadline, well before it would have finished
        wait_for(lambda: len(slow.closed_at) == len(slow.socks), 15,
                 what="the slow clients cut off by their deadline")
        assert max(slow.closed_at.values()) < 12, slow.closed_at
    finally:
        slow.close()
    assert g.alive()


def test_stats_served_while_many_slow_clients_fill_the_slots(run, tmp_path):
    """More slow clients than the stats thread serves at once (64): a new client still gets its
    document at once, the oldest slow one making room, on /metrics; and on the plain --stats
    unix socket, where a client that keeps sending after its document held the thread too."""
    tmp = str(tmp_path)
    sock, st = os.path.join(tmp, "app.sock"), os.path.join(tmp, "stats.sock")
    mport = free_port()
    g = run("--socket", sock, "--wsgi-file", APP, "--tornado", "2", "--stats", st,
            "--metrics-http", "127.0.0.1:%d" % mport)
    wait_workers(st, g, 1)
    head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 200
    for addrs in ([("127.0.0.1", mport)] * 80, [st] * 80):
        slow = Trickler(addrs, head, every=0.3)
        try:
            wait_for(lambda: time.monotonic() - slow.t0 > 0.7, 2, what="slow clients under way")
            for i in range(5):
                text, took = timed(scrape, mport, 5.0)
                assert took < 2.0, "scrape %d took %.2f s behind slow clients" % (i, took)
                assert "gyre_requests_total{" in text
                doc, took = timed(stats, st)
                assert took < 2.0, "stats %d took %.2f s behind slow clients" % (i, took)
                assert doc["pid"] == g.pid
        finally:
            slow.close()
    assert g.alive()


def test_stats_unix_socket_is_owner_only(run, tmp_path):
    """Issue 8 (4, part): the stats socket was created with the umask's mode (0755 under the
    usual 022: anyone could connect, read the server's state and hold the stats thread). It
    is 0600 now, whatever the umask and --chmod-socket (which is for the app's sockets)."""
    tmp = str(tmp_path)
    sock, st = os.path.join(tmp, "app.sock"), os.path.join(tmp, "stats.sock")
    g = run("--socket", sock, "--wsgi-file", APP, "--stats", st, "--chmod-socket", "666")
    wait_workers(st, g, 1)
    assert oct(os.stat(st).st_mode & 0o777) == oct(0o600)
    assert oct(os.stat(sock).st_mode & 0o777) == oct(0o666)
    assert os.stat(st).st_uid == os.getuid()
    sock2, st2 = os.path.join(tmp, "app2.sock"), os.path.join(tmp, "stats2.sock")
    m = run("--master", "--processes", "1", "--socket", sock2, "--wsgi-file", APP,
            "--stats", st2)
    wait_workers(st2, m, 1)
    assert oct(os.stat(st2).st_mode & 0o777) == oct(0o600)


# ---- (3) systemd: socket activation ------------------------------------------------------------

def activated(run, listen, *gyre_args, env=None):
    """systemd-socket-activate -l ... gyre ...: it binds, waits for a first connection, then
    execs gyre (same pid) with LISTEN_FDS/LISTEN_PID."""
    activate = []
    for a in listen:
        activate += ["-l", a]
    for k, v in (env or {}).items():
        activate += ["-E", "%s=%s" % (k, v)]
    p = run("--wsgi-file", APP, *gyre_args, activate=activate)
    for a in listen:
        if "/" in a:
            wait_for(lambda: os.path.exists(a) or not p.alive(), 5, what="socket " + a)
        else:
            host, port = a.rsplit(":", 1)

            def up():
                if not p.alive():
                    return True
                try:
                    socket.create_connection((host, int(port)), timeout=0.2).close()
                    return True
                except OSError:
                    return False
            wait_for(up, 5, what="TCP socket " + a)
    assert p.alive(), p.log()
    return p


def fcgi_request(path, uri="/pid", timeout=10.0):
    """A minimal FastCGI responder request; returns the STDOUT stream."""
    with connect(path, timeout) as s:
        s.sendall(fcgi_request_bytes(1, path=uri))
        out, ended = FcgiReader(s).read_stdout()
    assert ended, "no END_REQUEST after %r" % out
    return out


def test_socket_activation_unix_single(run, tmp_path):
    path = os.path.join(str(tmp_path), "act.sock")
    p = activated(run, [path], "--socket", path)
    # the first connection makes systemd-socket-activate exec gyre, which must serve it
    status, body = get(path, "/pid")
    assert (status, body) == (200, b"pid=%d" % p.pid)
    p.wait_log(r"\(from systemd\)")
    assert [(pid, s) for pid, _, s in p.banners()] == [
        (p.pid, "uwsgi://%s (from systemd)" % path)], p.log()
    for _ in range(3):
        assert get(path, "/hello", "n=2") == (200, b"xx")
    p.signal(signal.SIGTERM)
    assert p.wait_exit(10) == 0, p.log()
    assert os.path.exists(path), "gyre removed the socket systemd owns"


def test_socket_activation_master_and_notify(run, tmp_path):
    tmp = str(tmp_path)
    path = os.path.join(tmp, "act.sock")
    n = Notify(tmp)
    try:
        p = activated(run, [path], "--master", "--processes", "2", "--tornado", "2",
                      "--socket", path, env={"NOTIFY_SOCKET": n.path})
        pids = {get(path, "/pid")[1] for _ in range(10)}
        p.wait_log(r"\(worker \d+\): .*\(from systemd\)", count=2)
        banners = p.banners()
        assert sorted(w for _, w, _ in banners) == [1, 2]
        assert all(s == "uwsgi://%s (from systemd)" % path for _, _, s in banners), banners
        assert pids <= {b"pid=%d" % pid for pid, _, _ in banners}
        n.wait(lambda ms: any("READY" in m for _, m in ms), 10, "READY=1")
        ready = [m for _, m in n.messages if "READY" in m][0]
        assert ready["MAINPID"] == str(p.pid)
        assert {pid for pid, _ in n.messages} == {p.pid}
    finally:
        n.close()


@pytest.mark.parametrize("order", ["same", "swapped"])
def test_socket_activation_two_sockets_by_path(run, tmp_path, order):
    tmp = str(tmp_path)
    p1, p2 = os.path.join(tmp, "uwsgi.sock"), os.path.join(tmp, "fcgi.sock")
    listen = [p1, p2] if order == "same" else [p2, p1]
    p = activated(run, listen, "--socket", p1, "--fastcgi-socket", p2)
    assert get(p1, "/pid") == (200, b"pid=%d" % p.pid)
    out = fcgi_request(p2)
    assert out.endswith(b"pid=%d" % p.pid) and b"Status: 200" in out, out
    assert get(p1, "/hello") == (200, b"xxxxx")
    p.wait_log(r"\(from systemd\)")
    assert [s for _, _, s in p.banners()] == [
        "uwsgi://%s (from systemd), fastcgi://%s (from systemd)" % (p1, p2)], p.log()
    assert "matches no configured socket" not in p.log()


def test_socket_activation_by_order_and_mixed(run, tmp_path):
    """An inherited socket whose path matches nothing is taken by the first configured socket
    without one; a configured socket nothing stands for is bound by gyre itself."""
    tmp = str(tmp_path)
    inherited = os.path.join(tmp, "inherited.sock")
    configured = os.path.join(tmp, "configured.sock")
    hport = free_port()
    p = activated(run, [inherited], "--socket", configured,
                  "--http-socket", "127.0.0.1:%d" % hport)
    assert get(inherited, "/pid") == (200, b"pid=%d" % p.pid)
    p.wait_log(r"\(from systemd\)")
    # Matched by order, the socket is named as it really is (the inherited path).
    assert [s for _, _, s in p.banners()] == [
        "uwsgi://%s (from systemd), http://127.0.0.1:%d" % (inherited, hport)], p.log()
    assert not os.path.exists(configured)
    c = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
    c.request("GET", "/pid")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"pid=%d" % p.pid)
    c.close()


def test_socket_activation_tcp_http(run, tmp_path):
    port = free_port()
    addr = "127.0.0.1:%d" % port
    p = activated(run, [addr], "--http-socket", addr, "--tornado", "2")
    for i in range(3):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/pid")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"pid=%d" % p.pid)
        c.close()
    p.wait_log(r"\(from systemd\)")
    assert [s for _, _, s in p.banners()] == ["http://%s (from systemd)" % addr], p.log()


def test_socket_activation_unused_fd_closed(run, tmp_path):
    tmp = str(tmp_path)
    p1, p2 = os.path.join(tmp, "used.sock"), os.path.join(tmp, "spare.sock")
    p = activated(run, [p1, p2], "--socket", p1)
    assert get(p1, "/pid") == (200, b"pid=%d" % p.pid)
    p.wait_log(r"fd 4 from systemd matches no configured socket: closed")
    assert [s for _, _, s in p.banners()] == ["uwsgi://%s (from systemd)" % p1], p.log()
    with pytest.raises(ConnectionRefusedError):
        connect(p2, timeout=2).close()


# ---- (3) systemd: sd_notify --------------------------------------------------------------------

class Notify:
    """The NOTIFY_SOCKET end: a unix datagram socket with SO_PASSCRED, so that the kernel tells
    the sender's pid of every message. messages: [(sender pid, {key: value})]."""

    UCRED = struct.Struct("iII")

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.messages = []
        self.raw = []

    def receive(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(self.UCRED.size))
        except socket.timeout:
            return False
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = self.UCRED.unpack(cdata[:self.UCRED.size])[0]
        assert pid is not None, "no SCM_CREDENTIALS with %r" % data
        text = data.decode()
        self.raw.append((pid, text))
        fields = {}
        for line in text.split("\n"):
            if line:
                k, _, v = line.partition("=")
                fields[k] = v
        self.messages.append((pid, fields))
        return True

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s; got %r" % (what, self.raw))
            self.receive(min(left, 0.2))

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.receive(max(0.01, deadline - time.monotonic()))

    def close(self):
        self.sock.close()


def notify_env(n):
    env = dict(os.environ)
    env["NOTIFY_SOCKET"] = n.path
    return env


def test_sd_notify_single_process(run, tmp_path):
    tmp = str(tmp_path)
    sock = os.path.join(tmp, "app.sock")
    n = Notify(tmp)
    try:
        g = run("--socket", sock, "--wsgi-file", APP, "--tornado", "3", env=notify_env(n))
        n.wait(lambda ms: len(ms) >= 1, 15, "READY=1")
        pid, m = n.messages[0]
        assert pid == g.pid
        assert m.get("READY") == "1" and m.get("STATUS"), n.raw
        assert m.get("MAINPID") == str(g.pid)
        # READY means serving
        assert get(sock, "/pid") == (200, b"pid=%d" % g.pid)
        # without a master SIGHUP is ignored: nothing to tell systemd
        g.signal(signal.SIGHUP)
        g.wait_log("SIGHUP: a graceful reload needs --master")
        n.drain(0.2)
        assert len(n.messages) == 1, n.raw
        g.signal(signal.SIGTERM)
        n.wait(lambda ms: len(ms) >= 2, 10, "STOPPING=1")
        assert n.messages[1] == (g.pid, {"STOPPING": "1"}), n.raw
        assert g.wait_exit(10) == 0
        n.drain(0.1)
        assert len(n.messages) == 2, n.raw
    finally:
        n.close()


def test_sd_notify_master_reload_and_stop(run, tmp_path):
    tmp = str(tmp_path)
    sock = os.path.join(tmp, "app.sock")
    n = Notify(tmp)
    try:
        g = run("--master", "--processes", "2", "--tornado", "2", "--socket", sock,
                "--wsgi-file", APP, env=notify_env(n))
        n.wait(lambda ms: len(ms) >= 1, 15, "READY=1")
        pid, m = n.messages[0]
        assert pid == g.pid, "the first message came from pid %s, not the master %s" % (
            pid, g.pid)
        assert m.get("READY") == "1" and m.get("MAINPID") == str(g.pid), n.raw
        assert m.get("STATUS"), n.raw
        # READY=1 only once both workers serve
        first = {p for p, w, _ in g.banners() if w}
        assert len(first) == 2, g.log()
        assert {get(sock, "/pid")[1] for _ in range(8)} <= {b"pid=%d" % p for p in first}

        g.signal(signal.SIGHUP)
        n.wait(lambda ms: len(ms) >= 3, 15, "RELOADING=1 then READY=1")
        (_, reloading), (_, ready) = n.messages[1], n.messages[2]
        assert reloading.get("RELOADING") == "1", n.raw
        assert ready.get("READY") == "1" and ready.get("MAINPID") == str(g.pid), n.raw
        g.wait_log(r"master: started worker \d+", count=4)
        new = {p for p, w, _ in g.banners() if w} - first
        assert len(new) == 2, g.log()
        # the old workers were told to stop when READY=1 came (they may still take a
        # connection or two before they see their SIGHUP); they exit and the new ones serve
        for p in first:
            g.wait_log(r"master: worker \d \(pid %d\) exited with status 0" % p, timeout=10)
        got = {get(sock, "/pid")[1] for _ in range(8)}
        assert got <= {b"pid=%d" % p for p in new}, (got, new)

        g.signal(signal.SIGTERM)
        n.wait(lambda ms: len(ms) >= 4, 10, "STOPPING=1")
        assert n.messages[3][1] == {"STOPPING": "1"}, n.raw
        assert g.wait_exit(15) == 0, g.log()
        n.drain(0.1)
        assert [list(m)[0] for _, m in n.messages] == ["READY", "RELOADING", "READY",
                                                        "STOPPING"], n.raw
        senders = {p for p, _ in n.messages}
        assert senders == {g.pid}, "messages from %s; workers were %s" % (senders, first | new)
    finally:
        n.close()
