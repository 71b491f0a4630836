"""Text broken into lines that fit a width in the viewer's font, between words, and in a
long path after a '/'."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from rtsearch.errors import stray_bytes_escaped

_advances: dict[float, dict[str, int]] = {}  # font size -> character -> advance (pixels)


def wrap_words(text: str, available: float, size: float | None = None) -> list[str]:
    """``text`` broken between words into lines no wider than ``available`` when drawn at
    font ``size`` (default: the font's own). A word wider than that (a long path) is broken
    after a '/' where one fits, else where the line is full; never after a dot, as Dear
    PyGui's own wrapping does ('/root/.' then 'local/...'). A name's bytes that are not
    UTF-8 come escaped: given raw, Dear PyGui failed in its font code ("Error parsing Dear
    PyGui command") or crashed the process at the next frame."""
    text = stray_bytes_escaped(text)
    advance = _advance(text, size)
    if advance is None:
        return [text]  # no font yet
    lines: list[str] = []
    for word in text.split(" "):
        first, *rest = _pieces(word, available, advance)
        wider = f"{lines[-1]} {first}" if lines else first
        if lines and sum(advance[c] for c in wider) <= available:
            lines[-1] = wider
        else:
            lines.append(first)
        lines += rest
    return [line.strip() for line in lines] or [""]


def wrap_lines(text: str, available: float) -> list[str]:
    """Each of ``text``'s lines wrapped by wrap_words, at the font's own size."""
    return [line for part in text.split("\n") for line in wrap_words(part, available)]


def _pieces(word: str, available: float, advance: dict[str, int]) -> list[str]:
    """``word`` as it goes on lines ``available`` wide: whole when it fits, else in pieces
    that do, each ending after a '/' where one fits."""
    pieces = []
    while sum(advance[c] for c in word) > available:
        width, fit = 0, 1
        for i, c in enumerate(word):
            width += advance[c]
            if width > available:
                break
            fit = i + 1
        cut = word.rfind("/", 0, fit) + 1  # just after the last '/' that fits
        fit = cut if cut > 1 else fit
        pieces.append(word[:fit])
        word = word[fit:]
    return [*pieces, word] if word or not pieces else pieces


def text_width(text: str, size: float | None = None) -> float:
    """How wide ``text`` is drawn at font ``size`` (default: the font's own), in pixels."""
    text = stray_bytes_escaped(text)
    advance = _advance(text, size)
    if advance is None:
        return 8.0 * len(text)  # no font yet: about the default font's width
    return float(sum(advance[c] for c in text))


def _advance(text: str, size: float | None) -> dict[str, int] | None:
    """Each character's advance at font ``size``, those of ``text`` measured if new; None
    before the font is loaded."""
    one = dpg.get_text_size("A")
    if one is None or not one[1]:
        return None
    size = size or one[1]
    advance = _advances.setdefault(size, {})
    for c in set(text).difference(advance):
        # drawn larger than the font, each character's advance is rounded to whole pixels
        width = (dpg.get_text_size(c) or (0, 0))[0]
        advance[c] = round(width * size / one[1])
    return advance
