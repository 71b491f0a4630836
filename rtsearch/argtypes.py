"""Argument types shared by the commands' parsers: each turns a typed value into what the
command takes, or refuses it in argparse's one line naming the argument."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def whole_number(text: str) -> int:
    """``text`` as an int; argparse's own message for one that is not names the function
    ("invalid positive_int value")."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def file_path(text: str) -> Path:
    """A file to write: a name ending in a slash names a folder (Path drops the slash, and
    the index was written as a file with the folder's name)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(
            f"{text} names a folder; give the file's name, e.g. {text}index.dat"
        )
    return Path(text)


def in_range(bounds: tuple[int, int], above: str = ""):
    """An argparse type: a whole number from bounds[0] to bounds[1]; ``above`` is said of a
    larger one (what to do instead)."""
    lo, hi = bounds

    def parse(text: str) -> int:
        value = whole_number(text)
        if not lo <= value <= hi:
            instead = f" ({above})" if above and value > hi else ""
            raise argparse.ArgumentTypeError(f"must be {lo}-{hi}{instead}, got {value}")
        return value

    return parse


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


MAX_THREADS = 1024


def thread_count(text: str) -> int:
    """--threads: 0 (every core this process may use) to MAX_THREADS (20,000 were taken:
    29 s and 517 MB to make them for one picture)."""
    value = whole_number(text)
    if not 0 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be 0-{MAX_THREADS} (0: every core), got {value}")
    return value


def seed(text: str) -> int:
    value = whole_number(text)
    if not 0 <= value < 2**63:  # numpy wants it non-negative, the .dat file in 64 bits
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63-1, got {value}")
    return value
