# gyre in a container: the example app on a unix socket, for nginx in another container.
#
#   docker build -t gyre .
#   docker-compose up -d --build        # gyre + nginx on :8080 (docker-compose.yml)
#
# Two stages: the first builds ./gyre with the compilers and -dev packages, the second keeps
# only what the binary and the app need at run time. Every package comes from Debian.

# ---- build ------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config python3-dev python3-tornado python3-greenlet libinih-dev libsystemd-dev libjansson-dev libpcre2-dev libhiredis-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what `make gyre` reads (see .dockerignore): the sources and the script that embeds
# server/boot.py into the binary.
COPY Makefile ./
COPY proto/ proto/
COPY server/ server/
COPY scripts/ scripts/
RUN make -j"$(nproc)" gyre

# ---- run --------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# The binary links libpython3.11 (the embedded interpreter; Debian's python3 does not pull that
# shared library in), libinih, libsystemd, libjansson, libhiredis and libssl3 (libcrypto). python3-tornado and
# python3-greenlet are the engine.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-tornado python3-greenlet libpython3.11 libinih1 libsystemd0 libjansson4 libpcre2-8-0 libhiredis0.14 libssl3 \
 && rm -rf /var/lib/apt/lists/*

# A system user with a fixed uid (docker-compose.yml gives the socket volume to 10001), and the
# socket directory owned by it. Everything else stays root's: the app cannot modify itself.
RUN groupadd --system --gid 10001 gyre \
 && useradd --system --uid 10001 --gid gyre --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gyre \
 && install -d -o gyre -g gyre -m 0755 /run/gyre

COPY --from=build /src/gyre /usr/local/bin/gyre
COPY deploy/gyre.ini /etc/gyre/gyre.ini
COPY deploy/healthcheck.py /usr/local/lib/gyre/healthcheck.py
COPY examples/app.py /srv/app/app.py

# No .pyc files in the read-only /srv/app; the app's prints reach `docker logs` at once.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

USER gyre
WORKDIR /srv/app

# gyre's master handles SIGTERM as PID 1: it stops accepting, lets the workers finish their
# requests (worker-reload-mercy = 5 s, within `docker stop`'s 10 s), reaps them and exits 0.
STOPSIGNAL SIGTERM

# One uwsgi request for / straight on the socket: healthy when gyre answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python3", "/usr/local/lib/gyre/healthcheck.py", "/run/gyre/app.sock"]

CMD ["/usr/local/bin/gyre", "--ini", "/etc/gyre/gyre.ini"]
