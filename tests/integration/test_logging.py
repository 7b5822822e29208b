"""Logging options of uWSGI (issue 10, group 5), against real gyre processes and, where gyre
claims uWSGI's behaviour, the same check against Debian's uWSGI (`uwsgi --plugin python3`):

    --log-format's variables          test_format_variables_match_uwsgi
    --memory-report                   test_memory_report_default_line_matches_uwsgi
    --log-x-forwarded-for             test_log_x_forwarded_for_matches_uwsgi
    --log-4xx/5xx/slow/big/zero       test_log_only_if_options_match_uwsgi
    --log-date / --logdate            test_log_date_matches_uwsgi
    --logfile-chmod                   test_logfile_chmod_matches_uwsgi
    --log-maxsize / --log-backupname  test_log_maxsize_rotates_the_logto_file*
    --log-reopen                      test_log_reopen_follows_a_renamed_logto_file
    --logger / --req-logger / --log-route / --log-encoder
                                      test_loggers_routes_and_encoders,
                                      test_req_logger_json_encoder_matches_uwsgi
    --harakiri-verbose                test_harakiri_verbose_shows_the_stuck_worker

Both servers get the same uwsgi packets on a unix socket, one request at a time, so the values
that depend only on the request (uri, vars, pktsize, cl, ...) must be equal; the ones that
differ by nature (pid, clock, memory, the head gyre writes) are compared by form.
"""
import datetime
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import (APPS, GYRE, Session, connect, parse_response, uwsgi_packet,
                      uwsgi_request, wait_for)

APP = os.path.join(APPS, "log_app.py")
UWSGI = shutil.which("uwsgi")
BOTH = ["gyre", pytest.param("uwsgi", marks=pytest.mark.skipif(
    UWSGI is None, reason="Debian's uwsgi is not installed"))]


class Server:
    """gyre or uWSGI serving log_app.py on a unix socket; its log is its stdout+stderr or the
    --logto file."""

    def __init__(self, kind, tmp, *args, logto=None, wrapper=()):
        self.kind = kind
        self.socket = os.path.join(tmp, "%s-%d.sock" % (kind, time.monotonic_ns()))
        base = [*wrapper, GYRE] if kind == "gyre" else [*wrapper, UWSGI, "--plugin", "python3"]
        self.session = Session(tmp, base + ["--socket", self.socket, "--wsgi-file", APP,
                                            *args])
        self.pid = self.session.pid
        self.log_path = logto or self.session.log_path
        # The socket file exists from bind(); connections are taken from listen() on.
        wait_for(lambda: self.listening() or not self.session.alive(), 15,
                 what=kind + "'s socket")
        assert self.session.alive(), self.session.log()

    def listening(self):
        try:
            connect(self.socket, 1.0).close()
            return True
        except OSError:
            return False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def lines(self, prefix):
        return [l for l in self.log().splitlines() if l.startswith(prefix)]

    def wait_lines(self, prefix, n, timeout=10.0):
        wait_for(lambda: len(self.lines(prefix)) >= n, timeout,
                 what="%d lines %r in %s's log:\n%s" % (n, prefix, self.kind, self.log()))
        return self.lines(prefix)

    def request(self, path, query="", method="GET", body=b"", **extra):
        vars = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": method,
                "REQUEST_URI": path + ("?" + query if query else "")}
        vars.update(extra)
        raw = uwsgi_request(self.socket, vars, body)
        if not raw:  # uWSGI answers nothing when the app raises
            return None, b""
        status, _, got = parse_response(raw)
        return status, got


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(kind, *args, logto=None, wrapper=()):
        s = Server(kind, str(tmp_path), *args, logto=logto, wrapper=wrapper)
        started.append(s)
        return s
    yield start
    for s in started:
        s.session.kill_group()


# ---- --log-format's variables -------------------------------------------------------------------

NAMES = ["uri", "method", "user", "addr", "host", "proto", "status", "referer", "uagent", "time",
         "ltime", "ftime", "ctime", "epoch", "secs", "msecs", "micros", "size", "rsize", "cl",
         "hsize", "pktsize", "vars", "headers", "modifier1", "modifier2", "wid", "pid", "core",
         "vsz", "rss", "vszM", "rssM", "switches", "tmsecs", "tmicros", "werr", "rerr", "ioerr",
         "var.HTTP_X_ID", "var.HTTP_X_NONE", "nosuch", "metric.foo"]
# Equal on both servers: they depend on the request (the same packet) and the app only.
SAME = ["uri", "method", "user", "addr", "host", "proto", "status", "referer", "uagent", "rsize",
        "cl", "pktsize", "vars", "headers", "modifier1", "modifier2", "wid", "core", "werr",
        "rerr", "ioerr", "var.HTTP_X_ID", "var.HTTP_X_NONE", "nosuch", "metric.foo"]
FULL_VARS = {"SERVER_PROTOCOL": "HTTP/1.0", "REMOTE_ADDR": "192.0.2.1", "REMOTE_USER": "bob",
             "HTTP_HOST": "h.example", "HTTP_USER_AGENT": "agent/2",
             "HTTP_REFERER": "http://ref.example/", "HTTP_X_ID": "abc", "CONTENT_LENGTH": "5"}
LTIME = r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
CTIME = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}"


def fields(line):
    return dict(item.split("=", 1) for item in line[2:].split("|"))


def check_forms(f, pid):
    """The values that differ by nature, by form and by how they relate."""
    now = time.time()
    for name in ("time", "epoch", "tmsecs", "tmicros", "msecs", "micros", "size", "hsize", "pid",
                 "vsz", "rss", "vszM", "rssM", "switches"):
        assert f[name].isdigit(), (name, f)
    assert abs(int(f["epoch"]) - now) < 60 and 0 <= int(f["epoch"]) - int(f["time"]) <= 1
    assert int(f["tmsecs"]) // 1000 == int(f["time"])
    assert int(f["tmicros"]) // 1000 == int(f["tmsecs"])
    # ltime is when the request started, ftime when it ended (uWSGI's): the same form, and a
    # second boundary may fall between them.
    assert re.fullmatch(LTIME, f["ltime"]) and re.fullmatch(LTIME, f["ftime"]), f
    start, end = (datetime.datetime.strptime(f[n], "%d/%b/%Y:%H:%M:%S %z") for n in
                  ("ltime", "ftime"))
    assert 0 <= (end - start).total_seconds() <= 1, f
    assert re.fullmatch(CTIME, f["ctime"]), f
    assert re.fullmatch(r"\d+\.\d{6}", f["secs"]), f
    assert int(f["msecs"]) == int(f["micros"]) // 1000 < 5000
    assert int(f["size"]) == int(f["hsize"]) + int(f["rsize"]) and int(f["hsize"]) > 20
    assert int(f["pid"]) == pid
    assert int(f["rss"]) > 1 << 20 and int(f["vsz"]) > int(f["rss"])
    assert int(f["vszM"]) == int(f["vsz"]) >> 20 and int(f["rssM"]) == int(f["rss"]) >> 20


def test_format_variables_match_uwsgi(serve):
    fmt = "F " + "|".join("%s=%%(%s)" % (n, n) for n in NAMES)
    got = {}
    for kind in ("gyre", "uwsgi"):
        if kind == "uwsgi" and UWSGI is None:
            pytest.skip("Debian's uwsgi is not installed")
        # --memory-report: uWSGI measures vsz/rss only with it (gyre always).
        s = serve(kind, "--log-format", fmt, "--memory-report")
        assert s.request("/echo", "x=1", "POST", b"hello", **FULL_VARS) == (200, b"hello")
        assert s.request("/status/404")[0] == 404
        lines = s.wait_lines("F ", 2)
        got[kind] = [fields(l) for l in lines]
        for f in got[kind]:
            check_forms(f, s.pid)
    for g, u in zip(got["gyre"], got["uwsgi"]):
        assert {n: g[n] for n in SAME} == {n: u[n] for n in SAME}
    first = got["gyre"][0]
    assert (first["uri"], first["user"], first["cl"], first["var.HTTP_X_ID"]) == \
        ("/echo?x=1", "bob", "5", "abc")
    second = got["gyre"][1]  # what the request did not have: "-" (and cl 0; host is then
    assert [second[n] for n in ("user", "referer", "uagent", "host", "cl", "var.HTTP_X_ID",
                                "nosuch")] == ["-", "-", "-", "localhost", "0", "-", "-"]
    # SERVER_NAME, as in uWSGI)


@pytest.mark.parametrize("kind", BOTH)
def test_logvars_render_as_uwsgi(serve, kind):
    """Any other name in --log-format is a logvar: what the app set with uwsgi.set_logvar for
    this request, else "-"; the next request starts with none. Escaped like the client's text."""
    s = serve(kind, "--log-format", "U %(status) %(user_id) %(nosuchvar) %(step)")
    s.request("/logvar", "user_id=42&step=two+words")
    s.request("/")
    s.request("/logvar", "step=a%0Ab")
    lines = s.wait_lines("U ", 3)
    assert lines[0] == "U 200 42 - two words"
    assert lines[1] == "U 200 - - -"
    if kind == "gyre":  # a line break from the app cannot start a forged log line
        assert lines[2] == "U 200 - - a\\x0ab"
    assert "nosuchvar" not in s.log().replace("%(nosuchvar)", "")


# ---- --memory-report ------------------------------------------------------------------------------

MEMORY = re.compile(r"\{address space usage: (\d+) bytes/(\d+)MB\} \{rss usage: (\d+) "
                    r"bytes/(\d+)MB\} \[pid: (\d+)\|")


@pytest.mark.parametrize("kind", BOTH)
def test_memory_report_default_line_matches_uwsgi(serve, kind):
    s = serve(kind, "--memory-report")
    for _ in range(2):
        s.request("/")
    lines = s.wait_lines("{address space usage: ", 2)
    for line in lines:
        m = MEMORY.match(line)
        assert m, line
        vsz, vszm, rss, rssm, pid = map(int, m.groups())
        assert vszm == vsz >> 20 and rssm == rss >> 20 and 0 < rss < vsz and pid == s.pid
        assert re.search(r"\] GET / => generated 6 bytes in \d+ msecs \(HTTP/1\.1 200\) 1 "
                         r"headers in \d+ bytes \(\d+ switches on core 0\)$", line), line
    # Without the option: no such prefix.
    plain = serve(kind)
    plain.request("/")
    plain.wait_lines("[pid: ", 1)
    assert "address space usage" not in plain.log()


# ---- --log-x-forwarded-for ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", BOTH)
def test_log_x_forwarded_for_matches_uwsgi(serve, kind):
    s = serve(kind, "--log-x-forwarded-for", "--log-format", "A %(addr) %(uri)")
    s.request("/one", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7, 10.0.0.1")
    s.request("/two", REMOTE_ADDR="10.0.0.2")
    # The header's value whole, as uWSGI takes it; REMOTE_ADDR without one.
    assert s.wait_lines("A ", 2) == ["A 203.0.113.7, 10.0.0.1 /one", "A 10.0.0.2 /two"]
    plain = serve(kind, "--log-format", "A %(addr) %(uri)")
    plain.request("/one", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert plain.wait_lines("A ", 1) == ["A 10.0.0.2 /one"]


# ---- --disable-logging with the "log only if" options ----------------------------------------------

REQUESTS = [("/", ""), ("/status/404", ""), ("/status/500", ""), ("/sleep", "0.4"),
            ("/big", "60000"), ("/empty", ""), ("/status/302", "")]


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("options, logged", [
    ([], [u for u, _ in REQUESTS]),  # logging on: every request, whatever the options say
    (["--disable-logging", "--log-5xx"], ["/status/500"]),
    (["--disable-logging", "--log-4xx", "--log-5xx"], ["/status/404", "/status/500"]),
    (["--disable-logging", "--log-slow", "300"], ["/sleep"]),
    (["--disable-logging", "--log-big", "50000"], ["/big"]),
    (["--disable-logging", "--log-zero"], ["/empty"]),
    (["--disable-logging"], []),
])
def test_log_only_if_options_match_uwsgi(serve, kind, options, logged):
    extra = ["--log-4xx", "--log-5xx"] if not options else []
    s = serve(kind, "--log-format", "C %(uri) %(status)", *options, *extra)
    for path, query in REQUESTS:
        s.request(path, query)
    # One process serves one request at a time and writes a request's line before it takes the
    # next one: once a last request is answered, every earlier line is in the log.
    s.request("/flush")
    got = [l.split()[1].split("?")[0] for l in s.lines("C ") if not l.startswith("C /flush")]
    assert got == logged


# ---- --log-date --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("option, form", [
    ("--log-date", CTIME + " - "),
    ("--logdate=%Y-%m-%d %H:%M", r"\d{4}-\d\d-\d\d \d\d:\d\d - "),
])
def test_log_date_matches_uwsgi(serve, kind, option, form):
    s = serve(kind, option, "--log-format", "R %(uri)")
    s.request("/dated")
    s.wait_lines("R /dated", 1)  # request lines: never prefixed, in both
    first = {"gyre": "[gyre ", "uwsgi": "*** Starting uWSGI"}[kind]
    starts = [l for l in s.log().splitlines() if first in l]
    assert starts and re.match(form + re.escape(first), starts[0]), s.log()
    if kind == "gyre":  # every gyre message
        for l in s.log().splitlines():
            assert l.startswith("R /dated") or re.match(form + r"\[gyre \d+\] ", l), l


# ---- the --logto file: --logfile-chmod, --log-maxsize, --log-reopen ------------------------------

@pytest.mark.parametrize("kind", BOTH)
def test_logfile_chmod_matches_uwsgi(serve, tmp_path, kind):
    logto = str(tmp_path / ("%s.log" % kind))
    s = serve(kind, "--logto", logto, "--logfile-chmod", "604", logto=logto)
    s.request("/")
    wait_for(lambda: "GET /" in s.log(), what="the request line in " + logto)
    assert stat.S_IMODE(os.stat(logto).st_mode) == 0o604


@pytest.mark.parametrize("kind", BOTH)
@pytest.mark.parametrize("truncate", [False, True])
def test_log_truncate_matches_uwsgi(serve, tmp_path, kind, truncate):
    logto = tmp_path / ("%s.log" % kind)
    logto.write_text("OLD LINE\n")
    s = serve(kind, "--logto", str(logto), *(["--log-truncate"] if truncate else []),
              logto=str(logto))
    s.request("/new")
    wait_for(lambda: "GET /new" in s.log(), what="the request line")
    assert ("OLD LINE" in s.log()) != truncate


@pytest.mark.parametrize("option", [["--logto2"], ["--logfile-chown", "--logto"]])
def test_logto2_and_logfile_chown_give_the_file_to_the_uid(serve, tmp_path, option):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        nobody, nogroup = pwd.getpwnam("nobody"), grp.getgrnam("nogroup")
    except KeyError:
        pytest.skip("no nobody/nogroup on this system")
    logto = str(tmp_path / "app.log")
    s = serve("gyre", "--master", "--uid", "nobody", "--gid", "nogroup", "--chmod-socket",
              *option, logto, logto=logto)
    s.request("/owned")
    wait_for(lambda: "GET /owned" in s.log(), what="the worker's request line")
    st = os.stat(logto)
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nogroup.gr_gid)


def rotation_run(serve, tmp_path, *args):
    logto = str(tmp_path / "app.log")
    s = serve("gyre", "--logto", logto, "--log-maxsize", "3000", "--log-format",
              "L %(uri) " + "x" * 60, *args, logto=logto)
    n = 0
    backups = lambda: [p for p in os.listdir(tmp_path) if p.startswith("app.log.") or
                       p == "app.old"]
    while not backups() and n < 200:  # about 75 bytes a line: ~40 lines fill 3000 bytes
        n += 1
        s.request("/r%d" % n)
    assert backups(), "no rotation after %d requests:\n%s" % (n, s.log())
    for i in range(n + 1, n + 6):
        s.request("/r%d" % i)
    wait_for(lambda: "L /r%d " % (n + 5) in s.log(), what="the last line in the new file")
    [backup] = backups()
    old = open(tmp_path / backup).read()
    new = s.log()
    assert re.search(r"\d{4} - logsize: \d+, triggering rotation to %s\.\.\.\n"
                     % re.escape(str(tmp_path / backup)), old), old[-300:]
    assert os.path.getsize(logto) < 3000 < os.path.getsize(tmp_path / backup)
    # Every request's line, once, in one of the two files.
    seen = re.findall(r"^L /r(\d+) ", old + new, re.M)
    assert sorted(map(int, seen)) == list(range(1, n + 6))
    return backup


def test_log_maxsize_rotates_the_logto_file(serve, tmp_path):
    backup = rotation_run(serve, tmp_path)
    assert re.fullmatch(r"app\.log\.\d{10}", backup)  # FILE.<unix time>, as uWSGI names it


def test_log_maxsize_rotates_with_a_backupname_across_workers(serve, tmp_path):
    """Two workers share the file: one renames it, the other finds it renamed and reopens."""
    assert rotation_run(serve, tmp_path, "--log-backupname", str(tmp_path / "app.old"),
                        "--master", "--processes", "2", "--tornado", "2") == "app.old"


def requests_until(s, cond, what, timeout=10.0):
    """A request at a time until cond() holds: the checks run when a line is written."""
    deadline = time.monotonic() + timeout
    n = 0
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        n += 1
        s.request("/poll%d" % n)
        time.sleep(0.05)


def touch(path):
    """A new mtime, whole seconds away from the last one (the servers compare seconds)."""
    t = max(time.time(), os.stat(path).st_mtime + 10) if os.path.exists(path) else time.time()
    with open(path, "a"):
        pass
    os.utime(path, (t, t))


@pytest.mark.parametrize("kind", BOTH)
def test_touch_logrotate_matches_uwsgi(serve, tmp_path, kind):
    logto, trigger = str(tmp_path / "app.log"), str(tmp_path / "rotate.touch")
    touch(trigger)
    extra = ["--master"] if kind == "uwsgi" else []  # uWSGI's master checks the touch files
    s = serve(kind, *extra, "--logto", logto, "--touch-logrotate", trigger, "--log-format",
              "T %(uri)", logto=logto)
    s.request("/before")
    wait_for(lambda: "T /before" in s.log(), what="the first line")
    touch(trigger)
    backups = lambda: [p for p in os.listdir(tmp_path) if p.startswith("app.log.")]
    requests_until(s, backups, "the rotation")
    [backup] = backups()
    assert re.fullmatch(r"app\.log\.\d{10}", backup)
    old = open(tmp_path / backup).read()
    assert "T /before" in old and "triggering rotation to %s..." % (tmp_path / backup) in old
    s.request("/after")
    wait_for(lambda: "T /after" in s.log(), what="a line in the new file")
    assert "T /before" not in s.log()


def test_touch_logreopen(serve, tmp_path):
    logto, trigger = str(tmp_path / "app.log"), str(tmp_path / "reopen.touch")
    s = serve("gyre", "--logto", logto, "--touch-logreopen", trigger, "--log-format", "T %(uri)",
              logto=logto)
    s.request("/before")
    wait_for(lambda: "T /before" in s.log(), what="the first line")
    os.rename(logto, logto + ".1")  # as logrotate does, then tells the server
    s.request("/moved")
    touch(trigger)
    requests_until(s, lambda: os.path.exists(logto), "the reopened file")
    assert "T /moved" in open(logto + ".1").read()


def test_log_reopen_follows_a_renamed_logto_file(serve, tmp_path):
    """As after logrotate's rename: the next lines go to a new file of the same name (checked
    at most once a second)."""
    logto = str(tmp_path / "app.log")
    s = serve("gyre", "--logto", logto, "--log-reopen", "--log-format", "O %(uri)", logto=logto)
    s.request("/before")
    wait_for(lambda: "O /before" in s.log(), what="the first line")
    os.rename(logto, logto + ".1")
    deadline = time.monotonic() + 10
    n = 0
    while not os.path.exists(logto) and time.monotonic() < deadline:
        n += 1
        s.request("/after%d" % n)
        time.sleep(0.05)
    assert os.path.exists(logto), open(logto + ".1").read()
    s.request("/last")
    wait_for(lambda: "O /last" in s.log(), what="the line in the reopened file")
    assert "O /before" in open(logto + ".1").read() and "O /before" not in s.log()


# ---- --logger, --req-logger, --log-route, --log-encoder ------------------------------------------

def test_loggers_routes_and_encoders(serve, tmp_path):
    msgs, reqs, errs = (str(tmp_path / n) for n in ("msgs.log", "reqs.log", "errs.log"))
    s = serve("gyre", "--logger", "file:" + msgs, "--logger", "errors file:" + errs,
              "--log-route", "errors Traceback|RuntimeError", "--req-logger", "file:" + reqs,
              "--log-req-encoder", "format [req] ${msg}", "--log-req-encoder", "nl",
              "--log-encoder", "prefix:errors E> ", "--log-format", "%(method) %(uri) %(status)")
    wait_for(lambda: os.path.exists(msgs) and "gyre " in open(msgs).read(),
             what="the start-up messages in " + msgs)
    assert s.request("/hello")[0] == 200
    assert s.request("/fail")[0] == 500
    wait_for(lambda: "GET /fail 500" in open(reqs).read(), what="the request lines")
    wait_for(lambda: "RuntimeError" in open(errs).read(), what="the traceback in " + errs)
    assert open(reqs).read() == "[req] GET /hello 200\n[req] GET /fail 500\n"
    # The app's traceback, which Python writes to stderr, took the loggers too (as in uWSGI,
    # whose workers' stderr is its log pipe): routed to "errors", encoded for it alone.
    errors = open(errs).read()
    assert "E> Traceback (most recent call last):\n" in errors, errors
    assert all(l.startswith("E> ") for l in errors.splitlines()), errors
    assert "core 0: the app raised" in open(msgs).read()
    assert "RuntimeError" not in open(msgs).read()
    assert "GET /" not in open(msgs).read()
    assert s.session.log() == ""  # nothing left for stderr


@pytest.mark.parametrize("kind", BOTH)
def test_log_drain_and_filter_match_uwsgi(serve, kind):
    extra = ["--master"] if kind == "uwsgi" else []  # uWSGI's need its log master
    s = serve(kind, *extra, "--log-format", "D %(uri) %(status)", "--log-drain", "^D /secret",
              "--log-filter", "^D ", "--log-filter", "^zzz")
    for path in ("/secret", "/public", "/fail", "/flush"):
        s.request(path)
    lines = s.wait_lines("D /flush", 1)
    # (uWSGI logs the failed request as a 500 too, though it answered nothing)
    assert [l for l in s.log().splitlines() if l.startswith("D ")] == \
        ["D /public 200", "D /fail 500", "D /flush 200"]
    # Filtered out: the app's traceback (its stderr takes the filters too), and with it every
    # line that does not match one of them.
    assert "RuntimeError" not in s.log(), s.log()
    assert lines


@pytest.mark.parametrize("kind", BOTH)
def test_req_logger_json_encoder_matches_uwsgi(serve, tmp_path, kind):
    reqs = str(tmp_path / (kind + "-reqs.log"))
    # uWSGI's loggers need its log master, and its file logger a plugin.
    extra = ["--master", "--plugin", "logfile"] if kind == "uwsgi" else []
    s = serve(kind, *extra, "--req-logger", "file:" + reqs, "--log-req-encoder",
              'json {"unix":${unix},"line":"${msg}"}', "--log-req-encoder", "nl",
              "--log-format", '%(method) %(uri) "%(status)" \\ %(var.HTTP_X_ID)')
    s.request("/j", HTTP_X_ID="tab\there")
    wait_for(lambda: os.path.exists(reqs) and open(reqs).read().endswith("\n"),
             what="the encoded line in " + reqs)
    [line] = open(reqs).read().splitlines()
    doc = json.loads(line)
    assert abs(doc["unix"] - time.time()) < 60
    # A control byte of the client's: gyre escapes it in the line (\x09), uWSGI writes it as it
    # is; JSON carries either.
    assert doc["line"] in ('GET /j "200" \\ tab\\x09here', 'GET /j "200" \\ tab\there'), doc


# syslog(3) writes to /dev/log: the server runs in a mount namespace of its own where /dev/log
# is the test's datagram socket (and /dev's usual devices are the host's).
IN_PRIVATE_DEV = """set -e
D="$1"; LOG="$2"; shift 2
mount --make-rprivate /
mkdir -p "$D"
for n in null zero urandom random; do touch "$D/$n"; mount --bind "/dev/$n" "$D/$n"; done
touch "$D/log"; mount --bind "$LOG" "$D/log"
mount --rbind "$D" /dev
exec "$@"
"""


@pytest.mark.parametrize("kind", BOTH)
def test_syslog_logger_matches_uwsgi(serve, tmp_path, kind):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("needs unshare -m (root)")
    script = tmp_path / "private-dev.sh"
    script.write_text(IN_PRIVATE_DEV)
    devlog = str(tmp_path / "devlog")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(devlog)
        rx.settimeout(0.2)
        extra = ["--master", "--plugin", "syslog"] if kind == "uwsgi" else []
        s = serve(kind, *extra, "--logger", "syslog:%stest,local3" % kind,
                  wrapper=["unshare", "-m", "sh", str(script), str(tmp_path / "dev"), devlog])
        s.request("/via-syslog")
        got = []
        deadline = time.monotonic() + 10
        while not any(b"GET /via-syslog" in d for d in got) and time.monotonic() < deadline:
            try:
                got.append(rx.recv(65536))
            except socket.timeout:
                pass
    # <local3.info>, the ident, the message: the request line and, before it, start-up lines.
    assert any(b"GET /via-syslog" in d for d in got), got
    for d in got:
        assert re.match(rb"<158>\w{3} [ \d]\d \d\d:\d\d:\d\d %stest: " % kind.encode(), d), d
    assert len(got) > 1, got
    assert "GET /via-syslog" not in s.log()  # the logger took it: not stderr


def test_bad_logger_stops_gyre_at_start(tmp_path):
    sess = Session(str(tmp_path), [GYRE, "--socket", str(tmp_path / "s.sock"), "--wsgi-file",
                                   APP, "--logger", "redislog:127.0.0.1:6379"])
    assert sess.wait_exit(10) == 2
    assert "unknown logger: gyre has file, fd, stdio and syslog" in sess.log()
    assert not os.path.exists(tmp_path / "s.sock")


# ---- --harakiri-verbose ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", BOTH)
def test_harakiri_verbose_shows_the_stuck_worker(serve, kind):
    """A worker stuck in time.sleep (its loop blocked): the master kills it and, verbose, first
    logs the kernel's view of it, as uWSGI's trigger_harakiri does."""
    s = serve(kind, "--master", "--processes", "1", "--harakiri", "1", "--harakiri-verbose")
    with connect(s.socket, 30) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "20"}))
        wait_for(lambda: "wchan> " in s.log(), 15, what="the harakiri's wchan line")
    log = s.log()
    assert re.search(r"HARAKIRI: -- syscall> \d+ ", log), log
    assert re.search(r"HARAKIRI: -- wchan> \S+", log), log
    quiet = serve(kind, "--master", "--processes", "1", "--harakiri", "1")
    with connect(quiet.socket, 30) as c:
        c.sendall(uwsgi_packet({"PATH_INFO": "/sleep", "QUERY_STRING": "20"}))
        killed = {"gyre": "--harakiri 1): killing it", "uwsgi": "HARAKIRI ON WORKER 1"}[kind]
        wait_for(lambda: killed in quiet.log(), 15, what="the harakiri")
    assert "HARAKIRI: --" not in quiet.log()
