#!/usr/bin/env bash
# Easel against PyTorch on this machine, one run after the other, same size and thread count:
#
#   scripts/bench_vs_torch.sh PYTHON [SIZE] [REPEATS]
#
# PYTHON is an interpreter with torch and diffusers (a venv outside the repo, see
# benches/torch_reference.py). Prints both reports and the ratios Easel / PyTorch (below 1 is faster).
set -euo pipefail
python=${1:?usage: scripts/bench_vs_torch.sh PYTHON [SIZE] [REPEATS]}
size=${2:-512}
repeats=${3:-2}
threads=$(nproc)
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
easel_out=$(mktemp) torch_out=$(mktemp)
trap 'rm -f "$easel_out" "$torch_out"' EXIT
echo "== easel (RAYON_NUM_THREADS=$threads)"
RAYON_NUM_THREADS=$threads "$root/target/release/easel" bench --size "$size" --repeats "$repeats" | tee "$easel_out"
echo "== pytorch"
"$python" "$root/benches/torch_reference.py" --size "$size" --repeats "$repeats" --threads "$threads" | tee "$torch_out"
pick() { grep -m1 "^$2" "$1" | sed -E 's/.*: ([0-9.]+) (s|GiB).*/\1/'; }
echo "== Easel / PyTorch (same machine, one run, $threads threads, ${size}x${size})"
for what in "CLIP encode" "UNet step" "VAE decode" "ControlNet" "peak RSS"; do
    e=$(pick "$easel_out" "$what") t=$(pick "$torch_out" "$what")
    awk -v w="$what" -v e="$e" -v t="$t" 'BEGIN { printf "%-12s easel %8.2f  torch %8.2f  ratio %.2f\n", w, e, t, e / t }'
done
