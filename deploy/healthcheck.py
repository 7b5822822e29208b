#!/usr/bin/python3
"""Health probe for gyre: one uwsgi-protocol request on gyre's own socket, no nginx involved.

    healthcheck.py [ADDR] [--path /] [--host localhost] [--timeout 3]

ADDR is a unix socket path or HOST:PORT, as in gyre's --socket (default: $GYRE_HEALTHCHECK_SOCKET,
else /run/gyre/app.sock). Sends `GET PATH` the way nginx's uwsgi_pass does and exits 0 if gyre
answers with status 200, 1 otherwise, with one line on stderr saying why. That is the contract
of Docker's HEALTHCHECK (0 healthy, 1 unhealthy); it also serves in scripts and monitoring.

Standard library only: it runs with the image's python3 and nothing else.
"""
import argparse
import os
import socket
import struct
import sys

DEFAULT_SOCKET = "/run/gyre/app.sock"
MAX_RESPONSE = 1 << 20  # read at most this much; the status line is all that matters


def uwsgi_packet(path, host):
    path_info, _, query = path.partition("?")
    env = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path_info),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", host),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", host),
        ("HTTP_USER_AGENT", "gyre-healthcheck"),
    ]
    data = b""
    for key, value in env:
        k, v = key.encode("latin-1"), value.encode("latin-1")
        data += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    # modifier1 0 (WSGI), the vars block's size (16 bits, little-endian), modifier2 0
    return struct.pack("<BHB", 0, len(data), 0) + data


def connect(addr, timeout):
    # gyre's rule for addresses: a path has a '/' or no ':' at all.
    if ":" in addr and "/" not in addr:
        host, _, port = addr.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        return socket.create_connection((host, int(port)), timeout=timeout)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except OSError:
        s.close()
        raise
    return s


def probe(addr, path, host, timeout):
    """Return None if healthy, else the reason."""
    with connect(addr, timeout) as s:
        s.sendall(uwsgi_packet(path, host))
        # Read the whole (small) response: closing early would make gyre log a failed write.
        raw = b""
        while len(raw) < MAX_RESPONSE:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    status_line = raw.split(b"\r\n", 1)[0]
    if not status_line:
        return "no response (connection closed without a status line)"
    if b" 200 " not in status_line + b" ":
        return "unexpected status: %s" % status_line.decode("latin-1", "replace")[:200]
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description="uwsgi-protocol health probe for gyre")
    ap.add_argument("addr", nargs="?",
                    default=os.environ.get("GYRE_HEALTHCHECK_SOCKET") or DEFAULT_SOCKET,
                    help="unix socket path or HOST:PORT (default: %(default)s)")
    ap.add_argument("--path", default="/", help="request path (default: /)")
    ap.add_argument("--host", default="localhost", help="Host header (default: localhost)")
    ap.add_argument("--timeout", type=float, default=3.0,
                    help="seconds for the connect and each read (default: 3)")
    args = ap.parse_args(argv)
    try:
        why = probe(args.addr, args.path, args.host, args.timeout)
    except (OSError, ValueError) as e:
        why = "%s: %s" % (args.addr, e)
    if why:
        print("unhealthy: " + why, file=sys.stderr)
        return 1
    print("healthy: %s answered 200 for %s" % (args.addr, args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
