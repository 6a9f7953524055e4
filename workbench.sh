#!/usr/bin/env bash
# One script for a fresh machine:
#   ./workbench.sh start   set everything up, then serve the workbench on http://127.0.0.1:7860
#   ./workbench.sh test    set everything up, then run the test suite
#   ./workbench.sh setup   only set up (virtual environment, packages, offline weights, numba cache)
# Add --fetch-all to start or setup to also download every other checkpoint (several hundred MB), e.g.
# before a teaching session in a room without network. Without it, checkpoints are downloaded on first
# use; MATTING_OFFLINE=1 turns that off. Without network the app still starts and runs every method
# whose weights are here (the classical ones, U²-NetP and the selfie segmenter after one setup).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
export GRADIO_ANALYTICS_ENABLED=False

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements.sha256"
  local wanted
  wanted=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "== installing requirements (torch 2.13.0 CPU, pymatting, gradio, ...)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # opencv-contrib-python-headless replaces opencv-python-headless (both own cv2/): remove the plain one first
    "$VENV/bin/python" -m pip uninstall --quiet -y opencv-python-headless >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
    echo "$wanted" > "$stamp"
  fi
  echo "== offline default weights (U²-NetP, MediaPipe selfie segmenter)"
  "$VENV/bin/python" -m matting.weights fetch --default ||
    echo "== (could not fetch the default weights; the classical methods still work)" >&2
  if [ "$FETCH_ALL" = 1 ]; then
    echo "== every checkpoint (--fetch-all)"
    "$VENV/bin/python" -m matting.weights fetch --all ||
      echo "== (some checkpoints could not be fetched; see the messages above)" >&2
  fi
  echo "== warming the numba cache (.cache/numba)"
  "$VENV/bin/python" -m matting.warmup
}

FETCH_ALL=0
COMMAND=${1:-}
[ $# -gt 0 ] && shift
if [ "$COMMAND" != test ] && [ "${1:-}" = --fetch-all ]; then
  FETCH_ALL=1
  shift
fi

case "$COMMAND" in
  start)
    setup
    exec "$VENV/bin/python" app.py
    ;;
  test)
    setup
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: $0 start [--fetch-all] | test [pytest args] | setup [--fetch-all]" >&2
    exit 2
    ;;
esac
