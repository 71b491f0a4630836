"""The clipboard as a query: a picture copied (through wl-paste or xclip, here stood in for
by scripts on PATH that answer as they do), or the picture file a copied name points at."""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import make_image, write_video
from PIL import Image

from rtsearch import clipboard
from rtsearch.clipboard import NO_HELPER, NOTHING, clipboard_query, file_named
from rtsearch.errors import RtsearchError
from rtsearch.sources import READING, ClipboardSource, VideoSource, parse_source

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the helpers are Linux's")


def fake_helper(folder: Path, name: str, body: str) -> None:
    """A program called ``name`` in ``folder``, run by sh with the arguments it was given."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def only(monkeypatch, tmp_path):
    """PATH holding only the fake helpers made in it (none: no helper at all), X11; they
    call what they need by its full path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return bin_dir


def xclip_offering(bin_dir: Path, types: dict[str, Path | str], *, lists: bool = True) -> None:
    """A fake xclip: TARGETS lists ``types`` (or fails, as an old xclip holding the
    clipboard does when ``lists`` is False), each type gives its file's bytes or its text;
    -o without a type gives the text one."""
    cases = []
    if lists:
        names = "\\n".join(types)
        cases.append(f'  *"-target TARGETS"*) printf "{names}\\n" ;;')
    for kind, what in types.items():
        give = f'/bin/cat "{what}"' if isinstance(what, Path) else f"printf '%s' '{what}'"
        cases.append(f'  *"-target {kind}"*) {give} ;;')
    text = next((w for k, w in types.items() if not k.startswith("image/")), None)
    default = f"printf '%s' '{text}'" if isinstance(text, str) else "exit 1"
    cases.append('  *"-target "*) echo "Error: target not available" >&2; exit 1 ;;')
    cases.append(f"  *) {default} ;;")
    fake_helper(bin_dir, "xclip", 'case "$*" in\n' + "\n".join(cases) + "\nesac\n")


def test_a_copied_name_is_the_file_it_names_in_any_of_the_ways_it_comes(tmp_path, monkeypatch):
    picture = tmp_path / "a folder" / "été.png"
    picture.parent.mkdir()
    make_image(1).save(picture)
    monkeypatch.setenv("HOME", str(tmp_path))
    uri = "file://" + str(picture).replace(" ", "%20").replace("été", "%C3%A9t%C3%A9")
    for text in (
        str(picture),
        f"  '{picture}'\n",  # quoted, as a shell's copy of a name with a space
        f'"{picture}"',
        uri,  # a file manager's text/uri-list
        f"# copied by a file manager\r\n{uri}\r\n",
        "file://localhost" + uri.removeprefix("file://"),
        "~/a folder/été.png",
        f"x-special/nautilus-clipboard\ncopy\n{uri}\n",  # GNOME Files' copy
        f"copy\nfile://{tmp_path}/notes.txt\n{uri}",  # several: the picture among them
        f"/tmp/a\\ b\n{picture}",
    ):
        assert file_named(text) == picture, text
    (tmp_path / "notes.txt").write_text("")
    assert file_named(f"file://{tmp_path}/notes.txt\n{uri}") == picture
    assert file_named(f"file://{tmp_path}/notes.txt") == tmp_path / "notes.txt"  # said so
    for text in (
        None, "", "hello", "a folder/été.png",  # not absolute: whose folder?
        str(tmp_path / "gone.png"), str(tmp_path),  # no file, a folder
        "file://elsewhere" + str(picture),  # another machine's file
        "/" + "x" * 5000, "/tmp/a\0b",
    ):  # fmt: skip
        assert file_named(text) is None, text


def test_a_large_picture_pasted_is_decoded_reduced_and_named_at_its_size(only, tmp_path):
    """A 12000x9000 paste was decoded at full size, 1-2 s holding the interpreter lock for
    up to hundreds of ms at a time (a viewer frame of 464 ms): a live picture needs no more
    than LIVE_MIN_SIZE both ways. The message still says the size pasted."""
    from rtsearch.sources import LIVE_MIN_SIZE

    big = tmp_path / "big.jpg"
    make_image(6).resize((2400, 2100)).save(big, quality=90)
    xclip_offering(only, {"image/jpeg": big})
    source = ClipboardSource()
    frame = source.read()
    assert frame is not None and frame.image.shape == (1050, 1200, 3)  # JPEG at 1/2
    assert min(frame.image.shape[:2]) >= min(LIVE_MIN_SIZE)
    assert source.message == "query: clipboard (2400x2100, pasted)"
    named = ClipboardSource(str(big))  # the file copied by name: the same
    frame = named.read()
    assert frame is not None and frame.image.shape == (1050, 1200, 3)
    assert named.message == "query: big.jpg (2400x2100, pasted)"
    played = VideoSource(big)  # a picture file chosen with V: the same
    frame = played.read()
    assert frame is not None and frame.image.shape == (1050, 1200, 3)
    played.close()
    small = tmp_path / "small.jpg"
    make_image(6).resize((1900, 1500)).save(small, quality=90)
    frame = ClipboardSource(str(small)).read()  # halved, it would fall short: kept whole
    assert frame is not None and frame.image.shape == (1500, 1900, 3)


def test_a_picture_offered_is_read_in_the_type_offered_png_first(only, tmp_path):
    png, jpeg = tmp_path / "c.png", tmp_path / "c.jpg"
    Image.fromarray(np.full((30, 40, 3), (200, 10, 10), np.uint8)).save(png)
    Image.fromarray(np.full((30, 40, 3), (10, 10, 200), np.uint8)).save(jpeg, quality=95)
    xclip_offering(only, {"image/jpeg": jpeg, "image/png": png, "text/html": "<img src=x>"})
    image, where, _, file = clipboard_query()
    assert (
        where == "clipboard" and image.shape == (30, 40, 3) and tuple(image[5, 5]) == (200, 10, 10)
    )
    assert file is None  # (image data: trimmed as a live picture is)
    xclip_offering(only, {"TIMESTAMP": "1", "image/jpeg": jpeg})  # a browser's JPEG only
    image, *_ = clipboard_query()
    assert abs(int(image[5, 5, 2]) - 200) < 8 and image[5, 5, 0] < 20
    # transparency comes on white, as files' does
    cut = np.zeros((20, 20, 4), np.uint8)
    cut[5:15, 5:15] = (0, 0, 0, 255)
    Image.fromarray(cut).save(png)  # (RGBA, from its 4 channels)
    xclip_offering(only, {"image/png": png})
    image, *_ = clipboard_query()
    assert tuple(image[0, 0]) == (255, 255, 255) and tuple(image[10, 10]) == (0, 0, 0)


def test_text_that_names_a_picture_file_wins_and_other_text_is_no_picture(only, tmp_path):
    picture = tmp_path / "named.jpg"
    make_image(2).save(picture)
    xclip_offering(only, {"UTF8_STRING": f"file://{picture}", "text/uri-list": f"file://{picture}"})
    image, where, _, file = clipboard_query()
    assert where == "named.jpg" and image.shape == np.asarray(make_image(2)).shape
    assert file == picture  # (a file: searched as it is stored)
    xclip_offering(only, {"UTF8_STRING": "just some words"})
    with pytest.raises(RtsearchError, match=f"^{re.escape(NOTHING)}$"):
        clipboard_query()
    # a path of no file, of a folder: said so ("copy one first" said nothing of either);
    # a file manager's copy, a shell's quoted path, a URI
    gone = tmp_path / "gone dir" / "x.png"
    for text, said in (
        (str(gone), f"{gone}: no such file (named on the clipboard)"),
        (f"'{gone}'", f"{gone}: no such file (named on the clipboard)"),
        (f"file://{tmp_path}\n", f"{tmp_path}: is a folder, not a picture file"),
    ):
        with pytest.raises(RtsearchError, match=f"^{re.escape(said)}"):
            clipboard_query(text)  # (as the viewer's toolkit read it; no picture offered)
    # an old xclip holding the clipboard lists nothing and gives its text for any type
    fake_helper(only, "xclip", "printf 'just some words'\n")
    with pytest.raises(RtsearchError, match=f"^{re.escape(NOTHING)}$"):
        clipboard_query()
    # nothing at all on the clipboard
    fake_helper(only, "xclip", "echo 'Error: target TARGETS not available' >&2; exit 1\n")
    with pytest.raises(RtsearchError, match=f"^{re.escape(NOTHING)}$"):
        clipboard_query()
    # a broken picture offered as one is said so
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    xclip_offering(only, {"image/png": tmp_path / "bad.png"})
    with pytest.raises(RtsearchError, match=r"^the clipboard's picture: image/png that Pillow"):
        clipboard_query()


def test_wayland_reads_through_wl_paste(only, tmp_path, monkeypatch):
    png = tmp_path / "w.png"
    Image.fromarray(np.full((8, 9, 3), 77, np.uint8)).save(png)
    fake_helper(only, "wl-paste", f"""case "$*" in
  *--list-types*) printf 'text/plain\\nimage/png\\n' ;;
  *"--type image/png"*) /bin/cat "{png}" ;;
  *) printf 'not a file name' ;;
esac
""")  # fmt: skip
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    image, *_ = clipboard_query()
    assert image.shape == (8, 9, 3) and image[0, 0, 0] == 77


def test_no_helper_says_what_to_install_and_a_name_still_works(only, tmp_path):
    # never GLFW's text on X11: it aborted the viewer when the clipboard held none
    assert not clipboard.text_from_toolkit()
    with pytest.raises(RtsearchError, match=f"^{re.escape(NO_HELPER)}$"):
        clipboard_query("")
    picture = tmp_path / "given.png"
    make_image(3).save(picture)
    assert clipboard_query(str(picture))[1] == "given.png"


def test_a_program_that_holds_the_clipboard_and_never_answers_is_given_up(only, monkeypatch):
    fake_helper(only, "xclip", "exec /bin/sleep 30\n")
    monkeypatch.setattr(clipboard, "HELPER_TIMEOUT_S", 0.5)
    began = time.monotonic()
    with pytest.raises(RtsearchError, match=r"did not answer xclip in 0 s$"):
        clipboard_query()
    assert time.monotonic() - began < 5


def test_the_clipboard_source_gives_its_picture_once_and_says_what_it_is(only, tmp_path):
    png = tmp_path / "p.png"
    make_image(4).save(png)
    xclip_offering(only, {"image/png": png})
    assert parse_source("clipboard") == ("clipboard", "")
    with pytest.raises(ValueError, match="clipboard takes nothing after it"):
        parse_source("clipboard:x")
    source = ClipboardSource()
    frame = source.read()
    assert frame is not None and frame.row is None  # (a live picture: its borders trimmed)
    w, h = make_image(4).size
    assert source.message == f"query: clipboard ({w}x{h}, pasted)" and source.read() is None
    empty = ClipboardSource("")  # the toolkit's text, empty; no helper either
    os.unlink(only / "xclip")
    assert empty.read() is None and empty.message == NO_HELPER


def test_a_path_copied_from_a_shell_is_unescaped(tmp_path, monkeypatch):
    """A terminal's copy of a name holding spaces or quotes (tab completion writes
    `My\\ Pictures/`) named nothing: it was taken as written."""
    folder = tmp_path / "My Pictures"
    folder.mkdir()
    spaced, quoted = folder / "a b.png", folder / "it's.png"
    make_image(1).save(spaced)
    make_image(2).save(quoted)
    monkeypatch.setenv("HOME", str(tmp_path))
    escaped = str(tmp_path).replace(" ", "\\ ")
    for text, named in (
        (f"{escaped}/My\\ Pictures/a\\ b.png", spaced),
        ("~/My\\ Pictures/a\\ b.png", spaced),
        ("~/'My Pictures/a b.png'", spaced),
        (f"'{tmp_path}/My Pictures/it'\\''s.png'", quoted),  # a shell's quoting of a quote
        (f"{tmp_path}/My\\ Pictures/it\\'s.png", quoted),
    ):
        assert file_named(text) == named, text
    for text in (f"{tmp_path}/My\\ Pictures/a b.png c", f"'{spaced}", f"{spaced} {quoted}"):
        assert file_named(text) is None, text  # two words, an unpaired quote


def test_a_copied_video_file_is_played(only, tmp_path, monkeypatch):
    """A video file copied in a file manager was refused as not a picture; it plays, as
    one opened with V does."""
    clip = write_video(tmp_path / "clip one.avi", [5, 6], frames_each=3)
    notes = tmp_path / "notes.txt"
    notes.write_text("")
    assert file_named(f"{notes}\nfile://{clip}") == clip  # a video before other files
    picture = tmp_path / "p.png"
    make_image(4).save(picture)
    assert file_named(f"{clip}\n{picture}") == picture  # a picture first of all
    assert clipboard_query(str(clip)) == clip
    source = ClipboardSource(f"file://{clip}")
    assert source.message == READING  # said until the clipboard is read
    frames = []
    end = time.monotonic() + 5
    while len(frames) < 8 and time.monotonic() < end:  # past its 6 frames: it loops
        frame = source.read()
        if frame is not None:
            frames.append(frame.image)
        time.sleep(0.005)
    assert len(frames) == 8 and source.name == "video:clip one.avi" and source.message == ""
    first = np.asarray(make_image(5), dtype=float)
    assert np.abs(frames[0] - first).mean() < 8 and np.abs(frames[6] - first).mean() < 8
    source.set_paused(True)
    assert source.video is not None and source.video.paused
    source.close()
    gone = ClipboardSource(str(tmp_path / "nothing.avi"))
    assert gone.read() is None and gone.message == NO_HELPER  # names no file: no picture
    # a file named like a video that V refuses is refused here too, the source on show
    # kept (it replaced a playing video with an empty page)
    text = tmp_path / "text.avi"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(RtsearchError) as refused:
        clipboard_query(str(text))
    assert str(refused.value) == f"{text}: a text file, not a video (named on the clipboard)"
    pasted = ClipboardSource(str(text))
    assert pasted.read() is None and pasted.failed and pasted.message == str(refused.value)


def test_files_copied_in_explorer_are_a_picture_or_a_video(tmp_path, monkeypatch):
    """Windows: ImageGrab gives the files copied in Explorer as a list of names (stood in
    for here); the first picture is searched, else a video is played."""
    from PIL import ImageGrab

    picture, clip = tmp_path / "p.png", write_video(tmp_path / "c.avi", [1], frames_each=2)
    make_image(3).save(picture)
    notes = tmp_path / "notes.txt"
    notes.write_text("")
    monkeypatch.setattr(sys, "platform", "win32")
    for copied, expected in (([notes, clip], clip), ([clip, picture], picture)):
        monkeypatch.setattr(ImageGrab, "grabclipboard", lambda c=copied: [str(p) for p in c])
        got = clipboard_query("")
        if expected == clip:
            assert got == clip
        else:
            image, where, _, _ = got
            assert where == "p.png" and image.shape == (120, 160, 3)
