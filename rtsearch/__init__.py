"""rtsearch: realtime reverse image search.

Data flows one way: source -> decode -> extractor -> projection -> search -> view.
"""

__version__ = "0.1.0"

from rtsearch.errors import RtsearchError

__all__ = ["RtsearchError", "__version__"]
