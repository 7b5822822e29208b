"""The Python environment and the request-path options of uWSGI, on gyre and on Debian's uWSGI.

--home/--virtualenv (a real venv made by /usr/bin/python3 -m venv), --pythonpath globs,
--module, --mount with --manage-script-name, --enable-threads, --honour-stdin,
--post-buffering, --limit-post, --disable-write-exception, --ignore-write-errors, --need-app.
Where gyre claims uWSGI's behaviour, the same check runs against `uwsgi --plugin python3`
with the same command line (gyre accepts and ignores --plugin).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from conftest import GYRE, free_port, wait_for

UWSGI = shutil.which("uwsgi")
SERVERS = ["gyre", pytest.param("uwsgi", marks=pytest.mark.skipif(
    not UWSGI, reason="Debian's uwsgi is not installed"))]
PYVER = "python%d.%d" % sys.version_info[:2]


class Server:
    """gyre or uWSGI on an HTTP socket of 127.0.0.1, with the same options."""

    def __init__(self, kind, tmp, args, stdin=subprocess.DEVNULL, wait=True, cwd=None):
        self.kind = kind
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(str(tmp), "%s-%d.log" % (kind, time.monotonic_ns()))
        binary = GYRE if kind == "gyre" else UWSGI
        self.argv = [binary, "--plugin", "python3", "--http-socket",
                     "127.0.0.1:%d" % self.port, *args]
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=cwd)
        if wait:
            wait_for(lambda: self.accepting() or self.proc.poll() is not None, timeout=20,
                     what="%s listening" % kind)
            assert self.proc.poll() is None, "%s exited:\n%s" % (kind, self.log())

    def accepting(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=10.0):
        wait_for(lambda: text in self.log(), timeout, what="%r in %s's log" % (text, self.kind))

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        kw.setdefault("allow_redirects", False)
        return requests.get(self.url + path, **kw)

    def post(self, path, data, **kw):
        kw.setdefault("timeout", 10)
        return requests.post(self.url + path, data=data, **kw)

    def stop(self):
        if self.proc.poll() is None:
            # uWSGI without a master exits on SIGINT; gyre stops gracefully on SIGTERM.
            self.proc.send_signal(signal.SIGINT if self.kind == "uwsgi" else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


@pytest.fixture
def server(tmp_path):
    started = []

    def start(kind, *args, **kw):
        s = Server(kind, tmp_path, list(args), **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def write_app(path, body):
    path.write_text(textwrap.dedent(body))
    return str(path)


REPORT_APP = """
import json, os, sys, threading
def application(env, start_response):
    out = {"prefix": sys.prefix, "exec_prefix": sys.exec_prefix, "path": sys.path,
           "script_name": env.get("SCRIPT_NAME"), "path_info": env.get("PATH_INFO")}
    try:
        import onlyvenv
        out["onlyvenv"] = onlyvenv.WHERE
    except ImportError:
        out["onlyvenv"] = None
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A real venv of this Python, with a package only it has."""
    d = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(d)], check=True,
                   timeout=120)
    pkg = d / "lib" / PYVER / "site-packages" / "onlyvenv"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("WHERE = 'venv'\n")
    return str(d)


# ---- --home / --virtualenv ------------------------------------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("flag", ["--home", "--virtualenv"])
def test_home_venv_packages_and_prefix(server, tmp_path, venv, kind, flag):
    app = write_app(tmp_path / "report.py", REPORT_APP)
    s = server(kind, "--wsgi-file", app, flag, venv)
    r = s.get("/")
    assert r.status_code == 200
    got = r.json()
    assert got["onlyvenv"] == "venv"
    assert got["prefix"] == venv and got["exec_prefix"] == venv
    site = os.path.join(venv, "lib", PYVER, "site-packages")
    assert site in got["path"]
    # The stdlib stays the system's.
    assert "/usr/lib/" + PYVER in got["path"]


def test_home_venv_packages_come_before_the_systems(server, tmp_path, venv):
    """A package the venv has shadows the system's copy (gyre keeps dist-packages after the
    venv's site-packages: its own Tornado lives there)."""
    app = write_app(tmp_path / "report.py", REPORT_APP)
    s = server("gyre", "--wsgi-file", app, "--venv", venv)
    path = s.get("/").json()["path"]
    site = path.index(os.path.join(venv, "lib", PYVER, "site-packages"))
    dist = [i for i, p in enumerate(path) if p.endswith("dist-packages")]
    assert dist and site < min(dist)


def test_without_home_the_venv_package_is_not_there(server, tmp_path):
    app = write_app(tmp_path / "report.py", REPORT_APP)
    s = server("gyre", "--wsgi-file", app)
    assert s.get("/").json()["onlyvenv"] is None


def start_failure(tmp_path, *args):
    """gyre's exit status and log for a start that must fail."""
    app = write_app(tmp_path / "report.py", REPORT_APP)
    p = subprocess.run([GYRE, "--http-socket", "127.0.0.1:%d" % free_port(), "--wsgi-file", app,
                        *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def test_home_missing_is_one_clear_line(tmp_path):
    rc, log = start_failure(tmp_path, "--home", str(tmp_path / "nope"))
    assert rc != 0
    assert "--home %s: no such directory" % (tmp_path / "nope") in log
    assert "Traceback" not in log


def test_home_of_another_python_is_refused(tmp_path):
    old = tmp_path / "old"
    (old / "lib" / "python3.9" / "site-packages").mkdir(parents=True)
    rc, log = start_failure(tmp_path, "--home", str(old))
    assert rc != 0
    assert "has packages for another Python only" in log and "Traceback" not in log

    (old / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.9.2\n")
    rc, log = start_failure(tmp_path, "--home", str(old))
    assert rc != 0
    assert "is a virtualenv of Python 3.9" in log and "Traceback" not in log


def test_home_not_a_venv_is_refused(tmp_path):
    (tmp_path / "plain").mkdir()
    rc, log = start_failure(tmp_path, "--home", str(tmp_path / "plain"))
    assert rc != 0
    assert "is not a virtualenv" in log


# ---- --pythonpath globs, --module -----------------------------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
def test_pythonpath_glob_adds_every_match(server, tmp_path, kind):
    for name in ("alpha", "beta"):
        lib = tmp_path / "srv" / name / "lib"
        lib.mkdir(parents=True)
        (lib / ("mod_%s.py" % name)).write_text("NAME = %r\n" % name)
    app = write_app(tmp_path / "globapp.py", """
        def application(env, start_response):
            import mod_alpha, mod_beta
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [(mod_alpha.NAME + "," + mod_beta.NAME).encode()]
        """)
    s = server(kind, "--wsgi-file", app, "--pythonpath", str(tmp_path / "srv" / "*" / "lib"))
    r = s.get("/")
    assert r.status_code == 200 and r.text == "alpha,beta"


@pytest.mark.parametrize("kind", SERVERS)
def test_module_with_callable(server, tmp_path, kind):
    pkg = tmp_path / "proj" / "mysite"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "wsgi.py").write_text(textwrap.dedent("""
        def app(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"module app"]
        """))
    s = server(kind, "--pythonpath", str(tmp_path / "proj"), "--module", "mysite.wsgi:app")
    assert s.get("/").text == "module app"


# ---- --mount, --manage-script-name ----------------------------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
def test_mount_manage_script_name_splits_the_path(server, tmp_path, kind):
    app = write_app(tmp_path / "report.py", REPORT_APP)
    other = write_app(tmp_path / "other.py", """
        def application(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [("other %s %s" % (env["SCRIPT_NAME"], env["PATH_INFO"])).encode()]
        """)
    s = server(kind, "--mount", "/app=" + app, "--mount", "/app/deeper=" + other,
               "--manage-script-name")
    got = s.get("/app/x/y?q=1").json()
    assert (got["script_name"], got["path_info"]) == ("/app", "/x/y")
    got = s.get("/app").json()
    assert (got["script_name"], got["path_info"]) == ("/app", "")
    # The longest mount point wins.
    assert s.get("/app/deeper/z").text == "other /app/deeper /z"


def test_mount_without_match_is_404_or_the_default_app(server, tmp_path):
    app = write_app(tmp_path / "report.py", REPORT_APP)
    s = server("gyre", "--mount", "/app=" + app, "--manage-script-name")
    r = s.get("/elsewhere")
    assert r.status_code == 404
    default = write_app(tmp_path / "default.py", """
        def application(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"default " + env["PATH_INFO"].encode()]
        """)
    s = server("gyre", "--wsgi-file", default, "--mount", "/app=" + app, "--manage-script-name")
    assert s.get("/elsewhere").text == "default /elsewhere"
    assert s.get("/app/a").json()["path_info"] == "/a"


# ---- threads, stdin -------------------------------------------------------------------------

THREAD_APP = """
import threading
def application(env, start_response):
    box = []
    t = threading.Thread(target=lambda: box.append("ran in " + threading.current_thread().name),
                         name="helper")
    t.start()
    t.join(5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(box[0] if box else "thread did not run").encode()]
"""


@pytest.mark.parametrize("kind", SERVERS)
def test_enable_threads_a_thread_started_by_the_app_runs(server, tmp_path, kind):
    app = write_app(tmp_path / "threads.py", THREAD_APP)
    s = server(kind, "--wsgi-file", app, "--enable-threads")
    assert s.get("/").text == "ran in helper"


def test_threads_run_in_gyre_without_enable_threads(server, tmp_path):
    app = write_app(tmp_path / "threads.py", THREAD_APP)
    s = server("gyre", "--wsgi-file", app)
    assert s.get("/").text == "ran in helper"


STDIN_APP = """
import os
def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"stdin:" + os.read(0, 100)]
"""


@pytest.mark.parametrize("kind", SERVERS)
def test_stdin_is_dev_null_unless_honour_stdin(server, tmp_path, kind):
    app = write_app(tmp_path / "stdin.py", STDIN_APP)
    s = server(kind, "--wsgi-file", app, stdin=subprocess.PIPE)
    # The pipe stays open (nothing written): a real stdin would block the read.
    assert s.get("/").text == "stdin:"

    s = server(kind, "--wsgi-file", app, "--honour-stdin", stdin=subprocess.PIPE)
    s.proc.stdin.write(b"hello")
    s.proc.stdin.flush()
    assert s.get("/").text == "stdin:hello"


# ---- bodies: --post-buffering, --limit-post -------------------------------------------------

BODY_APP = """
import hashlib, os, stat
def application(env, start_response):
    inp = env["wsgi.input"]
    first = inp.readline()
    rest = inp.read()
    spooled = False
    try:
        spooled = stat.S_ISREG(os.fstat(inp.fileno()).st_mode)
    except Exception:
        pass
    body = ("%d %s %s" % (len(first) + len(rest), hashlib.sha256(first + rest).hexdigest(),
                          "file" if spooled else "stream")).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


@pytest.mark.parametrize("kind", SERVERS)
def test_post_buffering_body_read_whole(server, tmp_path, kind):
    import hashlib
    app = write_app(tmp_path / "body.py", BODY_APP)
    s = server(kind, "--wsgi-file", app, "--post-buffering", "1000")
    for size in (10, 999, 1001, 300000):
        data = (b"line one\n" + os.urandom(size))[:size]
        n, digest, _ = s.post("/", data).text.split()
        assert (int(n), digest) == (size, hashlib.sha256(data).hexdigest())


def test_post_buffering_spools_large_bodies_to_a_file(server, tmp_path):
    app = write_app(tmp_path / "body.py", BODY_APP)
    s = server("gyre", "--wsgi-file", app, "--post-buffering", "1000",
               "--post-buffering-bufsize", "4096")
    assert s.post("/", b"x" * 5000).text.endswith(" file")
    assert s.post("/", b"x" * 1000).text.endswith(" stream")
    # A chunked body (length unknown until its end) is spooled too.
    chunks = iter([b"a" * 3000, b"b\n" * 2000])
    assert s.post("/", chunks).text.startswith("7000 ")
    s.stop()
    g = server("gyre", "--wsgi-file", app)
    assert g.post("/", b"x" * 5000).text.endswith(" stream")


def test_limit_post_answers_413_without_the_app(server, tmp_path):
    app = write_app(tmp_path / "body.py", BODY_APP)
    s = server("gyre", "--wsgi-file", app, "--limit-post", "100")
    assert s.post("/", b"x" * 100).status_code == 200
    r = s.post("/", b"x" * 101)
    assert r.status_code == 413
    s.wait_log("over --limit-post 100: answered 413")
    # With --post-buffering, a chunked body is counted as it is spooled.
    s2 = server("gyre", "--wsgi-file", app, "--limit-post", "100", "--post-buffering", "10")
    assert s2.post("/", iter([b"y" * 60, b"y" * 60])).status_code == 413


# ---- write errors: --disable-write-exception, --ignore-write-errors -------------------------

WRITE_APP = """
import os
def application(env, start_response):
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    chunk = b"x" * (1 << 20)
    outcome = "no error"
    for _ in range(256):
        try:
            write(chunk)
        except OSError as e:
            outcome = "raised " + type(e).__name__
            break
    with open(os.environ["WRITE_REPORT"], "w") as f:
        f.write(outcome)
    return []
"""


def cut_response(s):
    """Ask for the big response, read its head, and go away."""
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c.recv(1024)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("flag", [None, "--disable-write-exception"])
def test_write_to_a_gone_client(server, tmp_path, kind, flag, monkeypatch):
    report = tmp_path / "report.txt"
    monkeypatch.setenv("WRITE_REPORT", str(report))
    app = write_app(tmp_path / "write.py", WRITE_APP)
    s = server(kind, "--wsgi-file", app, *([flag] if flag else []))
    cut_response(s)
    wait_for(lambda: report.exists() and report.read_text(), timeout=20, what="the app's report")
    if flag:
        assert report.read_text() == "no error"
        if kind == "gyre":
            # One line for the cut response, not one per dropped write.
            wait_for(lambda: "GET / =>" in s.log(), what="the request's log line")
            log = s.log()
            assert log.count("client went away") + log.count("writing the response") == 1
    else:
        assert report.read_text().startswith("raised ")


def test_ignore_write_errors_silences_the_log_line(server, tmp_path, monkeypatch):
    report = tmp_path / "report.txt"
    monkeypatch.setenv("WRITE_REPORT", str(report))
    app = write_app(tmp_path / "write.py", WRITE_APP)
    s = server("gyre", "--wsgi-file", app, "--disable-write-exception")
    cut_response(s)
    wait_for(lambda: report.exists() and report.read_text(), timeout=20, what="the app's report")
    s.wait_log("GET / =>")
    assert "client went away" in s.log() or "writing the response" in s.log()

    report.unlink()
    s = server("gyre", "--wsgi-file", app, "--disable-write-exception", "--ignore-write-errors")
    cut_response(s)
    wait_for(lambda: report.exists() and report.read_text(), timeout=20, what="the app's report")
    s.wait_log("GET / =>")
    assert "client went away" not in s.log() and "writing the response" not in s.log()


# ---- start-up options -----------------------------------------------------------------------

def test_need_app_and_a_broken_app_exit(tmp_path):
    broken = write_app(tmp_path / "broken.py", "raise RuntimeError('cannot start')\n")
    for extra in ([], ["--need-app"]):
        p = subprocess.run([GYRE, "--http-socket", "127.0.0.1:%d" % free_port(), "--wsgi-file",
                            broken, *extra], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        assert p.returncode != 0
        assert b"cannot load the app" in p.stdout + p.stderr


def test_accepted_no_op_options_and_py_autoreload_warning(server, tmp_path):
    app = write_app(tmp_path / "report.py", REPORT_APP)
    s = server("gyre", "--wsgi-file", app, "--single-interpreter", "--ignore-sigpipe",
               "--wsgi-env-behaviour", "holy", "--enable-threads", "--need-app",
               "--py-autoreload", "2")
    assert s.get("/").status_code == 200
    s.wait_log("--py-autoreload needs --master")


# ---- --pymodule-alias, --import -------------------------------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
def test_pymodule_alias_and_import(server, tmp_path, kind, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "real_settings.py").write_text("WHO = 'real'\n")
    (lib / "side_effect.py").write_text(
        "import os\nopen(os.environ['IMPORT_MARK'], 'w').write('imported')\n")
    (tmp_path / "fake.py").write_text("WHO = 'file'\n")
    monkeypatch.setenv("IMPORT_MARK", str(tmp_path / "mark"))
    app = write_app(tmp_path / "alias_app.py", """
        import os
        import settings, other
        def application(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            with open(os.environ["IMPORT_MARK"]) as f:
                mark = f.read()
            return [("%s %s %s" % (settings.WHO, other.WHO, mark)).encode()]
        """)
    s = server(kind, "--pythonpath", str(lib), "--pymodule-alias", "settings=real_settings",
               "--pymodule-alias", "other=" + str(tmp_path / "fake.py"),
               "--import", "side_effect", "--wsgi-file", app)
    assert s.get("/").text == "real file imported"


@pytest.mark.parametrize("kind", SERVERS)
def test_an_import_that_fails_is_logged_and_the_app_still_serves(server, tmp_path, kind):
    """uWSGI prints the traceback of a failed --import and serves (even with --need-app): a
    real config imports a module its image has and this machine may not (dispatcharr)."""
    app = write_app(tmp_path / "plain_app.py", """
        def application(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"served"]
        """)
    s = server(kind, "--import", "no_such_module_here", "--need-app", "--wsgi-file", app)
    assert s.get("/").text == "served"
    s.wait_log("No module named 'no_such_module_here'")


def test_pymodule_alias_of_a_missing_file_is_one_line(tmp_path):
    rc, log = start_failure(tmp_path, "--pymodule-alias", "x=" + str(tmp_path / "none.py"))
    assert rc != 0
    assert "--pymodule-alias x: no Python file" in log and "Traceback" not in log


@pytest.mark.parametrize("kind", SERVERS)
def test_py_autoreload_serves_the_changed_module(server, tmp_path, kind):
    lib = tmp_path / "lib"
    lib.mkdir()
    mod = lib / "versioned.py"
    mod.write_text("VERSION = 'v1'\n")
    app = write_app(tmp_path / "auto_app.py", """
        import versioned
        def application(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [versioned.VERSION.encode()]
        """)
    s = server(kind, "--master", "--pythonpath", str(lib), "--py-autoreload", "1",
               "--wsgi-file", app)
    assert s.get("/").text == "v1"
    # The file changes (each time with a new mtime, whatever the file system's granularity)
    # until the server serves it: uWSGI's reloader takes the mtimes it first sees as the
    # baseline, and a first look may come after a first change.
    changes = []

    def serves_v2():
        if not changes or time.monotonic() - changes[-1] > 1.5:
            changes.append(time.monotonic())
            mod.write_text("VERSION = 'v2'\n")
            when = time.time() - 1000 + len(changes)
            os.utime(mod, (when, when))
        try:
            return s.get("/", timeout=5).text == "v2"
        except requests.RequestException:
            return False  # uWSGI's master re-executes itself on a reload
    wait_for(serves_v2, timeout=30, what="the new module served")
    if kind == "gyre":
        assert "versioned.py changed: reloading the worker (--py-autoreload)" in s.log()


@pytest.mark.parametrize("kind", SERVERS)
def test_need_app_exits_on_both_servers(server, tmp_path, kind):
    broken = write_app(tmp_path / "broken.py", "raise RuntimeError('cannot start')\n")
    s = server(kind, "--need-app", "--wsgi-file", broken, wait=False)
    wait_for(lambda: s.proc.poll() is not None, timeout=20, what="%s to exit" % kind)
    assert s.proc.returncode != 0
    assert "cannot start" in s.log()
