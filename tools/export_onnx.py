#!/usr/bin/env python3
"""Export a backbone to an rtsearch ONNX model; see --help. Works from any directory.

python tools/export_onnx.py efficientnet-lite0 [--int8]
python tools/export_onnx.py vgg16 --weights vgg16-397923af.pth [--int8] [--calib DIR]
python tools/export_onnx.py vgg16 --download
"""

from __future__ import annotations

import sys
from pathlib import Path

# the checkout this script is in, first: an rtsearch installed from another checkout was
# imported instead (its models folder the default --out, its code exporting)
ROOT = Path(__file__).resolve().parent.parent
if (ROOT / "rtsearch" / "__init__.py").is_file():
    sys.path.insert(0, str(ROOT))

from rtsearch.export.cli import main  # noqa: E402 (after the path is set)

if __name__ == "__main__":
    sys.exit(main())
