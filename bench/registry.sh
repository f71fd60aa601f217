#!/usr/bin/env bash
# kiln registry against CNCF Distribution 2.8 (Debian's docker-registry), same client,
# same run, both on 127.0.0.1 with local storage under /var/tmp.
#
#   bench/registry.sh        # prints a markdown table; copy it into bench/README.md
#
# - push: POST to start an upload, then PUT ?digest= with the 512 MiB body (curl -T,
#   streamed); a fresh repository and a blob new to the registry each run, so every
#   push stores the blob anew and nothing is skipped. Median of RUNS, after `sync`.
# - pull: GET of the same blob to /dev/null. Median of RUNS.
# - manifest GET: wrk, 2 threads, 64 connections, 10 s; requests/s and p99 latency.
# - peak RSS of each server (VmHWM) after the pushes.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MIB=${MIB:-512}

for p in docker-registry wrk curl; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }
done
cargo build --release --locked -q
KILN=$PWD/target/release/kiln

work=$(mktemp -d /var/tmp/kiln-regbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/v2/" >/dev/null && return; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

dport=$(free_port)
cat > "$work/distribution.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/distribution}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$dport}
YML
docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
dpid=$!; pids+=("$dpid")
kport=$(free_port)
"$KILN" registry serve --listen "127.0.0.1:$kport" --storage "$work/kiln" >"$work/kiln.log" 2>&1 &
kpid=$!; pids+=("$kpid")
wait_port "$dport"; wait_port "$kport"

# One blob per run, each new to both registries: a push of a blob the registry has
# already ends by replacing, and so freeing, a 512 MiB file, which is not what is measured.
head -c $((MIB << 20)) /dev/urandom > "$work/blob1"
for i in $(seq 2 "$RUNS"); do
    { printf '%08d' "$i"; tail -c +9 "$work/blob1"; } > "$work/blob$i"
done
declare -A digests
for i in $(seq "$RUNS"); do digests[$i]="sha256:$(sha256sum "$work/blob$i" | cut -d' ' -f1)"; done
digest=${digests[1]}
size=$(stat -c %s "$work/blob1")

median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }

push() {  # port repo run -> seconds
    local loc
    loc=$(curl -fsS -o /dev/null -D - -X POST "http://127.0.0.1:$1/v2/$2/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    case $loc in http*) ;; *) loc="http://127.0.0.1:$1$loc" ;; esac
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -fsS -o /dev/null -w '%{time_total}\n' -X PUT -H 'Content-Type: application/octet-stream' \
        -T "$work/blob$3" "$loc${sep}digest=${digests[$3]}"
}

pull() { curl -fsS -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1/v2/$2/blobs/$digest"; }

mbps() { awk -v b="$size" -v s="$1" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

declare -A push_s pull_s
for name in kiln distribution; do
    port=$kport; [ $name = distribution ] && port=$dport
    push_s[$name]=$(for i in $(seq "$RUNS"); do sync; push "$port" "bench/push$i" "$i"; done | median)
    pull_s[$name]=$(for i in $(seq "$RUNS"); do pull "$port" "bench/push1"; done | median)
done
krss=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$kpid/status)
drss=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$dpid/status)

# A small image for the manifest GETs: an empty config and one tiny layer.
for name in kiln distribution; do
    port=$kport; [ $name = distribution ] && port=$dport
    printf '{}' > "$work/config"; printf 'layer' > "$work/layer"
    for f in config layer; do
        d="sha256:$(sha256sum "$work/$f" | cut -d' ' -f1)"
        loc=$(curl -fsS -o /dev/null -D - -X POST "http://127.0.0.1:$port/v2/bench/m/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
        case $loc in http*) ;; *) loc="http://127.0.0.1:$port$loc" ;; esac
        case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
        curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$work/$f" "$loc${sep}digest=$d"
        eval "${f}_d=$d"
    done
    manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$config_d\",\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$layer_d\",\"size\":5}]}"
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "$manifest" "http://127.0.0.1:$port/v2/bench/m/manifests/v1"
done
wrk_run() {
    wrk -t2 -c64 -d10s --latency -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://127.0.0.1:$1/v2/bench/m/manifests/v1" > "$work/wrk.$1"
    rps=$(awk '/Requests\/sec/ {print int($2)}' "$work/wrk.$1")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.$1")
    echo "$rps $p99"
}
read -r krps kp99 < <(wrk_run "$kport")
read -r drps dp99 < <(wrk_run "$dport")

echo "| measure | kiln | Distribution 2.8 | kiln/Distribution |"
echo "| --- | --- | --- | --- |"
echo "| push 512 MiB (PUT), MB/s | $(mbps "${push_s[kiln]}") | $(mbps "${push_s[distribution]}") | $(ratio "${push_s[distribution]}" "${push_s[kiln]}") |"
echo "| pull 512 MiB (GET), MB/s | $(mbps "${pull_s[kiln]}") | $(mbps "${pull_s[distribution]}") | $(ratio "${pull_s[distribution]}" "${pull_s[kiln]}") |"
echo "| manifest GET, 64 connections, req/s | $krps | $drps | $(ratio "$krps" "$drps") |"
echo "| manifest GET p99 latency | $kp99 | $dp99 | |"
echo "| server peak RSS after the pushes | $krss MiB | $drss MiB | |"
