#!/usr/bin/env bash
# Install every Debian package gyre needs to build, run, test and benchmark. Idempotent: checks
# each package with dpkg-query and installs only the missing ones; when nothing is missing it
# touches nothing (no apt-get update) and prints one line.
#
# Runs as root, with no stdin, on a fresh Debian 12 (where the apt lists may be empty).
# Never starts a service: nginx, uwsgi and redis-server are run by the project as foreground
# processes.
set -eu

PKGS=(
    # build
    build-essential pkg-config python3-dev
    # the Python side: the engine, the suspend engine, tests
    python3-tornado python3-greenlet python3-pytest python3-requests python3-uwsgidecorators
    # a stock Django project in a core (tests/integration/test_django.py)
    python3-django
    # the front end (any nginx that provides /usr/sbin/nginx will do, see below)
    nginx-light
    # fuzzing and sanitizers
    clang libclang-rt-14-dev clang-format valgrind
    # benchmarks
    wrk
    # libraries
    libinih-dev libsystemd-dev libjansson-dev libpcre2-dev
    # libcrypto: SHA-1 for the WebSocket handshake's Sec-WebSocket-Accept
    libssl-dev
    # the Redis store of a cache: hiredis to build, a real redis-server for its tests
    libhiredis-dev redis-server
    # cgi-fcgi, to talk FastCGI without nginx
    libfcgi-bin
    # Apache (mod_proxy_fcgi, mod_proxy_uwsgi) as a second front end, run in the foreground
    apache2 libapache2-mod-proxy-uwsgi
    # uWSGI with its Tornado loop engine: the reference gyre is benchmarked against
    uwsgi-core uwsgi-plugin-python3 uwsgi-plugin-tornado-python3 uwsgi-plugin-greenlet-python3
    # deployment checks: docker-compose config (and PyYAML with it), systemd-socket-activate,
    # systemd-analyze
    docker-compose systemd python3-yaml
    # misc; procps for /bin/kill, which deploy/gyre.service's ExecReload names (a minimal
    # Debian has no procps, and systemd-analyze verify rejects a unit whose command is missing)
    curl procps
)

is_installed() {
    # One line per installed architecture; "installed" on any of them will do.
    dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for p in "${PKGS[@]}"; do
    if [ "$p" = nginx-light ]; then
        # nginx, nginx-full, nginx-extras, ... satisfy it too: we need the binary and the
        # uwsgi_params/fastcgi_params files that come with nginx-common.
        if [ -x /usr/sbin/nginx ] && [ -f /etc/nginx/uwsgi_params ]; then
            continue
        fi
    fi
    is_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#PKGS[@]} Debian packages are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run this as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"

# Debian's maintainer scripts start services (nginx, uwsgi) on install unless policy-rc.d says
# no. gyre's nginx is a private foreground process: a system nginx on port 80 is not wanted and a
# failure to start it must not fail this script. Only add a policy if there is none, and remove
# only our own.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# added by gyre scripts/deps.sh for the duration of an install\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-q -o DPkg::Lock::Timeout=300)

apt-get "${APT_OPTS[@]}" update < /dev/null
apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" < /dev/null

still=()
for p in "${missing[@]}"; do
    if [ "$p" = nginx-light ] && [ -x /usr/sbin/nginx ] && [ -f /etc/nginx/uwsgi_params ]; then
        continue
    fi
    is_installed "$p" || still+=("$p")
done
if [ "${#still[@]}" -ne 0 ]; then
    echo "deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "deps: installed ${#missing[@]} package(s); all ${#PKGS[@]} are present"
