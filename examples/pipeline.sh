#!/usr/bin/env bash
# The main ncli pipeline on a real recording: macaque M1 during centre-out
# reaching (Stevenson et al. 2011; see examples/data/ATTRIBUTION.md).
#
#   convert (NWB -> store, 50 ms bins) -> embed (PCA latents) -> decode (hand velocity) -> info
#
# Each step prints the location of the store it wrote; the next step reads it on stdin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/data/m1_stevenson_2011.nwb"

echo "== ncli convert | embed | decode | info on $(basename "$data")" >&2
decoded=$(ncli convert "$data" --bin-size 0.05 \
          | ncli embed --method pca --dim 16 \
          | ncli decode --method ridge --target hand_velocity --lags 6)
ncli info "$decoded" --no-history

echo "== the same decoder on the 16 PCA latents instead of the 171 units" >&2
from_latents=$(echo "$decoded" | ncli decode --method ridge --target hand_velocity --latents pca --lags 6)

# The summary: hand-velocity R² (x, y) from the stored metrics.
ncli info "$decoded" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for sid, s in d["sessions"].items():
    m = s["metrics"]["predictions/ridge_hand_velocity"]
    xy = ", ".join(f"{v:.3f}" for v in m["r2"][:2])
    folds, r2 = m["n_folds"], m["r2_mean"]
    print(f"{sid}: hand-velocity R² (ridge on the units, 6 lags of 50 ms, {folds} blocked folds) = {r2:.3f}  (x, y: {xy})")
'
ncli info "$from_latents" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for sid, s in d["sessions"].items():
    m = s["metrics"]["predictions/ridge_hand_velocity"]
    r2 = m["r2_mean"]
    print(f"{sid}: hand-velocity R² (ridge on 16 PCA latents, 6 lags) = {r2:.3f}")
'
