"""The deployment files (Dockerfile, docker-compose.yml, deploy/): checked here without Docker.

There is no Docker engine on the test machines, so nothing is built or run in a container.
What can be checked without one is, and always from the files themselves (parsed, never
copied into this test):

    compose       `docker-compose config` accepts docker-compose.yml (alone and with
                  deploy/docker-compose.scale.yml); the socket volume is shared, health checks,
                  restart policies and start order are there
    Dockerfile    every Debian package its apt-get lines name exists (apt-cache show); the
                  runtime stage's packages provide every shared library the gyre binary links;
                  the build stage's provide the pkg-config modules and headers `make gyre` uses;
                  the build context that .dockerignore lets through builds gyre
    end to end    the gyre service's very command line (the image's CMD) and .ini, and the
                  nginx service's very nginx.conf, run locally with their container paths
                  swapped for a tmp dir (the "volume"): a request through nginx reaches the app;
                  the health checks of both services pass, and gyre's fails once gyre stops;
                  the scaled set-up (two gyre services, one upstream) spreads requests over both
    systemd       `systemd-analyze verify` accepts the units; systemd-socket-activate runs gyre
                  on the socket of gyre.socket (path swapped), with the flags and with the
                  unit's ExecStart, and gyre serves on the inherited socket (and leaves it be);
                  the sd_notify messages Type=notify relies on arrive, from the main pid only;
                  deploy/nginx-site.conf in front of it serves the app

Every process started here runs in a session of its own and is killed (killpg) at the end of
its test, whatever happens; every wait is bounded.
"""
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import GYRE, ROOT, free_port, wait_for

DOCKERFILE = os.path.join(ROOT, "Dockerfile")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
COMPOSE_SCALE = os.path.join(ROOT, "deploy", "docker-compose.scale.yml")
DEPLOY = os.path.join(ROOT, "deploy")
SOCKET_UNIT = os.path.join(DEPLOY, "gyre.socket")
SERVICE_UNIT = os.path.join(DEPLOY, "gyre.service")
PY = "/usr/bin/python3"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"


# ---- processes: each in a session of its own, all killed at the end of the test -----------------

class Proc:
    def __init__(self, argv, log_path, env=None, cwd=None):
        self.argv = argv
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not exit within %ss:\n%s"
                                 % (self.argv[0], timeout, self.log()[-3000:]))

    def kill(self):
        """Kill the whole session (a gyre master and its workers); idempotent."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()


@pytest.fixture
def procs():
    started = []

    def start(argv, log_path, **kw):
        p = Proc(argv, log_path, **kw)
        started.append(p)
        return p
    yield start
    for p in reversed(started):
        if p.alive() and os.path.basename(p.argv[0]) == "nginx":
            p.signal(signal.SIGQUIT)
            try:
                p.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        p.kill()


@pytest.fixture
def short_tmp():
    """A tmp dir with a short path: unix socket paths are limited to 107 bytes."""
    d = tempfile.mkdtemp(prefix="gyre-deploy-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---- the Dockerfile, parsed ---------------------------------------------------------------------

def dockerfile_instructions(path=DOCKERFILE):
    """[(stage index, INSTRUCTION, arguments)]: continuation lines joined, comments dropped."""
    out, stage, buf = [], -1, ""
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            if s.rstrip().endswith("\\"):
                buf += s.rstrip()[:-1] + " "
                continue
            buf += s
            instr, _, args = buf.strip().partition(" ")
            instr = instr.upper()
            if instr == "FROM":
                stage += 1
            out.append((stage, instr, args.strip()))
            buf = ""
    assert not buf, "the Dockerfile ends in a continuation line"
    return out


def stages():
    """[(FROM image, stage name or None)] in order."""
    out = []
    for _, instr, args in dockerfile_instructions():
        if instr == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            out.append((words[0], name))
    return out


def apt_packages():
    """{stage index: [package names]} of every `apt-get install` in the RUN lines."""
    out = {}
    for stage, instr, args in dockerfile_instructions():
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|\|\||;", args):
            words = shlex.split(cmd)
            if "apt-get" not in words:
                continue
            rest = words[words.index("apt-get") + 1:]
            if "install" not in rest:
                continue
            names = [w.split("=")[0] for w in rest[rest.index("install") + 1:]
                     if not w.startswith("-")]
            out.setdefault(stage, []).extend(names)
    return out


def json_form(instr_name):
    """The exec (JSON) form of the last CMD (or HEALTHCHECK ... CMD) of the runtime stage."""
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    found = None
    for s, instr, args in ins:
        if s == last and instr == instr_name:
            found = args
    assert found is not None, "no %s in the Dockerfile's last stage" % instr_name
    if instr_name == "HEALTHCHECK":
        found = found[found.index("CMD") + 3:].strip()
    argv = json.loads(found)
    assert isinstance(argv, list) and argv, "%s must use the exec (JSON) form" % instr_name
    return argv


def image_copies():
    """[(source in the repository, destination in the image)] of the runtime stage's COPYs of
    the build context (COPY --from=... excluded)."""
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    out = []
    for s, instr, args in ins:
        if s != last or instr not in ("COPY", "ADD"):
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        *srcs, dest = words
        for src in srcs:
            d = dest
            if d.endswith("/"):
                d += os.path.basename(src.rstrip("/"))
            out.append((src, d))
    return out


def image_env():
    """The ENV of the runtime stage, as a dict (KEY=VALUE forms)."""
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    env = {}
    for s, instr, args in ins:
        if s == last and instr == "ENV":
            for w in shlex.split(args):
                k, eq, v = w.partition("=")
                assert eq, "ENV %s: use the KEY=VALUE form" % args
                env[k] = v
    return env


# ---- docker-compose ----------------------------------------------------------------------------

def compose_config(*files):
    argv = ["docker-compose"]
    for f in files:
        argv += ["-f", f]
    argv.append("config")
    if not shutil.which("docker-compose"):
        pytest.fail("docker-compose is not installed (Debian package docker-compose: make deps)")
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "docker-compose config failed:\n%s%s" % (r.stdout, r.stderr)
    return yaml.safe_load(r.stdout)


def mounts(service):
    """[(source, target)] of a service's volumes in `docker-compose config`'s output."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((v.get("source"), v["target"]))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1]))
    return out


def named_volume_at(cfg, service, target):
    names = [src for src, tgt in mounts(cfg["services"][service]) if tgt == target]
    assert names, "%s mounts nothing at %s" % (service, target)
    assert names[0] in (cfg.get("volumes") or {}), \
        "%s's %s is not a named volume: %s" % (service, target, names[0])
    return names[0]


def healthcheck_argv(service):
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", "use the exec form: [\"CMD\", ...]"
    return test[1:]


def test_compose_config_shares_the_socket_volume_with_health_checks():
    cfg = compose_config()
    services = cfg["services"]
    assert set(services) == {"gyre", "nginx"}
    gyre, nginx = services["gyre"], services["nginx"]

    # One named volume at /run/gyre in both: gyre's socket directory.
    vol = named_volume_at(cfg, "gyre", "/run/gyre")
    assert vol == named_volume_at(cfg, "nginx", "/run/gyre")

    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", name
        assert healthcheck_argv(svc), name
        assert svc["healthcheck"].get("interval") and svc["healthcheck"].get("retries"), name

    # gyre is built from this Dockerfile; its health check is the image's HEALTHCHECK.
    assert os.path.samefile(gyre["build"]["context"], ROOT)
    assert gyre["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert healthcheck_argv(gyre) == json_form("HEALTHCHECK")

    # nginx starts once gyre is healthy, publishes 8080, and reads deploy/'s nginx.conf.
    assert nginx["depends_on"]["gyre"]["condition"] == "service_healthy"
    ports = [(str(p["published"]), str(p["target"])) if isinstance(p, dict)
             else tuple(str(p).split(":")[-2:]) for p in nginx["ports"]]
    assert ("8080", "8080") in ports
    conf = [src for src, tgt in mounts(nginx) if tgt == "/etc/nginx/nginx.conf"]
    assert conf and os.path.isfile(conf[0]), "nginx.conf is not mounted from a file"
    assert os.path.dirname(os.path.realpath(conf[0])) == DEPLOY
    # The port the container listens on is the one the config says.
    assert re.search(r"^\s*listen\s+8080\b", open(conf[0]).read(), re.M)


def test_compose_scale_override_adds_a_second_gyre_to_the_upstream():
    cfg = compose_config(COMPOSE, COMPOSE_SCALE)
    services = cfg["services"]
    assert set(services) == {"gyre", "gyre-2", "nginx"}
    nginx = services["nginx"]
    assert services["gyre-2"].get("restart") == "unless-stopped"
    assert healthcheck_argv(services["gyre-2"]) == json_form("HEALTHCHECK")
    assert nginx["depends_on"]["gyre"]["condition"] == "service_healthy"
    assert nginx["depends_on"]["gyre-2"]["condition"] == "service_healthy"

    # Each gyre has a socket volume of its own at /run/gyre; nginx mounts both.
    v1 = named_volume_at(cfg, "gyre", "/run/gyre")
    v2 = named_volume_at(cfg, "gyre-2", "/run/gyre")
    assert v1 != v2
    assert named_volume_at(cfg, "nginx", "/run/gyre") == v1
    at = [tgt for src, tgt in mounts(nginx) if src == v2]
    assert len(at) == 1, "nginx must mount %s once" % v2

    # The upstream file nginx.conf includes names gyre-2's socket as nginx sees it.
    main_conf = [src for src, tgt in mounts(nginx) if tgt == "/etc/nginx/nginx.conf"][0]
    include = re.search(r"^\s*include\s+(\S+)/\*\.conf;", open(main_conf).read(), re.M)
    assert include, "nginx-docker.conf has no `include DIR/*.conf;` in its upstream"
    extra = [(src, tgt) for src, tgt in mounts(nginx)
             if os.path.dirname(tgt) == include.group(1)]
    assert len(extra) == 1 and os.path.isfile(extra[0][0])
    assert re.search(r"^\s*server\s+unix:%s/app\.sock;" % re.escape(at[0]),
                     open(extra[0][0]).read(), re.M)


# ---- the Dockerfile ----------------------------------------------------------------------------

def ensure_apt_lists():
    lists = "/var/lib/apt/lists"
    if any("_Packages" in n for n in os.listdir(lists)):
        return
    # A fresh machine: apt-cache knows nothing before the first update.
    assert os.geteuid() == 0, "the apt lists are empty: run apt-get update"
    subprocess.run(["apt-get", "-q", "update"], stdin=subprocess.DEVNULL, timeout=600,
                   check=True, capture_output=True)


def host_codename():
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return None


def require_same_debian():
    """apt-cache answers for this machine's release: it must be the image's."""
    base = stages()[-1][0]
    m = re.match(r"debian:([a-z]+)", base)
    assert m, "the runtime stage is not FROM debian:<codename>...: %s" % base
    if host_codename() != m.group(1):
        pytest.skip("this machine is Debian %s, the image is %s: apt-cache cannot tell"
                    % (host_codename(), m.group(1)))


def test_dockerfile_is_two_debian_stages_and_a_non_root_user():
    st = stages()
    assert len(st) >= 2, "build and runtime stages"
    for image, _ in st:
        assert image == "debian:bookworm-slim"
    pk = apt_packages()
    last = len(st) - 1
    assert pk.get(0) and pk.get(last), "apt-get install in both stages"
    # No compiler or -dev package at run time.
    for name in pk[last]:
        assert not name.endswith("-dev") and name not in ("build-essential", "gcc", "make"), name
    ins = dockerfile_instructions()
    users = [a for s, i, a in ins if s == last and i == "USER"]
    assert users and users[-1] not in ("root", "0"), "the runtime stage must not run as root"
    assert any(i == "COPY" and "--from=" in a and "/usr/local/bin/gyre" in a
               for s, i, a in ins if s == last)
    assert json_form("CMD")[:1] == ["/usr/local/bin/gyre"] and "--ini" in json_form("CMD")


def test_dockerfile_apt_packages_exist_in_debian():
    require_same_debian()
    ensure_apt_lists()
    names = sorted({n for ns in apt_packages().values() for n in ns})
    assert names
    missing = []
    for name in names:
        r = subprocess.run(["apt-cache", "show", name], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            missing.append(name)
    assert not missing, "not in Debian: %s" % missing


def apt_closure(packages):
    """Every package the given ones pull in (Depends and Pre-Depends, recursively)."""
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                        *packages], capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    out = set(packages)
    for line in r.stdout.splitlines():
        if not line.startswith(" "):
            out.add(line.strip())
        else:
            m = re.match(r"\s*\|?(?:Pre)?Depends:\s*<?([^>\s]+)>?", line)
            if m:
                out.add(m.group(1))
    return {p.split(":")[0] for p in out}


def owning_package(path):
    r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        # /lib is a symlink to /usr/lib on Debian 12: dpkg may know the file under either.
        alt = path[4:] if path.startswith("/usr/") else "/usr" + path
        r = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "no Debian package owns %s" % path
    return r.stdout.split(":")[0].strip()


def test_runtime_stage_provides_every_library_gyre_links():
    require_same_debian()
    ensure_apt_lists()
    pk = apt_packages()
    closure = apt_closure(pk[max(pk)])
    # The binary `make gyre` builds, as the image's is (not a sanitizer build in GYRE_BIN).
    binary = os.path.join(ROOT, "gyre")
    if not os.path.exists(binary):
        binary = GYRE
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    libs = re.findall(r"=>\s*(/\S+)", r.stdout)
    assert any("libpython3" in lib for lib in libs)
    lacking = {}
    for lib in libs:
        pkg = owning_package(os.path.realpath(lib))
        if pkg not in closure:
            lacking[lib] = pkg
    assert not lacking, "the runtime stage lacks: %s" % lacking
    for module in ("tornado", "greenlet"):
        spec = subprocess.run([PY, "-c", "import %s; print(%s.__file__)" % (module, module)],
                              capture_output=True, text=True, timeout=60)
        assert owning_package(os.path.dirname(spec.stdout.strip())) in closure, module


def test_build_stage_provides_what_make_gyre_uses():
    require_same_debian()
    ensure_apt_lists()
    pk = apt_packages()
    closure = apt_closure(pk[0])
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    # The Makefile names every pkg-config module it builds with in one variable.
    m = re.search(r"^PKG_CONFIG_MODULES\s*:?=\s*(.*)$", makefile, re.M)
    modules = set(m.group(1).split()) if m else set()
    assert "python3-embed" in modules
    lacking = {}
    for mod in sorted(modules):
        r = subprocess.run(["pkg-config", "--path", mod], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, "pkg-config knows no %s here" % mod
        pkg = owning_package(r.stdout.strip())
        if pkg not in closure:
            lacking[mod] = pkg
    inc = re.search(r"^GREENLET_INC\s*:?=\s*(\S+)", makefile, re.M)
    if inc:
        pkg = owning_package(os.path.join(inc.group(1), "greenlet.h"))
        if pkg not in closure:
            lacking["greenlet.h"] = pkg
    for tool in ("gcc", "make"):
        if tool not in closure:
            lacking[tool] = tool
    assert not lacking, "the build stage lacks: %s" % lacking


def dockerignore_filter(rel):
    """True if .dockerignore lets rel (a path relative to ROOT) into the build context. The
    patterns in use: `*`, `!dir/`, `**/name`; a path is excluded when it or a parent matches."""
    import fnmatch
    rules = []
    with open(DOCKERIGNORE) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = line[1:] if neg else line
            rules.append((neg, pat.strip("/")))
    parts = rel.split("/")
    included = True
    for neg, pat in rules:
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and (
                    fnmatch.fnmatchcase(prefix, pat[3:]) or
                    fnmatch.fnmatchcase(prefix, "*/" + pat[3:]))):
                included = neg
                break
    return included


def build_context(dest):
    """Copy what .dockerignore lets through (of the files git tracks or would track) to dest."""
    r = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    files = [f for f in r.stdout.splitlines() if os.path.isfile(os.path.join(ROOT, f))]
    kept = [f for f in files if dockerignore_filter(f)]
    for f in kept:
        os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(dest, f))
    return kept


def test_build_context_builds_gyre(tmp_path):
    ctx = str(tmp_path / "context")
    kept = build_context(ctx)
    assert "Makefile" in kept and not any(f.startswith((".git/", "tests/", "bench/")) for f in kept)
    assert "gyre" not in kept and not any(f.startswith("build/") for f in kept)
    ins = dockerfile_instructions()
    # Every COPY from the context names something the context has.
    for _, instr, args in ins:
        if instr in ("COPY", "ADD") and "--from" not in args:
            *srcs, _ = [w for w in shlex.split(args) if not w.startswith("--")]
            for src in srcs:
                assert os.path.exists(os.path.join(ctx, src)), "COPY %s: not in the context" % src
    # The build stage: its COPYs into WORKDIR, then its RUN make.
    workdir = None
    src = str(tmp_path / "src")
    os.makedirs(src)
    make = None
    for stage, instr, args in ins:
        if stage != 0:
            continue
        if instr == "WORKDIR":
            workdir = args
        elif instr == "COPY":
            *srcs, dst = shlex.split(args)
            for s in srcs:
                target = os.path.join(src, os.path.relpath(os.path.join(workdir, dst), workdir))
                if os.path.isdir(os.path.join(ctx, s)):
                    shutil.copytree(os.path.join(ctx, s), target, dirs_exist_ok=True)
                else:
                    os.makedirs(target if dst.endswith("/") else os.path.dirname(target),
                                exist_ok=True)
                    shutil.copy2(os.path.join(ctx, s), target)
        elif instr == "RUN" and args.lstrip().startswith("make"):
            make = args
    assert make, "no `RUN make ...` in the build stage"
    r = subprocess.run(["sh", "-c", make], cwd=src, capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "the build stage's %r failed:\n%s%s" % (make, r.stdout[-3000:],
                                                                        r.stderr[-3000:])
    v = subprocess.run([os.path.join(src, "gyre"), "--version"], capture_output=True, text=True,
                       timeout=30)
    assert v.returncode == 0 and v.stdout.startswith("gyre ")


# ---- the services, run locally ------------------------------------------------------------------

def localize(text, mapping):
    """Swap container paths (keys) for local ones, each only where a whole path component
    ends: /run/gyre does not touch /run/gyre-2."""
    for container in sorted(mapping, key=len, reverse=True):
        text = re.sub(re.escape(container) + r"(?![\w.-])", mapping[container], text)
    return text


class GyreService:
    """The gyre service of docker-compose.yml, run locally: the image's files (its COPYs) under
    root/, its socket volume at volume_dir, the image's CMD and ENV."""

    def __init__(self, procs, tmp, volume_dir, name="gyre"):
        self.root = os.path.join(tmp, name + "-image")
        self.volume_dir = volume_dir
        os.makedirs(volume_dir, exist_ok=True)
        copies = image_copies()
        self.mapping = {"/run/gyre": volume_dir}
        for _, dest in copies:
            d = os.path.dirname(dest)
            self.mapping[d] = self.root + d
        for src, dest in copies:
            local = self.root + dest
            os.makedirs(os.path.dirname(local), exist_ok=True)
            if dest.endswith(".ini"):
                text = open(os.path.join(ROOT, src)).read()
                # Every absolute path the .ini uses is in the image or in the volume.
                for line in text.splitlines():
                    if line.lstrip().startswith((";", "#")):
                        continue
                    for path in re.findall(r"(?<![\w.])/[\w./-]+", line):
                        assert any(path == c or path.startswith(c + "/") for c in self.mapping), \
                            "%s: %s is neither in the image nor in the volume" % (src, path)
                with open(local, "w") as f:
                    f.write(localize(text, self.mapping))
            else:
                shutil.copy2(os.path.join(ROOT, src), local)
        cmd = json_form("CMD")
        assert cmd[0] == "/usr/local/bin/gyre"
        self.argv = [GYRE] + [localize(a, self.mapping) for a in cmd[1:]]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        env.update(image_env())
        ins = dockerfile_instructions()
        last = max(s for s, _, _ in ins)
        workdir = [a for s, i, a in ins if s == last and i == "WORKDIR"][-1]
        self.socket = os.path.join(volume_dir, "app.sock")
        self.proc = procs(self.argv, os.path.join(tmp, name + ".log"), env=env,
                          cwd=localize(workdir, self.mapping))

    def healthcheck(self, argv):
        """Run a compose health check command (exec form, without "CMD") locally."""
        argv = [PY if a == "python3" else localize(a, self.mapping) for a in argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)

    def wait_healthy(self, argv, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.alive(), "gyre exited:\n" + self.proc.log()
            r = self.healthcheck(argv)
            if r.returncode == 0:
                return
            assert time.monotonic() < deadline, "gyre never became healthy: %s\n%s" % (
                r.stderr, self.proc.log())
            time.sleep(0.2)



def nginx_service(procs, tmp, volumes, upstream_files=()):
    """The nginx service: deploy/nginx-docker.conf with its container paths swapped.
    volumes: {container dir: local dir} (the socket volumes as nginx mounts them);
    upstream_files: [(repository file, container path)] mounted into the include dir."""
    prefix = os.path.join(tmp, "nginx")
    upstreams = os.path.join(tmp, "nginx-upstreams")
    os.makedirs(prefix)
    os.makedirs(upstreams)
    port = free_port()
    mapping = dict(volumes)
    conf = open(os.path.join(DEPLOY, "nginx-docker.conf")).read()
    include = re.search(r"^\s*include\s+(\S+)/\*\.conf;", conf, re.M).group(1)
    mapping[include] = upstreams
    mapping["/var/cache/nginx"] = prefix
    mapping["/var/run/nginx.pid"] = os.path.join(prefix, "nginx.pid")
    texts = conf + "".join(open(src).read() for src, _ in upstream_files)
    for container in mapping:
        assert re.search(re.escape(container) + r"(?![\w.-])", texts), \
            "nginx-docker.conf no longer has %s: update this test" % container
    for a, b in (("user nginx;", "user root;"), ("listen 8080 ", "listen 127.0.0.1:%d " % port)):
        assert a in conf, "nginx-docker.conf no longer has %r: update this test" % a
        conf = conf.replace(a, b)
    conf = localize(conf, mapping)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    for src, target in upstream_files:
        assert os.path.dirname(target) == include
        with open(os.path.join(upstreams, os.path.basename(target)), "w") as f:
            f.write(localize(open(src).read(), mapping))
    p = procs([NGINX, "-p", prefix + "/", "-c", path, "-g", "daemon off;"],
              os.path.join(tmp, "nginx.log"))

    def listening():
        assert p.alive(), "nginx exited:\n" + p.log()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    wait_for(listening, what="nginx")
    p.port = port
    return p


def http_request(port, path="/", method="GET", body=None, timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_compose_services_run_locally_end_to_end(procs, short_tmp):
    cfg = compose_config()
    gyre_hc = healthcheck_argv(cfg["services"]["gyre"])
    nginx_hc = healthcheck_argv(cfg["services"]["nginx"])
    vol = named_volume_at(cfg, "gyre", "/run/gyre")
    volume_dir = os.path.join(short_tmp, vol)

    g = GyreService(procs, short_tmp, volume_dir)
    g.wait_healthy(gyre_hc)
    assert os.path.exists(g.socket)
    assert "master" in g.proc.log()

    n = nginx_service(procs, short_tmp, {"/run/gyre": volume_dir})
    status, body = http_request(n.port, "/")
    assert status == 200, body
    assert b"Hello from gyre" in body
    # A body past nginx's default 1 MiB limit goes through (client_max_body_size).
    payload = os.urandom(3 << 20)
    status, body = http_request(n.port, "/echo", "POST", payload)
    assert status == 200 and body == payload

    # nginx's health check, as compose runs it, on the local port.
    hc = [a.replace("127.0.0.1:8080", "127.0.0.1:%d" % n.port) for a in nginx_hc]
    assert hc != nginx_hc, "nginx's health check does not target 127.0.0.1:8080"
    r = subprocess.run(hc, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr

    # gyre's health check passes; a page that is not 200 fails it.
    r = g.healthcheck(gyre_hc)
    assert r.returncode == 0, r.stderr
    r = g.healthcheck(gyre_hc + ["--path", "/no-such-page"])
    assert r.returncode == 1 and "404" in r.stderr

    # `docker stop`: SIGTERM, exit 0 within the stop grace period, socket removed.
    g.proc.signal(signal.SIGTERM)
    grace = float(cfg["services"]["gyre"].get("stop_grace_period", "10s").rstrip("s"))
    assert g.proc.wait(grace) == 0, g.proc.log()
    assert not os.path.exists(g.socket)
    r = g.healthcheck(gyre_hc)
    assert r.returncode != 0 and "unhealthy" in r.stderr
    status, _ = http_request(n.port, "/")
    assert status == 502
    # nginx's own health check does not depend on gyre.
    r = subprocess.run(hc, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0


def test_scaled_compose_spreads_requests_over_both_gyres(procs, short_tmp):
    cfg = compose_config(COMPOSE, COMPOSE_SCALE)
    nginx = cfg["services"]["nginx"]
    hc = healthcheck_argv(cfg["services"]["gyre"])
    # Each gyre service's socket volume, and where nginx mounts it.
    nginx_volumes, gyres = {}, []
    for name in ("gyre", "gyre-2"):
        vol = named_volume_at(cfg, name, "/run/gyre")
        local = os.path.join(short_tmp, vol)
        nginx_at = [tgt for src, tgt in mounts(nginx) if src == vol][0]
        nginx_volumes[nginx_at] = local
        gyres.append(GyreService(procs, short_tmp, local, name=name))
    for g in gyres:
        g.wait_healthy(hc)
    conf_dir = re.search(r"^\s*include\s+(\S+)/\*\.conf;",
                         open(os.path.join(DEPLOY, "nginx-docker.conf")).read(), re.M).group(1)
    upstream_files = [(src, tgt) for src, tgt in mounts(nginx)
                      if os.path.dirname(tgt) == conf_dir]
    n = nginx_service(procs, short_tmp, nginx_volumes, upstream_files)

    def served_by():
        """Which gyre answered /: the page names its worker's pid, a child of a master."""
        status, body = http_request(n.port, "/")
        assert status == 200, body
        pid = int(re.search(rb"\(pid (\d+),", body).group(1))
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        return [g.proc.pid for g in gyres].index(ppid)

    counts = [0, 0]
    for _ in range(20):
        counts[served_by()] += 1
    assert min(counts) >= 5, "requests per gyre: %s" % counts

    # gyre-2 goes away: nginx retries on gyre, no request fails.
    gyres[1].proc.signal(signal.SIGTERM)
    assert gyres[1].proc.wait(15) == 0
    assert [served_by() for _ in range(10)] == [0] * 10


# ---- systemd ------------------------------------------------------------------------------------

def unit_settings(path):
    """{(section, key): [values]} of a unit file."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault((section, k.strip()), []).append(v.strip())
    return out


def require(path, package):
    if not os.access(path, os.X_OK):
        pytest.fail("%s is missing: apt-get install %s" % (path, package))


def ini_value(path, key):
    with open(path) as f:
        for line in f:
            k, eq, v = line.partition("=")
            if eq and k.strip() == key:
                return v.strip()
    return None


def test_systemd_units_verify_and_agree_with_the_ini(tmp_path):
    require("/usr/bin/systemd-analyze", "systemd")
    sock, svc = unit_settings(SOCKET_UNIT), unit_settings(SERVICE_UNIT)
    # gyre matches the inherited socket to its configured one by path.
    ini_path = ini_value(os.path.join(DEPLOY, "gyre.ini"), "socket")
    assert sock[("Socket", "ListenStream")] == [ini_path]
    assert sock[("Socket", "SocketMode")] == ["0660"]
    exec_start = shlex.split(svc[("Service", "ExecStart")][0])
    assert exec_start[0] == "/usr/local/bin/gyre"
    # The unit reads the ini where the image has it.
    ini_dest = [d for s, d in image_copies() if s == "deploy/gyre.ini"]
    assert exec_start[1:] == ["--ini", ini_dest[0]]
    assert svc[("Service", "Type")] == ["notify"]
    assert svc[("Service", "KillMode")] == ["mixed"]
    assert svc[("Service", "KillSignal")] == ["SIGTERM"]
    assert svc[("Service", "ExecReload")] == ["/bin/kill -HUP $MAINPID"]
    assert svc[("Unit", "Requires")] == ["gyre.socket"]

    # systemd-analyze verify wants ExecStart's binary to exist: point it at the built one.
    units = str(tmp_path)
    shutil.copy(SOCKET_UNIT, units)
    with open(SERVICE_UNIT) as f:
        text = f.read().replace("ExecStart=/usr/local/bin/gyre", "ExecStart=" + GYRE)
    with open(os.path.join(units, "gyre.service"), "w") as f:
        f.write(text)
    r = subprocess.run(["systemd-analyze", "verify", "gyre.socket", "gyre.service"], cwd=units,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # Unknown keys and bad values are only warnings: none may mention our units.
    assert "gyre." not in out, out


def socket_activate(procs, tmp, sock_path, argv, notify=None):
    require(SOCKET_ACTIVATE, "systemd")
    extra = ["-E", "NOTIFY_SOCKET=" + notify] if notify else []
    p = procs([SOCKET_ACTIVATE, "-l", sock_path, *extra, *argv],
              os.path.join(tmp, "activated.log"))
    # systemd-socket-activate binds the socket, then waits for a first connection to exec.
    wait_for(lambda: os.path.exists(sock_path) or not p.alive(), what="the activation socket")
    assert p.alive(), p.log()
    return p


def unit_socket_path(tmp):
    """gyre.socket's ListenStream with its directory swapped for tmp."""
    listen = unit_settings(SOCKET_UNIT)[("Socket", "ListenStream")][0]
    assert listen.startswith("/"), "ListenStream is not a unix socket path: %s" % listen
    return localize(listen, {os.path.dirname(listen): tmp}), listen


def unit_argv(tmp, listen):
    """gyre.service's ExecStart, with the ini (socket and app paths swapped for local ones)."""
    exec_start = shlex.split(unit_settings(SERVICE_UNIT)[("Service", "ExecStart")][0])
    mapping = {os.path.dirname(listen): tmp, "/srv/app": os.path.join(ROOT, "examples")}
    text = localize(open(os.path.join(DEPLOY, "gyre.ini")).read(), mapping)
    ini = os.path.join(tmp, "gyre.ini")
    with open(ini, "w") as f:
        f.write(text)
    return [GYRE] + [ini if a.endswith(".ini") else a for a in exec_start[1:]]


@pytest.mark.parametrize("how", ["flags", "unit"])
def test_socket_activation_serves_on_the_inherited_socket(procs, short_tmp, how):
    path, listen = unit_socket_path(short_tmp)
    if how == "flags":
        argv = [GYRE, "--socket", path, "--wsgi-file", os.path.join(ROOT, "examples", "app.py"),
                "--tornado", "10", "--greenlet"]
    else:
        argv = unit_argv(short_tmp, listen)
    p = socket_activate(procs, short_tmp, path, argv)
    inode, mode = os.stat(path).st_ino, os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)

    # The first connection makes systemd-socket-activate exec gyre (same pid), which must take
    # the inherited descriptor: a gyre that bound a fresh socket instead would leave this
    # connection, queued on the old one, unanswered (and the socket file would change).
    probe = [PY, os.path.join(DEPLOY, "healthcheck.py"), path, "--timeout", "10"]
    r = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, ("gyre did not answer on the socket systemd-socket-activate "
                               "passed it (LISTEN_FDS): %s\n%s" % (r.stderr, p.log()))
    for _ in range(5):
        r = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr + "\n" + p.log()
    assert os.stat(path).st_ino == inode, "gyre replaced the inherited socket with its own"
    # Its owner and mode are systemd's (SocketMode=): chmod-socket does not apply to it.
    assert os.stat(path).st_mode == mode
    assert p.alive()
    assert os.path.realpath("/proc/%d/exe" % p.pid) == os.path.realpath(GYRE)

    # A stop leaves the socket file alone: it is systemd's (gyre.socket), not gyre's.
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0, p.log()
    assert os.path.exists(path) and os.stat(path).st_ino == inode


def read_notifications(sock, until, timeout=20):
    """[(pid, {key: value})] from sd_notify datagrams, until one has key `until`."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            break
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        fields = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
        out.append((pid, fields))
        if until in fields:
            return out
    raise AssertionError("no %s= from gyre within %ss; got %s" % (until, timeout, out))


def test_systemd_notify_from_the_main_pid(procs, short_tmp):
    """Type=notify, NotifyAccess=main, ExecReload=kill -HUP, KillSignal=SIGTERM: what systemd
    will see from the unit's ExecStart, with a notify socket of our own."""
    path, listen = unit_socket_path(short_tmp)
    notify_path = os.path.join(short_tmp, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    ns.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    try:
        p = socket_activate(procs, short_tmp, path, unit_argv(short_tmp, listen),
                            notify=notify_path)
        probe = [PY, os.path.join(DEPLOY, "healthcheck.py"), path, "--timeout", "10"]
        r = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr + "\n" + p.log()

        msgs = read_notifications(ns, "READY")
        assert msgs[-1][1]["READY"] == "1"
        assert msgs[-1][1].get("MAINPID", str(p.pid)) == str(p.pid)

        p.signal(signal.SIGHUP)                     # systemctl reload
        msgs += read_notifications(ns, "RELOADING")
        msgs += read_notifications(ns, "READY")     # the new workers serve

        p.signal(signal.SIGTERM)                    # systemctl stop (KillMode=mixed)
        msgs += read_notifications(ns, "STOPPING")
        assert p.wait(30) == 0, p.log()
        senders = {pid for pid, _ in msgs}
        assert senders == {p.pid}, "NotifyAccess=main drops messages from other pids: %s" % msgs
    finally:
        ns.close()


def test_host_nginx_site_in_front_of_the_socket_activated_unit(procs, short_tmp):
    """The host set-up: deploy/nginx-site.conf (in an http block, as Debian's nginx.conf
    includes sites-enabled/) in front of gyre.service's ExecStart on gyre.socket's socket."""
    path, listen = unit_socket_path(short_tmp)
    p = socket_activate(procs, short_tmp, path, unit_argv(short_tmp, listen))

    prefix = os.path.join(short_tmp, "nginx")
    os.makedirs(prefix)
    port = free_port()
    site = open(os.path.join(DEPLOY, "nginx-site.conf")).read()
    assert re.search(r"^\s*listen 80;", site, re.M)
    site = re.sub(r"^(\s*)listen 80;", r"\1listen 127.0.0.1:%d;" % port, site, flags=re.M)
    site = localize(site, {os.path.dirname(listen): short_tmp})
    with open(os.path.join(prefix, "site.conf"), "w") as f:
        f.write(site)
    # Debian's /etc/nginx/nginx.conf, reduced to what a private nginx needs; relative includes
    # (uwsgi_params) are looked up next to it.
    os.symlink("/etc/nginx/uwsgi_params", os.path.join(prefix, "uwsgi_params"))
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write("user root;\nworker_processes 1;\npid %(p)s/nginx.pid;\n"
                "error_log %(p)s/error.log warn;\nevents { worker_connections 64; }\n"
                "http {\n  access_log off;\n"
                "  client_body_temp_path %(p)s/body; proxy_temp_path %(p)s/proxy;\n"
                "  fastcgi_temp_path %(p)s/fastcgi; uwsgi_temp_path %(p)s/uwsgi;\n"
                "  scgi_temp_path %(p)s/scgi;\n  include %(p)s/site.conf;\n}\n" % {"p": prefix})
    n = procs([NGINX, "-p", prefix + "/", "-c", os.path.join(prefix, "nginx.conf"),
               "-g", "daemon off;"], os.path.join(short_tmp, "nginx.log"))

    def listening():
        assert n.alive(), "nginx exited:\n" + n.log()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    wait_for(listening, what="nginx")

    # The first request through nginx is the one that makes systemd-socket-activate start gyre.
    status, body = http_request(port, "/", timeout=20)
    assert status == 200 and b"Hello from gyre" in body, (status, body, p.log())
    payload = os.urandom(2 << 20)
    status, body = http_request(port, "/echo", "POST", payload)
    assert status == 200 and body == payload
