"""uwsgi.cache_* (issue 12): the shared-memory cache of --cache2/--cache. Each check that gyre
claims as uWSGI's runs the same app (tests/apps/cache_app.py) under gyre and under Debian's
uWSGI 2.0.21 (--plugin python3 --master) with two workers or more, and compares what the app
sees; gyre's own guarantees (a worker SIGKILLed mid-write leaves no torn value, --metrics-http,
option errors) are checked on gyre alone. A Django cache backend over uwsgi.cache_* (written
here) serves a real Django view under gyre too."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import APPS, GYRE, UWSGI, Session, free_port, wait_for

APP = os.path.join(APPS, "cache_app.py")
SERVERS = ("gyre", "uwsgi")
TIMEOUT = 30


class Server:
    """gyre or Debian's uWSGI: a master and `workers` workers serving cache_app.py on
    --http-socket, with the extra options args; ready once the app answers."""

    def __init__(self, tmp, kind, *args, workers=2, master=True):
        self.kind = kind
        for _ in range(3):  # a port taken meanwhile by another process: another one
            self.port = free_port()
            self.url = "http://127.0.0.1:%d" % self.port
            procs = ["--master", "--processes", str(workers)] if master else []
            common = ["--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", APP, *procs,
                      *args]
            argv = [GYRE, *common] if kind == "gyre" else [UWSGI, "--plugin", "python3", *common]
            self.session = Session(tmp, argv)
            wait_for(lambda: self._answers() or not self.session.alive(), TIMEOUT,
                     what="%s to answer" % kind)
            if self.session.alive() or "Address already in use" not in self.log():
                break
        assert self.session.alive(), self.log()

    def _answers(self):
        try:
            self.get("/whoami", timeout=2)
            return True
        except OSError:
            return False

    def log(self):
        return self.session.log()

    def get(self, path, timeout=TIMEOUT):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            assert r.status == 200
            return r.read().decode()

    def run(self, *calls, hold=None):
        """The calls in one request: (pid of the worker, [outcome per call]); hold: seconds the
        request then keeps its core."""
        req = urllib.request.Request(self.url + "/run" + ("?hold=%g" % hold if hold else ""),
                                     data=json.dumps(calls).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            doc = json.loads(r.read())
        return doc["pid"], doc["results"]

    def run1(self, *call):
        return self.run(call)[1][0]

    def stop(self):
        self.session.kill_group()


@pytest.fixture
def server(tmp_path):
    started = []

    def start(kind, *args, **kw):
        s = Server(str(tmp_path), kind, *args, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def b(text):
    return {"b": text}


OK_NONE = ["ok", ["NoneType", None]]
OK_TRUE = ["ok", ["bool", True]]


def ok_bytes(text):
    return ["ok", ["bytes", text]]


def ok_int(n):
    return ["ok", ["int", n]]


# What Debian's uWSGI 2.0.21 answers (read off it side by side); gyre must answer the same.
API_CASES = [
    (["cache_get", "a"], OK_NONE),
    (["cache_set", "a", b("one")], OK_TRUE),
    (["cache_set", "a", b("two")], OK_NONE),  # never overwrites
    (["cache_get", "a"], ok_bytes("one")),
    (["cache_update", "a", b("three")], OK_TRUE),
    (["cache_get", "a"], ok_bytes("three")),
    (["cache_exists", "a"], OK_TRUE),
    (["cache_exists", "zz"], OK_NONE),
    (["cache_del", "a"], OK_TRUE),
    (["cache_del", "a"], OK_NONE),
    (["cache_inc", "n"], OK_TRUE),  # a missing key is created from 0
    (["cache_get", "n"], ok_bytes("\x01" + "\x00" * 7)),  # 8 raw bytes, native order
    (["cache_num", "n"], ok_int(1)),
    (["cache_inc", "n", 5], OK_TRUE),
    (["cache_dec", "n", 2], OK_TRUE),
    (["cache_mul", "n"], OK_TRUE),  # by 2
    (["cache_div", "n", 3], OK_TRUE),
    (["cache_num", "n"], ok_int(2)),
    (["cache_div", "n", 0], OK_TRUE),  # by 0: 0
    (["cache_num", "n"], ok_int(0)),
    (["cache_num", "missing"], ok_int(0)),
    (["cache_inc", "w", 2 ** 63 - 1], OK_TRUE),
    (["cache_inc", "w"], OK_TRUE),
    (["cache_num", "w"], ok_int(-2 ** 63)),  # wraps
    (["cache_set", "s8", b("12345678")], OK_TRUE),
    (["cache_inc", "s8"], OK_TRUE),  # a value that is no number: its first 8 bytes
    (["cache_get", "s8"], ok_bytes("22345678")),
    (["cache_set", "big", b("x" * 101)], OK_NONE),  # over blocksize (100)
    (["cache_update", "big", b("x" * 101)], OK_NONE),
    (["cache_set", "big", b("x" * 100)], OK_TRUE),
    (["cache_set", "k" * 33, b("v")], OK_NONE),  # over keysize (32)
    (["cache_set", "", b("v")], OK_NONE),
    (["cache_set", "e", b("")], OK_NONE),
    (["cache_set", "s", "text"], OK_TRUE),  # str is taken as UTF-8
    (["cache_get", "s"], ok_bytes("text")),
    (["cache_keys"], ["ok", ["list", sorted(["big", "n", "s", "s8", "w"])]]),
    # the trailing cache name
    (["cache_set", "x", b("in c2"), 0, "c2"], OK_TRUE),
    (["cache_get", "x", "c2"], ok_bytes("in c2")),
    (["cache_get", "x"], OK_NONE),
    (["cache_keys", "c2"], ["ok", ["list", ["x"]]]),
    (["cache_inc", "i", 1, 0, "c2"], OK_TRUE),
    (["cache_num", "i", "c2"], ok_int(1)),
    (["cache_exists", "x", "c2"], OK_TRUE),
    (["cache_del", "x", "c2"], OK_TRUE),
    (["cache_clear", "c2"], OK_TRUE),
    (["cache_keys", "c2"], ["ok", ["list", []]]),
    # a cache that does not exist
    (["cache_get", "a", "nope"], OK_NONE),
    (["cache_set", "a", b("v"), 0, "nope"], OK_NONE),
    (["cache_exists", "a", "nope"], OK_NONE),
    (["cache_del", "a", "nope"], OK_NONE),
    (["cache_clear", "nope"], OK_NONE),
    (["cache_num", "a", "nope"], ok_int(0)),
    (["cache_inc", "a", 1, 0, "nope"], OK_NONE),
    (["cache_keys", "nope"], ["error", "ValueError", "no local uWSGI cache available"]),
    # argument errors
    (["cache_set", 5, b("v")],
     ["error", "TypeError", "a bytes-like object is required, not 'int'"]),
    (["cache_set", "t", b("v"), "x"],
     ["error", "TypeError", "'str' object cannot be interpreted as an integer"]),
    (["cache_get"], ["error", "TypeError", "cache_get() takes at least 1 argument (0 given)"]),
    (["cache_inc", "n", 2 ** 64],
     ["error", "OverflowError", "Python int too large to convert to C long"]),
    # uWSGI 2.0.21 has no cache_append/cache_prepend
    (["cache_append", "a", b("v")], ["missing", "cache_append"]),
    (["cache_prepend", "a", b("v")], ["missing", "cache_prepend"]),
    (["cache_clear"], OK_TRUE),
    (["cache_keys"], ["ok", ["list", []]]),
]

CACHES = ["--cache2", "name=c1,items=10,blocksize=100,keysize=32",
          "--cache2", "name=c2,items=5"]


@pytest.mark.parametrize("kind", SERVERS)
def test_api_answers_as_uwsgi(server, kind):
    s = server(kind, *CACHES)
    _, results = s.run(*[c for c, _ in API_CASES])
    for (call, want), got in zip(API_CASES, results):
        assert got == want, (call, got)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_cache_without_a_master(server, kind):
    """One process, no master: the cache is made by that process and works as with one."""
    s = server(kind, *CACHES, master=False)
    got = s.run(["cache_set", "a", b("1")], ["cache_inc", "n", 3], ["cache_get", "a"],
                ["cache_num", "n"], ["cache_keys"])[1]
    assert got == [OK_TRUE, OK_TRUE, ok_bytes("1"), ok_int(3), ["ok", ["list", ["a", "n"]]]]


@pytest.mark.parametrize("kind", SERVERS)
def test_no_cache_configured(server, kind):
    """Without a cache every call answers as if its key were absent; cache_keys raises."""
    s = server(kind)
    _, got = s.run(["cache_get", "a"], ["cache_set", "a", b("v")], ["cache_update", "a", b("v")],
                   ["cache_exists", "a"], ["cache_del", "a"], ["cache_clear"], ["cache_num", "a"],
                   ["cache_inc", "a"], ["cache_keys"])
    assert got == [OK_NONE] * 6 + [ok_int(0), OK_NONE,
                                   ["error", "ValueError", "no local uWSGI cache available"]]


def test_remote_cache_names_are_refused(server):
    """uWSGI's NAME@HOST:PORT asks its cache server: gyre has none, and says so."""
    s = server("gyre", *CACHES)
    for call in (["cache_get", "a", "c1@127.0.0.1:1"],
                 ["cache_set", "a", b("v"), 0, "c1@127.0.0.1:1"],
                 ["cache_keys", "c1@127.0.0.1:1"]):
        got = s.run1(*call)
        assert got[:2] == ["error", "NotImplementedError"], got
        assert "remote cache" in got[2] and "c1@127.0.0.1:1" in got[2]


def other_worker_run(s, pid, *calls, rounds=20, clients=12):
    """The calls, answered by a worker other than pid: bursts of concurrent requests that each
    keep their core 0.2 s, so that a worker whose cores are all taken leaves the next ones to
    another. Calls that change nothing: the requests answered by pid itself run them too."""
    for _ in range(rounds):
        answers = []

        def client():
            answers.append(s.run(*calls, hold=0.2))
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        for got_pid, results in answers:
            if got_pid != pid:
                return results
    raise AssertionError("no other worker than %d answered in %d bursts" % (pid, rounds))


UWSGI_TORNADO = ["--plugin", "greenlet_python3,tornado_python3", "--tornado", "8", "--greenlet"]


@pytest.mark.parametrize("kind,extra", [("gyre", []), ("uwsgi", []),
                                        ("gyre", ["--tornado", "8"]), ("uwsgi", UWSGI_TORNADO),
                                        ("gyre", ["--threads", "4"])],
                         ids=["gyre", "uwsgi", "gyre-tornado", "uwsgi-tornado", "gyre-threads"])
def test_workers_share_the_cache(server, kind, extra):
    s = server(kind, *CACHES, *extra)
    pid, got = s.run(["cache_update", "shared", b("from a worker")], ["cache_inc", "count", 5])
    assert got == [OK_TRUE, OK_TRUE]
    # reads only: the requests that reach the same worker again change nothing
    got = other_worker_run(s, pid, ["cache_get", "shared"], ["cache_num", "count"])
    assert got == [ok_bytes("from a worker"), ok_int(5)]
    assert s.run1("cache_del", "shared") == OK_TRUE
    assert s.run1("cache_get", "shared") == OK_NONE


@pytest.mark.parametrize("kind,extra", [("gyre", []), ("uwsgi", ["--enable-threads"])])
def test_concurrent_increments_all_count(server, kind, extra):
    """cache_inc is atomic across processes and threads: 4 workers x 4 threads, 8 clients."""
    s = server(kind, *CACHES, "--threads", "4", *extra, workers=4)
    per_client, clients = 40, 8
    errors = []

    def client():
        try:
            for _ in range(per_client):
                assert s.run1("cache_inc", "hits") == OK_TRUE
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert s.run1("cache_num", "hits") == ok_int(per_client * clients)


@pytest.mark.parametrize("kind", SERVERS)
def test_an_expired_value_goes(server, kind):
    """cache_set(key, value, 1): gone after a second (gyre: at once; uWSGI: at its sweeper's
    next pass, every 3 s by default); a value without expiry stays."""
    s = server(kind, *CACHES)
    assert s.run1("cache_set", "short", b("v"), 1) == OK_TRUE
    assert s.run1("cache_set", "long", b("v")) == OK_TRUE
    wait_for(lambda: s.run1("cache_get", "short") == OK_NONE, 15,
             what="the expired value to go")
    assert s.run1("cache_get", "long") == ok_bytes("v")
    assert s.run1("cache_keys") == ["ok", ["list", ["long"]]]


@pytest.mark.parametrize("kind", SERVERS)
def test_the_master_sweeps_expired_items(server, kind):
    """--cache-expire-freq 1 --cache-report-freed-items: the master's sweep frees the expired
    items of a cache nobody reads, and says so as uWSGI does."""
    s = server(kind, *CACHES, "--cache-expire-freq", "1", "--cache-report-freed-items")
    got = s.run(["cache_set", "x", b("v"), 1], ["cache_set", "y", b("v"), 1],
                ["cache_set", "z", b("v")])[1]
    assert got == [OK_TRUE] * 3
    wait_for(lambda: 'freed 2 items for cache "c1"' in s.log(), 15, what="the sweep's line")
    assert s.run1("cache_keys") == ["ok", ["list", ["z"]]]


@pytest.mark.parametrize("kind", SERVERS)
def test_a_full_cache_refuses_or_purges_the_lru_key(server, kind):
    s = server(kind, "--cache2", "name=full,items=4,blocksize=16",
               "--cache2", "name=lru,items=4,blocksize=16,purge_lru=1")
    # 4 slots, the first never used: 3 keys
    got = s.run(*[["cache_set", k, b(k), 0, "full"] for k in "abcd"])[1]
    assert got == [OK_TRUE, OK_TRUE, OK_TRUE, OK_NONE]
    assert "cache \"full\" is FULL" in s.log() or "DANGER" in s.log()
    got = s.run(["cache_set", "a", b("a"), 0, "lru"], ["cache_set", "b", b("b"), 0, "lru"],
                ["cache_set", "c", b("c"), 0, "lru"], ["cache_get", "a", "lru"],
                ["cache_set", "d", b("d"), 0, "lru"],
                ["cache_get", "b", "lru"], ["cache_get", "a", "lru"], ["cache_get", "d", "lru"])[1]
    assert got == [OK_TRUE] * 3 + [ok_bytes("a"), OK_TRUE, OK_NONE, ok_bytes("a"), ok_bytes("d")]


@pytest.mark.parametrize("kind", SERVERS)
def test_bitmap_values_span_blocks(server, kind):
    s = server(kind, "--cache2", "name=bm,items=8,blocks=64,blocksize=16,bitmap=1")
    big = "0123456789abcdef" * 10  # 10 blocks
    got = s.run(["cache_set", "big", b(big), 0, "bm"], ["cache_get", "big", "bm"],
                ["cache_update", "big", b(big * 3), 0, "bm"], ["cache_get", "big", "bm"],
                ["cache_set", "huge", b("x" * (16 * 64 + 1)), 0, "bm"])[1]
    assert got == [OK_TRUE, ok_bytes(big), OK_TRUE, ok_bytes(big * 3), OK_NONE]


def read_stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


@pytest.mark.parametrize("kind", SERVERS)
def test_stats_show_the_caches(server, kind):
    port = free_port()
    s = server(kind, *CACHES, "--stats", "127.0.0.1:%d" % port)
    s.run(["cache_set", "a", b("1")], ["cache_set", "b", b("2")], ["cache_get", "a"],
          ["cache_get", "zz"])
    caches = read_stats(port)["caches"]
    assert [c["name"] for c in caches] == ["c1", "c2"]
    c1 = caches[0]
    assert set(c1) == {"name", "hash", "hashsize", "keysize", "max_items", "blocks", "blocksize",
                       "items", "hits", "miss", "full", "last_modified_at"}
    assert c1["hash"] == "djb33x"
    assert (c1["hashsize"], c1["keysize"], c1["max_items"], c1["blocks"], c1["blocksize"]) == \
        (65536, 32, 10, 10, 100)
    assert (c1["items"], c1["hits"], c1["miss"], c1["full"]) == (2, 1, 1, 0)
    assert caches[1]["blocksize"] == 65536 and caches[1]["keysize"] == 2048


def test_metrics_http_series(server):
    port = free_port()
    s = server("gyre", *CACHES, "--metrics-http", "127.0.0.1:%d" % port)
    s.run(["cache_set", "a", b("1")], ["cache_get", "a"], ["cache_get", "zz"])
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    for line in ('gyre_cache_items{cache="c1"} 1', 'gyre_cache_hits_total{cache="c1"} 1',
                 'gyre_cache_misses_total{cache="c1"} 1', 'gyre_cache_full_total{cache="c1"} 0',
                 'gyre_cache_items{cache="c2"} 0'):
        assert line in text.splitlines(), text


@pytest.mark.parametrize("kind", SERVERS)
def test_a_store_file_survives_a_restart(server, tmp_path, kind):
    store = str(tmp_path / "cache.store")
    spec = "name=p,items=16,blocksize=64,store=%s" % store
    s = server(kind, "--cache2", spec)
    assert s.run1("cache_set", "kept", b("across restarts"), 0, "p") == OK_TRUE
    assert s.run1("cache_inc", "n", 42, 0, "p") == OK_TRUE
    s.stop()
    s = server(kind, "--cache2", spec)
    assert s.run(["cache_get", "kept", "p"], ["cache_num", "n", "p"])[1] == \
        [ok_bytes("across restarts"), ok_int(42)]


@pytest.mark.parametrize("kind", SERVERS)
def test_legacy_cache_option_is_the_default_cache(server, kind):
    """--cache N makes cache "default", first: the one a call without a name uses."""
    s = server(kind, "--cache2", "name=other,items=4", "--cache", "8", "--cache-blocksize", "32")
    got = s.run(["cache_set", "a", b("x" * 32)], ["cache_set", "b", b("x" * 33)],
                ["cache_keys", "default"], ["cache_keys", "other"])[1]
    assert got == [OK_TRUE, OK_NONE, ["ok", ["list", ["a"]]], ["ok", ["list", []]]]


@pytest.mark.parametrize("kind", SERVERS)
def test_items_preloaded_at_start(server, tmp_path, kind):
    """--add-cache-item [CACHE ]KEY=VALUE and --load-file-in-cache [CACHE ]PATH: without a
    cache name, into every cache."""
    path = tmp_path / "page.html"
    path.write_bytes(b"<p>cached file</p>")
    s = server(kind, "--cache2", "name=a,items=8", "--cache2", "name=b,items=8",
               "--add-cache-item", "k=every", "--add-cache-item", "b only=in b",
               "--load-file-in-cache", "a %s" % path)
    got = s.run(["cache_keys", "a"], ["cache_keys", "b"], ["cache_get", "k", "a"],
                ["cache_get", "only", "b"], ["cache_get", str(path), "a"])[1]
    assert got == [["ok", ["list", sorted(["k", str(path)])]], ["ok", ["list", ["k", "only"]]],
                   ok_bytes("every"), ok_bytes("in b"), ok_bytes("<p>cached file</p>")]


def run_gyre_fails(*args):
    r = subprocess.run([GYRE, "--http-socket", "127.0.0.1:%d" % free_port(), "--wsgi-file", APP,
                        *args], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    return r.returncode, (r.stdout + r.stderr).decode()


@pytest.mark.parametrize("spec,what", [
    ("items=10", "cache name"),
    ("name=a", "maximum number of cache items"),
    ("name=a,items=ten", "items: expected a whole number"),
    ("name=a,items=10,blocks=5", "blocks must be at least items"),
    ("name=a,items=10,keysize=70000", "keysize"),
    ("name=a,items=10,store=redis://:notaport/", "store"),
])
def test_bad_cache2_is_refused_at_start(spec, what):
    rc, out = run_gyre_fails("--cache2", spec)
    assert rc != 0 and what in out, (rc, out)


def test_unknown_cache2_key_warns_or_fails_under_strict(server):
    s = server("gyre", "--cache2", "name=a,items=4,bogus=1,nodes=127.0.0.1:1")
    wait_for(lambda: "bogus" in s.log(), 10, what="the warning")
    assert "warning: --cache2 a: bogus (no such key of --cache2: ignored)" in s.log()
    assert "nodes (uWSGI's cache network: not supported by gyre, ignored)" in s.log()
    rc, out = run_gyre_fails("--strict", "--cache2", "name=a,items=4,bogus=1")
    assert rc == 1 and "bogus" in out and "strict mode" in out, (rc, out)


def test_a_store_file_of_another_layout_is_refused(tmp_path, server):
    store = str(tmp_path / "cache.store")
    s = server("gyre", "--cache2", "name=p,items=16,blocksize=64,store=" + store)
    s.stop()
    rc, out = run_gyre_fails("--master", "--cache2", "name=p,items=17,blocksize=64,store=" + store)
    assert rc != 0 and store in out and "store_delete" in out, (rc, out)


# ---- crash safety: workers SIGKILLed while they write ------------------------------------------

def worker_pids(master_pid):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master_pid:
                pids.append(int(d))
    return pids


def test_workers_killed_mid_write_leave_no_torn_value(server):
    """Clients rewrite 16 keys of 1 MB each (a value is copied under the cache's lock) while
    the test SIGKILLs the workers again and again; the master respawns them. Afterwards every
    key reads back whole (one byte value repeated) or absent, and the cache still works."""
    s = server("gyre", "--cache2", "name=big,items=32,blocksize=1048576", "--tornado", "4",
               workers=2)
    stop = threading.Event()
    seeds = iter(range(1, 10 ** 6))

    def writer():
        while not stop.is_set():
            try:
                s.get("/fill?n=16&size=1000000&cache=big&seed=%d" % next(seeds), timeout=10)
            except (OSError, urllib.error.URLError, AssertionError):
                pass  # its worker was killed under it
    writers = [threading.Thread(target=writer) for _ in range(3)]
    for t in writers:
        t.start()
    kills, seen = 0, {}
    try:
        deadline = time.monotonic() + 90
        while kills < 20 and time.monotonic() < deadline:
            now = time.monotonic()
            for pid in worker_pids(s.session.pid):
                seen.setdefault(pid, now)
            # a worker younger than 1 s would be respawned with a back-off (a crash loop):
            # kill those that have served a while, at a moment in their writes nobody chose
            old = [p for p, t in seen.items() if now - t > 1.2]
            if not old:
                time.sleep(0.05)
                continue
            try:
                os.kill(old[0], signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
            del seen[old[0]]
    finally:
        stop.set()
        for t in writers:
            t.join(30)
    assert kills >= 10, "only %d kills in 90 s:\n%s" % (kills, s.log()[-3000:])
    wait_for(lambda: len(worker_pids(s.session.pid)) == 2 and s._answers(), 30,
             what="the workers back")
    counts = json.loads(s.get("/check?n=16&cache=big"))
    assert counts["torn"] == [], counts
    assert counts["whole"] + counts["absent"] == 16
    assert s.run1("cache_update", "after", b("ok"), 0, "big") == OK_TRUE
    assert s.run1("cache_get", "after", "big") == ok_bytes("ok")
    repaired = s.log().count("died holding its lock")
    print("%d kills, %d lock repairs, %d whole, %d absent" % (kills, repaired, counts["whole"],
                                                              counts["absent"]))


# ---- a Django cache backend over uwsgi.cache_* --------------------------------------------------

BACKEND = '''
"""A Django cache backend over uwsgi.cache_*: values pickled, the timeout as the expiry."""
import pickle

import uwsgi
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache


class UwsgiCache(BaseCache):
    def __init__(self, location, params):
        super().__init__(params)
        self.cache_name = location or None

    def _args(self, *args):
        return args + ((self.cache_name,) if self.cache_name else ())

    def _expires(self, timeout):
        t = self.get_backend_timeout(timeout)
        return 0 if t is None else max(1, int(t - __import__("time").time()))

    def get(self, key, default=None, version=None):
        raw = uwsgi.cache_get(*self._args(self.make_key(key, version)))
        return default if raw is None else pickle.loads(raw)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        k = self.make_key(key, version)
        uwsgi.cache_update(k, pickle.dumps(value), *self._args(self._expires(timeout)))

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        k = self.make_key(key, version)
        return bool(uwsgi.cache_set(k, pickle.dumps(value), *self._args(self._expires(timeout))))

    def delete(self, key, version=None):
        return bool(uwsgi.cache_del(*self._args(self.make_key(key, version))))

    def clear(self):
        uwsgi.cache_clear(*self._args())

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        value = self.get(key, version=version)
        if value is None:
            return False
        self.set(key, value, timeout, version)
        return True
'''

SETTINGS = '''
from gyresite.settings import *  # noqa: F401,F403
CACHES = {"default": {"BACKEND": "uwsgicache.UwsgiCache", "LOCATION": "django",
                      "KEY_PREFIX": "site"}}
ROOT_URLCONF = "cacheurls"
'''

URLS = '''
import os
import time

from django.core.cache import cache
from django.http import JsonResponse
from django.urls import include, path


def put(request):
    value = {"from": os.getpid(), "n": int(request.GET["n"])}
    cache.set(request.GET["key"], value, 300)
    return JsonResponse({"pid": os.getpid(), "added": cache.add(request.GET["key"], "no")})


def take(request):
    value = cache.get(request.GET["key"])
    time.sleep(float(request.GET.get("hold", 0)))  # keeps this worker: the next goes elsewhere
    return JsonResponse({"pid": os.getpid(), "value": value})


def drop(request):
    cache.delete(request.GET["key"])
    return JsonResponse({"pid": os.getpid(), "value": cache.get(request.GET["key"], "gone")})


urlpatterns = [path("cache/put", put), path("cache/take", take), path("cache/drop", drop),
               path("admin/", include("gyresite.urls"))]
'''


def test_django_cache_backend_shares_values_across_workers(tmp_path):
    pytest.importorskip("django")
    site = os.path.join(APPS, "django_site")
    for name, text in (("uwsgicache.py", BACKEND), ("cachesettings.py", SETTINGS),
                       ("cacheurls.py", URLS)):
        (tmp_path / name).write_text(text)
    port = free_port()
    argv = [GYRE, "--http-socket", "127.0.0.1:%d" % port, "--master", "--processes", "2",
            "--wsgi-file", os.path.join(site, "gyresite", "wsgi.py"),
            "--pythonpath", str(tmp_path), "--pythonpath", site,
            "--env", "DJANGO_SETTINGS_MODULE=cachesettings",
            "--env", "GYRE_DJANGO_DB=" + str(tmp_path / "db.sqlite3"),
            "--cache2", "name=django,items=100,blocksize=4096"]
    session = Session(str(tmp_path), argv)
    url = "http://127.0.0.1:%d/cache/" % port

    def get(path):
        with urllib.request.urlopen(url + path, timeout=TIMEOUT) as r:
            return json.loads(r.read())

    def up():
        try:
            get("take?key=ping")
            return True
        except OSError:
            return not session.alive()
    try:
        wait_for(up, TIMEOUT, what="Django under gyre")
        assert session.alive(), session.log()
        put = get("put?key=answer&n=42")
        assert put["added"] is False  # the key is there: add() does not overwrite
        others = []
        for _ in range(20):  # bursts of requests that hold their worker: another one answers
            answers = []
            threads = [threading.Thread(target=lambda: answers.append(
                get("take?key=answer&hold=0.2"))) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(TIMEOUT)
            others = [a for a in answers if a["pid"] != put["pid"]]
            if others:
                break
        assert others, "the other worker never answered:\n" + session.log()
        assert others[0]["value"] == {"from": put["pid"], "n": 42}
        assert get("drop?key=answer")["value"] == "gone"
        assert get("take?key=answer")["value"] is None
    finally:
        session.kill_group()
