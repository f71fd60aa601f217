#!/usr/bin/env bash
# kiln push/pull against skopeo copy, same registry (kiln's, on 127.0.0.1), same image,
# same run: 8 layers of 64 MiB (gzip of random bytes: incompressible, as real layers are
# to a registry), plus a config.
#
#   bench/client.sh        # prints a markdown table; copy it into bench/README.md
#
# - push: `kiln push` from kiln's store against `skopeo copy oci:LAYOUT docker://…` from an
#   OCI layout holding the same blobs. The registry's storage, kiln's mount hints and
#   skopeo's blob-info cache are wiped before every push, so every byte travels.
# - pull: `kiln pull` into an empty store against `skopeo copy docker://… oci:DIR` into an
#   empty layout; both verify every digest. kiln also fsyncs every blob; skopeo does not.
# Median of RUNS; ratio is skopeo's time over kiln's.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
LAYERS=${LAYERS:-8}
MIB=${MIB:-64}

for p in skopeo curl; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }
done
cargo build --release --locked -q
KILN=$PWD/target/release/kiln

work=$(mktemp -d /var/tmp/kiln-clientbench.XXXXXX)
rpid=""
cleanup() { [ -n "$rpid" ] && kill "$rpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export KILN_ROOT=$work/kiln

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
registry() {  # (re)start the registry on empty storage
    [ -n "$rpid" ] && { kill "$rpid"; wait "$rpid" 2>/dev/null || true; }
    rm -rf "$work/registry"
    "$KILN" registry serve --listen "127.0.0.1:$port" --storage "$work/registry" >/dev/null 2>&1 &
    rpid=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && return; sleep 0.1; done
    echo "the registry never answered" >&2; exit 1
}

# The image: an OCI layout written by hand, then copied into kiln's store.
python3 - "$work/layout" "$LAYERS" "$MIB" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
root, layers, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(root, "blobs", "sha256"); os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d, len(data)
descs, diffs = [], []
for i in range(layers):
    body = os.urandom(mib << 20)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo(f"layer{i}.bin"); info.size = len(body); info.mtime = 0
        t.addfile(info, io.BytesIO(body))
    raw = raw.getvalue()
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    d, n = put(gzip.compress(raw, compresslevel=1, mtime=0))
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
config = {"architecture": "amd64", "os": "linux", "config": {},
          "rootfs": {"type": "layers", "diff_ids": diffs}}
cd, cn = put(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": descs}
md, mn = put(json.dumps(manifest).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"], "digest": md, "size": mn,
           "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
          open(os.path.join(root, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(root, "oci-layout"), "w"))
PY
"$KILN" copy -q "oci:$work/layout:bench" kiln:bench/eight:1 >/dev/null
bytes=$(du -sb "$work/layout/blobs" | cut -f1)

median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'; }
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
forget() { rm -rf "$KILN_ROOT/blob-locations" /var/lib/containers/cache/blob-info-cache-v1.boltdb; sync; }

r=127.0.0.1:$port
kiln_push=(); skopeo_push=(); kiln_pull=(); skopeo_pull=()
for i in $(seq "$RUNS"); do
    registry; forget
    kiln_push+=("$(timed "$KILN" push -q bench/eight:1 "$r/k/eight:1")")
    registry; forget
    skopeo_push+=("$(timed skopeo copy -q --dest-tls-verify=false "oci:$work/layout:bench" "docker://$r/s/eight:1")")
    rm -rf "$work/pull-kiln" "$work/pull-skopeo"; sync
    kiln_pull+=("$(KILN_ROOT=$work/pull-kiln timed "$KILN" pull -q "$r/s/eight:1")")
    sync
    skopeo_pull+=("$(timed skopeo copy -q --src-tls-verify=false "docker://$r/s/eight:1" "oci:$work/pull-skopeo:x")")
done
kp=$(printf '%s\n' "${kiln_push[@]}" | median); sp=$(printf '%s\n' "${skopeo_push[@]}" | median)
kl=$(printf '%s\n' "${kiln_pull[@]}" | median); sl=$(printf '%s\n' "${skopeo_pull[@]}" | median)

echo "| op | kiln s | kiln MB/s | skopeo s | skopeo MB/s | skopeo/kiln |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| push $LAYERS x $MIB MiB | $kp | $(mbps "$kp") | $sp | $(mbps "$sp") | $(ratio "$sp" "$kp") |"
echo "| pull $LAYERS x $MIB MiB | $kl | $(mbps "$kl") | $sl | $(mbps "$sl") | $(ratio "$sl" "$kl") |"
echo
echo "runs: kiln push ${kiln_push[*]}; skopeo push ${skopeo_push[*]}; kiln pull ${kiln_pull[*]}; skopeo pull ${skopeo_pull[*]}"
