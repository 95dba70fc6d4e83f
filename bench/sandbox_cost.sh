#!/bin/sh
# Per-action cost of the cmod sandbox: runs a do-nothing builder (`/bin/true`) through
# `cmod_sandbox::run` in the off, landlock and full modes, with the minimal toolchain of
# `true` and with the full clang-19 closure, against a plain `fork+exec` spawn.
# Results go to bench/RESULTS.md, section "Sandbox cost per action".
#
# Usage: bench/sandbox_cost.sh [ITERATIONS]   (default 500)
set -eu
cd "$(dirname "$0")/.."
iterations="${1:-500}"
cargo build --release -q -p cmod-sandbox --example sandbox_cost
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD) $(uname -sr) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
exec ./target/release/examples/sandbox_cost "$iterations"
