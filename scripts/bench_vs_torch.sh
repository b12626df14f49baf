#!/usr/bin/env bash
# Easel against PyTorch on this machine, one run after the other, same size and thread count:
#
#   scripts/bench_vs_torch.sh PYTHON [SIZE] [REPEATS] [ROUNDS]
#
# PYTHON is an interpreter with torch and diffusers (a venv outside the repo, see
# benches/torch_reference.py). The two alternate for ROUNDS rounds (default 3), so that a shared
# machine's slow minutes fall on both; each figure is the best over all rounds. Prints every report
# and the ratios Easel / PyTorch (below 1 is faster).
set -euo pipefail
python=${1:?usage: scripts/bench_vs_torch.sh PYTHON [SIZE] [REPEATS]}
size=${2:-512}
repeats=${3:-2}
rounds=${4:-3}
threads=$(nproc)
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
easel_out=$(mktemp) torch_out=$(mktemp)
trap 'rm -f "$easel_out" "$torch_out"' EXIT
for round in $(seq "$rounds"); do
    echo "== easel, round $round (RAYON_NUM_THREADS=$threads)"
    RAYON_NUM_THREADS=$threads "$root/target/release/easel" bench --size "$size" --repeats "$repeats" | tee -a "$easel_out"
    echo "== pytorch, round $round"
    "$python" "$root/benches/torch_reference.py" --size "$size" --repeats "$repeats" --threads "$threads" | tee -a "$torch_out"
done
# The best (lowest) value of a line over the rounds.
pick() { grep "^$2" "$1" | sed -E 's/.*: ([0-9.]+) (s|GiB).*/\1/' | sort -g | head -1; }
echo "== Easel / PyTorch (same machine, best of $rounds alternating rounds, $threads threads, ${size}x${size})"
for what in "CLIP encode" "UNet step" "VAE decode" "ControlNet" "peak RSS"; do
    e=$(pick "$easel_out" "$what") t=$(pick "$torch_out" "$what")
    awk -v w="$what" -v e="$e" -v t="$t" 'BEGIN { printf "%-12s easel %8.2f  torch %8.2f  ratio %.2f\n", w, e, t, e / t }'
done
