"""rtsearch: realtime reverse image search.

Data flows one way: source -> decode -> extractor -> projection -> search -> view.
"""

import os

__version__ = "0.1.0"

# Read by onnxruntime as it is imported (everything here imports it later): its telemetry
# kept a device ID in the user's cache folder, and where it could not (a read-only or
# missing home) printed a coloured warning on every command. A user who wants it sets it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from rtsearch.errors import RtsearchError

__all__ = ["RtsearchError", "__version__"]
