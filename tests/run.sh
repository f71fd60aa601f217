#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the peers the tests drive (apt), then
# checks formatting and lints and runs every test of the workspace. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Peers and tools the end-to-end tests use; installed only when missing.
packages=(busybox-static skopeo umoci docker-registry docker.io tar curl apache2-utils openssl strace)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "tests/run.sh: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
