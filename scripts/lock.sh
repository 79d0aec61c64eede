#!/usr/bin/env bash
# Refresh requirements.lock on purpose (`make lock`): exact versions of every package the course installs,
# resolved from pyproject.toml (with the test extra) for every platform and Python the course supports.
#
# torch is installed first, as a CPU build, by scripts/setup.sh; its CUDA-only dependencies (nvidia-*,
# cuda-*, triton) are left out of the lock so that installing it never pulls gigabytes of GPU libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
UV_VERSION="0.13.8"
if ! "$VENV/bin/uv" --version 2>/dev/null | grep -q "$UV_VERSION"; then
  "$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
fi
tmp=$(mktemp)
# Start from the current lock: uv keeps every pin that still satisfies pyproject.toml and resolves only what is
# new or no longer fits (`make lock LOCK_ARGS=--upgrade` re-resolves everything to the newest allowed).
cp requirements.lock "$tmp"
"$VENV/bin/uv" pip compile pyproject.toml --extra test --universal --python-version 3.10 \
  --quiet --no-header --no-annotate --output-file "$tmp" "$@"
{
  echo "# requirements.lock: exact versions of everything the course installs (made by \`make lock\`, scripts/lock.sh)."
  echo "# Installed by scripts/setup.sh after torch's CPU build; torch's CUDA-only dependencies are left out."
  echo "# To add a dependency: edit pyproject.toml, run \`make lock\` (other pins stay). To upgrade on purpose: \`make lock LOCK_ARGS=--upgrade\`, then \`make test\`."
  grep -v -E '^(nvidia-|cuda-|triton)' "$tmp"
} > requirements.lock
rm -f "$tmp"
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages"
