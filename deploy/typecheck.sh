#!/bin/sh
# mypy --strict over the package, the tests and the benchmarks, from this checkout.
#
# The package's folders sit at the top level (agent/, cli/, ...) and become meterlink.* only once
# installed (pyproject.toml's package-dir), a mapping mypy does not follow: run on the folders, mypy
# would resolve `meterlink.*` to whatever copy is installed, or to nothing. So this builds a throw-away
# tree of symlinks, meterlink/{agent,cli,...} -> this checkout's folders, from that same mapping, and
# checks the tree with the tests and benchmarks beside it. Errors name the checkout's paths.
#
#   deploy/typecheck.sh                       everything
#   deploy/typecheck.sh agent/store.py tests/agent   report on these only (imports are still followed)
#
# mypy comes from $METERLINK_VENV (default ./.venv); its cache lives in .mypy_cache/checkout.
set -eu
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV="${METERLINK_VENV:-.venv}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "typecheck: no $PY (set METERLINK_VENV to a venv with mypy)" >&2; exit 2; }
# mypy runs from inside the throw-away tree below: a relative venv path (.venv, as CI has it) must
# be made absolute first.
PY="$(cd "$(dirname "$PY")" && pwd)/python"

TREE=$(mktemp -d "${TMPDIR:-/tmp}/meterlink-typecheck.XXXXXX")
trap 'rm -rf "$TREE"' EXIT
trap 'exit 130' INT TERM

# The tree mirrors the wheel: a link per entry of pyproject's package-dir.
"$PY" - "$REPO" "$TREE" <<'EOF'
import sys, tomllib
from pathlib import Path

repo, tree = Path(sys.argv[1]), Path(sys.argv[2])
mapping = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
for package, folder in sorted(mapping.items()):
    target = tree.joinpath(*package.split("."))
    if package == "meterlink":  # the root: its own files, with the subpackages linked in beside them
        target.mkdir()
        for entry in (repo / folder).glob("*.py"):
            (target / entry.name).symlink_to(entry)
    else:
        target.symlink_to(repo / folder, target_is_directory=True)
EOF
ln -s "$REPO/tests" "$TREE/tests"
ln -s "$REPO/bench" "$TREE/bench"

# Checkout paths -> tree paths (agent/x.py -> meterlink/agent/x.py), and back for the report.
if [ $# -eq 0 ]; then
    set -- meterlink tests bench
else
    for path in "$@"; do
        [ -e "$path" ] || { echo "typecheck: $path: no such file or folder" >&2; exit 2; }
        shift
        path=${path%/}
        case "$path" in
            src/meterlink) for f in src/meterlink/*.py; do set -- "$@" "meterlink/${f##*/}"; done ;;
            src/meterlink/*) set -- "$@" "meterlink/${path#src/meterlink/}" ;;
            tests | tests/* | bench | bench/*) set -- "$@" "$path" ;;
            *) set -- "$@" "meterlink/$path" ;;
        esac
    done
fi

# Tests import their helpers as `support` (tests/), `faultkit` and `powercut` (tests/faults), the
# benchmarks `_common` (bench/), as pytest and `python bench/x.py` put those folders on sys.path.
# Explicit package bases name each test by its path below tests/ (e2e.test_receipts and
# wire.test_receipts), so files that share a base name stay apart.
status=0
(cd "$TREE" && MYPYPATH="$TREE/tests:$TREE/tests/faults:$TREE/bench" "$PY" -m mypy --strict \
    --config-file "$REPO/pyproject.toml" --cache-dir "$REPO/.mypy_cache/checkout" \
    --explicit-package-bases "$@") >"$TREE/report" 2>&1 || status=$?
sed -e 's#^meterlink/\([^/]*\.py\)#src/meterlink/\1#' -e 's#^meterlink/##' "$TREE/report"
exit "$status"
