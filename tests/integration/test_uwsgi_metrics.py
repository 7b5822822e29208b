"""uWSGI's metrics (issue 12): `--metric` and uwsgi.metric_* shared by the workers, in the stats
JSON and (gyre's) --metrics-http. Each behaviour gyre claims as uWSGI's runs the same app
(tests/apps/metrics_app.py) under gyre and under Debian's uWSGI 2.0.21 (--plugin python3
--master --processes 2) and compares what it sees."""
import json
import os
import re
import signal
import socket
import threading
import urllib.request

import pytest

from conftest import APPS, GYRE, UWSGI, Session, free_port, wait_for

APP = os.path.join(APPS, "metrics_app.py")
SERVERS = ("gyre", "uwsgi")
METRICS_ARGS = [
    "--metric", "c",
    "--metric", "name=g,type=gauge,initial_value=10",
    "--metric", "name=a,type=alias,alias=c",
    "--metric", "name=ab,type=absolute",
    "--metric", "name=s,collector=sum,children=c;g",
    "--metric", "name=lo,type=gauge,initial_value=2",
]


class Server:
    """gyre or Debian's uWSGI: a master and `workers` workers serving metrics_app.py on
    --http-socket, with the stats server on a TCP port; ready once every worker answers."""

    def __init__(self, tmp, kind, *args, workers=2):
        self.kind = kind
        self.port, self.stats_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        common = ["--http-socket", "127.0.0.1:%d" % self.port, "--wsgi-file", APP, "--master",
                  "--processes", str(workers), "--stats", "127.0.0.1:%d" % self.stats_port,
                  *args]
        argv = [GYRE, *common] if kind == "gyre" else [UWSGI, "--plugin", "python3", *common]
        self.session = Session(tmp, argv)
        ready = "gyre" if kind == "gyre" else "spawned uWSGI worker %d" % workers
        wait_for(lambda: ready in self.log() or not self.session.alive(), 30,
                 what="%s to start" % kind)
        assert self.session.alive(), self.log()
        wait_for(self._answers, 30, what="%s to answer" % kind)

    def _answers(self):
        try:
            self.get("/ready", timeout=2)
            return True
        except OSError:
            return False

    def log(self):
        return self.session.log()

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            assert r.status == 200
            return r.read().decode()

    def stats(self):
        with socket.create_connection(("127.0.0.1", self.stats_port), timeout=10) as s:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

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


def test_calls_answer_as_uwsgi(server):
    """Return values (True/None, int), refusals (unknown, alias, collected metric, division by
    0), wrap-around, set_max/set_min and the argument errors: gyre's answers are uWSGI's."""
    answers = {}
    for kind in SERVERS:
        s = server(kind, *METRICS_ARGS)
        answers[kind] = json.loads(s.get("/calls"))
        s.stop()
    assert answers["gyre"] == answers["uwsgi"]
    steps = answers["gyre"]
    assert steps[0] == ["inc c", "ok", "bool", True]
    assert steps[2] == ["get c", "ok", "int", 6]
    assert steps[6] == ["get c", "ok", "int", -3]  # (6 - 2) * -3 / 4, C's division
    assert steps[7] == ["div c 0", "ok", "NoneType", None]
    assert steps[8] == ["get a", "ok", "int", -3]
    assert steps[9] == ["set a", "ok", "NoneType", None]
    assert steps[13] == ["get g", "ok", "int", 1]  # metric_set's value defaults to 1
    assert steps[16] == ["get g", "ok", "int", 50]
    assert steps[21] == ["get lo", "ok", "int", 3]
    assert steps[24] == ["set s", "ok", "NoneType", None]
    assert steps[25] == ["inc unknown", "ok", "NoneType", None]
    assert steps[26] == ["get unknown", "ok", "int", 0]
    assert steps[29] == ["get c", "ok", "int", -2 ** 63]
    assert steps[30][1:3] == ["error", "OverflowError"]
    assert steps[31][1:3] == ["error", "TypeError"]


@pytest.mark.parametrize("kind", SERVERS)
def test_without_metrics_every_update_is_refused(server, kind):
    """No --metric: the functions exist, updates answer None and metric_get 0."""
    s = server(kind)
    assert s.get("/inc?name=c&times=1").split()[1] == "None"
    assert s.get("/get?name=c") == "0"
    assert "metrics" not in s.stats()


def increment_from_clients(s, requests, times, clients=6):
    """`requests` /inc?name=c requests from `clients` threads; the pids that answered."""
    pids, errors = [], []
    todo = list(range(requests))
    mutex = threading.Lock()

    def client():
        while True:
            with mutex:
                if not todo:
                    return
                todo.pop()
            try:
                pid, result = s.get("/inc?name=c&times=%d" % times).split()
                assert result == "True"
                with mutex:
                    pids.append(int(pid))
            except Exception as e:  # noqa: B902 - reported below
                with mutex:
                    errors.append(repr(e))
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    return pids


SETUPS = [("gyre", ()), ("uwsgi", ()), ("gyre", ("--threads", "4")),
          ("gyre", ("--tornado", "4"))]


@pytest.mark.parametrize("kind,args", SETUPS,
                         ids=["-".join((k,) + a).replace("--", "") for k, a in SETUPS])
def test_increments_from_both_workers_add_up(server, kind, args):
    """Two workers (and their cores) increment one counter at once: no increment is lost, and
    every worker, the stats JSON and the alias see the same total."""
    s = server(kind, *METRICS_ARGS, *args)
    requests, times = 120, 25
    pids = increment_from_clients(s, requests, times)
    assert len(pids) == requests
    assert len(set(pids)) == 2, "both workers should have served"
    total = requests * times
    answers = {s.get("/get?name=c") for _ in range(10)}
    assert answers == {str(total)}
    assert s.get("/get?name=a") == str(total)
    metrics = s.stats()["metrics"]
    assert metrics["c"]["value"] == total
    assert metrics["a"]["value"] == total


@pytest.mark.parametrize("kind", SERVERS)
def test_stats_json_shows_metrics_as_uwsgi(server, kind):
    """The stats JSON's "metrics" object, before "sockets": each metric by name with uWSGI's
    numeric type (counter 0, gauge 1, absolute 2, alias 3), its oid ("" when none) and its
    value; a sum collector follows its children within a couple of seconds."""
    s = server(kind, *METRICS_ARGS, "--metric", "name=o,type=gauge,oid=1.3.6.1.4.1.35156.17.9")
    doc = s.stats()
    keys = list(doc)
    assert keys.index("metrics") < keys.index("sockets")
    m = doc["metrics"]
    assert m["c"] == {"type": 0, "oid": "", "value": 0}
    assert m["g"] == {"type": 1, "oid": "", "value": 10}
    assert m["a"] == {"type": 3, "oid": "", "value": 0}
    assert m["ab"] == {"type": 2, "oid": "", "value": 0}
    assert m["o"] == {"type": 1, "oid": "1.3.6.1.4.1.35156.17.9", "value": 0}
    assert m["s"]["type"] == 0
    custom = [k for k in m if k in ("c", "g", "a", "ab", "s", "lo", "o")]
    assert custom == ["c", "g", "a", "ab", "s", "lo", "o"]  # in the order given
    s.get("/inc?name=c&times=5")
    wait_for(lambda: s.stats()["metrics"]["s"]["value"] == 15, 15,
             what="the sum collector to add c and g")


@pytest.mark.parametrize("kind", SERVERS)
def test_stats_no_metrics_leaves_them_out(server, kind):
    s = server(kind, *METRICS_ARGS, "--stats-no-metrics")
    assert "metrics" not in s.stats()
    assert s.get("/inc?name=c&times=2").split()[1] == "True"


PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*\})? '
                       r'-?[0-9.e+]+(inf)?$|^-?Inf$')


def test_prometheus_series(server):
    """--metrics-http: each metric a family gyre_metric_<name> ('.', '-' as '_'), labelled with
    its uWSGI name; counter a counter, gauge and absolute gauges, an alias its target's kind.
    Every line of the document is a comment or `name{labels} value`."""
    port = free_port()
    s = server("gyre", *METRICS_ARGS, "--metric", "name=web.hits-total", "--metric", "x.y",
               "--metric", "name=x-y,type=gauge", "--metrics-http", "127.0.0.1:%d" % port)
    s.get("/inc?name=c&times=3")
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    types, values = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            assert family not in types, "one TYPE line per family: " + family
            types[family] = kind
        elif not line.startswith("#"):
            assert PROM_LINE.match(line), line
            name, value = line.rsplit(" ", 1)
            values[name] = value
    assert types["gyre_metric_c"] == "counter"
    assert types["gyre_metric_g"] == "gauge"
    assert types["gyre_metric_ab"] == "gauge"
    assert types["gyre_metric_a"] == "counter"
    assert types["gyre_metric_web_hits_total"] == "counter"
    assert values['gyre_metric_c{name="c"}'] == "3"
    assert values['gyre_metric_a{name="a"}'] == "3"
    assert values['gyre_metric_g{name="g"}'] == "10"
    assert values['gyre_metric_web_hits_total{name="web.hits-total"}'] == "0"
    # two names, one family name: one family (the first's type), told apart by the label
    assert types["gyre_metric_x_y"] == "counter"
    assert values['gyre_metric_x_y{name="x.y"}'] == "0"
    assert values['gyre_metric_x_y{name="x-y"}'] == "0"


BAD = [
    (["--metric", "name=x,type=alias,alias=nosuch"], 'unable to find metric "nosuch"'),
    (["--metric", "name=x,collector=nosuch"], 'unable to find metric collector "nosuch"'),
    (["--metric", "name=bad/name"], "invalid metric name"),
    (["--metric", "type=gauge"], "metric name"),
]


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("args,message", BAD, ids=[b[1].split('"')[0].strip() for b in BAD])
def test_bad_metric_refused_at_start(tmp_path, kind, args, message):
    """What uWSGI refuses at start (it exits 1), gyre refuses too, naming it (exit 2, a bad
    value)."""
    common = ["--http-socket", "127.0.0.1:%d" % free_port(), "--wsgi-file", APP, "--master",
              *args]
    argv = [GYRE, *common] if kind == "gyre" else [UWSGI, "--plugin", "python3", *common]
    s = Session(str(tmp_path), argv)
    status = s.wait_exit(20)
    assert status == (2 if kind == "gyre" else 1), s.log()
    assert message in s.log()


def test_unhonoured_metric_key_is_a_warning_and_strict_refuses_it(tmp_path, server):
    s = server("gyre", "--metric", "name=f,collector=func,arg1=my_c_function")
    assert "warning: --metric name=f,collector=func" in s.log()
    assert s.stats()["metrics"]["f"]["value"] == 0
    strict = Session(str(tmp_path), [GYRE, "--strict", "--http-socket",
                                     "127.0.0.1:%d" % free_port(), "--wsgi-file", APP,
                                     "--metric", "name=f,reset_after_push=1"])
    assert strict.wait_exit(20) == 1
    assert "reset_after_push" in strict.log()


def test_metrics_dir_keeps_values_across_restarts(tmp_path, server):
    """--metrics-dir: a file per metric holding its value (updated within a couple of seconds);
    with --metrics-dir-restore the next start begins there. (Debian's uWSGI 2.0.21 writes only
    the values of collected metrics there, and its restore changes only their base: gyre keeps
    every metric, as uWSGI's documentation describes.)"""
    d = tmp_path / "metrics"
    d.mkdir()
    s = server("gyre", "--metric", "hits", "--metrics-dir", str(d), "--metrics-dir-restore")
    s.get("/inc?name=hits&times=7")
    wait_for(lambda: (d / "hits").read_text() == "7\n", 15, what="the file to say 7")
    s.stop()
    s = server("gyre", "--metric", "hits", "--metrics-dir", str(d), "--metrics-dir-restore")
    assert s.get("/get?name=hits") == "7"
    s.get("/inc?name=hits&times=1")
    wait_for(lambda: (d / "hits").read_text() == "8\n", 15, what="the file to say 8")


def test_values_survive_a_graceful_reload(server):
    """gyre's master keeps the shared values across a reload (SIGHUP): new workers see the old
    totals. (Debian's uWSGI re-executes itself on SIGHUP and starts again from the initial
    values; --metrics-dir-restore is its way to keep them.)"""
    s = server("gyre", "--metric", "c")
    assert s.get("/inc?name=c&times=4").split()[1] == "True"
    old = {w["pid"] for w in s.stats()["workers"]}
    assert len(old) == 2
    s.session.signal(signal.SIGHUP)

    def only_new_workers():
        pids = {w["pid"] for w in s.stats()["workers"]}
        return len(pids) == 2 and not pids & old
    wait_for(only_new_workers, 30, what="the reload to replace both workers")
    answers = {s.get("/get?name=c") for _ in range(6)}
    assert answers == {"4"}


def test_metric_threshold_is_a_warning(server):
    """uWSGI's alarms on metrics: not in gyre, said once at start (an error with --strict)."""
    s = server("gyre", "--metric", "c", "--metric-threshold", "key=c,value=10")
    assert "metric-threshold: gyre has no alarms" in s.log()


def test_without_a_master_the_only_process_keeps_them(tmp_path):
    """gyre without --master: one process, its metrics as with one (uWSGI's --metric implies a
    master); the stats JSON shows them."""
    port, stats_port = free_port(), free_port()
    s = Session(str(tmp_path), [GYRE, "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", APP,
                                "--metric", "name=c,initial_value=40",
                                "--stats", "127.0.0.1:%d" % stats_port])
    try:
        url = "http://127.0.0.1:%d" % port

        def answers():
            try:
                urllib.request.urlopen(url + "/ready", timeout=2).close()
                return True
            except OSError:
                return False
        wait_for(answers, 30, what="gyre to answer")
        with urllib.request.urlopen(url + "/inc?name=c&times=2", timeout=30) as r:
            assert r.read().decode().split()[1] == "True"
        with socket.create_connection(("127.0.0.1", stats_port), timeout=10) as c:
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert json.loads(data)["metrics"]["c"] == {"type": 0, "oid": "", "value": 42}
    finally:
        s.kill_group()


@pytest.mark.parametrize("kind", SERVERS)
def test_collectors_as_uwsgi(server, tmp_path, kind):
    """The collectors gyre honours, run every second by the master: file (the arg1n-th number
    of arg1), sum, adder (+ arg1n), multiplier (* arg1n), avg, each plus its initial_value;
    a collected metric refuses the app's updates."""
    numbers = tmp_path / "numbers"
    numbers.write_text("7 1234 99\n")
    s = server(kind, "--metric", "name=x,type=gauge,initial_value=6",
               "--metric", "name=y,type=gauge,initial_value=3",
               "--metric", "name=f,type=gauge,collector=file,arg1=%s,arg1n=1" % numbers,
               "--metric", "name=sum,collector=sum,children=x;y,initial_value=100",
               "--metric", "name=add,collector=adder,children=x;y,arg1n=10",
               "--metric", "name=mul,collector=multiplier,children=x;y,arg1n=-2",
               "--metric", "name=avg,type=gauge,collector=avg,children=x;y")
    want = {"f": 1234, "sum": 109, "add": 19, "mul": -18, "avg": 4}

    def collected():
        m = s.stats()["metrics"]
        return {k: m[k]["value"] for k in want} == want
    wait_for(collected, 15, what="the collectors' values")
    assert s.get("/inc?name=sum&times=1").split()[1] == "None"
    numbers.write_text("7 4321\n")
    wait_for(lambda: s.get("/get?name=f") == "4321", 15, what="the file collector to follow")


def test_enable_metrics_alone_shows_an_empty_object(server):
    """gyre defines none of uWSGI's built-in metrics (worker.N.*, core.*...): --enable-metrics
    alone gives an empty "metrics" object, and metric_get of a built-in name 0."""
    s = server("gyre", "--enable-metrics")
    assert s.stats()["metrics"] == {}
    assert s.get("/get?name=worker.1.requests") == "0"


@pytest.mark.parametrize("kind", SERVERS)
def test_log_format_renders_metric_values(server, kind):
    """%(metric.NAME) in --log-format: the metric's value as the line is written (after the
    request's own update); 0 for a name no --metric defines, as in uWSGI."""
    s = server(kind, "--metric", "hits", "--log-format", "M %(metric.hits) %(metric.nosuch)",
               workers=1)
    for _ in range(3):
        s.get("/inc?name=hits&times=1")
    wait_for(lambda: s.log().count("M ") >= 4, 10, what="the request lines")
    values = [l.split()[1:] for l in s.log().splitlines() if l.startswith("M ")]
    assert values[-3:] == [["1", "0"], ["2", "0"], ["3", "0"]], values
