"""Keyboard shortcuts: the table the help overlay prints (SHORTCUTS), and the keys the
key handler maps to actions (PLAIN_KEYS, CTRL_KEYS: a few more keys than the table shows,
for layouts where '+' and '?' need a shift)."""

from __future__ import annotations

# (key as shown, action, description); the help overlay prints this table as is.
SHORTCUTS: tuple[tuple[str, str, str], ...] = (
    ("R", "random", "query with a random image from the index"),
    ("W", "webcam", "query with the webcam"),
    ("V", "video", "query with a video file (again: choose another file)"),
    ("S", "screen", "query with the screengrab region"),
    ("G", "grab_mode", "set the screengrab window (click, drag it or its corners)"),
    ("M", "follow_mouse", "query with the screen under the mouse, wherever it points"),
    ("Ctrl+V", "paste", "query with the picture on the clipboard (or the picture file copied)"),
    ("B", "trim", "trim plain borders off live pictures before searching (on / off)"),
    ("Space", "pause", "pause / resume the live source"),
    ("+", "more", "more results"),
    ("-", "fewer", "fewer results"),
    (
        "Backspace",
        "back",
        "back to the query before (a random picture, a result made the query); also Alt+Left "
        "and the mouse's back button",
    ),
    ("Alt+Right", "forward", "forward again; also Shift+Backspace and the mouse's forward button"),
    (
        "Ctrl+O",
        "load",
        "load an index (.dat), then its image folder; the indexes shown before are listed "
        "beside the files",
    ),
    ("A", "analyze", "analyze a folder of images into an index"),
    ("Ctrl+S", "save", "save the index"),
    (
        "Ctrl+Q",
        "quit",
        "close the viewer (during an analysis it asks first; the analysis goes on from where "
        "it stopped when its folder is analysed again)",
    ),
    ("Ctrl++", "zoom_in", "draw the viewer larger (text, controls, rows)"),
    ("Ctrl+-", "zoom_out", "draw the viewer smaller"),
    ("Ctrl+0", "zoom_reset", "draw the viewer at the desktop's scale"),
    ("F1 or ?", "help", "show / hide this help"),
    (
        "Esc",
        "escape",
        "close help, a file dialog or a question, cancel the grab-window mode, or unselect "
        "a result",
    ),
    (
        "Enter",
        "",
        "in a file dialog: OK; in a question: its first answer; in the grab-window "
        "mode: use the rectangle; else: the selected result becomes the query",
    ),
    (
        "arrow keys",
        "",
        "select a result (Home: the first, End: the last); in the grab-window mode: move "
        "the rectangle (with Shift: size it; with Ctrl: by a pixel)",
    ),
    ("Ctrl+Enter", "open_selected", "open the selected result in the system image viewer"),
    ("Ctrl+C", "copy_result", "copy the selected result's path (none selected: the first's)"),
    ("Tab", "", "into the header height, thumb height, num results and dims boxes: type, Enter"),
    ("Page Up", "page_up", "scroll the results up a page (the help, where it shows)"),
    ("Page Down", "page_down", "scroll the results down a page"),
    ("hover", "", "a result shows its rank, file and distance"),
    ("click", "", "a result becomes the query"),
    ("double-click", "", "open a result in the system image viewer"),
    ("right-click", "", "copy a result's path to the clipboard"),
)

PLAIN_KEYS = {
    "R": "random",
    "W": "webcam",
    "V": "video",
    "S": "screen",
    "G": "grab_mode",
    "M": "follow_mouse",
    "B": "trim",
    "Space": "pause",
    "+": "more",
    "=": "more",  # '+' without shift on most layouts
    "]": "more",  # the German '+', said where a US keyboard has ']' (ui.KEY_NAMES)
    "-": "fewer",
    "F1": "help",
    "?": "help",
    "/": "help",  # '?' without shift
    "Escape": "escape",
    "Left": "select_left",
    "Right": "select_right",
    "Up": "select_up",
    "Down": "select_down",
    "Home": "select_first",
    "End": "select_last",
    "Enter": "query_selected",
    "Page Up": "page_up",
    "Page Down": "page_down",
    "A": "analyze",
    "Backspace": "back",
    "Alt+Left": "back",
    "Browser Back": "back",
    "Shift+Backspace": "forward",
    "Alt+Right": "forward",
    "Browser Forward": "forward",
}
# keys that are others with Shift held: '?' is Shift+'/' on a US keyboard, Shift+ß on a
# German one (said where a US keyboard has '-': ui.KEY_NAMES), Shift+',' on a French one.
# Where the layout cannot be read (off X11, a press let go before its frame), US Shift+'-'
# and Shift+',' open the help too
SHIFTED = {"/": "?", "-": "?", ",": "?", "Backspace": "Shift+Backspace"}
CTRL_KEYS = {
    "O": "load",
    "S": "save",
    "V": "paste",
    "+": "zoom_in",
    "=": "zoom_in",  # '+' without shift (a key read as the layout types it: layouts.py)
    "]": "zoom_in",  # the German '+'
    "-": "zoom_out",
    "0": "zoom_reset",
    "Enter": "open_selected",
    "C": "copy_result",
    "Q": "quit",
}


def key_for(action: str) -> str:
    """The key the help shows for ``action`` (its first, where it has two): what a button
    names after its label."""
    return next(key for key, act, _ in SHORTCUTS if act == action).split(" or ")[0]


def action_for(key: str, ctrl: bool = False) -> str | None:
    """The action a key press asks for, or None."""
    return (CTRL_KEYS if ctrl else PLAIN_KEYS).get(key)
