#!/usr/bin/env bash
# Same-run comparison of benchmarks/bench_training.py between an earlier commit and the working tree,
# alternating (earlier, current, earlier, current, ...), so that both see the same machine state.
#
#   bash benchmarks/compare_commits.sh REV [ROUNDS] [-- bench_training options]
#
# REV is checked out in a temporary git worktree and imported through PYTHONPATH (its own benchmark script
# runs against its own package); the current tree runs from .venv as usual.  Default: 2 rounds,
# --examples 2000 --repeats 2.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: compare_commits.sh REV [ROUNDS] [-- options]}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
options=${*:-"--examples 2000 --repeats 2"}
tree=$(mktemp -d /tmp/circuitprop-compare.XXXXXX)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
git worktree add -q --detach "$tree" "$rev"
here=$(pwd)
echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; earlier: $(git rev-parse --short "$rev"), current: working tree of $(git rev-parse --short HEAD)"
for i in $(seq "$rounds"); do
    echo "=== earlier ($rev), round $i"
    (cd /tmp && PYTHONPATH="$tree" "$here/.venv/bin/python" "$tree/benchmarks/bench_training.py" $options)
    echo "=== current, round $i"
    .venv/bin/python benchmarks/bench_training.py $options
done
