#!/usr/bin/env bash
# kiln save / kiln load against skopeo copy between the same formats, same run.
#
#   bench/save_load.sh            # prints a markdown table; copy it into bench/README.md
#
# Two images: one layer of 512 MiB of random bytes (incompressible), and one layer of
# 20,000 small files. For each: wall time (median of RUNS) and peak RSS of
#   save: kiln save (store -> archive)     vs  skopeo copy oci:STORE -> oci-archive:FILE
#   load: kiln load (archive -> store)     vs  skopeo copy oci-archive:FILE -> oci:DIR
#   load of an uncompressed Docker archive  vs  skopeo copy docker-archive:FILE -> oci:DIR
# and both loads again with the destination (and skopeo's TMPDIR) in /dev/shm.
# MB/s is the archive's size over the wall time; ratio is skopeo's time over kiln's.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-512}

for p in skopeo time busybox-static; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }
done
cargo build --release --locked -q
KILN=$PWD/target/release/kiln

work=$(mktemp -d /var/tmp/kiln-bench.XXXXXX)
shm=$(mktemp -d /dev/shm/kiln-bench.XXXXXX)
trap 'rm -rf "$work" "$shm"' EXIT
export KILN_ROOT=$work/store

# The images.
mkdir -p "$work/big/rootfs" "$work/small/rootfs"
head -c $((BIG_MIB << 20)) /dev/urandom > "$work/big/rootfs/data"
tar -C "$work/big/rootfs" -cf "$work/big.tar" .
for d in $(seq 1 100); do
    mkdir -p "$work/small/rootfs/d$d"
    for f in $(seq 1 200); do
        head -c 512 /dev/urandom > "$work/small/rootfs/d$d/f$f"
    done
done
tar -C "$work/small/rootfs" -cf "$work/small.tar" .
rm -rf "$work/big/rootfs" "$work/small/rootfs"
$KILN import "$work/big.tar" bench/big:1 >/dev/null
$KILN import "$work/small.tar" bench/small:1 >/dev/null
rm -f "$work/big.tar" "$work/small.tar"

# measure NAME CMD… : runs CMD RUNS times after a per-run reset, keeps "seconds maxrss_kib"
measure() {
    local reset=$1; shift
    local out=()
    for _ in $(seq 1 "$RUNS"); do
        eval "$reset"
        sync
        /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
        out+=("$(cat "$work/t")")
    done
    printf '%s\n' "${out[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}

mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", (b / 1e6) / (s > 0 ? s : 0.001) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 0.001) }'; }

echo "| image | op | kiln s | kiln MB/s | kiln peak RSS | skopeo s | skopeo MB/s | skopeo peak RSS | skopeo/kiln |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for image in big small; do
    ref=docker.io/bench/$image:1
    ktar=$work/$image-kiln.tar
    star=$work/$image-skopeo.tar
    read -r ks krss < <(measure "rm -f $ktar" "$KILN" save -o "$ktar" "bench/$image:1")
    read -r ss srss < <(measure "rm -f $star" skopeo copy -q "oci:$KILN_ROOT/images:$ref" "oci-archive:$star:$ref")
    size=$(stat -c %s "$ktar")
    echo "| $image | save | $ks | $(mbps "$size" "$ks") | $((krss / 1024)) MiB | $ss | $(mbps "$size" "$ss") | $((srss / 1024)) MiB | $(ratio "$ss" "$ks") |"

    read -r kl klrss < <(measure "rm -rf $work/load-store" env KILN_ROOT="$work/load-store" "$KILN" load -q -i "$ktar")
    read -r sl slrss < <(measure "rm -rf $work/load-oci" skopeo copy -q "oci-archive:$ktar:1" "oci:$work/load-oci:t")
    echo "| $image | load | $kl | $(mbps "$size" "$kl") | $((klrss / 1024)) MiB | $sl | $(mbps "$size" "$sl") | $((slrss / 1024)) MiB | $(ratio "$sl" "$kl") |"

    # A Docker archive with uncompressed layers, as skopeo docker-archive: and docker save
    # write them: kiln load vs skopeo copy docker-archive: -> oci:.
    dtar=$work/$image-docker.tar
    skopeo copy -q "oci:$KILN_ROOT/images:$ref" "docker-archive:$dtar:$image:1"
    dsize=$(stat -c %s "$dtar")
    read -r kd kdrss < <(measure "rm -rf $work/load-store" env KILN_ROOT="$work/load-store" "$KILN" load -q -i "$dtar")
    read -r sd sdrss < <(measure "rm -rf $work/load-oci" skopeo copy -q "docker-archive:$dtar" "oci:$work/load-oci:t")
    echo "| $image | load docker-archive (uncompressed) | $kd | $(mbps "$dsize" "$kd") | $((kdrss / 1024)) MiB | $sd | $(mbps "$dsize" "$sd") | $((sdrss / 1024)) MiB | $(ratio "$sd" "$kd") |"

    # The same two loads with both destinations in /dev/shm: verification without the
    # disk (this VM's disk takes ~1 s to make 537 MB durable, whoever writes it).
    cat "$ktar" "$dtar" >/dev/null
    read -r kt ktrss < <(measure "rm -rf $shm/s" env KILN_ROOT="$shm/s" "$KILN" load -q -i "$ktar")
    read -r st strss < <(measure "rm -rf $shm/o" env TMPDIR="$shm" skopeo copy -q "oci-archive:$ktar:1" "oci:$shm/o:t")
    echo "| $image | load, store in tmpfs | $kt | $(mbps "$size" "$kt") | $((ktrss / 1024)) MiB | $st | $(mbps "$size" "$st") | $((strss / 1024)) MiB | $(ratio "$st" "$kt") |"
    read -r kt ktrss < <(measure "rm -rf $shm/s" env KILN_ROOT="$shm/s" "$KILN" load -q -i "$dtar")
    read -r st strss < <(measure "rm -rf $shm/o" env TMPDIR="$shm" skopeo copy -q "docker-archive:$dtar" "oci:$shm/o:t")
    echo "| $image | load docker-archive, store in tmpfs | $kt | $(mbps "$dsize" "$kt") | $((ktrss / 1024)) MiB | $st | $(mbps "$dsize" "$st") | $((strss / 1024)) MiB | $(ratio "$st" "$kt") |"
    rm -rf "${shm:?}"/*
    rm -f "$ktar" "$star" "$dtar"
done
