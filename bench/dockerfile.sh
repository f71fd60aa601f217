#!/usr/bin/env bash
# Dockerfile frontend timing: parse + plan of a generated 2,000-line Dockerfile and of the
# whole fixtures/dockerfiles corpus, against the parse-dockerfile crate (parse only) in
# the same run. Median of 101 runs each; prints a markdown table.
#
#   bench/dockerfile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release --locked -p kiln-builder --example parse_bench
