#!/usr/bin/env bash
# `make run`: nginx on 127.0.0.1:$PORT in front of gyre serving examples/app.py, both in the
# foreground of this terminal until Ctrl-C.
#
#   PORT   nginx's port on 127.0.0.1 (default 8080)
#   PROTO  protocol between nginx and gyre: uwsgi (default) or fastcgi
#
# Layout: run/$PORT/ holds nginx.conf (from nginx-conf/$PROTO.conf), app.sock (gyre's socket),
# nginx's error.log, pid file and temp directories. gyre logs to this terminal.
# Exit status: 0 after Ctrl-C/SIGTERM with both stopped; 1 if either fails or dies; 2 on bad
# settings (PORT, PROTO) or a busy port.
set -eu

cd "$(dirname "$0")/.."
ROOT=$PWD

PORT=${PORT:-8080}
PROTO=${PROTO:-uwsgi}
PY=/usr/bin/python3
NGINX=/usr/sbin/nginx
[ -x "$NGINX" ] || NGINX=$(command -v nginx || true)

die() { echo "run: $*" >&2; exit "${2:-1}"; }
fail2() { echo "run: $*" >&2; exit 2; }

case "$PROTO" in
    uwsgi) TEMPLATE=nginx-conf/uwsgi.conf; SOCKET_FLAG=--socket ;;
    fastcgi) TEMPLATE=nginx-conf/fastcgi.conf; SOCKET_FLAG=--fastcgi-socket ;;
    *) fail2 "PROTO=$PROTO is not supported (supported: uwsgi, fastcgi)" ;;
esac
case "$PORT" in
    ''|*[!0-9]*) fail2 "PORT must be a number, got '$PORT'" ;;
esac
{ [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ]; } || fail2 "PORT must be 1..65535, got $PORT"
[ -x ./gyre ] || die "./gyre is not built: run \`make run\` (it builds it first)"
[ -n "$NGINX" ] || die "nginx is not installed: run \`make deps\`"

# Is anything listening on (or holding) 127.0.0.1:PORT? Binding tells for sure, whoever owns it.
if ! "$PY" - "$PORT" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
then
    fail2 "port $PORT on 127.0.0.1 is busy (another server, or another \`make run\`?): try \`make run PORT=8081\`"
fi

RUN=$ROOT/run/$PORT
SOCK=$RUN/app.sock
mkdir -p "$RUN"
rm -f "$SOCK" "$RUN/nginx.pid"
scripts/render-nginx-conf.sh "$TEMPLATE" "$RUN/nginx.conf" "$PORT" "$SOCK" "$RUN" || exit 1

GYRE_PID=
NGINX_PID=
STOPPING=

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Wait up to $2 seconds for process $1 to exit; SIGKILL it after that.
reap() {
    local pid=$1 limit=$2 i=0
    [ -n "$pid" ] || return 0
    while alive "$pid" && [ "$i" -lt $((limit * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if alive "$pid"; then
        echo "run: pid $pid did not stop within ${limit}s: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Stop both: nginx first (SIGQUIT: graceful, lets in-flight requests finish), then gyre
# (SIGTERM: graceful, removes its socket). A second Ctrl-C hurries them: SIGTERM to nginx (fast
# shutdown) and a second SIGTERM to gyre (stops at once).
hurry() {
    echo "run: stopping now"
    if alive "$NGINX_PID"; then kill -TERM "$NGINX_PID" 2>/dev/null || true; fi
    if alive "$GYRE_PID"; then kill -TERM "$GYRE_PID" 2>/dev/null || true; fi
    trap '' INT TERM HUP
}
stop_all() {
    STOPPING=1
    trap hurry INT TERM HUP
    if alive "$NGINX_PID"; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; fi
    if alive "$GYRE_PID"; then kill -TERM "$GYRE_PID" 2>/dev/null || true; fi
    reap "$NGINX_PID" 15
    reap "$GYRE_PID" 15
    rm -f "$SOCK"
}

on_signal() {
    echo
    echo "run: stopping nginx and gyre"
    stop_all
    exit 0
}
trap on_signal INT TERM HUP
trap 'if [ -z "$STOPPING" ]; then stop_all; fi' EXIT

# Both run in sessions of their own (setsid: a fresh background child is never a group leader,
# so setsid execs in place and $! is the server's pid): Ctrl-C at the terminal then reaches this
# script alone, which sends each server exactly one stop signal, instead of gyre and nginx
# also getting SIGINT from the terminal (a second signal makes gyre stop without grace).
setsid ./gyre "$SOCKET_FLAG" "$SOCK" --wsgi-file examples/app.py --tornado 100 --greenlet --chmod-socket &
GYRE_PID=$!

# The socket appears once gyre is ready to accept (bounded wait: 15 s).
i=0
until [ -S "$SOCK" ]; do
    if ! alive "$GYRE_PID"; then
        rc=0; wait "$GYRE_PID" || rc=$?
        GYRE_PID=
        die "gyre exited (status $rc) before its socket $SOCK appeared"
    fi
    [ "$i" -lt 150 ] || die "gyre did not create its socket $SOCK within 15 s"
    sleep 0.1
    i=$((i + 1))
done

setsid "$NGINX" -p "$RUN/" -c "$RUN/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!

# nginx is up once it accepts on the port (bounded wait: 10 s).
i=0
until "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$PORT" 2>/dev/null; do
    if ! alive "$NGINX_PID"; then
        rc=0; wait "$NGINX_PID" || rc=$?
        NGINX_PID=
        echo "run: nginx exited (status $rc); $RUN/error.log says:" >&2
        tail -n 5 "$RUN/error.log" >&2 2>/dev/null || true
        exit 1
    fi
    [ "$i" -lt 100 ] || die "nginx did not accept on 127.0.0.1:$PORT within 10 s (see $RUN/error.log)"
    sleep 0.1
    i=$((i + 1))
done

echo "gyre is serving examples/app.py at http://127.0.0.1:$PORT/ — Ctrl-C to stop"

# Until a signal arrives (on_signal exits) or one of the two dies on its own.
while alive "$GYRE_PID" && alive "$NGINX_PID"; do
    wait -n "$GYRE_PID" "$NGINX_PID" 2>/dev/null || true
done
if ! alive "$GYRE_PID"; then
    echo "run: gyre exited on its own; stopping nginx" >&2
else
    echo "run: nginx exited on its own (see $RUN/error.log); stopping gyre" >&2
fi
stop_all
exit 1
