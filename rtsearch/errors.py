"""The one exception type that reaches the user as a single line on stderr."""

from pathlib import Path


class RtsearchError(Exception):
    """A problem with user input (a file, an argument): its message is the whole story."""


def require_folder(path: Path | str) -> Path:
    """``path`` as a Path if it is a folder; else the one-line reason: missing or not one."""
    path = Path(path)
    if not path.exists():
        raise RtsearchError(f"{path}: folder not found")
    if not path.is_dir():
        raise RtsearchError(f"{path}: not a folder")
    return path
