"""Connection-level limits: the request head's deadline (slowloris), the idle keep-alive
timeout, the connection limit, accept() at the fd limit, and the lingering close that lets a
front end finish sending a request the app answered without reading."""
import os
import select
import shutil
import signal
import socket
import subprocess
import struct
import threading
import time

import pytest
import requests

from conftest import (FCGI_PARAMS, GYRE, NGINX_TEMPLATES, FrontEnd, Nginx, Session, connect,
                      fcgi_begin_request, fcgi_record, free_port, parse_response, recv_all,
                      uwsgi_packet, wait_for)

APP = "conn_app.py"
APP_PATH = os.path.join(os.path.dirname(__file__), "..", "apps", APP)


def open_client(g):
    if g.port is not None:
        return socket.create_connection(("127.0.0.1", g.port), timeout=10)
    return connect(g.socket)


def closed_within(s, seconds):
    """True once the peer closes s (EOF or reset) within `seconds`; bytes received fail."""
    s.settimeout(seconds)
    try:
        d = s.recv(100)
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
    assert d == b"", "unexpected bytes %r" % d
    return True


# Heads that never complete: a prefix, then one byte at a time forever.
def trickle_head(proto):
    if proto == "uwsgi":
        return struct.pack("<BHB", 0, 4000, 0), b"\x01"
    if proto == "fastcgi":
        # A PARAMS header announcing 4000 bytes, none of them sent yet.
        return (fcgi_begin_request(1) + fcgi_record(FCGI_PARAMS, 1, length=4000, padding=0),
                b"\x01")
    return b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", b"a"


@pytest.mark.parametrize("proto", ["uwsgi", "fastcgi", "http"])
def test_trickled_head_is_dropped_at_its_deadline(gyre, proto):
    """A byte every 0.2 s keeps the socket busy, but the head must arrive whole within
    --socket-timeout: gyre drops the client then (it used to restart the timeout per read)."""
    g = gyre(APP, "--socket-timeout", "1.5", proto=proto)
    prefix, drip = trickle_head(proto)
    s = open_client(g)
    t0 = time.monotonic()
    s.sendall(prefix)
    dropped = None
    for _ in range(60):  # 12 s of trickling at most
        try:
            s.sendall(drip)
        except (BrokenPipeError, ConnectionResetError):
            dropped = time.monotonic() - t0
            break
        if select.select([s], [], [], 0.2)[0]:
            assert closed_within(s, 1)
            dropped = time.monotonic() - t0
            break
    s.close()
    assert dropped is not None, "a trickling client held its connection for 12 s"
    assert dropped < 8, "dropped after %.1f s with --socket-timeout 1.5" % dropped
    g.wait_log("socket timeout reading the request head")


def test_trickling_clients_do_not_starve_real_requests(gyre):
    """Many trickling clients, one core: real requests are still served, and the trickling ones
    are gone within the head deadline."""
    g = gyre(APP, "--socket-timeout", "1.5", "--tornado", "1")
    prefix, drip = trickle_head("uwsgi")
    slow = [open_client(g) for _ in range(50)]
    for s in slow:
        s.sendall(prefix)
    stop = threading.Event()

    def drip_all():
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(drip)
                except OSError:
                    pass
            stop.wait(0.2)
    t = threading.Thread(target=drip_all)
    t.start()
    try:
        for _ in range(5):
            status, _, body = parse_response(recv_all_uwsgi(g.socket, "/"))
            assert (status, body) == (200, b"Hello, World!")
        wait_for(lambda: g.log().count("socket timeout reading the request head") == 50,
                 timeout=10, what="the 50 trickling clients dropped")
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()


def recv_all_uwsgi(path, uri, vars=None, body=b""):
    with connect(path) as s:
        s.sendall(uwsgi_packet(dict({"PATH_INFO": uri, "REQUEST_URI": uri}, **(vars or {})), body))
        return recv_all(s)


def http_get(s, path="/"):
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"Hello, World!" not in data:
        d = s.recv(65536)
        assert d, "connection closed before the response: %r" % data
        data += d
    return data


def test_idle_keepalive_connection_closed_after_keepalive_timeout(gyre):
    """--keepalive-timeout bounds the wait for the next request, apart from --socket-timeout."""
    g = gyre(APP, "--socket-timeout", "30", "--keepalive-timeout", "1", proto="http")
    s = open_client(g)
    assert http_get(s).startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert closed_within(s, 8), "idle connection kept past --keepalive-timeout 1"
    assert time.monotonic() - t0 >= 0.9
    s.close()
    # A client that keeps sending requests keeps its connection.
    s = open_client(g)
    for _ in range(3):
        assert http_get(s).startswith(b"HTTP/1.1 200")
    s.close()


def test_max_conns_leaves_further_connections_in_the_backlog(gyre):
    """At --max-conns, a new connection waits in the backlog; the open ones are not hurt, and
    the waiting one is served as soon as one closes."""
    g = gyre(APP, "--max-conns", "3")
    silent = [connect(g.socket) for _ in range(3)]
    waiting = connect(g.socket)
    waiting.sendall(uwsgi_packet({"PATH_INFO": "/"}))
    waiting.settimeout(1.0)
    with pytest.raises(socket.timeout):
        waiting.recv(100)   # not accepted: past the limit
    silent.pop().close()
    waiting.settimeout(10)
    status, _, body = parse_response(recv_all(waiting))
    assert (status, body) == (200, b"Hello, World!")
    waiting.close()
    for s in silent:        # still open and served
        s.sendall(uwsgi_packet({"PATH_INFO": "/"}))
        status, _, body = parse_response(recv_all(s))
        assert (status, body) == (200, b"Hello, World!")
        s.close()


# ---- at the fd limit ----------------------------------------------------------------------------

def start_limited(tmp_path, nofile, *args):
    """gyre under RLIMIT_NOFILE nofile (soft and hard) on a unix socket."""
    sock = str(tmp_path / "lim.sock")
    p = Session(str(tmp_path), ["prlimit", "--nofile=%d:%d" % (nofile, nofile), GYRE,
                                "--socket", sock, "--wsgi-file", APP_PATH, *args])
    wait_for(lambda: os.path.exists(sock) and "gyre" in p.log() or not p.alive(),
             what="gyre's socket")
    assert p.alive(), p.log()
    return p, sock


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served(sock):
    status, _, body = parse_response(recv_all_uwsgi(sock, "/"))
    return (status, body) == (200, b"Hello, World!")


def test_accept_at_the_fd_limit_backs_off(tmp_path):
    """accept() failing with EMFILE (here: --max-conns above the fd limit) must not spin: the
    log stays small, the CPU idle, and once connections close new ones are served."""
    p, sock = start_limited(tmp_path, 64, "--max-conns", "1000")
    clients = []
    try:
        wait_for(lambda: served(sock), what="gyre serving")
        for _ in range(80):
            clients.append(connect(sock))
        wait_for(lambda: "Too many open files" in p.log(), what="accept() at the fd limit")
        log0, cpu0, t0 = len(p.log()), cpu_seconds(p.pid), time.monotonic()
        time.sleep(2.0)  # measuring an interval: how much CPU and log it costs
        cpu = cpu_seconds(p.pid) - cpu0
        grew = len(p.log()) - log0
        assert cpu < 0.5, "%.2f s of CPU in %.1f s at the fd limit" % (cpu, time.monotonic() - t0)
        assert grew < 2000, "the log grew by %d bytes in 2 s at the fd limit" % grew
        assert p.log().count("Too many open files") == 1, p.log()[-2000:]
        for c in clients:
            c.close()
        clients = []
        wait_for(lambda: served(sock), timeout=10, what="a request served after the closes")
    finally:
        for c in clients:
            c.close()
        p.stop()


def test_default_connection_limit_follows_the_fd_limit(tmp_path):
    """Without --max-conns the limit is the fd limit minus a reserve: past it connections wait in
    the backlog, accept() never runs out of descriptors, and they are served once others close."""
    p, sock = start_limited(tmp_path, 96)
    clients = []
    try:
        wait_for(lambda: served(sock), what="gyre serving")
        for _ in range(120):
            clients.append(connect(sock))
        waiting = connect(sock)
        waiting.sendall(uwsgi_packet({"PATH_INFO": "/"}))
        waiting.settimeout(1.0)
        with pytest.raises(socket.timeout):
            waiting.recv(100)
        for c in clients:
            c.close()
        clients = []
        waiting.settimeout(10)
        status, _, body = parse_response(recv_all(waiting))
        assert (status, body) == (200, b"Hello, World!")
        waiting.close()
        assert "Too many open files" not in p.log(), p.log()[-2000:]
    finally:
        for c in clients:
            c.close()
        p.stop()


# ---- lingering close ----------------------------------------------------------------------------

def test_uwsgi_unread_body_client_can_finish_sending(gyre):
    """The app answers 413 without reading a 1 MiB body: the client still sends all of it
    (gyre reads and drops it) and gets the 413, then EOF."""
    g = gyre(APP, "--tornado", "1")
    body = b"x" * (1 << 20)
    with connect(g.socket) as s:
        vars = {"PATH_INFO": "/reject", "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body))}
        s.sendall(uwsgi_packet(vars))
        s.sendall(body)
        status, _, got = parse_response(recv_all(s))
    assert (status, got) == (413, b"too large\n")
    assert served(g.socket)


@pytest.mark.parametrize("proto", ["uwsgi", "fastcgi", "fastcgi-no-keep-conn"])
def test_nginx_passes_the_apps_413_for_an_unread_body(stack, gyre, tmp_path, proto):
    """Through nginx: an app answering 413 without reading a 1 MiB POST; the client sees 413
    every time (nginx answered 502 when gyre closed while it was still sending the body)."""
    if proto == "fastcgi-no-keep-conn":
        # nginx's default: no FCGI_KEEP_CONN, gyre closes the connection after each request.
        template = tmp_path / "fastcgi-close.conf"
        conf = open(NGINX_TEMPLATES["fastcgi"]).read()
        assert "fastcgi_keep_conn on;" in conf
        template.write_text(conf.replace("fastcgi_keep_conn on;", "fastcgi_keep_conn off;"))
        g = gyre(APP, proto="fastcgi")
        n = Nginx(str(tmp_path), g.socket, template=str(template))
        url = n.url
    else:
        n = None
        url = stack(APP, proto=proto).url
    try:
        body = b"y" * (1 << 20)
        statuses = [requests.post(url + "/reject", data=body, timeout=20).status_code
                    for _ in range(20)]
        assert statuses == [413] * 20, statuses
        assert requests.get(url + "/", timeout=10).text == "Hello, World!"
    finally:
        if n:
            n.stop()


# ---- Apache in front --------------------------------------------------------------------------

APACHE_MODULES = "/usr/lib/apache2/modules"
APACHE_CONF = """\
ServerRoot "{prefix}"
DefaultRuntimeDir "{prefix}"
PidFile "{prefix}/httpd.pid"
ErrorLog "{prefix}/error.log"
LogLevel warn
Mutex file:{prefix} default
Listen 127.0.0.1:{port}
ServerName localhost
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_fcgi_module {mods}/mod_proxy_fcgi.so
LoadModule proxy_uwsgi_module {mods}/mod_proxy_uwsgi.so
ProxyPass "/" "{backend}"
"""


class Apache(FrontEnd):
    """A private apache2 in the foreground, in front of gyre on a TCP port."""

    name = "apache2"
    stop_signal = signal.SIGTERM  # apache2's graceless stop: its children go with it

    def __init__(self, tmp, backend):
        self.prefix = os.path.join(tmp, "apache")
        os.makedirs(self.prefix, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.prefix, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(APACHE_CONF.format(prefix=self.prefix, port=self.port,
                                       mods=APACHE_MODULES, backend=backend))
        self.proc = subprocess.Popen(["apache2", "-DFOREGROUND", "-f", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.url = "http://127.0.0.1:%d" % self.port
        self.wait_listening()

    def stop(self):
        super().stop()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # any child left of its group
        except ProcessLookupError:
            pass


@pytest.fixture
def apache(gyre, tmp_path):
    """apache(proto): gyre (conn_app.py) on a TCP port behind a private apache2 speaking proto
    (mod_proxy_fcgi or mod_proxy_uwsgi)."""
    if not shutil.which("apache2") or not os.path.exists(APACHE_MODULES + "/mod_proxy_uwsgi.so"):
        pytest.skip("apache2 and libapache2-mod-proxy-uwsgi are not installed (scripts/deps.sh)")
    started = []

    def start(proto):
        port = free_port()
        flag = {"fastcgi": "--fastcgi-socket", "uwsgi": "--socket"}[proto]
        gyre(APP, flag, "127.0.0.1:%d" % port, "--tornado", "4", proto=proto)
        a = Apache(str(tmp_path), "%s://127.0.0.1:%d/" % ({"fastcgi": "fcgi"}.get(proto, proto),
                                                          port))
        started.append(a)
        return a
    yield start
    for a in started:
        a.stop()


N_GETS = 300  # the race was about 1 GET in 100


def test_apache_fastcgi_gets_never_503(apache):
    """mod_proxy_fcgi sends the empty STDIN after PARAMS; gyre answered at the end of PARAMS and
    closed first about once in 100 GETs: Apache's 503, AH01075 "sending empty stdin"."""
    a = apache("fastcgi")
    statuses = {}
    lock = threading.Lock()

    def client():
        with requests.Session() as s:
            for _ in range(N_GETS // 4):
                code = s.get(a.url + "/", timeout=10).status_code
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == {200: N_GETS // 4 * 4}, "%r\n%s" % (statuses, a.error_log()[-2000:])


@pytest.mark.parametrize("proto", ["fastcgi", "uwsgi"])
def test_apache_passes_the_apps_413_for_an_unread_body(apache, proto):
    a = apache(proto)
    body = b"z" * (1 << 20)
    statuses = [requests.post(a.url + "/reject", data=body, timeout=20).status_code
                for _ in range(20)]
    assert statuses == [413] * 20, "%r\n%s" % (statuses, a.error_log()[-2000:])
