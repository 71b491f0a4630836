#!/usr/bin/env bash
# Set up a fresh machine for the tests and run them: system packages for the virtual
# display (Debian/Ubuntu, when root), the package with its test extra, lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# xdotool drives the viewer's mouse and keyboard tests; xclip serves its clipboard tests;
# the viewer draws in DejaVu Sans Mono where it is installed (names beyond ASCII); openbox
# minimises its window in a test of signals.
if ! { command -v Xvfb && command -v xdotool && command -v xclip && command -v openbox \
        && [ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ]; } >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    apt-get install -y -qq xvfb xauth xdotool xclip libgl1-mesa-dri libglx-mesa0 \
        fonts-dejavu-core openbox >/dev/null
fi
python3 -m pip install -q -e '.[test]'
python3 -m ruff check rtsearch tests tools
python3 -m pytest "$@"
