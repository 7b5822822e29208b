"""The Tornado loop engine and the greenlet cores, through real nginx (`stack`) and raw uwsgi (`gyre`).

What the uWSGI doc (tornado-loop-engine.rst) promises, and what gyre adds on top of it:
  - the app's IOLoop (current(), instance(), the one grabbed at import time) is the loop gyre runs;
  - a core suspends exactly as the doc's example does, and N cores serve N requests at once;
  - gyre.sleep / gyre.wait, and NotInCoreError outside a core;
  - the doc's example as-is on Tornado 6 (nothing ever resumes the greenlet): gyre fails the
    request with a 500 and frees the core, where uWSGI would lose the core for good;
  - a client stalled mid-head holds no core.
"""
import asyncio
import json
import os
import socket
import threading
import time
import uuid

import pytest
import requests

from conftest import ROOT, connect, parse_response, uwsgi_packet, uwsgi_request, wait_for

TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- helpers -----------------------------------------------------------------------------------

def get(url, timeout=TIMEOUT):
    return requests.get(url, timeout=timeout)


def raw(g, path, query="", timeout=TIMEOUT):
    """One raw uwsgi request to gyre: (status, body)."""
    status, _, body = parse_response(uwsgi_request(
        g.socket, {"PATH_INFO": path, "QUERY_STRING": query,
                   "REQUEST_URI": path + ("?" + query if query else "")}, timeout=timeout))
    return status, body


def send_raw(g, path, query="", timeout=TIMEOUT):
    """Connect and send one uwsgi request without reading: the open socket."""
    s = connect(g.socket, timeout)
    s.sendall(uwsgi_packet({"PATH_INFO": path, "QUERY_STRING": query,
                            "REQUEST_URI": path + ("?" + query if query else "")}))
    return s


def read_response(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return parse_response(out)


def concurrent_get(urls, timeout=TIMEOUT):
    """GET every url from its own thread, all released at once by a barrier.

    Returns ([(status, body, seconds from release to the end of this request)], wall time from
    the release to the end of the last request)."""
    n = len(urls)
    barrier = threading.Barrier(n + 1)
    results = [None] * n
    t0 = [0.0]

    def worker(i, url):
        session = requests.Session()  # connection set-up paid before the barrier, not after
        try:
            barrier.wait(timeout)
            r = session.get(url, timeout=timeout)
            results[i] = (r.status_code, r.text, time.monotonic() - t0[0])
        except Exception as e:  # reported by the assertions below
            results[i] = (None, repr(e), time.monotonic() - t0[0])
        finally:
            session.close()

    threads = [threading.Thread(target=worker, args=(i, u), daemon=True) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    t0[0] = time.monotonic()
    barrier.wait(timeout)
    t0[0] = time.monotonic()
    for t in threads:
        t.join(timeout + 5)
    wall = time.monotonic() - t0[0]
    assert all(r is not None for r in results), "a request thread did not finish"
    return results, wall


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def assert_alive(g):
    assert g.proc.poll() is None, "gyre died:\n" + g.log()


# ---- a real Tornado backend, in a thread of the test process ----------------------------------

class Backend:
    def __init__(self):
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets
        from tornado.web import Application, RequestHandler

        self.body = "services: %s\n" % uuid.uuid4().hex
        self.hits = 0
        backend = self

        class Services(RequestHandler):
            def get(self):
                backend.hits += 1
                self.write(backend.body)

        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.url = "http://127.0.0.1:%d/services" % self.port
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)

            async def setup():
                self.server = HTTPServer(Application([(r"/services", Services)]))
                self.server.add_sockets(sockets)
            self.loop.run_until_complete(setup())
            ready.set()
            self.loop.run_forever()
            self.server.stop()
            self.loop.run_until_complete(self.server.close_all_connections())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10), "the Tornado backend did not start"

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def backend():
    b = Backend()
    # It really answers, from outside gyre.
    r = get(b.url)
    assert r.status_code == 200 and r.text == b.body
    b.hits = 0
    yield b
    b.stop()


# ---- the IOLoop the app sees -------------------------------------------------------------------

def check_loop_facts(body):
    facts = json.loads(body)
    assert facts == {
        "current_is_instance": True,
        "current_is_import_loop": True,
        "import_current_is_import_instance": True,
        "no_running_loop_in_core": True,
        "asyncio_loop_is_the_ioloops": True,
        "running": True,
        "current_no_instance": True,
        "other_thread": "RuntimeError",
        "core": facts["environ_core"],
        "environ_core": facts["environ_core"],
    }, facts
    assert isinstance(facts["core"], int)


def test_ioloop_is_the_running_loop_through_nginx(stack):
    s = stack("engine_app.py", "--tornado", "4")
    r = get(s.url + "/loop")
    assert r.status_code == 200
    check_loop_facts(r.text)
    # The loop grabbed at import time (as the seed does) really runs: its timer resumes the core.
    r = get(s.url + "/import-loop", timeout=5)
    assert r.status_code == 200
    assert r.text.startswith("resumed by the import-time loop after ")
    assert float(r.text.split()[-1]) >= 0.1


def test_ioloop_is_the_running_loop_raw(gyre):
    g = gyre("engine_app.py", "--tornado", "2")
    status, body = raw(g, "/loop")
    assert status == 200
    check_loop_facts(body)
    status, body = raw(g, "/import-loop", timeout=5)
    assert status == 200 and body.startswith(b"resumed by the import-time loop")


def test_ioloop_timers_keep_tornados_meaning(gyre):
    # call_later and call_at of gyre's IOLoop are C (engine.c): arguments, cancelling, negative
    # delays, a raising callback logged by Tornado, a returned coroutine awaited, bad arguments.
    g = gyre("engine_app.py", "--tornado", "2")
    status, body = raw(g, "/timers", timeout=5)
    assert status == 200, body
    got = json.loads(body)
    assert got["errors"] == ["TypeError", "TypeError"]
    assert got["fired"] == ["negative", "keywords", ["later", [1, 2], [["x", 3]]], ["at", "A"],
                            "timedelta", "deadline", "boom", "coro"], got
    g.wait_log("timer callback failure for the test")
    assert "Exception in callback" in g.log()
    status, body = raw(g, "/hello")
    assert status == 200


# ---- suspending a core -------------------------------------------------------------------------

def test_seed_suspension_resumes(stack):
    s = stack("engine_app.py", "--tornado", "2")
    t0 = time.monotonic()
    r = get(s.url + "/suspend?s=0.2", timeout=5)
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.text.startswith("suspended ")
    assert 0.2 <= float(r.text.split()[1]) < 1.0
    assert took >= 0.2
    s.gyre.wait_log("GET /suspend?s=0.2 => generated %d bytes" % len(r.content))


def test_suspending_inside_the_response_iterable(gyre):
    g = gyre("engine_app.py", "--tornado", "1")
    status, body = raw(g, "/gen", timeout=5)
    assert status == 200 and body.startswith(b"abc "), body
    assert float(body[4:]) >= 0.4
    assert raw(g, "/hello")[0] == 200


def test_while_one_core_is_suspended_another_serves(gyre):
    g = gyre("engine_app.py", "--tornado", "2")
    slow = send_raw(g, "/suspend", "s=1.5")
    time.sleep(0.1)
    t0 = time.monotonic()
    status, body = raw(g, "/hello", timeout=5)
    assert status == 200 and body.startswith(b"hello from core")
    assert time.monotonic() - t0 < 0.5, "the suspended core blocked the other one"
    status, _, body = read_response(slow)
    assert status == 200 and float(body.split()[1]) >= 1.5


def test_100_concurrent_suspended_requests_under_a_second(stack):
    s = stack("engine_app.py", "--tornado", "100")
    assert get(s.url + "/hello").status_code == 200  # warm: app imported, nginx up
    results, wall = concurrent_get([s.url + "/suspend?s=0.2"] * 100)
    statuses = [r[0] for r in results]
    assert statuses == [200] * 100, [r for r in results if r[0] != 200][:3]
    for _, body, _ in results:
        assert body.startswith("suspended ") and float(body.split()[1]) >= 0.2, body
    # Serially this takes 20 s; on 100 cores, one round of 0.2 s plus overhead.
    print("100 x 0.2 s on 100 cores: %.3f s" % wall)
    assert wall < 1.0, "100 concurrent 0.2 s suspensions took %.2f s" % wall
    r = get(s.url + "/peak")
    peak = int(r.text.split()[1])
    assert peak > 50, "only %d requests were ever suspended at once" % peak
    s.gyre.wait_log("GET /suspend?s=0.2 => generated", count=100)
    assert s.gyre.log().count("GET /suspend?s=0.2 => generated") == 100


def test_cores_bound_concurrency(stack):
    s = stack("engine_app.py", "--tornado", "10")
    assert get(s.url + "/hello").status_code == 200
    get(s.url + "/peak")  # reset
    results, wall = concurrent_get([s.url + "/gsleep?s=0.2"] * 15 + [s.url + "/suspend?s=0.2"] * 15)
    assert [r[0] for r in results] == [200] * 30, [r for r in results if r[0] != 200][:3]
    # 30 requests of 0.2 s on 10 cores: at least three rounds.
    print("30 x 0.2 s on 10 cores: %.3f s" % wall)
    assert wall >= 0.6, "30 x 0.2 s on 10 cores took only %.2f s: more than 10 ran at once" % wall
    assert wall < 3.0
    peak = int(get(s.url + "/peak").text.split()[1])
    assert peak == 10, "expected exactly 10 suspended at once, saw %d" % peak


def test_no_spinning_while_every_core_is_busy(gyre):
    g = gyre("engine_app.py", "--tornado", "10")
    assert raw(g, "/hello")[0] == 200
    t_start = time.monotonic()
    busy = [send_raw(g, "/suspend" if i % 2 else "/gsleep", "s=2") for i in range(10)]
    time.sleep(0.3)
    waiting = [send_raw(g, "/hello") for _ in range(20)]
    time.sleep(0.2)
    assert_alive(g)
    cpu0, t0 = cpu_seconds(g.proc.pid), time.monotonic()
    time.sleep(1.0)
    cpu1, t1 = cpu_seconds(g.proc.pid), time.monotonic()
    assert t1 - t_start < 2.0, "the sample did not fall inside the 2 s suspension"
    used = cpu1 - cpu0
    print("gyre CPU with every core suspended: %.3f s in %.3f s" % (used, t1 - t0))
    assert used < 0.3, "gyre used %.2f s of CPU in %.2f s with every core suspended" % (used, t1 - t0)

    for s in waiting:
        status, _, body = read_response(s)
        assert status == 200 and body.startswith(b"hello"), body
    # The 20 waited for a core: none could be served before the first suspensions ended.
    assert time.monotonic() - t_start >= 2.0
    for s in busy:
        status, _, body = read_response(s)
        assert status == 200 and float(body.split()[1]) >= 2.0, body


# ---- gyre.sleep and gyre.wait ------------------------------------------------------------------

def test_gyre_sleep(stack):
    s = stack("engine_app.py", "--tornado", "2")
    r = get(s.url + "/gsleep?s=0.3", timeout=5)
    assert r.status_code == 200
    assert r.text.startswith("slept ") and 0.3 <= float(r.text.split()[1]) < 1.0, r.text


@pytest.mark.parametrize("kind, expect, min_s", [
    ("tornado", "tornado:{t}", 0.2),
    ("asyncio", "asyncio:{t}", 0.2),
    ("coro", "coro:{t}", 0.2),
    ("exc", "raised AppError(exc:{t}) builtin_timeout=False", 0.2),
    ("coro-exc", "raised KeyError(coro-exc:{t}) builtin_timeout=False", 0.05),
    ("done", "done:{t}", 0.0),
    ("beats-timeout", "beat:{t}", 0.1),
])
def test_gyre_wait(stack, kind, expect, min_s):
    s = stack("engine_app.py", "--tornado", "2")
    token = uuid.uuid4().hex[:8]
    r = get(s.url + "/wait/%s?token=%s" % (kind, token), timeout=5)
    assert r.status_code == 200, r.text
    result, _, took = r.text.rpartition(" after ")
    assert result == expect.format(t=token)
    assert min_s <= float(took) < 1.0, r.text


def test_gyre_wait_timeout(gyre):
    g = gyre("engine_app.py", "--tornado", "1")
    status, body = raw(g, "/wait/timeout", "t=0.3", timeout=5)
    assert status == 200
    result, _, took = body.decode().rpartition(" after ")
    assert result.startswith("raised TimeoutError(") and result.endswith("builtin_timeout=True"), result
    assert 0.3 <= float(took) < 1.5
    assert_alive(g)
    assert raw(g, "/hello")[0] == 200


def test_stale_wait_timer_does_not_wake_the_next_request(gyre):
    # One core: a wait that beat its 0.5 s timeout, then a 1 s sleep on the same core. The old
    # timeout must not cut the sleep short.
    g = gyre("engine_app.py", "--tornado", "1")
    status, body = raw(g, "/wait/beats-timeout", "token=x", timeout=5)
    assert status == 200 and body.startswith(b"beat:x after ")
    status, body = raw(g, "/gsleep", "s=1.0", timeout=5)
    assert status == 200 and float(body.split()[1]) >= 1.0, body


def test_gyre_wait_on_a_thread_pool_future(gyre):
    # A concurrent.futures.Future resolves in a worker thread, and calls its done callbacks
    # there. gyre.wait gets the result back to the core through the loop; it must never lose
    # the core (one core here: a lost core is a dead server).
    g = gyre("engine_app.py", "--tornado", "1", "--worker-reload-mercy", "1")
    status, body = raw(g, "/wait/thread", "token=cf", timeout=5)
    assert status == 200
    result = body.decode().rpartition(" after ")[0]
    assert result == "thread:cf", result
    assert_alive(g)
    assert raw(g, "/hello", timeout=3)[0] == 200


def test_gyre_wait_on_a_future_resolved_by_another_requests_core(gyre):
    # A concurrent.futures.Future calls its done callbacks where it is resolved: here, in the
    # core of the request that publishes the value. The waiting core must be resumed by the
    # loop, never from inside the publisher's core, which would strand the publisher (seen as
    # suspended by the app: GreenletExit, or a response held back until the sweep).
    g = gyre("core_app.py", "--tornado", "4")
    for key in ("a", "b", "c"):
        out = {}
        waiter = threading.Thread(target=lambda: out.update(res=raw(g, "/cf-wait", "key=" + key)),
                                  daemon=True)
        waiter.start()
        wait_for(lambda: raw(g, "/cf-ready", "key=" + key)[1] == b"yes", what="the waiter")
        t0 = time.monotonic()
        assert raw(g, "/cf-publish", "key=" + key) == (200, b"published " + key.encode())
        published = time.monotonic() - t0
        waiter.join(TIMEOUT)
        assert out.get("res") == (200, b"got value-" + key.encode()), (out, g.log())
        assert published < 0.5, (published, g.log())
    log = g.log()
    assert "GreenletExit" not in log and "suspended" not in log, log
    assert "got GreenletExit" not in log, log
    assert_alive(g)


@pytest.mark.parametrize("path", ["/asyncio", "/asyncio-resumed"])
def test_a_core_sees_no_running_asyncio_loop(gyre, path):
    # A WSGI app is synchronous code: libraries that ask asyncio whether they run in a
    # coroutine (Django's async-safety check) must hear "no", also after the app suspended its
    # greenlet itself and a timer resumed it. The loop is still the app's event loop, and
    # still runs the coroutines gyre.wait hands it.
    g = gyre("core_app.py", "--tornado", "2")
    status, body = raw(g, path)
    assert status == 200, g.log()
    assert json.loads(body) == {
        "running_loop": None,
        "get_event_loop_is_ioloops": True,
        "ioloop_current_is_import_ioloop": True,
        "loop_is_running": True,
        "coroutine_runs_on_the_loop": True,
        "core": True,
    }, body


# ---- NotInCoreError ----------------------------------------------------------------------------

NOT_IN_CORE = "NotInCoreError|True|True"


def test_wait_and_sleep_outside_a_core_raise_not_in_core(stack):
    s = stack("engine_app.py", "--tornado", "2")
    r = get(s.url + "/notincore/schedule")
    assert r.status_code == 200 and r.text == "scheduled"

    def recorded():
        return get(s.url + "/notincore/result").text.count(":") >= 3
    wait_for(recorded, timeout=5, what="the IOLoop callbacks")
    r = get(s.url + "/notincore/result")
    assert r.text == ";".join(sorted("%s:%s" % (w, NOT_IN_CORE)
                                     for w in ("cb-wait", "cb-sleep", "timer-wait"))), r.text
    # The one left to escape into the IOLoop: logged by Tornado, gyre goes on.
    s.gyre.wait_log("NotInCoreError", timeout=5)
    assert "suspends a request core" in s.gyre.log()
    assert_alive(s.gyre)
    r = get(s.url + "/hello")
    assert r.status_code == 200 and r.text.startswith("hello")
    # A child greenlet inside a request is not the core either; at import time neither.
    r = get(s.url + "/notincore/child")
    assert r.status_code == 200 and r.text == "child:" + NOT_IN_CORE
    r = get(s.url + "/notincore/import")
    assert r.status_code == 200 and r.text == "import:" + NOT_IN_CORE
    assert_alive(s.gyre)


# ---- the ABANDONED core path -------------------------------------------------------------------

def test_seed_example_as_is_gets_500_and_frees_the_core(stack, backend):
    s = stack("engine_seed.py", "--tornado", "2", "--env", "BACKEND_URL=" + backend.url)
    assert get(s.url + "/ok").status_code == 200
    # Twice the core count, all at once: with uWSGI the first two would hang for good and the
    # server would never answer again.
    results, wall = concurrent_get([s.url + "/"] * 4, timeout=15)
    for status, body, took in results:
        assert status == 500, (status, body)
        assert body == "Internal Server Error\n"
        assert took < 7.0, "a 500 took %.1f s" % took
    assert backend.hits == 4, "the example's fetch did not reach the backend"
    log = s.gyre.log()
    assert log.count("nothing can resume it (no reference to it outside its own frames)") == 4, log
    assert log.count("GET / abandoned: the app suspended its greenlet and nothing can resume it; "
                     "answered 500") == 4, log
    # The cores are back.
    for _ in range(3):
        r = get(s.url + "/ok", timeout=5)
        assert r.status_code == 200 and r.text == "ok"
    # And one more abandoned request after that still fails cleanly.
    t0 = time.monotonic()
    r = get(s.url + "/", timeout=10)
    assert r.status_code == 500 and time.monotonic() - t0 < 4.0
    assert get(s.url + "/ok").status_code == 200
    assert_alive(s.gyre)


def test_suspend_without_any_reference_gets_500_quickly(stack):
    s = stack("engine_app.py", "--tornado", "1")
    for _ in range(3):  # more than the one core
        t0 = time.monotonic()
        r = get(s.url + "/dropref", timeout=5)
        assert r.status_code == 500, r.text
        assert time.monotonic() - t0 < 1.0
    log = s.gyre.log()
    assert log.count("GET /dropref abandoned: the app suspended its greenlet and nothing can "
                     "resume it; answered 500") == 3, log
    r = get(s.url + "/hello", timeout=5)
    assert r.status_code == 200 and r.text.startswith("hello")


# ---- the cores' frame stacks (frame_stack.c) ---------------------------------------------------

def test_deep_stacks_survive_suspends_across_frame_chunks(gyre):
    # A core's Python frames start on a small chunk of gyre's pool and go on in CPython's own
    # chunks when deeper: requests suspended at many depths at once, resumed in another order,
    # each adds up its own frames.
    depths = [0, 3, 10, 30, 100, 300, 600, 900]
    g = gyre("engine_app.py", "--tornado", str(len(depths) + 1))
    for _ in range(2):  # the second round reuses the chunks the first one freed
        socks = [send_raw(g, "/deep", "n=%d" % n) for n in depths]
        wait_for(lambda: raw(g, "/deep/gate")[1] == b"waiting %d" % len(depths), TIMEOUT,
                 what="every /deep request to be suspended")
        assert raw(g, "/deep/gate", "open=1") == (200, b"opened %d" % len(depths))
        for n, s in zip(depths, socks):
            status, _, body = read_response(s)
            assert (status, body) == (200, b"sum %d" % (n * (n + 1) // 2))
    assert_alive(g)


def test_recursion_limit_in_a_core_and_after(gyre):
    g = gyre("engine_app.py", "--tornado", "2")
    for _ in range(3):
        assert raw(g, "/recursion") == (200, b"RecursionError RecursionError")
    status, body = raw(g, "/hello")
    assert status == 200 and body.startswith(b"hello from core")
    assert_alive(g)


# ---- stale handles of an ended request ---------------------------------------------------------

def test_stale_switch_into_an_idle_core_does_not_crash(gyre):
    # The app resumes its greenlet twice (e.g. a "timeout" timer it forgot to cancel): the second
    # switch lands in the core after its request ended, while the core is idle.
    g = gyre("engine_stale.py", "--tornado", "1")
    status, body = raw(g, "/double-switch", timeout=5)
    assert (status, body) == (200, b"resumed once")
    time.sleep(0.6)  # the stray switch fires at 0.4 s
    assert_alive(g)
    assert raw(g, "/hello", timeout=3) == (200, b"hello")


def test_stale_write_does_not_reach_the_next_request(gyre):
    # A write() callable kept past its request and called from a timer must not write into the
    # response of the next request served by the same core.
    g = gyre("engine_stale.py", "--tornado", "1")
    assert raw(g, "/keep-write", timeout=5) == (200, b"k")
    status, body = raw(g, "/slow", timeout=5)  # on the same (only) core when the timer fires
    assert (status, body) == (200, b"slow body")
    status, body = raw(g, "/stale", timeout=5)
    assert body.startswith(b"stale write raised "), body
    assert_alive(g)


# ---- the Tornado 6 example ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/wait"])
def test_tornado6_example_returns_the_backend_body(stack, backend, path):
    s = stack(os.path.join(ROOT, "examples", "tornado_fetch.py"), "--tornado", "10",
              "--env", "BACKEND_URL=" + backend.url)
    r = get(s.url + path, timeout=10)
    assert r.status_code == 200, r.text
    assert r.text == backend.body
    # Several at once, each fetching concurrently on the loop.
    results, _ = concurrent_get([s.url + path] * 10)
    assert [(st, b) for st, b, _ in results] == [(200, backend.body)] * 10
    assert backend.hits == 11


def test_tornado6_example_backend_down_is_502(gyre):
    port = None
    with socket.socket() as tmp:
        tmp.bind(("127.0.0.1", 0))
        port = tmp.getsockname()[1]
    url = "http://127.0.0.1:%d/services" % port  # nobody listens there any more
    g = gyre(os.path.join(ROOT, "examples", "tornado_fetch.py"), "--tornado", "2",
             "--env", "BACKEND_URL=" + url)
    for path in ("/", "/wait"):
        status, body = raw(g, path)
        assert status == 502 and body.startswith(b"backend " + url.encode()), body


# ---- a stalled client holds no core ------------------------------------------------------------

def test_client_stalled_mid_head_is_dropped_and_holds_no_core(gyre):
    g = gyre("engine_app.py", "--tornado", "1", "--socket-timeout", "1")
    stalled = connect(g.socket, timeout=5)
    stalled.sendall(uwsgi_packet({"PATH_INFO": "/hello"})[:2])
    t0 = time.monotonic()
    # Meanwhile the only core serves others.
    for _ in range(5):
        status, body = raw(g, "/hello", timeout=2)
        assert status == 200 and body.startswith(b"hello")
    assert time.monotonic() - t0 < 0.9, "normal requests waited for the stalled client"
    # Then gyre drops it: EOF on our side, without a response.
    data = stalled.recv(100)
    dropped = time.monotonic() - t0
    stalled.close()
    assert data == b""
    assert 0.9 <= dropped <= 2.5, "dropped after %.2f s with --socket-timeout 1" % dropped
    g.wait_log("socket timeout reading the request head after 2 bytes, connection closed", 2)
    assert raw(g, "/hello")[0] == 200
