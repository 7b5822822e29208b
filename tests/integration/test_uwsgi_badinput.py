"""Bad uwsgi input over raw sockets (never through nginx).

After every bad input gyre must still be alive, answer a normal request, and have logged why it
dropped the connection. Nothing may leak: descriptors return to their baseline.
"""
import os
import random
import socket
import struct
import threading
import time

import pytest

from conftest import (BASE_VARS, connect, encode_vars, parse_response, uwsgi_packet,
                      uwsgi_request, wait_for)

TIMEOUT = 5.0
APP = "bad_app.py"


# ---- helpers -----------------------------------------------------------------------------------

def healthy(g):
    """gyre is alive and serves a normal request."""
    assert g.proc.poll() is None, "gyre died:\n" + g.log()
    status, _, body = parse_response(uwsgi_request(g.socket, {"PATH_INFO": "/"}, timeout=TIMEOUT))
    assert (status, body) == (200, b"Hello, World!")


def exchange(path, data, half_close=False, timeout=TIMEOUT, linger0=False):
    """Send data, then read until gyre closes the connection; return what came back.

    With half_close the client says it is done sending (shutdown SHUT_WR), otherwise gyre has
    to close on its own: a socket.timeout (a failed test) if it never does."""
    s = connect(path, timeout)
    try:
        try:
            if data:
                s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # gyre already hung up on a large bad packet
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        if linger0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def header(datasize, modifier1=0, modifier2=0):
    return struct.pack("<BHB", modifier1, datasize, modifier2)


def packet_from_vars(vars_block, modifier1=0):
    return header(len(vars_block), modifier1) + vars_block


def log_since(g, mark):
    return g.log()[mark:]


def rejected(g, data, reason, half_close=False):
    """Send a bad packet: no response, the connection closed, the reason logged, gyre healthy."""
    mark = len(g.log())
    out = exchange(g.socket, data, half_close=half_close)
    assert out == b"", "gyre answered bad input %r: %r" % (data[:40], out[:200])
    wait_for(lambda: reason in log_since(g, mark), timeout=3,
             what="%r in gyre's log for %r" % (reason, data[:40]))
    assert "connection closed" in log_since(g, mark)
    healthy(g)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# ---- a reference reading of the uwsgi protocol, to know what gyre must say -----------------

def expected_reason(data, buffer_size=4096):
    """The reason gyre must log for data sent whole followed by a half-close (None: valid)."""
    if len(data) == 0:
        return "client closed without a request"
    if len(data) < 4:
        return "client closed mid-request"
    mod, ds = data[0], struct.unpack("<H", data[1:3])[0]
    if mod != 0:
        return "unsupported modifier1"
    if ds == 0:
        return "empty vars block"
    if ds > buffer_size:
        return "vars block larger than buffer-size"
    if len(data) - 4 < ds:
        return "client closed mid-request"
    p, end, n = 4, 4 + ds, 0
    while p != end:
        if end - p < 2:
            return "var runs past the end of the vars block"
        klen = struct.unpack("<H", data[p:p + 2])[0]
        if end - (p + 2) < klen + 2:
            return "var runs past the end of the vars block"
        key = data[p + 2:p + 2 + klen]
        vlen = struct.unpack("<H", data[p + 2 + klen:p + 4 + klen])[0]
        if end - (p + 4 + klen) < vlen:
            return "var runs past the end of the vars block"
        val = data[p + 4 + klen:p + 4 + klen + vlen]
        p += 4 + klen + vlen
        if klen == 0:
            return "var with an empty name"
        if n == 512:
            return "too many vars"
        if key == b"CONTENT_LENGTH" and not (val == b"" or (val.isdigit() and int(val) < 2**63)):
            return "invalid CONTENT_LENGTH"
        n += 1
    return None


# ---- the vars block ----------------------------------------------------------------------------

def test_vars_block_over_default_buffer_size(gyre):
    g = gyre(APP)
    block = encode_vars(dict(BASE_VARS, HTTP_X_BIG="y" * 5000))
    assert len(block) > 4096
    rejected(g, packet_from_vars(block), "vars block larger than buffer-size after ")


def test_buffer_size_boundary(gyre):
    g = gyre(APP, "--buffer-size", "1024")
    base = encode_vars(BASE_VARS)
    pad = 1024 - len(base) - len(encode_vars({"HTTP_X_PAD": ""}))
    exact = base + encode_vars({"HTTP_X_PAD": "p" * pad})
    assert len(exact) == 1024
    status, _, body = parse_response(exchange(g.socket, packet_from_vars(exact)))
    assert (status, body) == (200, b"Hello, World!")
    over = base + encode_vars({"HTTP_X_PAD": "p" * (pad + 1)})
    rejected(g, packet_from_vars(over), "vars block larger than buffer-size")
    # Decided on the header alone: gyre does not wait for a block it will refuse.
    rejected(g, header(1025), "vars block larger than buffer-size after 4 bytes")
    rejected(g, header(65535), "vars block larger than buffer-size after 4 bytes")


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 10, "half", "all-but-one"])
def test_truncated_packet_then_close(gyre, cut):
    g = gyre(APP)
    pkt = uwsgi_packet({"PATH_INFO": "/"})
    n = {"half": len(pkt) // 2, "all-but-one": len(pkt) - 1}.get(cut, cut)
    rejected(g, pkt[:n], "client closed mid-request after %d bytes, connection closed" % n,
             half_close=True)


def test_truncated_packet_then_full_close(gyre):
    g = gyre(APP)
    pkt = uwsgi_packet({"PATH_INFO": "/"})
    mark = len(g.log())
    s = connect(g.socket, TIMEOUT)
    s.sendall(pkt[:20])
    time.sleep(0.1)  # gyre has read the 20 bytes and waits for more
    s.close()
    g.wait_log("client closed mid-request after 20 bytes, connection closed", timeout=3)
    assert "client closed mid-request" in log_since(g, mark)
    healthy(g)


@pytest.mark.parametrize("name, block", [
    # a key length past the end of the block
    ("key", struct.pack("<H", 100) + b"PATH_INFO"),
    # the value's length field missing
    ("vlen-missing", struct.pack("<H", 9) + b"PATH_INFO" + b"\x01"),
    # a value length past the end of the block
    ("value", encode_vars({"PATH_INFO": "/"}) + struct.pack("<H", 4) + b"HOST"
     + struct.pack("<H", 50) + b"localhost"),
    # one stray byte after the last var
    ("stray-byte", encode_vars(BASE_VARS) + b"\x05"),
    # 65535-byte key announced in a 2-byte block
    ("huge-key", b"\xff\xff"),
])
def test_var_length_past_the_end_of_the_block(gyre, name, block):
    g = gyre(APP)
    assert expected_reason(packet_from_vars(block)) == "var runs past the end of the vars block"
    rejected(g, packet_from_vars(block), "var runs past the end of the vars block after ")


def test_empty_key_and_too_many_vars(gyre):
    g = gyre(APP, "--buffer-size", "65535")
    rejected(g, packet_from_vars(encode_vars(BASE_VARS) + encode_vars({"": "x"})),
             "var with an empty name")
    # 512 vars are served, 513 refused.
    def many(n):
        pairs = list(BASE_VARS.items())
        pairs += [("X%03d" % i, "") for i in range(n - len(pairs))]
        return encode_vars(pairs)
    status, _, body = parse_response(exchange(g.socket, packet_from_vars(many(512))))
    assert (status, body) == (200, b"Hello, World!")
    rejected(g, packet_from_vars(many(513)), "too many vars")


def test_zero_length_datasize(gyre):
    g = gyre(APP)
    rejected(g, header(0), "empty vars block after 4 bytes, connection closed")
    # ... also when bytes follow it
    rejected(g, header(0) + encode_vars(BASE_VARS), "empty vars block")


@pytest.mark.parametrize("garbage", [b"\xde\xad\xbe\xef", b"GET ", b"\xff\xff\xff\xff",
                                     b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_four_bytes_of_garbage(gyre, garbage):
    g = gyre(APP)
    rejected(g, garbage, "unsupported modifier1 after ")


def test_random_garbage(gyre):
    g = gyre(APP, "--tornado", "2")
    rnd = random.Random(20240613)
    cases = []
    for size in (1, 2, 3, 4, 5, 7, 16, 100, 1000, 4100, 20000, 70000):
        cases.append(bytes(rnd.getrandbits(8) for _ in range(size)))
    for size in (1, 2, 5, 50, 300, 4000):
        # a valid header in front of random vars, to get past the header checks
        cases.append(header(size) + bytes(rnd.getrandbits(8) for _ in range(size)))
        cases.append(header(size) + bytes(rnd.getrandbits(8) for _ in range(size // 2)))
    reasons = set()
    for data in cases:
        reason = expected_reason(data)
        assert reason is not None, "the seed made a valid request; pick another"
        reasons.add(reason)
        rejected(g, data, reason, half_close=True)
    assert len(reasons) >= 3, reasons  # the cases reach several different checks


def test_modifier1_not_zero(gyre):
    g = gyre(APP)
    for mod in (1, 5, 30, 255):
        rejected(g, uwsgi_packet({"PATH_INFO": "/"}, modifier1=mod), "unsupported modifier1")


@pytest.mark.parametrize("value", ["abc", "-1", "+5", " 5", "5 ", "0x10", "1e3", "5x",
                                   "99999999999999999999", "9223372036854775808"])
def test_content_length_not_a_number(gyre, value):
    g = gyre(APP)
    rejected(g, uwsgi_packet({"PATH_INFO": "/echo", "REQUEST_METHOD": "POST",
                              "CONTENT_LENGTH": value}, body=b"12345"),
             "invalid CONTENT_LENGTH after ")


def test_content_length_empty_is_no_body_and_extra_bytes_are_ignored(gyre):
    g = gyre(APP)
    raw = exchange(g.socket, uwsgi_packet({"PATH_INFO": "/echo", "CONTENT_LENGTH": ""}))
    assert parse_response(raw)[::2] == (200, b"read 0")
    # Bytes past CONTENT_LENGTH belong to nobody: the app reads exactly what was announced.
    raw = exchange(g.socket, uwsgi_packet({"PATH_INFO": "/echo", "CONTENT_LENGTH": "3"})
                   + b"abcGARBAGE-AFTER-THE-BODY")
    assert parse_response(raw)[::2] == (200, b"read 3")
    healthy(g)


def test_connect_and_close_without_data(gyre):
    g = gyre(APP)
    for _ in range(3):
        connect(g.socket, TIMEOUT).close()
    wait_for(lambda: g.log().count("client closed without a request after 0 bytes, connection "
                                   "closed") == 3, timeout=3, what="3 log lines")
    rejected(g, b"", "client closed without a request", half_close=True)


# ---- the body and the response, while a core serves the request -------------------------------

def test_client_disconnects_mid_body(gyre):
    g = gyre(APP, "--tornado", "1")
    for round_ in range(3):  # more than the one core: each must be freed
        mark = len(g.log())
        s = connect(g.socket, TIMEOUT)
        s.sendall(uwsgi_packet({"PATH_INFO": "/echo", "REQUEST_METHOD": "POST",
                                "CONTENT_LENGTH": "1000000"}) + b"b" * 70000)
        wait_for(lambda: "bad_app: echo reading" in log_since(g, mark), timeout=3,
                 what="the app to start reading")
        s.close()
        wait_for(lambda: "echo read raised ConnectionResetError(the client closed the connection "
                         "before sending the whole body) after 70000 bytes" in log_since(g, mark),
                 timeout=3, what="the app's read to fail")
        healthy(g)
    assert g.log().count("the client closed the connection before sending the whole body") >= 3


def test_huge_content_length_then_close(gyre):
    # A length from the wire is never an allocation: 2^62 announced, nothing sent.
    g = gyre(APP, "--tornado", "1")
    mark = len(g.log())
    out = exchange(g.socket, uwsgi_packet({"PATH_INFO": "/echo", "REQUEST_METHOD": "POST",
                                           "CONTENT_LENGTH": str(2 ** 62)}), half_close=True)
    assert parse_response(out)[0] == 500
    g.wait_log("echo read raised ConnectionResetError", since=mark)
    healthy(g)


def test_body_shorter_than_content_length_stalls(gyre):
    g = gyre(APP, "--tornado", "1", "--socket-timeout", "1")
    mark = len(g.log())
    stalled = connect(g.socket, TIMEOUT)
    stalled.sendall(uwsgi_packet({"PATH_INFO": "/echo", "QUERY_STRING": "chunk=5",
                                  "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "1000"})
                    + b"0123456789")
    t0 = time.monotonic()
    g.wait_log("bad_app: echo reading", timeout=3)
    # A normal request sent meanwhile gets the core once the stalled read has timed out.
    normal = {}

    def normal_request():
        normal["raw"] = uwsgi_request(g.socket, {"PATH_INFO": "/"}, timeout=TIMEOUT)
        normal["t"] = time.monotonic() - t0
    th = threading.Thread(target=normal_request, daemon=True)
    th.start()
    # The stalled client itself gets a 500 once the app's read raised.
    out = b""
    while True:
        d = stalled.recv(65536)
        if not d:
            break
        out += d
    stalled.close()
    took = time.monotonic() - t0
    assert parse_response(out)[0] == 500
    assert 0.9 <= took <= 3.0, "stalled body dropped after %.2f s with --socket-timeout 1" % took
    th.join(TIMEOUT + 1)
    assert parse_response(normal["raw"])[::2] == (200, b"Hello, World!")
    assert normal["t"] <= 3.5
    assert ("echo read raised TimeoutError(socket timeout reading the request body) after 10 bytes"
            in log_since(g, mark))
    healthy(g)


@pytest.mark.parametrize("route, event", [
    ("/stream", "stream closed after"),
    ("/write", "write raised ConnectionResetError(the client went away) after"),
])
def test_client_disconnects_during_a_big_response(gyre, route, event):
    g = gyre(APP, "--tornado", "1")
    for _ in range(2):
        mark = len(g.log())
        s = connect(g.socket, TIMEOUT)
        s.sendall(uwsgi_packet({"PATH_INFO": route, "QUERY_STRING": "n=2000"}))
        got = 0
        while got < 300000:  # some of the 128 MiB, then hang up with more unread
            d = s.recv(65536)
            assert d, "the response ended early"
            got += len(d)
        s.close()
        wait_for(lambda: event in log_since(g, mark), timeout=3, what=event)
        line = [ln for ln in log_since(g, mark).splitlines() if event in ln][0]
        sent = int(line.split(event)[1].split()[0])
        assert sent < 2000, line  # it stopped: the 128 MiB were not produced into the void
        if route == "/stream":
            g.wait_log("the client went away before the response was complete", since=mark)
        healthy(g)


def test_client_never_reads_the_response(gyre):
    g = gyre(APP, "--tornado", "1", "--socket-timeout", "1")
    mark = len(g.log())
    s = connect(g.socket, TIMEOUT)
    s.sendall(uwsgi_packet({"PATH_INFO": "/stream", "QUERY_STRING": "n=2000"}))
    t0 = time.monotonic()
    wait_for(lambda: "socket timeout writing the response to" in log_since(g, mark), timeout=4,
             what="the write timeout")
    assert time.monotonic() - t0 <= 3.0
    g.wait_log("connection dropped", since=mark)
    g.wait_log("stream closed after", timeout=2)
    s.close()
    healthy(g)


# ---- many at once, and leaks -------------------------------------------------------------------

def test_burst_of_connections_opened_and_closed(gyre):
    g = gyre(APP, "--tornado", "2")
    healthy(g)
    phrase = "client closed without a request after 0 bytes"
    for _ in range(200):  # each closed right after connecting
        connect(g.socket, TIMEOUT).close()
    socks = [connect(g.socket, TIMEOUT) for _ in range(200)]  # all open, then all closed
    for s in socks:
        s.close()
    wait_for(lambda: g.log().count(phrase) == 400, timeout=5,
             what="400 x %r (saw %d)" % (phrase, g.log().count(phrase)))
    healthy(g)


def bad_batch(g):
    """100 bad connections of 10 kinds, each finished (gyre closed it or we did)."""
    pkt = uwsgi_packet({"PATH_INFO": "/"})

    def big_response_abandoned():
        with connect(g.socket, TIMEOUT) as s:
            s.sendall(uwsgi_packet({"PATH_INFO": "/stream", "QUERY_STRING": "n=50"}))
            s.recv(65536)

    kinds = [
        lambda: exchange(g.socket, b"", half_close=True),
        lambda: exchange(g.socket, b"\xde\xad\xbe\xef"),
        lambda: exchange(g.socket, header(0)),
        lambda: exchange(g.socket, header(5000) + b"x" * 5000),
        lambda: exchange(g.socket, pkt[:len(pkt) // 2], half_close=True),
        lambda: exchange(g.socket, packet_from_vars(struct.pack("<H", 100) + b"PATH")),
        lambda: exchange(g.socket, uwsgi_packet({"CONTENT_LENGTH": "x"})),
        lambda: exchange(g.socket, uwsgi_packet({"PATH_INFO": "/echo", "CONTENT_LENGTH": "999999"})
                         + b"b" * 1000, half_close=True),
        lambda: exchange(g.socket, pkt[:3], linger0=True, half_close=True),
        big_response_abandoned,
    ]
    for i in range(100):
        kinds[i % len(kinds)]()


def test_no_descriptor_leak(gyre):
    g = gyre(APP, "--tornado", "4")
    healthy(g)
    base = fd_count(g.proc.pid)
    bad_batch(g)
    healthy(g)

    def back_to_base():
        return fd_count(g.proc.pid) <= base
    try:
        wait_for(back_to_base, timeout=2.5, what="gyre's descriptors to return to the baseline")
    except AssertionError:
        fds = {f: os.readlink("/proc/%d/fd/%s" % (g.proc.pid, f))
               for f in os.listdir("/proc/%d/fd" % g.proc.pid)}
        raise AssertionError("gyre holds %d descriptors, %d before the batch: %r"
                             % (len(fds), base, fds))
    # Every kind was seen and logged.
    log = g.log()
    for phrase in ("client closed without a request", "unsupported modifier1", "empty vars block",
                   "vars block larger than buffer-size", "client closed mid-request",
                   "var runs past the end of the vars block", "invalid CONTENT_LENGTH",
                   "the client closed the connection before sending the whole body",
                   "the client went away before the response was complete"):
        assert phrase in log, phrase
    # A second batch: still no growth.
    bad_batch(g)
    wait_for(back_to_base, timeout=2.5, what="the baseline after a second batch")
    healthy(g)
