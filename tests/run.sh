#!/usr/bin/env bash
# The test command (README.md): system packages, a virtualenv with emdenoise[dev]
# installed non-editable (so the wheel's contents are what gets tested), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v java >/dev/null || need_apt+=(default-jre-headless)
[ -f /usr/share/java/ij.jar ] || need_apt+=(imagej)
command -v xvfb-run >/dev/null || need_apt+=(xvfb xauth)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "note: ImageJ tests need: sudo apt-get install ${need_apt[*]} (they are skipped without them)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 is the CPU wheel on this kind of machine; training and simulation tests need them.
.venv/bin/python -m pip install -q ".[dev,train,simulate]"
# Real DM3/DM4, TIA SER/EMI and Velox EMD example files ship inside the hyperspy (GPL-3)
# and etspy (NIST public domain) wheels on PyPI: fetch them for the format tests instead of
# copying them into this repository. Without network the tests that need them skip.
examples=.cache/em-examples
if [ ! -d "$examples/hyperspy" ]; then
  mkdir -p "$examples/wheels"
  if .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
       --platform manylinux2014_x86_64 hyperspy==1.7.6 etspy==1.3.0 -d "$examples/wheels"; then
    .venv/bin/python - "$examples" <<'PY'
import sys, zipfile, pathlib
root = pathlib.Path(sys.argv[1])
for wheel in (root / "wheels").glob("*.whl"):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(("hyperspy/tests/io/", "etspy/tests/test_data/")):
                archive.extract(name, root)
PY
  else
    echo "note: EM example files could not be fetched; their format tests will skip" >&2
  fi
  rm -rf "$examples/wheels"
fi
export EMDENOISE_EM_EXAMPLES="$PWD/$examples"

.venv/bin/python -m pytest "$@"
