"""Configuration from .ini files and the environment, and --log-format: real gyre processes.

The .ini fixtures live in tests/integration/ini/ (several taken from uWSGI's documentation,
adapted); each test copies the ones it needs, with the app tests/apps/cfg_app.py, into its own
tmp directory, so that %d (the file's directory) puts sockets there. gyre is started here with
exactly the argv and environment a test gives (the conftest fixtures would add --socket).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import (Session, APPS, GYRE, parse_response, recv_all, uwsgi_packet, uwsgi_request,
                      wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
INI = os.path.join(HERE, "ini")
APP = os.path.join(APPS, "cfg_app.py")
TIMEOUT = 10


def clean_env(**extra):
    """The environment without any UWSGI_*/GYRE_* option that could leak in, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "GYRE_"))}
    env.update(extra)
    return env


def run(*args, env=None, cwd=None):
    return subprocess.run([GYRE, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, env=clean_env() if env is None else env,
                          cwd=cwd)


def one_line_exit_2(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.endswith("\n") and r.stderr.strip(), r.stderr
    return r.stderr


class Proc(Session):
    def __init__(self, tmp, argv, env, cwd):
        super().__init__(tmp, [GYRE, *argv], env=env, cwd=cwd)


@pytest.fixture
def launch(tmp_path):
    """launch(*argv, env=None, cwd=tmp_path): gyre with exactly that argv; stopped at the end."""
    started = []

    def start(*argv, env=None, cwd=None):
        p = Proc(str(tmp_path), list(argv), clean_env() if env is None else env,
                 str(cwd or tmp_path))
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(where, path="/", proc=None, **vars):
    """One uwsgi request to a unix socket path or a TCP port, retried until gyre is up."""
    v = {"PATH_INFO": path, "REQUEST_URI": path}
    v.update(vars)
    deadline = time.monotonic() + TIMEOUT

    while True:
        try:
            if isinstance(where, int):
                with socket.create_connection(("127.0.0.1", where), timeout=TIMEOUT) as s:
                    s.sendall(uwsgi_packet(v))
                    raw = recv_all(s)
            else:
                raw = uwsgi_request(where, v, timeout=TIMEOUT)
            return parse_response(raw)
        except (FileNotFoundError, ConnectionRefusedError):
            if proc is not None and proc.proc.poll() is not None:
                raise AssertionError("gyre exited with %s:\n%s"
                                     % (proc.proc.returncode, proc.log()))
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def report(where, proc=None):
    status, _, body = request(where, "/", proc)
    assert status == 200, body
    return json.loads(body)


def children(pid):
    """The pids of a process's children (the master's workers)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.append(int(d))
    return out


def setup_dir(tmp_path, *inis, app_to="."):
    """Copy the .ini fixtures and cfg_app.py into tmp_path; return the path of the first ini."""
    for name in inis:
        shutil.copy(os.path.join(INI, name), tmp_path / name)
    dest = tmp_path / app_to
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(APP, dest / "cfg_app.py")
    return str(tmp_path / inis[0])


# ---- .ini files from uWSGI's documentation, end to end ------------------------------------------

def test_quickstart_ini_serves_on_its_tcp_socket(launch, tmp_path):
    ini = setup_dir(tmp_path, "quickstart.ini", app_to="myproject")
    os.rename(tmp_path / "myproject" / "cfg_app.py", tmp_path / "myproject" / "wsgi.py")
    port = free_port()
    g = launch("--ini", ini, env=clean_env(CFG_PORT=str(port)), cwd="/")
    r = report(port, g)
    # chdir = %d happened before wsgi-file = myproject/wsgi.py was resolved.
    assert os.path.realpath(r["cwd"]) == os.path.realpath(str(tmp_path))
    assert os.path.realpath(r["file"]) == os.path.realpath(str(tmp_path / "myproject" / "wsgi.py"))
    wait_for(lambda: len(children(g.proc.pid)) == 4, what="4 workers (processes = 4)")


def test_configuration_page_ini_two_sockets_app_from_command_line(launch, tmp_path):
    ini = setup_dir(tmp_path, "configuration.ini")
    port = free_port()
    g = launch("--ini", ini, "--wsgi-file", str(tmp_path / "cfg_app.py"),
               env=clean_env(CFG_PORT=str(port)))
    # Repeated "socket =" lines add up: both sockets serve.
    assert report(str(tmp_path / "uwsgi.sock"), g)["cwd"]
    assert report(port, g)["cwd"]
    wait_for(lambda: len(children(g.proc.pid)) == 3, what="3 workers (workers = 3)")


def test_funnyapp_ini_magic_n_names_the_socket(launch, tmp_path):
    ini = setup_dir(tmp_path, "funnyapp.ini")
    g = launch("--ini", ini, cwd="/")
    r = report(str(tmp_path / "funnyapp.sock"), g)
    assert r["pid"] != g.proc.pid            # master = 1: served by a worker
    wait_for(lambda: len(children(g.proc.pid)) == 4, what="4 workers (processes = 4)")
    assert os.path.realpath(str(tmp_path)) in [os.path.realpath(p) for p in r["sys_path"]]
    assert os.path.realpath(r["file"]) == os.path.realpath(str(tmp_path / "cfg_app.py"))


def test_placeholders_ini(launch, tmp_path):
    ini = setup_dir(tmp_path, "placeholders.ini", app_to="uwsgi.it")
    os.rename(tmp_path / "uwsgi.it" / "cfg_app.py", tmp_path / "uwsgi.it" / "app.py")
    (tmp_path / "sockets").mkdir()
    g = launch("--ini", ini, cwd="/")
    r = report(str(tmp_path / "sockets" / "uwsgi.it.sock"), g)
    assert os.path.realpath(r["cwd"]) == os.path.realpath(str(tmp_path / "uwsgi.it"))
    assert r["env"] == {"CFG_LIMIT_AS": "64"}


# ---- substitutions, sections, nesting ------------------------------------------------------------

def test_both_sections_nested_ini_and_substitutions(launch, tmp_path):
    ini = setup_dir(tmp_path, "main.ini", "base.ini", app_to="apps")
    g = launch("--ini", ini, env=clean_env(OUTSIDE_VAR="from outside"), cwd="/")
    r = report(str(tmp_path / "main.sock"), g)
    real = os.path.realpath(str(tmp_path))
    assert r["env"] == {
        "CFG_NAME": "main",
        "CFG_FILE": "main.ini",
        "CFG_DIR": os.path.basename(real),
        "CFG_PATH": os.path.join(real, "main.ini"),
        "CFG_D": real + "/",
        "CFG_PERCENT": "100%",
        "CFG_FROM_ENV": "from outside",
        "CFG_CHDIR": real + "/",                      # %(chdir): set in base.ini
        "CFG_UNDEFINED": "%(nothing-of-that-name)",   # no such option: left as written
        "CFG_SEMICOLON": "a ; b",                     # no inline comments, as in uWSGI
        "CFG_SECTION": "gyre",                        # [gyre] applies too
        "CFG_INDENTED": "yes",                        # an indented line is a line of its own
    }
    # chdir = %d from base.ini; wsgi-file = %(base)/cfg_app.py with base set there.
    assert os.path.realpath(r["cwd"]) == real
    assert os.path.realpath(r["file"]) == os.path.join(real, "apps", "cfg_app.py")
    # [gyre] tornado = 3 from base.ini; [other] was ignored (its socket never bound).
    assert "3 cores on uwsgi://" in g.log()
    assert not os.path.exists("/nonexistent/never-bound.sock")
    # disable-logging = true: no request line.
    time.sleep(0.2)
    assert "GET /" not in g.log()


def test_file_colon_section_loads_only_that_section(launch, tmp_path):
    ini = setup_dir(tmp_path, "sections.ini")
    g = launch("--ini", ini + ":app2")
    assert report(str(tmp_path / "app2.sock"), g)["env"] == {"CFG_WHICH": "app2"}
    assert not os.path.exists(tmp_path / "sections.sock")


def test_ini_given_relative_to_the_working_directory(launch, tmp_path):
    setup_dir(tmp_path, "sections.ini")
    g = launch("--ini", "sections.ini", cwd=tmp_path)
    assert report(str(tmp_path / "sections.sock"), g)["env"] == {"CFG_WHICH": "uwsgi"}


def test_command_line_adds_to_the_ini(launch, tmp_path):
    ini = setup_dir(tmp_path, "sections.ini")
    extra = str(tmp_path / "extra.sock")
    g = launch("--ini", ini, "--socket", extra, "--env", "CFG_CLI=1")
    assert report(extra, g)["env"] == {"CFG_WHICH": "uwsgi", "CFG_CLI": "1"}
    assert report(str(tmp_path / "sections.sock"), g)["env"]["CFG_CLI"] == "1"


@pytest.mark.parametrize("value, logged", [("true", False), ("1", False), ("", False),
                                           ("false", True), ("0", True)])
def test_flags_in_ini(launch, tmp_path, value, logged):
    ini = setup_dir(tmp_path, "flags.ini")
    g = launch("--ini", ini, env=clean_env(CFG_DISABLE=value))
    status, _, _ = request(str(tmp_path / "flags.sock"), "/fixed", g)
    assert status == 200
    if logged:
        wait_for(lambda: "GET /fixed" in g.log(), what="the request's log line")
    else:
        time.sleep(0.3)
        assert "GET /fixed" not in g.log(), g.log()


def test_log_format_in_ini_keeps_its_variables(launch, tmp_path):
    ini = setup_dir(tmp_path, "logformat.ini")
    g = launch("--ini", ini)
    status, _, _ = request(str(tmp_path / "logformat.sock"), "/fixed", g)
    assert status == 200
    wait_for(lambda: "/fixed" in g.log(), what="the request's log line")
    line = [l for l in g.log().splitlines() if "/fixed" in l][0]
    # %(ltime) is uWSGI's [10/Oct/2000:13:55:36 +0000]; %(size) the head's bytes and the body's.
    m = re.fullmatch(r'127\.0\.0\.1 - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                     r'"GET /fixed HTTP/1\.1" 200 (\d+) core=0', line)
    assert m and int(m.group(1)) > 11, line


# ---- .ini errors: exit 2, one line --------------------------------------------------------------

def test_unknown_key_is_a_placeholder_but_strict_refuses_it(launch, tmp_path):
    # As uWSGI: bogus-option is a placeholder, no error; with --strict it is one (exit 1).
    ini = setup_dir(tmp_path, "bad_key.ini")
    g = launch("--ini", ini)
    assert report(str(tmp_path / "bad.sock"), g)["cwd"]
    assert "bogus-option" not in g.log()
    g.stop()
    (tmp_path / "bad.sock").unlink(missing_ok=True)
    r = run("--strict", "--ini", ini)
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1, r.stderr
    assert ini + ":6: unknown option 'bogus-option'" in r.stderr
    assert not os.path.exists(tmp_path / "bad.sock")


def test_unknown_key_in_an_included_file_under_strict(tmp_path):
    setup_dir(tmp_path, "bad_nested.ini", "bad_key.ini")
    # Relative: the message names the outer file as given (and gyre's line has a length limit).
    r = run("--ini", "bad_nested.ini", "--strict", cwd=str(tmp_path))
    assert r.returncode == 1, r
    inner = os.path.join(os.path.realpath(str(tmp_path)), "bad_key.ini")
    assert inner + ":6 (included from bad_nested.ini:3): unknown option 'bogus-option'" in r.stderr


def test_bad_value_names_file_line_and_problem(tmp_path):
    ini = setup_dir(tmp_path, "bad_value.ini")
    err = one_line_exit_2(run("--ini", ini))
    assert ini + ":4: tornado = many: expected a whole number" in err


def test_missing_ini(tmp_path):
    missing = str(tmp_path / "nowhere.ini")
    err = one_line_exit_2(run("--ini", missing))
    assert "cannot open " + missing + ": No such file or directory" in err


def test_ini_including_itself_stops(tmp_path):
    ini = setup_dir(tmp_path, "loop.ini")
    err = one_line_exit_2(run("--ini", ini))
    assert "nested more than" in err


def test_syntax_error_and_missing_section(tmp_path):
    bad = tmp_path / "syntax.ini"
    bad.write_text("[uwsgi]\nsocket = %d/s.sock\n[unclosed\n")
    err = one_line_exit_2(run("--ini", str(bad)))
    assert str(bad) + ":3: syntax error" in err
    setup_dir(tmp_path, "sections.ini")
    err = one_line_exit_2(run("--ini", str(tmp_path / "sections.ini") + ":nosuch"))
    assert "no [nosuch] section" in err


def test_overlong_line(tmp_path):
    bad = tmp_path / "long.ini"
    bad.write_text("[uwsgi]\nenv = X=%s\n" % ("x" * 20000))
    err = one_line_exit_2(run("--ini", str(bad)))
    assert str(bad) + ":2: line too long" in err


# ---- the environment ----------------------------------------------------------------------------

def test_environment_options(launch, tmp_path):
    sock = str(tmp_path / "env.sock")
    g = launch(env=clean_env(UWSGI_SOCKET=sock, GYRE_WSGI_FILE=APP, UWSGI_DISABLE_LOGGING="1",
                             UWSGI_FOO="unrelated", GYRE_BIN="/not/an/option",
                             UWSGI_TORNADO="2"))
    assert report(sock, g)["file"] == APP
    assert "2 cores on uwsgi://" + sock in g.log()
    time.sleep(0.3)
    assert "GET /" not in g.log()


def test_command_line_adds_to_the_environment(launch, tmp_path):
    env_sock, cli_sock = str(tmp_path / "env.sock"), str(tmp_path / "cli.sock")
    g = launch("--socket", cli_sock, "--wsgi-file", APP,
               env=clean_env(UWSGI_SOCKET=env_sock, UWSGI_TORNADO="2"))
    assert report(env_sock, g)["file"] == APP
    assert report(cli_sock, g)["file"] == APP


def test_command_line_overrides_the_environment(launch, tmp_path):
    sock = str(tmp_path / "s.sock")
    g = launch("--socket", sock, "--wsgi-file", APP, "--tornado", "4",
               env=clean_env(UWSGI_TORNADO="2"))
    report(sock, g)
    assert "4 cores on" in g.log()


def test_gyre_prefix_wins_over_uwsgi_prefix(launch, tmp_path):
    sock = str(tmp_path / "s.sock")
    g = launch("--socket", sock, "--wsgi-file", APP,
               env=clean_env(UWSGI_TORNADO="2", GYRE_TORNADO="5"))
    report(sock, g)
    assert "5 cores on" in g.log()


def test_uwsgi_ini_from_the_environment_and_placeholders(launch, tmp_path):
    ini = setup_dir(tmp_path, "sections.ini")
    with open(ini, "a") as f:
        f.write("[uwsgi]\nenv = CFG_FOO=%(foo)\n")
    g = launch(env=clean_env(UWSGI_INI=ini, UWSGI_FOO="bar"))
    # UWSGI_FOO is no option: ignored, but a %(foo) placeholder as in uWSGI.
    assert report(str(tmp_path / "sections.sock"), g)["env"] == {"CFG_WHICH": "uwsgi",
                                                                 "CFG_FOO": "bar"}


@pytest.mark.parametrize("var, value, mention", [
    ("UWSGI_TORNADO", "abc", "expected a whole number"),
    ("GYRE_SOCKET", "host:99999", "port"),
    ("UWSGI_INI", "/nonexistent/x.ini", "No such file or directory"),
])
def test_bad_environment_value(tmp_path, var, value, mention):
    err = one_line_exit_2(run("--socket", str(tmp_path / "s.sock"), "--wsgi-file", APP,
                              env=clean_env(**{var: value})))
    assert err.startswith("gyre: %s=%s: " % (var, value)), err
    assert mention in err


# ---- --log-format -------------------------------------------------------------------------------

def test_log_format_exact_line(launch, tmp_path):
    sock = str(tmp_path / "s.sock")
    fmt = ("%(method) %(uri) -> %(status) %(size) bytes pid=%(pid) core=%(core) %(proto) "
           "from %(addr) vars=%(vars) pkt=%(pktsize) headers=%(headers) hsize=%(hsize) "
           "req=%(req) 100% %(unclosed")
    g = launch("--socket", sock, "--wsgi-file", APP, "--log-format", fmt)
    vars = {"REQUEST_URI": "/fixed?q=1", "REMOTE_ADDR": "10.1.2.3"}
    status, headers, body = request(sock, "/fixed", g, **vars)
    assert (status, body) == (200, b"fixed body\n")
    packet = uwsgi_packet({"PATH_INFO": "/fixed", **vars})
    head = uwsgi_request(sock, {"PATH_INFO": "/fixed", **vars}).partition(b"\r\n\r\n")[0]
    expected = [
        "GET /fixed?q=1 -> 200 %d bytes pid=%d core=0 HTTP/1.1 from 10.1.2.3 vars=16 pkt=%d "
        "headers=2 hsize=%d req=%d 100%% %%(unclosed" % (11 + len(head) + 4, g.proc.pid,
                                                          len(packet) - 4, len(head) + 4, n)
        for n in (1, 2)]
    # Content-Length is gyre's: the headers counted are the app's two; hsize is the whole head
    # gyre wrote, its blank line included; size is head and body, vars names and values, pkt
    # the packet without its 4-byte header: as uWSGI counts them.
    wait_for(lambda: g.log().count("GET /fixed") == 2, what="two log lines")
    lines = [l for l in g.log().splitlines() if l.startswith("GET ")]
    assert lines == expected


def test_log_format_time_variables(launch, tmp_path):
    sock = str(tmp_path / "s.sock")
    g = launch("--socket", sock, "--wsgi-file", APP, "--log-format",
               "T %(time) %(epoch) [%(ltime)] %(msecs)ms %(switches)")
    before = int(time.time())
    request(sock, "/fixed", g)
    after = int(time.time())
    wait_for(lambda: "\nT " in g.log(), what="the log line")
    line = [l for l in g.log().splitlines() if l.startswith("T ")][0]
    m = re.fullmatch(r"T (\d+) (\d+) \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] (\d+)ms (\d+)",
                     line)
    assert m, line
    assert before <= int(m.group(1)) <= after + 1
    assert 0 <= int(m.group(2)) - int(m.group(1)) <= 1   # time: the start; epoch: now
    assert int(m.group(4)) < 5000


def test_log_format_control_characters_and_truncation(launch, tmp_path):
    sock = str(tmp_path / "s.sock")
    fmt = "L %(uri) " + "x" * 5000 + " %(status)"
    g = launch("--socket", sock, "--wsgi-file", APP, "--log-format", fmt)
    request(sock, "/fixed", g, REQUEST_URI="/a\nforged line\r")
    request(sock, "/fixed", g, REQUEST_URI="/second")
    wait_for(lambda: g.log().count("\nL ") == 2, what="two log lines")
    lines = [l for l in g.log().splitlines() if l.startswith("L ")]
    assert lines[0].startswith("L /a\\x0aforged line\\x0d xxx")     # escaped as nginx does
    assert lines[1].startswith("L /second xxx")
    for l in lines:
        assert 1000 < len(l) < 5000          # cut, not overflowed, and ended by its newline
    assert not any(l.startswith("forged") for l in g.log().splitlines())


# ---- uWSGI's syntax: the same config through gyre and Debian's uWSGI ---------------------------

UWSGI = ["uwsgi", "--plugin", "python3", "--die-on-term"]


@pytest.fixture
def launch_any(tmp_path):
    """launch_any(name, *argv): gyre (name "gyre") or Debian's uWSGI with its python3 plugin
    (name "uwsgi") started with that argv; killed, with its workers, at the end."""
    started = []

    def start(name, *argv, env=None, cwd=None):
        exe = [GYRE] if name == "gyre" else UWSGI
        p = Session(str(tmp_path), exe + list(argv), env=clean_env() if env is None else env,
                    cwd=str(cwd or tmp_path))
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()
        p.kill_group()


def test_placeholders_math_logic_as_uwsgi(launch_any, tmp_path):
    """One .ini with uWSGI's syntax (custom placeholders, forward references, arithmetic,
    @(file), if-*/for, flags in any case, a trailing comment on a number): the app sees the
    same CFG_* environment under gyre and under uWSGI, and both run 2 workers."""
    setup_dir(tmp_path, "syntax.ini")
    (tmp_path / "content.txt").write_text("from a file\n")
    envs = {}
    for name, sock in (("gyre", "gyre.sock"), ("uwsgi", "uwsgi.sock")):
        g = launch_any(name, "--ini", str(tmp_path / "syntax.ini"),
                       env=clean_env(CFG_SOCK=sock, CFG_MODE="prod"))
        envs[name] = report(str(tmp_path / sock), g)["env"]
        assert envs[name].pop("CFG_SOCK") == sock
        wait_for(lambda: len(children(g.proc.pid)) == 2, what=name + ": 2 workers")
        g.stop()
    assert envs["gyre"] == envs["uwsgi"]
    cpus = os.cpu_count()
    assert envs["gyre"] == {
        "CFG_BASE": str(tmp_path) + "/",          # a key that is no option: a placeholder
        "CFG_FIRST": "one",                       # %(twice) is its first value
        "CFG_LATER": "defined below",             # a placeholder set further down
        "CFG_MATH": "7",                          # %(n * 2 + 1)
        "CFG_LTR": "9",                           # %(1 + 2 * 3): left to right
        "CFG_CPUS": str(cpus * 2),                # %(%k * 2)
        "CFG_NOMATH": "%(n+1)",                   # no blanks: a name, and no such name
        "CFG_FILE": "from a file",                # @(file)
        "CFG_IFENV": "prod",                      # if-env = CFG_MODE: %(_) is its value
        "CFG_IFOPT": "2 ; two workers",           # if-opt = processes: the value as written
        "CFG_FOR_a": "1", "CFG_FOR_b": "1",       # for = a b
        "CFG_T1": "x", "CFG_T2": "x",             # for-times = 2
        "CFG_GLOB_content.txt": "1",              # for-glob = *.txt
        "CFG_TRUE": "1",                          # if-exists, if-dir
        "CFG_MODE": "prod",
    }


def test_strict_refuses_an_unknown_key_in_both(tmp_path):
    ini = tmp_path / "strict.ini"
    ini.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nwsgi-file = %s\nmy-setting = 1\n"
                   "strict = true\n" % (free_port(), APP))
    for argv in ([GYRE], ["uwsgi", "--plugin", "python3"]):
        r = subprocess.run(argv + ["--ini", str(ini)], capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=clean_env())
        assert r.returncode == 1, (argv, r)
        assert "my-setting" in r.stderr, (argv, r.stderr)


def test_uwsgi_option_gyre_lacks_warns_once_from_the_master(launch, tmp_path):
    ini = tmp_path / "gevent.ini"
    ini.write_text("[uwsgi]\nsocket = %%d%%n.sock\nwsgi-file = %s\nmaster = True\n"
                   "processes = 2 ; two workers\ngevent = 100\ngevent = 100\nksm\n"
                   "plugins = python3,gevent\nplugin = gevent\n" % APP)
    g = launch("--ini", str(ini))
    assert report(str(tmp_path / "gevent.sock"), g)["cwd"]
    wait_for(lambda: len(children(g.proc.pid)) == 2, what="2 workers")
    log = g.log()
    warnings = [l for l in log.splitlines() if "warning" in l]
    assert len([l for l in warnings if "gevent:" in l]) == 1, log
    assert any("gevent: gyre serves concurrency with --tornado N greenlet cores" in l
               for l in warnings), log
    assert len([l for l in warnings if "ksm" in l]) == 1, log
    assert len([l for l in warnings if "plugin 'gevent'" in l]) == 1, log
    assert "plugin 'python3'" not in log
    r = run("--strict", "--ini", str(ini))
    assert r.returncode == 1 and "gevent" in r.stderr and r.stderr.count("\n") == 1, r


def test_uwsgi_environment_variables_map_like_ini_keys(launch, tmp_path):
    sock = str(tmp_path / "env.sock")
    env = clean_env(UWSGI_SOCKET=sock, UWSGI_WSGI_FILE=APP, UWSGI_MASTER="True",
                    UWSGI_PROCESSES="2", UWSGI_ENV="CFG_FROM=env", UWSGI_MY_THING="x",
                    UWSGI_KSM="1")
    g = launch(env=env)
    assert report(sock, g)["env"] == {"CFG_FROM": "env"}
    wait_for(lambda: len(children(g.proc.pid)) == 2, what="2 workers")
    log = g.log()
    assert "UWSGI_KSM: ksm: not supported by gyre: ignored" in log, log
    assert "MY_THING" not in log and "my-thing" not in log


def test_bare_ini_argument(launch_any, tmp_path):
    setup_dir(tmp_path, "sections.ini")
    for name in ("gyre", "uwsgi"):
        g = launch_any(name, "sections.ini")
        assert report(str(tmp_path / "sections.sock"), g)["env"] == {"CFG_WHICH": "uwsgi"}, name
        g.stop()
        (tmp_path / "sections.sock").unlink(missing_ok=True)


def test_bare_ini_argument_with_a_section(launch, tmp_path):
    # gyre only: uWSGI takes FILE:SECTION with --ini, not bare ("unable to load configuration").
    setup_dir(tmp_path, "sections.ini")
    g = launch("sections.ini:app2")
    assert report(str(tmp_path / "app2.sock"), g)["env"] == {"CFG_WHICH": "app2"}


def test_short_flags_as_uwsgi(launch_any, tmp_path):
    for name in ("gyre", "uwsgi"):
        sock = str(tmp_path / (name + ".sock"))
        g = launch_any(name, "-s", sock, "--chdir", APPS, "-w", "cfg_app", "-M", "-p", "2", "-L",
                       "-C", "-b", "8192", "-t", "30")
        r = report(sock, g)
        assert os.path.realpath(r["cwd"]) == os.path.realpath(APPS), name
        assert oct(os.stat(sock).st_mode & 0o777) == "0o666", name       # -C bare: 666
        wait_for(lambda: len(children(g.proc.pid)) == 2, what=name + ": -p 2 workers")
        g.stop()


@pytest.mark.parametrize("protocol", ["http", "fastcgi", "uwsgi"])
def test_protocol_sets_what_socket_speaks_as_uwsgi(launch_any, tmp_path, protocol):
    """--protocol is what the "default" sockets (--socket) speak, wherever it is given (here
    after the socket); --uwsgi-socket stays uwsgi. The same answers from gyre and uWSGI."""
    from conftest import fcgi_request_bytes, connect
    app = os.path.join(os.path.dirname(__file__), "..", "apps", "hello.py")

    def ask(path):
        """The status of one request in the protocol under test."""
        with connect(path) as s:
            if protocol == "http":
                s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                return parse_response(recv_all(s))[0]
            if protocol == "fastcgi":
                # uWSGI does not pad its records to 8 bytes: the loose check of both servers
                # is a STDOUT record first, the app's body in it.
                s.sendall(fcgi_request_bytes())
                raw = recv_all(s)
                return 200 if raw[:2] == b"\x01\x06" and b"Hello, World!" in raw else raw
            s.sendall(uwsgi_packet({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}))
            return parse_response(recv_all(s))[0]

    for name in ("gyre", "uwsgi"):
        sock, other = str(tmp_path / (name + ".sock")), str(tmp_path / (name + "-u.sock"))
        g = launch_any(name, "--socket", sock, "--uwsgi-socket", other, "--wsgi-file", app,
                       "--protocol", protocol)
        wait_for(lambda: os.path.exists(sock) and os.path.exists(other), what=name + " sockets")
        assert ask(sock) == 200, name
        raw = wait_for_request(other)
        assert parse_response(raw)[0] == 200, name
        g.stop()


def wait_for_request(path):
    """One uwsgi request, retried until the socket accepts."""
    out = []

    def once():
        try:
            out.append(uwsgi_request(path, {"PATH_INFO": "/", "REQUEST_METHOD": "GET"}))
            return True
        except OSError:
            return False
    wait_for(once, what="uwsgi answer on " + path)
    return out[0]


def test_protocol_names_what_gyre_does_not_speak(tmp_path):
    r = run("--socket", str(tmp_path / "s.sock"), "--wsgi-file", "app.py", "--protocol", "scgi")
    assert r.returncode != 0 and "scgi" in r.stderr and "gyre speaks" in r.stderr, r.stderr
