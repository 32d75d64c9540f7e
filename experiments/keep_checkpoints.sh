#!/usr/bin/env bash
# Put the checkpoints of unfinished depth runs into git, so that they continue in another session on another
# machine (checkpoints are ignored by .gitignore: 20-60 MB each); a finished run's checkpoint (its folder has
# run_depth.sh's `done` marker) leaves the index again.  Run it before a session ends, then commit:
#
#   bash experiments/keep_checkpoints.sh && git commit -m "Depth: checkpoints of unfinished runs"
#
# Checkpoints are written atomically (a temporary file renamed into place), so a running training can be left
# running.  Resume a run with the same run_depth.sh command: it continues from the committed checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-experiments/results/depth}
find "$root" -name '*.ckpt.npz' -print0 | while IFS= read -r -d '' ckpt; do
    if [ -f "$(dirname "$ckpt")/done" ]; then
        git rm -q --cached --ignore-unmatch -- "$ckpt"
    else
        git add -f -- "$ckpt"
        echo "kept: $ckpt ($(du -h "$ckpt" | cut -f1))"
    fi
done
