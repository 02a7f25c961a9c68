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
.venv/bin/python -m pip install -q ".[dev]"
.venv/bin/python -m pytest "$@"
