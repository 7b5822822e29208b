#!/usr/bin/env bash
# Render an nginx config template (nginx-conf/*.conf) into a runnable nginx.conf.
#
#   scripts/render-nginx-conf.sh TEMPLATE OUT PORT SOCKET PREFIX
#
# Replaces @PORT@, @SOCKET@ and @PREFIX@, creates PREFIX and its *_temp directories. SOCKET and
# PREFIX are made absolute (relative to the current directory) if they are not already.
# Then run:  nginx -p PREFIX/ -c OUT -g 'daemon off;'
set -eu

if [ "$#" -ne 5 ]; then
    echo "usage: $0 TEMPLATE OUT PORT SOCKET PREFIX" >&2
    exit 2
fi
template=$1 out=$2 port=$3 socket=$4 prefix=$5

if [ ! -r "$template" ]; then
    echo "render-nginx-conf: cannot read template $template" >&2
    exit 2
fi
case "$port" in
    ''|*[!0-9]*) echo "render-nginx-conf: PORT must be a number, got '$port'" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "render-nginx-conf: PORT must be 1..65535, got $port" >&2
    exit 2
fi
case "$socket" in /*) ;; *) socket="$PWD/$socket" ;; esac
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/
# sun_path is 108 bytes including the terminating NUL.
if [ "${#socket}" -gt 107 ]; then
    echo "render-nginx-conf: socket path is longer than 107 bytes (a unix socket limit): $socket" >&2
    exit 2
fi

mkdir -p "$prefix"
for d in client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp; do
    mkdir -p "$prefix/$d"
done

# Escape for the replacement side of a sed s||| command: backslash, the delimiter, and &.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

mkdir -p "$(dirname "$out")"
sed -e "s|@PORT@|$(sed_escape "$port")|g" \
    -e "s|@SOCKET@|$(sed_escape "$socket")|g" \
    -e "s|@PREFIX@|$(sed_escape "$prefix")|g" \
    "$template" > "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"

if grep -q '@[A-Z_]*@' "$out"; then
    echo "render-nginx-conf: warning: placeholders left in $out:" \
        "$(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')" >&2
fi
