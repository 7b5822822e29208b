"""The Redis store of a cache (issue 12, "Beyond one machine"): `--cache2 name=r,...,store=
redis+unix://SOCKET` keeps uWSGI's cache API on a real redis-server (Debian's, started here on a
temporary unix socket), so that several gyre hosts share one cache.

The API's answers are compared with Debian's uWSGI 2.0.21 on its own local --cache2 (uWSGI has
no Redis store: what is compared is the API, which the store must not change). The rest is
gyre's alone: the key layout in Redis, two gyre instances sharing writes (and atomic counters),
a slow Redis suspending only the calling core, a dead Redis raising a clear exception and the
cache working again once Redis is back, and a bad URL stopping gyre at start-up."""
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from conftest import APPS, GYRE, UWSGI, Session, free_port, wait_for

APP = os.path.join(APPS, "cache_redis_app.py")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CACHE_SPEC = "name=r,items=100,blocksize=1000,keysize=64"

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER),
                                reason="Debian's redis-server is not installed (make deps)")


# ---- a real redis-server and a few words of its protocol ---------------------------------------

def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp_read(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        return [resp_read(f) for _ in range(int(rest))]
    raise AssertionError("unexpected answer from Redis: %r" % line)


class Redis:
    """redis-server on TMP/redis.sock and, with tcp=True, on a free 127.0.0.1 port too (url,
    tcp_url); no persistence, DEBUG allowed locally."""

    def __init__(self, tmp, tcp=False):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "redis.sock")
        self.url = "redis+unix://" + self.sock
        self.port = free_port() if tcp else 0
        self.tcp_url = "redis://127.0.0.1:%d" % self.port
        self.start()

    def start(self):
        self.session = Session(self.tmp, [REDIS_SERVER, "--port", str(self.port), "--bind",
                                          "127.0.0.1", "--unixsocket", self.sock,
                                          "--save", "", "--appendonly", "no", "--dir", self.tmp,
                                          "--enable-debug-command", "local"])
        wait_for(lambda: self.answers() or not self.session.alive(), 10, what="redis-server")
        assert self.session.alive(), self.session.log()

    def command(self, *args, timeout=10.0, db=0):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            f = s.makefile("rb")
            if db:
                s.sendall(resp_command("SELECT", str(db)))
                assert resp_read(f) == "OK"
            s.sendall(resp_command(*args))
            return resp_read(f)

    def answers(self, timeout=1.0):
        try:
            return self.command("PING", timeout=timeout) == "PONG"
        except OSError:
            return False

    def sleep(self, seconds):
        """DEBUG SLEEP: Redis answers nobody for `seconds`. Returns once it is asleep."""
        cli = socket.socket(socket.AF_UNIX)
        cli.connect(self.sock)
        cli.sendall(resp_command("DEBUG", "SLEEP", str(seconds)))
        wait_for(lambda: not self.answers(timeout=0.2), 10, what="Redis to be asleep")
        return cli  # its answer comes when Redis wakes; the caller closes it

    def kill(self):
        self.session.kill_group()

    def stop(self):
        self.session.kill_group()


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    r = Redis(str(tmp_path_factory.mktemp("redis")), tcp=True)
    yield r
    r.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of the test's own, for a test that kills it."""
    r = Redis(str(tmp_path))
    yield r
    r.stop()


# ---- the servers ---------------------------------------------------------------------------------

class Server:
    """gyre (a Redis store at url) or Debian's uWSGI (a local cache): cache_redis_app.py on
    --http-socket, ready once it answers /ping."""

    def __init__(self, tmp, kind, url=None, *args):
        self.kind = kind
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        common = ["--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", APP, *args]
        if kind == "uwsgi":
            argv = [UWSGI, "--plugin", "python3", "--cache2", CACHE_SPEC, *common]
        else:
            argv = [GYRE, "--cache2", CACHE_SPEC + ",store=" + url, *common]
        self.session = Session(tmp, argv)
        wait_for(lambda: self.answers() or not self.session.alive(), 30,
                 what="%s to answer" % kind)
        assert self.session.alive(), self.log()

    def answers(self):
        try:
            return self.get("/ping", timeout=2).split()[0].isdigit()
        except OSError:
            return False

    def log(self):
        return self.session.log()

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            assert r.status == 200
            return r.read().decode()

    def run(self, *calls):
        req = urllib.request.Request(self.url + "/run", data=json.dumps(calls).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return [tuple(x) for x in json.loads(r.read())]

    def wait_log(self, text, timeout=10):
        wait_for(lambda: text in self.log(), timeout, what="%r in %s's log" % (text, self.kind))

    def stop(self):
        self.session.kill_group()


@pytest.fixture
def server(tmp_path):
    started = []

    def start(kind, url=None, *args):
        s = Server(str(tmp_path), kind, url, *args)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


GYRE_TORNADO = ("--master", "--processes", "2", "--tornado", "10")
GYRE_THREADS = ("--master", "--processes", "2", "--threads", "4")


def num(n):
    """The 8 bytes uWSGI stores a cache number as (int64, native order: little-endian here)."""
    return struct.pack("<q", n).decode("latin-1")


# ---- the API, as uWSGI's ---------------------------------------------------------------------

ROUND_TRIP = [
    (["cache_clear", "r"], ("ok", "bool", True)),
    (["cache_set", "k", "v1", 0, "r"], ("ok", "bool", True)),
    (["cache_set", "k", "v2", 0, "r"], ("ok", "NoneType", None)),  # never overwrites
    (["cache_get", "k", "r"], ("ok", "bytes", "v1")),
    (["cache_update", "k", "v2", 0, "r"], ("ok", "bool", True)),
    (["cache_get", "k", "r"], ("ok", "bytes", "v2")),
    (["cache_exists", "k", "r"], ("ok", "bool", True)),
    (["cache_exists", "nope", "r"], ("ok", "NoneType", None)),
    (["cache_get", "nope", "r"], ("ok", "NoneType", None)),
    (["cache_set", "big", "x" * 1001, 0, "r"], ("ok", "NoneType", None)),  # over blocksize
    (["cache_set", "fits", "x" * 1000, 0, "r"], ("ok", "bool", True)),
    (["cache_set", "k" * 65, "v", 0, "r"], ("ok", "NoneType", None)),  # over keysize
    (["cache_del", "k", "r"], ("ok", "bool", True)),
    (["cache_del", "k", "r"], ("ok", "NoneType", None)),
    (["cache_inc", "n", 5, 0, "r"], ("ok", "bool", True)),  # a new number starts from 0
    (["cache_inc", "n"], ("ok", "bool", True)),  # by 1, in the first cache
    (["cache_dec", "n", 10, 0, "r"], ("ok", "bool", True)),
    (["cache_num", "n", "r"], ("ok", "int", -4)),
    (["cache_get", "n", "r"], ("ok", "bytes", num(-4))),
    (["cache_mul", "n", -3, 0, "r"], ("ok", "bool", True)),
    (["cache_num", "n", "r"], ("ok", "int", 12)),
    (["cache_div", "n", 5, 0, "r"], ("ok", "bool", True)),
    (["cache_num", "n", "r"], ("ok", "int", 2)),
    (["cache_div", "n", 0, 0, "r"], ("ok", "bool", True)),  # x/0 is 0, as uWSGI's
    (["cache_num", "n", "r"], ("ok", "int", 0)),
    (["cache_num", "nope", "r"], ("ok", "int", 0)),
    (["cache_keys", "r"], ("ok", "list", ["fits", "n"])),
    (["cache_clear", "r"], ("ok", "bool", True)),
    (["cache_keys", "r"], ("ok", "list", [])),
    (["cache_get", "fits", "r"], ("ok", "NoneType", None)),
]


@pytest.mark.parametrize("kind,args", [("uwsgi", ("--master", "--processes", "2")),
                                       ("gyre", GYRE_TORNADO), ("gyre", GYRE_THREADS)],
                         ids=["uwsgi-local", "gyre-redis-tornado", "gyre-redis-threads"])
def test_api_round_trip_as_uwsgi(server, redis, kind, args):
    """Every cache function's answers, in order: the same under Debian's uWSGI (local cache)
    and gyre on Redis, from greenlet cores (the loop's asynchronous connection) and from
    thread cores (blocking connections)."""
    s = server(kind, redis.url, *args)
    got = s.run(*[call for call, _ in ROUND_TRIP])
    for (call, want), answer in zip(ROUND_TRIP, got):
        assert answer == want, "%s: %r" % (call, answer)


def test_key_layout_in_redis(server, redis):
    """What ops people see with redis-cli: "gyre:cache:NAME:KEY", the value's bytes, the
    expiry as a TTL, numbers as 8 little-endian bytes; cache_clear and cache_keys leave other
    caches' and other programs' keys alone."""
    s = server("gyre", redis.url, *GYRE_TORNADO)
    redis.command("SET", "someone:else", "keep")
    redis.command("SET", "gyre:cache:other:x", "keep")
    s.run(["cache_clear", "r"])
    assert s.run(["cache_set", "plain", "v\x00\xff", 0, "r"],
                 ["cache_set", "expiring", "v", 100, "r"],
                 ["cache_inc", "n", 7, 0, "r"]) == [("ok", "bool", True)] * 3
    assert redis.command("GET", "gyre:cache:r:plain") == "v\x00\xff".encode()
    assert redis.command("TTL", "gyre:cache:r:plain") == -1
    assert 0 < redis.command("TTL", "gyre:cache:r:expiring") <= 100
    assert redis.command("GET", "gyre:cache:r:n") == struct.pack("<q", 7)
    # The math keeps an existing key's expiry (uWSGI's FIXEXPIRE); a new key gets the given one.
    s.run(["cache_inc", "ttl", 1, 100, "r"], ["cache_inc", "ttl", 1, 5, "r"])
    assert 5 < redis.command("TTL", "gyre:cache:r:ttl") <= 100
    # An expiry is Redis's TTL: the item goes when it runs out.
    assert s.run(["cache_set", "short", "v", 1, "r"]) == [("ok", "bool", True)]
    wait_for(lambda: s.run(["cache_get", "short", "r"]) == [("ok", "NoneType", None)], 10,
             what="the 1 s item to expire")
    s.run(["cache_del", "ttl", "r"])
    # What another host (or redis-cli) writes in the layout, the cache reads.
    redis.command("SET", "gyre:cache:r:from-outside", "hi")
    assert s.run(["cache_get", "from-outside", "r"]) == [("ok", "bytes", "hi")]
    assert s.run(["cache_keys", "r"]) == [("ok", "list", ["expiring", "from-outside", "n",
                                                          "plain"])]
    s.run(["cache_clear", "r"])
    assert redis.command("KEYS", "gyre:cache:r:*") == []
    assert redis.command("GET", "someone:else") == b"keep"
    assert redis.command("GET", "gyre:cache:other:x") == b"keep"


def test_two_hosts_share_one_cache(server, redis):
    """Two gyre instances (two "hosts") on one Redis, one over its unix socket and one over TCP:
    each reads the other's writes, and their counters add up exactly under concurrent
    cache_inc from both (atomic across hosts)."""
    a = server("gyre", redis.url, *GYRE_TORNADO)
    b = server("gyre", redis.tcp_url, *GYRE_TORNADO)
    a.run(["cache_clear", "r"])
    assert a.run(["cache_set", "shared", "from-a", 0, "r"]) == [("ok", "bool", True)]
    assert b.run(["cache_get", "shared", "r"]) == [("ok", "bytes", "from-a")]
    assert b.run(["cache_set", "shared", "from-b", 0, "r"]) == [("ok", "NoneType", None)]
    assert b.run(["cache_update", "shared", "from-b", 0, "r"]) == [("ok", "bool", True)]
    assert a.run(["cache_get", "shared", "r"]) == [("ok", "bytes", "from-b")]

    per_thread, errors = 25, []

    def hammer(s):
        try:
            for _ in range(per_thread):
                assert s.run(["cache_inc", "hits", 1, 0, "r"]) == [("ok", "bool", True)]
        except Exception as e:  # noqa: B902 - reported by the main thread
            errors.append(e)
    threads = [threading.Thread(target=hammer, args=(s,)) for s in (a, b) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert a.run(["cache_num", "hits", "r"]) == [("ok", "int", 8 * per_thread)]


def test_slow_redis_suspends_only_the_calling_core(server, redis):
    """While Redis sleeps (DEBUG SLEEP), a request waiting in cache_get holds only its own core:
    another request to the same worker is answered meanwhile, and the first gets its answer
    once Redis wakes."""
    s = server("gyre", redis.url + "?timeout=20", "--processes", "1", "--tornado", "10")
    s.run(["cache_clear", "r"])  # connected before Redis sleeps
    sleeper = redis.sleep(5)
    try:
        mark = len(s.log())
        slow = []
        t = threading.Thread(target=lambda: slow.append(s.get("/get?key=slow", timeout=30)))
        t.start()
        wait_for(lambda: "calling cache_get('slow')" in s.log()[mark:], 10,
                 what="the slow request to reach cache_get")
        pid, core = s.get("/ping", timeout=4).split()
        assert t.is_alive(), "cache_get did not wait for Redis: %r" % slow
        t.join(30)
    finally:
        sleeper.close()
    answer_pid, elapsed, value = slow[0].split()
    assert answer_pid == pid  # the same worker
    assert value == "None"
    assert float(elapsed) > 0.5


@pytest.mark.parametrize("engine", [("--tornado", "10"), ("--threads", "2")],
                         ids=["tornado", "threads"])
def test_database_number_is_selected(server, redis, engine):
    """?db=N: the cache's keys are in Redis database N, from greenlet cores (the SELECT answered
    before the first command goes) and thread cores alike; a database Redis does not have
    raises ConnectionError saying so, and nothing is written to database 0."""
    s = server("gyre", redis.url + "?db=3", "--processes", "1", *engine)
    assert s.run(["cache_update", "in3", "v", 0, "r"]) == [("ok", "bool", True)]
    assert redis.command("GET", "gyre:cache:r:in3", db=3) == b"v"
    assert redis.command("GET", "gyre:cache:r:in3") is None
    s.run(["cache_clear", "r"])
    bad = redis.url + "?db=99"  # redis-server has 16 databases by default
    b = server("gyre", bad, "--processes", "1", *engine)
    answer = b.get("/get?key=x")
    assert answer.startswith("error ConnectionError: cache r: %s" % bad), answer
    assert "SELECT 99 failed: ERR DB index is out of range" in answer, answer
    assert b.run(["cache_set", "x", "v", 0, "r"])[0][:2] == ("error", "ConnectionError")
    assert redis.command("KEYS", "gyre:cache:r:*") == []


@pytest.mark.parametrize("engine", [("--tornado", "10"), ("--threads", "2")],
                         ids=["tornado", "threads"])
def test_redis_that_does_not_answer_raises_timeout(server, redis, engine):
    """Redis asleep past the URL's timeout=: TimeoutError naming the cache and the URL, from a
    greenlet core (the loop's timer) and a thread core (the socket's timeout); once Redis
    answers again, so does the cache."""
    url = redis.url + "?timeout=0.5"
    s = server("gyre", url, "--processes", "1", *engine)
    s.run(["cache_clear", "r"])
    sleeper = redis.sleep(3)
    try:
        answer = s.get("/get?key=t", timeout=30)
        assert answer == "error TimeoutError: cache r: %s did not answer within 0.5s" % url
    finally:
        sleeper.close()
    wait_for(redis.answers, 10, what="Redis to wake")
    wait_for(lambda: s.get("/get?key=t").endswith(" None"), 10, what="the cache to answer again")


def test_redis_gone_raises_and_comes_back(server, own_redis):
    """redis-server killed: cache calls raise ConnectionError ("cache r: URL unreachable: why"),
    from greenlet and thread cores alike; restarted on the same socket: the cache works again,
    without restarting gyre."""
    g = server("gyre", own_redis.url, "--processes", "1", "--tornado", "10")
    t = server("gyre", own_redis.url, "--processes", "1", "--threads", "2")
    for s in (g, t):
        assert s.run(["cache_update", "k", "v", 0, "r"]) == [("ok", "bool", True)]
    own_redis.kill()
    prefix = "error ConnectionError: cache r: %s unreachable: " % own_redis.url
    for s in (g, t):
        answer = s.get("/get?key=k")
        assert answer.startswith(prefix), answer
        # The next call fails fast too (no answer is invented meanwhile).
        assert s.get("/get?key=k").startswith(prefix)
    own_redis.start()
    for s in (g, t):
        wait_for(lambda: s.get("/get?key=k").endswith(" None"), 10,
                 what="the cache to work again (%s)" % s.kind)
        assert s.run(["cache_set", "k", "again", 0, "r"],
                     ["cache_get", "k", "r"])[1] == ("ok", "bytes", "again")
        s.run(["cache_del", "k", "r"])


@pytest.mark.parametrize("engine", [("--tornado", "10"), ("--threads", "4")],
                         ids=["tornado", "threads"])
def test_redis_killed_under_load(server, own_redis, engine):
    """Redis SIGKILLed while 8 clients keep a worker's cores busy with cache calls: every
    request ends (with values or with ConnectionError entries, never a hang or a crash), the
    worker survives, and once Redis is back the cache works."""
    s = server("gyre", own_redis.url, "--processes", "1", *engine)
    pid = s.get("/ping").split()[0]
    calls = [["cache_update", "k%d" % i, "v", 0, "r"] for i in range(5)] + \
        [["cache_get", "k%d" % i, "r"] for i in range(5)]
    stop, seen, errors = threading.Event(), [], []

    def client():
        try:
            while not stop.is_set():
                seen.extend(a[:2] for a in s.run(*calls))
        except Exception as e:  # noqa: B902 - reported by the main thread
            errors.append(e)
    clients = [threading.Thread(target=client) for _ in range(8)]
    for t in clients:
        t.start()
    try:
        wait_for(lambda: len(seen) >= 200 or errors, 30, what="cache calls under load")
        own_redis.kill()
        n = len(seen)
        wait_for(lambda: ("error", "ConnectionError") in seen[n:] or errors, 30,
                 what="ConnectionError from the calls in flight")
    finally:
        stop.set()
        for t in clients:
            t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in clients)
    assert set(seen) <= {("ok", "bool"), ("ok", "bytes"), ("ok", "NoneType"),
                         ("error", "ConnectionError"), ("error", "TimeoutError")}, set(seen)
    assert s.get("/ping").split()[0] == pid
    own_redis.start()
    wait_for(lambda: s.run(*calls)[-1] == ("ok", "bytes", "v"), 10,
             what="the cache to work again")


def test_harakiri_while_waiting_for_redis(server, redis):
    """--harakiri cancels a greenlet core that waits for a sleeping Redis; the answer that comes
    later finds nobody waiting and is dropped, and the same worker serves the cache on."""
    s = server("gyre", redis.url + "?timeout=20", "--processes", "1", "--tornado", "10",
               "--harakiri", "1")
    pid = s.get("/ping").split()[0]
    s.run(["cache_update", "h", "v", 0, "r"])
    sleeper = redis.sleep(4)
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            s.get("/get?key=h", timeout=30)
        assert e.value.code == 500
        s.wait_log("(--harakiri 1): cancelling it")
        assert "uwsgi.cache_get(key, CACHE)" in s.log()  # its stack: waiting in the cache
    finally:
        sleeper.close()
    wait_for(redis.answers, 10, what="Redis to wake")
    wait_for(lambda: s.get("/get?key=h").endswith(" b'v'"), 10, what="the cache to answer")
    assert s.get("/ping").split()[0] == pid
    s.run(["cache_del", "h", "r"])


@pytest.mark.parametrize("engine", [("--tornado", "10"), ("--threads", "2")],
                         ids=["tornado", "threads"])
def test_nothing_listening_raises_connection_error(server, engine):
    """A TCP port nobody listens on: ConnectionError with the reason, at once, call after call
    (the failed connect's backoff answers the calls that follow it)."""
    url = "redis://127.0.0.1:%d" % free_port()
    s = server("gyre", url, "--processes", "1", *engine)
    for _ in range(3):
        answer = s.get("/get?key=x", timeout=10)
        assert answer == "error ConnectionError: cache r: %s unreachable: Connection refused" % url


@pytest.mark.parametrize("url,why", [
    ("redis://localhost:99999", "is not a port"),
    ("redis+unix://relative.sock", "absolute path"),
    ("redis://h?timeout=0", "timeout=0"),
])
def test_bad_url_stops_gyre_at_start(tmp_path, url, why):
    """A store= URL that cannot be right: gyre exits at start-up with one line naming it."""
    argv = [GYRE, "--http-socket", "127.0.0.1:%d" % free_port(), "--wsgi-file", APP,
            "--cache2", CACHE_SPEC + ",store=" + url]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode != 0, out
    lines = [line for line in out.splitlines() if url in line]
    assert len(lines) == 1 and why in lines[0], out
