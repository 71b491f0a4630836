#!/usr/bin/env bash
# The tests again on the lowest versions pyproject.toml allows (uv's lowest-direct
# resolution: each dependency the project names, at its minimum), in a virtual environment
# of their own (default /tmp/rtsearch-lowest, made afresh). Arguments after the folder go
# to pytest (default: the whole suite but the slow tests). Not part of .ci/run: run it when
# a minimum in pyproject.toml changes, or code uses something newer. System packages as
# tools/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/rtsearch-lowest}
shift || true
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q uv
"$venv/bin/python" -m uv pip install -q --python "$venv/bin/python" --resolution lowest-direct \
    -e '.[test]'
# what the resolution gave, for the record
"$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE \
    '^(numpy|scipy|onnx|onnxruntime|h5py|pillow|opencv-python-headless|mss|dearpygui|platformdirs|psutil|scikit-image|ray|faiss-cpu|watchdog|pillow[-_]heif)==' \
    || true
# the tests start programs by name (ray): this environment's, not the machine's
export PATH="$venv/bin:$PATH"
if [ $# -eq 0 ]; then
    set -- -q -m "not slow"
fi
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
