#!/usr/bin/env bash
# kiln build against buildah bud (1.28, chroot isolation, vfs) and docker's BuildKit
# (docker 20.10, a private dockerd on a unix socket, vfs), same fixture, same run.
#
#   bench/build.sh                  # builds kiln (release) unless KILN=path; prints the tables
#   RUNS=5 BIG_MIB=512 KILN=/path/to/kiln bench/build.sh
#
# The fixture (written below, on the busybox base of fixtures/make-busybox-rootfs.sh):
# a builder stage that COPYs 64 source files and RUNs a concatenate + gzip of them, an
# unused stage with a RUN (skipped by a builder that prunes stages), and a final stage
# that COPY --from the builder: one COPY, two RUNs, an unused stage, as in PEERS.md's
# "Build speeds measured here" table. Every tool builds with the network off (kiln and
# docker: --network none; buildah, which refuses it with chroot isolation: under
# `unshare --net`) and finds the base in its own store, never on a registry.
#
# Scenarios, each RUNS times, the three tools interleaved run by run; median wall time:
#   cold    a fresh store and cache for every tool (kiln: a new KILN_ROOT; buildah: a new
#           --root; docker: `builder prune -af` and the result removed), the base image
#           already present (kiln import / buildah pull / docker load, untimed)
#   cached  the same build again, nothing changed: every step a cache hit
#   touched the content of one source file changed (a new line each run), then a build:
#           the COPY that reads it and every step after it run again
# Then `COPY big /big` of BIG_MIB MiB of random bytes, one build per tool, with kiln's
# peak RSS (`/usr/bin/time -v`). Ratios are the peer's time over kiln's (above 1: kiln
# is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME with a '.'
RUNS=${RUNS:-5}
BIG_MIB=${BIG_MIB:-512}
DOCKER=/usr/bin/docker # Debian's 20.10 client: a newer one on PATH wants buildx for BuildKit

for p in buildah docker.io busybox-static time; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }
done
if [ -z "${KILN:-}" ]; then
    cargo build --release --locked -q --bin kiln
    KILN=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/kiln
fi

work=$(mktemp -d /var/tmp/kiln-buildbench.XXXXXX)
# dockerd's and containerd's sockets live under its exec root: a short path (108 bytes).
dwork=$(mktemp -d /tmp/kbb.XXXXXX)
dpid=""
cleanup() {
    if [ -n "$dpid" ]; then
        # SIGTERM, so that dockerd stops the containerd it started; SIGKILL after 20 s.
        kill -TERM "$dpid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$dpid" 2>/dev/null || true
    fi
    # Never rm -rf through a mount a peer left behind.
    awk -v a="$work/" -v b="$dwork/" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work" "$dwork"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Nothing may leave the machine: a tool that tried a registry would meet a closed port.
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY no_proxy=

BASE=docker.io/bench/busybox:1
APP=docker.io/bench/app:1

# The base image, in kiln's form and as an archive for the peers.
fixtures/make-busybox-rootfs.sh "$work/busybox-rootfs.tar"
export KILN_ROOT=$work/kiln
"$KILN" import "$work/busybox-rootfs.tar" "$BASE" >/dev/null
"$KILN" save -o "$work/busybox.tar" "$BASE"

# The fixture, one copy of the context per tool (the touched runs edit their own copy).
mkdir -p "$work/ctx/src"
for i in $(seq -w 1 64); do
    head -c 12288 /dev/urandom | base64 > "$work/ctx/src/part$i.txt"
done
cat > "$work/ctx/Dockerfile" <<EOF
FROM $BASE AS builder
WORKDIR /src
COPY src/ ./
RUN cat part*.txt | gzip -9 > /app.gz && wc -c /app.gz

FROM $BASE AS unused
RUN echo never > /unused

FROM $BASE
COPY --from=builder /app.gz /srv/app.gz
CMD ["sh"]
EOF
for t in kiln buildah docker; do cp -a "$work/ctx" "$work/ctx-$t"; done

# The peers' stores.
B=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
buildah_fresh() {
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    rm -rf "$work/buildah"
    "${B[@]}" pull -q "oci-archive:$work/busybox.tar" >"$work/buildah-id"
    "${B[@]}" tag "$(cat "$work/buildah-id")" "$BASE"
}
mkdir -p "$dwork/client"
dockerd --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
    --data-root "$dwork/data" --exec-root "$dwork/x" --pidfile "$dwork/dockerd.pid" \
    --host "unix://$dwork/docker.sock" >"$dwork/dockerd.log" 2>&1 &
dpid=$!
D=(env DOCKER_CONFIG="$dwork/client" DOCKER_BUILDKIT=1 "$DOCKER" -H "unix://$dwork/docker.sock")
for _ in $(seq 600); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
"${D[@]}" version >/dev/null || { cat "$dwork/dockerd.log" >&2; echo "dockerd never answered" >&2; exit 1; }
"${D[@]}" load -q -i "$work/busybox.tar" >/dev/null
docker_fresh() {
    "${D[@]}" image rm -f "$APP" >/dev/null 2>&1 || true
    "${D[@]}" builder prune -af >/dev/null
}

# The builds, quiet: build_TOOL CONTEXT TAG [kiln's own flags…]. KWRAP runs kiln under
# /usr/bin/time when set.
KWRAP=()
build_kiln() {
    local ctx=$1 tag=$2
    shift 2
    "${KWRAP[@]}" "$KILN" build -q --network none "$@" -t "$tag" "$ctx"
}
# buildah refuses --network none with chroot isolation: it runs in a network namespace of
# its own instead (only lo), which gives its RUN steps the same view.
build_buildah() {
    unshare --net "${B[@]}" bud -q --isolation chroot --layers --pull=never -t "$2" "$1"
}
build_docker() { "${D[@]}" build -q --network none -t "$2" "$1"; }

# timed TOOL [CONTEXT TAG [flags…]]: one build (the fixture unless told), prints its wall
# seconds (bash's clock: no fork inside the timing). A failed build stops the bench.
timed() {
    local tool=$1 t0 t1
    shift
    [ $# -gt 0 ] || set -- "$work/ctx-$tool" "$APP"
    sync
    t0=$EPOCHREALTIME
    if ! "build_$tool" "$@" >"$work/out" 2>&1; then
        cat "$work/out" >&2
        echo "build.sh: the $tool build failed" >&2
        exit 1
    fi
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
fresh() {
    case $1 in
    kiln)
        rm -rf "$KILN_ROOT"
        "$KILN" import "$work/busybox-rootfs.tar" "$BASE" >/dev/null
        ;;
    buildah) buildah_fresh ;;
    docker) docker_fresh ;;
    esac
}
touch_one() { echo "changed $2" >>"$work/ctx-$1/src/part07.txt"; }

median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / (b > 0 ? b : 0.001) }'; }
rss() { awk -F': ' '/Maximum resident set size/ { print int($2 / 1024) }' "$1"; } # MiB
declare -A times
tools=(kiln buildah docker)
for i in $(seq "$RUNS"); do
    for t in "${tools[@]}"; do
        fresh "$t"
        times[cold,$t]+="$(timed "$t") "
    done
done
for i in $(seq "$RUNS"); do
    for t in "${tools[@]}"; do times[cached,$t]+="$(timed "$t") "; done
done
for i in $(seq "$RUNS"); do
    for t in "${tools[@]}"; do
        touch_one "$t" "$i"
        times[touched,$t]+="$(timed "$t") "
    done
done

echo "| scenario | kiln s | buildah 1.28 s | BuildKit (docker 20.10) s | buildah/kiln | BuildKit/kiln |"
echo "| --- | --- | --- | --- | --- | --- |"
for s in cold cached touched; do
    declare -A m
    for t in "${tools[@]}"; do m[$t]=$(printf '%s\n' ${times[$s,$t]} | median); done
    case $s in
    cold) label="cold (fresh store and cache, base present)" ;;
    cached) label="fully cached rebuild" ;;
    touched) label="one source file changed" ;;
    esac
    echo "| $label | ${m[kiln]} | ${m[buildah]} | ${m[docker]} | $(ratio "${m[buildah]}" "${m[kiln]}") | $(ratio "${m[docker]}" "${m[kiln]}") |"
done
echo
for s in cold cached touched; do
    for t in "${tools[@]}"; do echo "runs: $s $t: ${times[$s,$t]}"; done
done

# The three results agree: the same /srv/app.gz (same sources, same busybox gzip).
sums=$("$KILN" run --rm --network none "$APP" sha256sum /srv/app.gz)
sums+=" $("${D[@]}" run --rm --network none "$APP" sha256sum /srv/app.gz)"
c=$("${B[@]}" from -q --pull=never "$APP")
sums+=" $(unshare --net "${B[@]}" run --isolation chroot "$c" sha256sum /srv/app.gz)"
"${B[@]}" rm "$c" >/dev/null
if [ "$(echo "$sums" | tr ' ' '\n' | grep -c '^[0-9a-f]\{64\}$' | tr -d ' ')" != 3 ] ||
    [ "$(echo "$sums" | tr ' ' '\n' | grep '^[0-9a-f]\{64\}$' | sort -u | wc -l)" != 1 ]; then
    echo "build.sh: the three images differ (kiln, docker, buildah): $sums" >&2
    exit 1
fi

echo
echo "all three images hold the same /srv/app.gz: sha256 $(echo "$sums" | tr ' ' '\n' | grep -m1 '^[0-9a-f]\{64\}$')"

# kiln's peak RSS over a cold build of the fixture: /usr/bin/time reports the largest of
# kiln and the processes it waited for (the sandbox helper and the RUN's processes).
rm -rf "$KILN_ROOT"
"$KILN" import "$work/busybox-rootfs.tar" "$BASE" >/dev/null
KWRAP=(/usr/bin/time -v -o "$work/time-cold")
timed kiln >/dev/null
KWRAP=()
echo
echo "kiln build, the fixture cold: peak RSS $(rss "$work/time-cold") MiB (kiln or a child, whichever is larger)"

# A COPY of BIG_MIB MiB of random bytes, one build per tool (the file new to each), and
# kiln's peak RSS in it. The build has no RUN, so kiln starts no child process (threads
# only) and ru_maxrss is kiln's own. Once more with --compress zstd.
mkdir -p "$work/big"
head -c $((BIG_MIB << 20)) /dev/urandom >"$work/big/big"
printf 'FROM %s\nCOPY big /big\n' "$BASE" >"$work/big/Dockerfile"
declare -A big
KWRAP=(/usr/bin/time -v -o "$work/time-big")
big[kiln]=$(timed kiln "$work/big" docker.io/bench/big:1)
KWRAP=(/usr/bin/time -v -o "$work/time-zstd")
big[zstd]=$(timed kiln "$work/big" docker.io/bench/big:1 --no-cache --compress zstd)
KWRAP=()
big[buildah]=$(timed buildah "$work/big" docker.io/bench/big:1)
big[docker]=$(timed docker "$work/big" docker.io/bench/big:1)
echo
echo "| COPY of $BIG_MIB MiB of random bytes, one build | kiln s | buildah 1.28 s | BuildKit (docker 20.10) s | buildah/kiln | BuildKit/kiln |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| default (kiln: gzip layers) | ${big[kiln]} | ${big[buildah]} | ${big[docker]} | $(ratio "${big[buildah]}" "${big[kiln]}") | $(ratio "${big[docker]}" "${big[kiln]}") |"
echo "| kiln --compress zstd | ${big[zstd]} | | | $(ratio "${big[buildah]}" "${big[zstd]}") | $(ratio "${big[docker]}" "${big[zstd]}") |"
echo
echo "kiln peak RSS, COPY of $BIG_MIB MiB: $(rss "$work/time-big") MiB (gzip), $(rss "$work/time-zstd") MiB (--compress zstd)"
