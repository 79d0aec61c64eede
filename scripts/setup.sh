#!/usr/bin/env bash
# Create (or update) the course's virtual environment in .venv and install course_lib.
# torch==2.13.0 is installed first as a CPU build, so pip never pulls a multi-GB CUDA wheel; then every other
# package at the exact version requirements.lock pins (refresh it on purpose with `make lock`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.course-installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt requirements.lock ] \
   && python -c "import course_lib, torch" 2>/dev/null; then
  echo "==> environment up to date ($VENV)"
  exit 0
fi

python -m pip install --quiet --upgrade pip
if ! python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  WHEELS="${TORCH_WHEEL_DIR:-/opt/wheels}"
  if ls "$WHEELS"/torch-2.13.0*.whl >/dev/null 2>&1; then
    echo "==> installing torch 2.13.0 from local wheels in $WHEELS"
    pip install --quiet --find-links "$WHEELS" "torch==2.13.0"
  elif [ "$(uname -s)" = "Linux" ]; then
    echo "==> installing torch 2.13.0 (CPU build)"
    pip install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
      || pip install --quiet "torch==2.13.0"
  else
    pip install --quiet "torch==2.13.0"
  fi
fi
echo "==> installing course_lib and the locked versions of its dependencies (requirements.lock)"
pip install --quiet -r requirements.lock -e ".[test]"
# promtool (Prometheus's rule checker) for tests/test_deploy.py: taken from Debian's prometheus package without
# installing it (no service is started); skipped quietly where apt-get is not available.
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$VENV/bin/promtool" ] && command -v apt-get >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  venv_bin=$(cd "$VENV/bin" && pwd)
  if (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb x \
      && cp x/usr/bin/promtool "$venv_bin/promtool"); then
    echo "==> promtool $("$VENV/bin/promtool" --version 2>&1 | head -1 | cut -d' ' -f3) in $VENV/bin (from Debian's prometheus package)"
  else
    echo "==> promtool not available (apt-get download prometheus failed): the alert-rule tests will be skipped"
  fi
  rm -rf "$tmp"
fi
touch "$STAMP"
echo "==> done: $(python -c 'import torch, sentence_transformers as st; print("torch", torch.__version__, "| sentence-transformers", st.__version__)')"
