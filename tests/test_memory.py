"""What the viewer keeps between runs (rtsearch/viewer/memory.py), without a window: the
index shown last with its queries' history, and the indexes shown before with theirs."""

import json
from pathlib import Path

from rtsearch.viewer import memory


def test_an_index_shown_after_another_puts_that_one_first_among_those_shown_before(tmp_path):
    a, b, c = (tmp_path / f"{n}.dat" for n in "abc")
    memory.keep_shown(a, tmp_path / "pa", (("x.jpg", "y.jpg"), 1))
    assert memory.recall().recent is None
    assert memory.history_of(a, None) == (("x.jpg", "y.jpg"), 1)
    memory.keep_shown(b, tmp_path / "pb", None)
    kept = memory.recall()
    assert (kept.index, kept.base_dir, kept.history) == (b, tmp_path / "pb", None)
    assert kept.recent == (memory.Shown(a, tmp_path / "pa", ("x.jpg", "y.jpg"), 1),)
    assert (
        memory.history_of(a, None) == (("x.jpg", "y.jpg"), 1) and memory.history_of(b, None) is None
    )
    memory.keep_shown(c, tmp_path / "pc", None)
    memory.keep_shown(a, tmp_path / "moved", (("y.jpg",), 0))  # shown again: not listed twice
    kept = memory.recall()
    assert kept.index == a and [s.index for s in kept.recent] == [c, b]
    assert memory.history_of(a, None) == (("y.jpg",), 0)
    # the same index shown again (another version of it, its folder moved): no entry
    memory.keep_shown(a, tmp_path / "moved", None)
    assert [s.index for s in memory.recall().recent] == [c, b]


def test_those_shown_before_are_few_and_their_histories_short(tmp_path):
    long = tuple(f"{i:04d}-" + "n" * 90 + ".jpg" for i in range(200))
    for i in range(memory.RECENT_MAX + 3):
        memory.keep_shown(tmp_path / f"{i}.dat", tmp_path / f"p{i}", (long, 150))
    kept = memory.recall()
    assert len(kept.recent) == memory.RECENT_MAX
    assert kept.recent[0].index == tmp_path / f"{memory.RECENT_MAX + 1}.dat"
    shown = kept.recent[0]
    assert shown.history[shown.history_at] == long[150]
    assert len(json.dumps(list(shown.history))) <= memory.RECENT_HISTORY_BYTES + 2 * len(long)
    assert len(kept.history) > len(shown.history)  # (the one on show keeps more)
    assert memory.state_file().stat().st_size < memory.MAX_BYTES


def test_damaged_entries_of_those_shown_before_are_passed_over(tmp_path):
    memory.keep_shown(tmp_path / "a.dat", tmp_path / "pa", None)
    entry = json.loads(memory.state_file().read_text())
    entry["recent"] = [
        1,
        {"index": ""},
        {"index": str(tmp_path / "b.dat"), "base_dir": str(tmp_path / "pb"),
         "history": ["x.jpg"], "history_at": 5},
        {"index": str(tmp_path / "c.dat"), "base_dir": str(tmp_path / "pc"),
         "history": ["x.jpg", "y.jpg"], "history_at": 1},
    ]  # fmt: skip
    memory.state_file().write_text(json.dumps(entry))
    kept = memory.recall()
    assert kept.recent == (
        memory.Shown(tmp_path / "b.dat", tmp_path / "pb"),  # (its history's place out of it)
        memory.Shown(tmp_path / "c.dat", tmp_path / "pc", ("x.jpg", "y.jpg"), 1),
    )
    entry["recent"] = "nonsense"
    memory.state_file().write_text(json.dumps(entry))
    assert memory.recall().recent is None and memory.recall().index == tmp_path / "a.dat"


def test_a_history_is_cut_round_the_entry_shown_steps_back_first():
    names = [f"{i}.jpg" for i in range(10)]  # (7 bytes each, quoted)
    assert memory.fit(names, 5, 7 * 4) == (("2.jpg", "3.jpg", "4.jpg", "5.jpg"), 3)
    assert memory.fit(names, 1, 7 * 4) == (("0.jpg", "1.jpg", "2.jpg", "3.jpg"), 1)
    assert memory.fit(names, 1, 6) is None
    assert memory.fit(["é.jpg"], 0, 100) == (("é.jpg",), 0)  # (written as \\u00e9: 12)
    assert memory.fit(["é.jpg"], 0, 11) is None


def test_two_folders_of_one_name_are_told_apart_by_the_folder_above():
    """The Load dialog's list (recent.py) named them by their whole folder above, cut
    short in its narrow panel just where they differ; two indexes of one folder read the
    same."""
    from rtsearch.viewer.recent import _above

    a, b, c = (
        memory.Shown(Path(f"/{i}.dat"), Path(p))
        for i, p in enumerate(("/pics/moved/holiday", "/pics/holiday", "/x/moved/holiday"))
    )
    assert _above(b, [a, b]) == "pics" and _above(a, [a, b]) == "moved"
    assert _above(a, [a, b, c]) == "/pics/moved" and _above(c, [a, b, c]) == "/x/moved"
    # two indexes of one folder (another file, the viewer's own): by their file names
    d = memory.Shown(Path("/data/rtsearch/holiday-1a2b.dat"), Path("/x/moved/holiday"))
    assert _above(c, [a, c, d]) == "2.dat" and _above(d, [a, c, d]) == "holiday-1a2b.dat"
    assert _above(b, [b, c, d]) == "pics" and _above(a, [a, c, d]) == "/pics/moved"


def test_what_is_kept_with_an_index_applies_while_its_file_names_the_same_folder(tmp_path):
    """An index file written over by another folder's index still opened from the folder
    kept with it, at the history kept (the same names, in a generated set)."""
    a, b = tmp_path / "a.dat", tmp_path / "b.dat"
    memory.keep_shown(a, tmp_path / "chosen", (("x.jpg",), 0), "/old/pics")
    memory.keep_shown(b, tmp_path / "pb", None, "")  # (b names no folder)
    assert memory.folder_of(a, "/old/pics") == tmp_path / "chosen"
    assert memory.history_of(a, "/old/pics") == (("x.jpg",), 0)
    assert memory.folder_of(a, "/elsewhere") is None and memory.history_of(a, "/x") is None
    assert memory.folder_of(b, None) == tmp_path / "pb" and memory.folder_of(b, "/y") is None
    # kept by a version before: taken as it is
    assert memory.applies(memory.Shown(a, tmp_path / "chosen"), "/anything")
    # the file brought up to date in the folder its images were shown from (`update` after
    # the folder moved and was chosen in the viewer): its history was lost
    assert memory.history_of(a, str(tmp_path / "chosen")) == (("x.jpg",), 0)
    assert memory.folder_of(a, str(tmp_path / "chosen")) == tmp_path / "chosen"


def test_a_state_folder_that_cannot_be_written_is_said_once(tmp_path, monkeypatch, capsys):
    """A read-only home: the viewer's state was lost without a word, the next run started
    as the one before had left it."""
    blocked = tmp_path / "file"
    blocked.write_text("a file where the state folder should be")
    monkeypatch.setattr(memory, "state_file", lambda: blocked / "rtsearch" / "viewer.json")
    monkeypatch.setattr(memory, "unkept", "")
    memory.keep(k=7)
    memory.keep(k=8)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {blocked}/rtsearch/viewer.json: cannot keep the viewer's ")
    assert err.count("\n") == 1 and memory.unkept in err
