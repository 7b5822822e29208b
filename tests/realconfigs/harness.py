"""Serve each real uWSGI config of this directory, on gyre or on Debian's uWSGI.

A corpus file is a public project's uWSGI configuration, verbatim after a header of comments:

    # source: https://github.com/OWNER/REPO/blob/COMMIT/PATH     (where it comes from)
    # license: ...                                                (when known)
    # env: NAME=VALUE NAME=VALUE      (optional: the environment its deployment gives it, e.g. the
    #                                  Dockerfile's ENV lines its $(VAR)s or ${VAR}s read)
    # cwd: /dir                       (optional: the directory its launcher runs it in)
    # note: ...                       (optional, free text)

*.ini is an ini file (run with --ini FILE); *.cmdline is a command line as its source has it (a shell
line with backslash continuations, or a Dockerfile's JSON exec form; a leading `exec`, `CMD` or
`ENTRYPOINT` and `uwsgi`'s own path are not options and are skipped).

Rewrite rules: only what cannot exist on this machine is rewritten, every other line is kept
verbatim (each rewrite is listed in Outcome.rewrites):

  1. sockets (socket, uwsgi-socket, -s, http-socket, http11-socket, http, fastcgi-socket, stats) ->
     a fresh unix socket path in the sandbox or 127.0.0.1:<free port>, the same kind (unix / TCP) as
     the original value.
  2. paths that cannot exist here (an absolute path whose top directory is not a system one, or that
     does not exist) -> re-rooted under the sandbox (SANDBOX/fs/<original path>), for the options that
     name files and directories (chdir, pythonpath, wsgi-file, logto, pidfile, daemonize,
     static-map's directory, mount's file, logger's file:..., and custom placeholders such as
     `base = /code`); directories the config names are created, parents of files too.
  3. the app it loads -> a generated tiny WSGI app at the module or file path it names (module
     a.b:c -> <pythonpath|chdir|cwd>/a/b.py defining c; wsgi-file/file/mount -> that file), answering
     MARKER; `manage.py` a config runs (hooks, attach-daemon, cron) -> a stub that exits 0 for
     one-shot commands and sleeps for daemons.
  4. virtualenv/venv/home/-H (a virtualenv that does not exist here: the system Python is used) ->
     dropped; uid/gid/chown-socket naming a user or group this machine does not have -> dropped.
  5. a file that names no socket or no app (a fragment its launcher completes) -> the harness adds
     --http-socket 127.0.0.1:<port> and/or --wsgi-file <generated app> on the command line.

The server runs in a session of its own with a tag in its environment; it is stopped with SIGTERM
(gyre) or SIGINT (uWSGI, whose SIGTERM means "reload"), then every process carrying the tag is
SIGKILLed, so daemonized and setsid'ed children cannot leak.
"""
import glob
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from conftest import (FcgiReader, fcgi_request_bytes, free_port, recv_all,  # noqa: E402
                      uwsgi_packet)

EXPECTED = os.path.join(HERE, "EXPECTED")
MARKER = "gyre-realconfig-ok"
# A tiny app starts in well under a second: 10 s bounds a loaded machine, and bounds the cost of
# a server that runs but never opens one of its sockets.
TIMEOUT = float(os.environ.get("GYRE_REALCONFIG_TIMEOUT", "10"))
SUFFIXES = (".ini", ".cmdline")
UWSGI_PLUGINS = "python3,http,logfile,router_redirect"
STOP_WAIT = 5.0   # seconds between the stop signal and SIGKILL

SOCKET_PROTO = {"socket": "uwsgi", "uwsgi-socket": "uwsgi", "s": "uwsgi",
                "http-socket": "http", "http11-socket": "http", "http": "http",
                "fastcgi-socket": "fastcgi", "stats": "stats", "stats-server": "stats"}
APP_FILE_OPTS = {"wsgi-file", "file"}
APP_MODULE_OPTS = {"module", "wsgi", "w"}
FILE_OPTS = {"logto", "logto2", "daemonize", "daemonize2", "pidfile", "pidfile2", "safe-pidfile",
             "safe-pidfile2", "touch-reload", "touch-chain-reload", "touch-logreopen",
             "master-fifo", "log-backupname", "ini"} | APP_FILE_OPTS
DIR_OPTS = {"chdir", "pythonpath", "python-path", "pp", "fs-reload", "spooler"}
VENV_OPTS = {"virtualenv", "venv", "home", "H", "pyhome"}
USER_OPTS = {"uid": "user", "gid": "group", "chown-socket": "owner"}
BENIGN_RE = re.compile(r"running (uWSGI )?as root|without its master process|your processes number|"
                       r"your memory page|Operational MODE|no request plugin is loaded")
WARNING_RE = re.compile(r"(?i)\bwarn|ignor|not (yet )?(supported|implemented|honou?red)|no-op")
SYSTEM_DIRS = ("/usr/", "/etc/", "/bin/", "/sbin/", "/lib", "/proc/", "/dev/", "/sys/")
ERROR_RE = re.compile(r"(?i)(unknown|unrecognized|invalid|error|fatal|no such|unable|cannot|can't|"
                      r"not supported|failed|!!!|traceback|exception)")


# ---- the corpus ---------------------------------------------------------------------------------

class Source:
    """One corpus file: its header fields and its body (the verbatim config)."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        self.kind = "cmdline" if path.endswith(".cmdline") else "ini"
        text = open(path, encoding="utf-8").read()
        lines = text.split("\n")
        self.header = {}
        self.env = {}
        n = 0
        for line in lines:
            m = re.match(r"# (source|license|env|cwd|note): ?(.*)$", line)
            if not m:
                break
            key, value = m.groups()
            if key == "env":
                for item in shlex.split(value):
                    k, _, v = item.partition("=")
                    self.env[k] = v
            else:
                self.header[key] = value
            n += 1
        self.body = "\n".join(lines[n:])
        self.source = self.header.get("source", "")


def corpus():
    return [Source(p) for p in sorted(glob.glob(os.path.join(HERE, "*")))
            if p.endswith(SUFFIXES)]


def expected_path(server="gyre"):
    return EXPECTED if server == "gyre" else EXPECTED + "." + server


def load_expected(server="gyre"):
    """EXPECTED (gyre) or EXPECTED.uwsgi: `file<TAB>why the server cannot serve it`, one a
    line, '#' comments."""
    out = {}
    path = expected_path(server)
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                name, _, why = line.partition("\t")
                out[name] = why or "fails"
    return out


# ---- uWSGI's option names (to tell an option from a custom placeholder) ------------------------

_UWSGI_OPTIONS = None


def uwsgi_options():
    global _UWSGI_OPTIONS
    if _UWSGI_OPTIONS is None:
        names = set()
        try:
            out = subprocess.run(["uwsgi", "--plugin", UWSGI_PLUGINS, "--help"],
                                 capture_output=True, text=True, timeout=20).stdout
            for m in re.finditer(r"^\s+((?:-\w\|)?--[\w.-]+(?:\|-\w)?)", out, re.M):
                for part in m.group(1).split("|"):
                    names.add(part.lstrip("-"))
        except (OSError, subprocess.SubprocessError):
            pass
        _UWSGI_OPTIONS = names
    return _UWSGI_OPTIONS


# ---- rewriting ----------------------------------------------------------------------------------

class Sandbox:
    """The temp directory one run lives in: fs/ (re-rooted paths), sock/, cwd/, the config."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gyre-realconfig-")
        self.fs = self.mkdir(os.path.join(self.dir, "fs"))
        # The rewritten config lives two levels down, so that %d../ (its directory's parent, a
        # common idiom) is still in the sandbox.
        self.confdir = self.mkdir(os.path.join(self.dir, "etc", "uwsgi"))
        self.sockdir = self.mkdir(os.path.join(self.dir, "sock"))
        self.cwd = self.mkdir(os.path.join(self.dir, "cwd"))
        self.nsock = 0

    def mkdir(self, path):
        """Create a directory of the sandbox (never one outside it: a placeholder this harness
        cannot resolve must not create /lib/... on this machine)."""
        path = os.path.normpath(path)
        if not (path + "/").startswith(self.dir + "/"):
            return path
        os.makedirs(path, exist_ok=True)
        # Every directory of the sandbox is writable by anyone: workers that dropped privileges
        # (uid = 1000, www-data) still read the app and write their logto2 / pidfile.
        d = path
        while (d + "/").startswith(self.dir + "/"):
            try:
                os.chmod(d, 0o777)
            except OSError:
                pass
            d = os.path.dirname(d)
        return path

    def reroot(self, path):
        """A path of the original machine -> where it lives in the sandbox (kept if it exists
        here and is a system path, or is already in the sandbox)."""
        if not path.startswith("/") or path.startswith(self.dir):
            return path
        if path.startswith(SYSTEM_DIRS) and os.path.exists(path):
            return path
        return os.path.normpath(self.fs + path) + ("/" if path.endswith("/") else "")

    def socket_for(self, value, env):
        """A fresh address of the same kind as value: (new value, kind, address)."""
        v = expand_env(value, env).strip()
        v = v.split(",")[0]   # "addr,cert,key" forms keep their address only
        if ":" in v and not v.startswith(("/", ".", "%", "@")):
            port = free_port()
            return "127.0.0.1:%d" % port, "tcp", ("127.0.0.1", port)
        self.nsock += 1
        path = os.path.join(self.sockdir, "s%d.sock" % self.nsock)
        return path, "unix", path

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def expand_env(value, env):
    """uWSGI's $(VAR) from the deployment's environment."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), ""), value)


def expand_shell(text, env):
    """A shell's ${VAR}, ${VAR:-default}, $VAR and "$@" (no arguments) from env."""
    def sub(m):
        if m.group(0) == '"$@"':
            return ""
        name = m.group(1) or m.group(4)
        if name in env and env[name] != "":
            return env[name]
        return m.group(3) or ""
    return re.sub(r'"\$@"|\$\{(\w+)(:-([^}]*))?\}|\$(\w+)', sub, text)


def user_exists(kind, value):
    """uid/gid/chown-socket values: a name or number this machine knows (numbers always work)."""
    names = value.split(":") if kind == "owner" else [value]
    for i, n in enumerate(names):
        n = n.strip()
        if not n or n.isdigit():
            continue
        try:
            if kind == "group" or (kind == "owner" and i == 1):
                grp.getgrnam(n)
            else:
                pwd.getpwnam(n)
        except KeyError:
            return False
    return True


class Plan:
    """What a corpus file becomes here: the server's arguments, environment and directory, the
    sockets to wait for, the apps to generate, and the list of rewrites."""

    def __init__(self, src, box):
        self.src, self.box = src, box
        self.env = {}
        for k, v in src.env.items():
            self.env[k] = box.reroot(v) if v.startswith("/") else v
        self.cwd = box.cwd
        if "cwd" in src.header:
            self.cwd = box.mkdir(box.reroot(src.header["cwd"]))
        self.rewrites = []
        self.endpoints = []        # (proto, kind, address)
        self.values = {}           # option -> rewritten values, in order (for the app plan)
        self.placeholders = {}     # custom %(name) -> value
        self.args = []
        self.protocol = "uwsgi"    # what `socket` speaks (the `protocol` option changes it)
        self.mounts = []

    # one option, whatever the config form: returns its new value, or None to drop it
    def option(self, key, value, live=True):
        if not live:
            saved = (self.endpoints, self.values, self.mounts, self.rewrites)
            self.endpoints, self.values, self.mounts, self.rewrites = [], {}, [], []
            try:
                return self.option(key, value)
            finally:
                self.endpoints, self.values, self.mounts, self.rewrites = saved
        box = self.box
        k = key.lstrip("-")
        if k == "protocol":
            self.protocol = expand_env(value, self.env).strip()
        if k in SOCKET_PROTO:
            new, kind, addr = box.socket_for(value, self.env)
            proto = SOCKET_PROTO[k]
            self.endpoints.append([proto, kind, addr])
            self.rewrites.append("%s: %s -> %s" % (k, value.strip(), new))
            return new
        if k in VENV_OPTS:
            self.rewrites.append("%s = %s dropped (no such virtualenv here)" % (k, value.strip()))
            return None
        if k in USER_OPTS:
            v = expand_env(value, self.env).strip()
            if not user_exists(USER_OPTS[k], v):
                self.rewrites.append("%s = %s dropped (no such user/group here)" % (k, v))
                return None
            return value
        if k in FILE_OPTS | DIR_OPTS:
            v = value.strip()
            if k == "ini" and v.startswith(":"):
                return value
            new = self.reroot_value(v)
            self.remember(k, new)
            if k in DIR_OPTS:
                box.mkdir(self.resolve(new))
            else:
                box.mkdir(os.path.dirname(self.resolve(new)))
            return self.note(k, value, new)
        if k in ("static-map", "static-map2", "mount"):
            prefix, eq, target = value.strip().partition("=")
            if not eq:
                return value
            new_target = self.reroot_value(target)
            if k == "mount":
                self.mounts.append((prefix, new_target))
            else:
                box.mkdir(self.resolve(new_target))
            return self.note(k, value, prefix + "=" + new_target)
        if k in ("logger", "req-logger"):
            new = re.sub(r"(file:(?:logfile=)?)(/[^,\s]+)",
                         lambda m: m.group(1) + self.reroot_value(m.group(2)), value.strip())
            for m in re.finditer(r"file:(?:logfile=)?(/[^,\s]+)", new):
                box.mkdir(os.path.dirname(m.group(1)))
            return self.note(k, value, new)
        if k in APP_MODULE_OPTS or k == "callable":
            self.remember(k, value.strip())
            return value
        if self.src.kind == "ini" and k not in uwsgi_options() and value.strip().startswith("/"):
            # a custom placeholder naming a path (base = /code): re-rooted like the paths it feeds
            new = self.reroot_value(value.strip())
            self.placeholders[k] = new
            if "." not in os.path.basename(new):
                box.mkdir(new)
            return self.note(k, value, new)
        if self.src.kind == "ini" and k not in uwsgi_options():
            self.placeholders[k] = value.strip()
        return value

    def note(self, k, old, new):
        if old.strip() != new:
            self.rewrites.append("%s: %s -> %s" % (k, old.strip(), new))
        return new

    def remember(self, k, v):
        self.values.setdefault(k, []).append(v)

    def reroot_value(self, v):
        e = self.resolve(v)
        if e.startswith("/") and not v.startswith("/"):
            return v   # a placeholder (%(base), $(DIR)) already pointing into the sandbox
        return self.box.reroot(v)

    def resolve(self, v, confdir=None):
        """uWSGI's placeholders in a value, as far as this plan knows them: $(VAR), %(name),
        %d (the rewritten config's directory), %n, %k."""
        v = expand_env(v, self.env)
        confdir = confdir or self.box.confdir + "/"
        for _ in range(5):
            v2 = re.sub(r"%\((\w[\w-]*)\)", lambda m: self.placeholders.get(
                m.group(1), self.values.get(m.group(1), [""])[-1]), v)
            if v2 == v:
                break
            v = v2
        v = v.replace("%d", confdir).replace("%n", os.path.splitext(self.src.name)[0]).replace("%k", str(os.cpu_count()))
        if v and not v.startswith("/") and not v.startswith("%"):
            v = os.path.join(self.cwd, v)
        return os.path.normpath(v) if v.startswith("/") else v

    # ---- the app ---------------------------------------------------------------------------
    def generate_apps(self):
        callables = set(self.values.get("callable", [])) | {"application", "app"}
        modules = list(self.values.get("module", [])) + list(self.values.get("wsgi", [])) + \
            list(self.values.get("w", []))
        if "UWSGI_MODULE" in self.env:
            modules.append(self.env["UWSGI_MODULE"])
        files = [self.resolve_app_file(f) for f in self.values.get("wsgi-file", []) +
                 self.values.get("file", [])]
        for prefix, target in self.mounts:
            if "/" in target or target.endswith(".py"):
                files.append(self.resolve_app_file(target))
            else:
                modules.append(target)
        for m in modules:
            mod, _, call = m.partition(":")
            if call:
                callables.add(call)
        for f in files:
            self.write_app(f, callables)
        for m in modules:
            mod = m.partition(":")[0]
            if mod.endswith(".py"):
                self.write_app(self.resolve_app_file(mod), callables)
                continue
            base = self.module_base()
            parts = mod.split(".")
            d = base
            for p in parts[:-1]:
                d = self.box.mkdir(os.path.join(d, p))
                open(os.path.join(d, "__init__.py"), "a").close()
            self.write_app(os.path.join(d, parts[-1] + ".py"), callables)
        if not files and not modules:
            app = os.path.join(self.box.dir, "realconfig_app.py")
            self.write_app(app, callables)
            self.args += ["--wsgi-file", app]
            self.rewrites.append("no app in the file: --wsgi-file %s added" % app)
        if "manage.py" in self.src.body:
            self.write_manage_py()

    def chdir(self):
        c = self.values.get("chdir", [])
        return self.resolve(c[-1]) if c else self.cwd

    def module_base(self):
        pp = self.values.get("pythonpath", []) + self.values.get("python-path", []) + \
            self.values.get("pp", [])
        for p in pp:
            r = self.resolve(p)
            if r.startswith(self.box.dir):
                return self.box.mkdir(r)
        return self.box.mkdir(self.chdir())

    def resolve_app_file(self, f):
        f = self.resolve(f) if f.startswith(("/", "%", "$")) else os.path.join(self.chdir(), f)
        return os.path.normpath(f)

    def write_app(self, path, callables):
        if not path.startswith(self.box.dir):
            self.rewrites.append("app %s is outside the sandbox: not generated" % path)
            return
        self.box.mkdir(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(APP_TEMPLATE % {"marker": MARKER, "names": " = ".join(sorted(callables))})
        os.chmod(path, 0o755)
        self.rewrites.append("app generated: %s" % os.path.relpath(path, self.box.dir))

    def write_manage_py(self):
        path = os.path.join(self.chdir(), "manage.py")
        self.box.mkdir(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(MANAGE_STUB)
        os.chmod(path, 0o755)
        self.rewrites.append("manage.py stub: %s" % os.path.relpath(path, self.box.dir))

    def request_path(self):
        for prefix, _ in self.mounts:
            p = self.resolve(prefix) if "$" in prefix else prefix
            p = p if p.startswith("/") else "/" + p
            return p.rstrip("/") + "/"
        return "/"


APP_TEMPLATE = '''# Generated by tests/realconfigs/harness.py: stands for the app a real config loads.
MARKER = %(marker)r.encode()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(MARKER)))])
    return [MARKER]


%(names)s = application
'''

MANAGE_STUB = '''#!/usr/bin/python3
# Generated by tests/realconfigs/harness.py: stands for a Django manage.py a config runs.
import sys, time
if len(sys.argv) > 1 and sys.argv[1] in ("migrate", "collectstatic", "check", "runjobs",
                                         "compilemessages", "createcachetable"):
    sys.exit(0)
time.sleep(3600)   # a daemon (attach-daemon): killed with the server
'''


def live_sections(body):
    """[uwsgi] and the sections it includes (ini = :name): the ones uWSGI loads from --ini FILE."""
    includes, section = {}, None
    for line in body.split("\n"):
        m = re.match(r"^\s*\[([^\]]+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\s*(?:ini|inherit)\s*=\s*:(\S+)", line)
        if m and section:
            includes.setdefault(section, []).append(m.group(1))
    live, todo = set(), ["uwsgi"]
    while todo:
        name = todo.pop()
        if name not in live:
            live.add(name)
            todo += includes.get(name, [])
    return live


def rewrite_ini(src, box):
    plan = Plan(src, box)
    live = live_sections(src.body)
    section = None
    out = []
    for line in src.body.split("\n"):
        sm = re.match(r"^\s*\[([^\]]+)\]", line)
        if sm:
            section = sm.group(1)
        m = re.match(r"^(\s*)([A-Za-z0-9_.-]+)(\s*=\s*)(.*)$", line)
        if not m or line.lstrip().startswith(("#", ";")):
            out.append(line)
            continue
        indent, key, eq, value = m.groups()
        # Sections uWSGI does not load ([dev], [local]) are rewritten alike (no line of them
        # may point at this machine's ports) but their sockets are not waited for.
        new = plan.option(key, value, live=section in live)
        if new is None:
            out.append(indent + "; [dropped by the realconfig harness] " + line.strip())
        elif new == value:
            out.append(line)
        else:
            out.append(indent + key + eq + new)
    path = os.path.join(box.confdir, src.name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    os.chmod(path, 0o644)
    plan.args = ["--ini", path] + plan.args
    return plan


def parse_cmdline(body, env):
    text = "\n".join(line for line in body.split("\n") if not line.startswith("#"))
    text = re.sub(r"\\\n", " ", text).strip()
    text = re.sub(r"^(exec|CMD|ENTRYPOINT)\s+", "", text)
    if text.startswith("["):
        argv = json.loads(text)
    else:
        argv = shlex.split(expand_shell(text, env))
    if argv and argv[0].startswith("exec"):
        argv = argv[1:]
    assert argv and os.path.basename(argv[0]).startswith("uwsgi"), argv[:1]
    return argv[1:]


def rewrite_cmdline(src, box):
    plan = Plan(src, box)
    argv = parse_cmdline(src.body, dict(src.env))
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not tok.startswith("-"):
            out.append(tok)
            continue
        name, eq, value = tok.partition("=")
        key = name.lstrip("-")
        takes = key in SOCKET_PROTO or key in FILE_OPTS | DIR_OPTS | VENV_OPTS | \
            APP_MODULE_OPTS | set(USER_OPTS) | {"callable", "mount", "static-map", "protocol"}
        if not takes:
            out.append(tok)
            continue
        if not eq:
            if i < len(argv) and not argv[i].startswith("-"):
                value = argv[i]
                i += 1
            else:   # a bare flag (--chmod-socket)
                out.append(tok)
                continue
        new = plan.option(key, value)
        if new is not None:
            out += [name + "=" + new] if eq else [name, new]
    plan.args = out + plan.args
    return plan


def make_plan(src, box):
    plan = rewrite_ini(src, box) if src.kind == "ini" else rewrite_cmdline(src, box)
    serving = [e for e in plan.endpoints if e[0] != "stats"]
    for e in serving:
        if e[0] == "uwsgi" and plan.protocol in ("http", "fastcgi"):
            e[0] = plan.protocol
    if not serving:
        port = free_port()
        plan.args += ["--http-socket", "127.0.0.1:%d" % port]
        plan.endpoints.append(["http", "tcp", ("127.0.0.1", port)])
        plan.rewrites.append("no socket in the file: --http-socket 127.0.0.1:%d added" % port)
    plan.generate_apps()
    return plan


# ---- running ------------------------------------------------------------------------------------

class Outcome:
    def __init__(self, name):
        self.name = name
        self.ok = False
        self.error = ""
        self.rewrites = []
        self.seconds = 0.0
        self.log = ""
        self.tag = b""   # in the environment of every process of the run
        self.warnings = []   # log lines of a served run that warn (an option tolerated, not honoured?)

    def __repr__(self):
        return "%s: %s" % (self.name, "served" if self.ok else self.error)


def server_argv(server, plan):
    if server == "uwsgi":
        # Debian's uWSGI is modular: the plugins upstream's default build embeds (Python, the
        # HTTP router, the file/stdio loggers, redirect routes) are loaded by the harness, not
        # by the file (the file's own plugin lines are kept: those Debian lacks are skipped).
        return ["uwsgi", "--plugin", UWSGI_PLUGINS] + plan.args
    gyre = os.environ.get("GYRE_BIN", os.path.join(ROOT, "gyre"))
    return [gyre] + plan.args


def connectable(kind, addr):
    fam = socket.AF_UNIX if kind == "unix" else socket.AF_INET
    if kind == "unix" and not os.path.exists(addr):
        return False
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(addr)
        return True
    except OSError:
        return False


def request(proto, kind, addr, path, timeout=10.0):
    """One request over proto; (status, body) or raises."""
    fam = socket.AF_UNIX if kind == "unix" else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        if proto == "uwsgi":
            s.sendall(uwsgi_packet({"PATH_INFO": path, "REQUEST_URI": path,
                                    "HTTP_HOST": "localhost"}))
            raw = recv_all(s)
        elif proto == "http":
            s.sendall(("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path).encode())
            raw = recv_all(s)
        else:
            s.sendall(fcgi_request_bytes(path=path))
            # Not FcgiReader.response(): that one checks records against the spec, and uWSGI
            # leaves its records unpadded; this harness only wants the CGI answer.
            stdout, _ = FcgiReader(s).read_stdout()
            head, _, body = stdout.partition(b"\r\n\r\n")
            m = re.match(rb"Status: (\d+)", head)
            return (int(m.group(1)) if m else 200 if head else 0), body
    head, _, body = raw.partition(b"\r\n\r\n")
    first = head.split(b"\r\n")[0].decode("latin-1")
    if not first.startswith("HTTP/"):
        raise AssertionError("not an HTTP response: %r" % raw[:200])
    return int(first.split()[1]), body


def tagged_pids(tag):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                if tag in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def first_error(log):
    """The server's first line that reads as an error (else its last line)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        if ERROR_RE.search(line) and MARKER not in line and not BENIGN_RE.search(line):
            return line[:300]
    return lines[-1][:300] if lines else ""


def sandbox_logs(box):
    out = []
    for dirpath, _, files in os.walk(box.fs):
        for f in files:
            if "log" in f or f.endswith(".txt"):
                try:
                    out.append(open(os.path.join(dirpath, f), errors="replace").read())
                except OSError:
                    pass
    return "\n".join(out)


def run(src, server="gyre", timeout=TIMEOUT, keep=False):
    """Start server on src rewritten, wait for its sockets, send one request, stop it."""
    out = Outcome(src.name)
    t0 = time.monotonic()
    box = Sandbox()
    proc = logf = None
    tag = "GYRE_REALCONFIG_TAG=" + uuid.uuid4().hex
    out.tag = tag.encode()
    try:
        plan = make_plan(src, box)
        out.rewrites = plan.rewrites
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("UWSGI_", "GYRE_")) and k != "PYTHONPATH"}
        env.update(plan.env)
        k, _, v = tag.partition("=")
        env[k] = v
        logf = open(os.path.join(box.dir, "server.log"), "wb")
        proc = subprocess.Popen(server_argv(server, plan), stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, cwd=plan.cwd, env=env,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        pending = list(plan.endpoints)
        while pending and time.monotonic() < deadline:
            pending = [e for e in pending if not connectable(e[1], e[2])]
            if pending and proc.poll() not in (None, 0):
                break
            if pending:
                time.sleep(0.05)
        if pending:
            status = proc.poll()
            why = ("exited with status %s" % status) if status not in (None, 0) else \
                "not listening within %gs" % timeout
            raise AssertionError("%s; waiting for %s" % (
                why, ", ".join("%s (%s)" % (e[0], e[1]) for e in pending)))
        proto, kind, addr = next(e for e in plan.endpoints if e[0] != "stats")
        path = plan.request_path()
        # Generous: a file may start dozens of workers (uwsgi-test-django-fastcgi: 90), which
        # boot on a small machine for a while before the first one takes the request.
        status, body = request(proto, kind, addr, path, timeout=max(30.0, timeout))
        if status != 200 or MARKER.encode() not in body:
            raise AssertionError("%s request %s: status %d, body %r" % (proto, path, status,
                                                                         body[:120]))
        out.ok = True
    except Exception as e:   # every failure is a result: the run goes on with the next file
        out.error = str(e).split("\n")[0][:300]
    finally:
        if proc is not None:
            stop(proc, server, tag)
        if logf:
            logf.close()
        try:
            out.log = open(os.path.join(box.dir, "server.log"), errors="replace").read()
        except OSError:
            pass
        out.log += sandbox_logs(box)
        out.warnings = [line.strip() for line in out.log.splitlines()
                        if WARNING_RE.search(line) and not BENIGN_RE.search(line)]
        if not out.ok:
            line = first_error(out.log)
            if line:
                out.error = line + "   [" + out.error + "]"
            # the sandbox's name changes from run to run: EXPECTED stays stable without it
            out.error = out.error.replace(box.dir, "$T")
        if not keep:
            box.cleanup()
        out.seconds = time.monotonic() - t0
    return out


def stop(proc, server, tag):
    """SIGTERM gyre (SIGINT uWSGI: its SIGTERM reloads), then SIGKILL everything tagged."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT if server == "uwsgi" else signal.SIGTERM)
            proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    tagb = tag.encode()
    for _ in range(50):
        pids = tagged_pids(tagb)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


# ---- what gyre lacks --------------------------------------------------------------------------

def gyre_options():
    gyre = os.environ.get("GYRE_BIN", os.path.join(ROOT, "gyre"))
    out = subprocess.run([gyre, "--help"], capture_output=True, text=True, timeout=10)
    return set(re.findall(r"^\s+--([\w.-]+)", out.stdout + out.stderr, re.M))


def options_used(src):
    """Option names a corpus file sets (ini keys that are uWSGI options, or --options; the
    virtualenv options the harness always drops are left out; short options as -x)."""
    names = []
    known = uwsgi_options()
    if src.kind == "ini":
        for line in src.body.split("\n"):
            m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*(=|$)", line)
            if m and not line.lstrip().startswith(("#", ";", "[")) and m.group(1) in known \
                    and m.group(1) not in VENV_OPTS:
                names.append(m.group(1))
    else:
        for tok in parse_cmdline(src.body, dict(src.env)):
            if tok.startswith("-"):
                n = tok.lstrip("-").partition("=")[0]
                if n in known and n not in VENV_OPTS:
                    names.append(n if len(n) > 1 else "-" + n)
    return names


def failing_option(error):
    """The option a gyre error line names, if any."""
    for pat in (r"unknown option '([^']+)'", r"--([\w.-]+): unknown option",
                r":\d+: ([\w.-]+) = .*: this option", r"gyre: (-\w): ", r"option '([^']+)'",
                r"--([\w.-]+)"):
        m = re.search(pat, error)
        if m:
            return m.group(1)
    return ""
