#!/bin/sh
# Per-action cost of the cmod sandbox: runs a do-nothing builder (`/bin/true`) through
# `cmod_sandbox::run` in the off, landlock and full modes, with the minimal toolchain of
# `true` and with the full clang-19 closure, against a plain `fork+exec` spawn.
# Results go to bench/RESULTS.md, section "Sandbox cost per action".
#
# A second run makes the caller a 1 GiB process first, as a realiser holding a large
# build graph may be, to show the cost of copying page tables on fork.
#
# Usage: bench/sandbox_cost.sh [ITERATIONS]   (default 500; the 1 GiB run uses a fifth)
set -eu
cd "$(dirname "$0")/.."
iterations="${1:-500}"
cargo build --release -q -p cmod-sandbox --example sandbox_cost
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD) $(uname -sr) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
./target/release/examples/sandbox_cost "$iterations"
./target/release/examples/sandbox_cost $((iterations / 5)) 1024
