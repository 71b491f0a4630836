"""Back and forward through the queries (rtsearch/viewer/history.py), without a window."""

import json
from pathlib import Path

from rtsearch.viewer.history import MAX_ENTRIES, History

A, B, C, D = (Path(f"/pics/{n}.jpg") for n in "abcd")


def rows(*files: Path):
    """An index holding ``files``: their rows in it."""
    return {f: i for i, f in enumerate(files)}.get


def walked(*files: Path) -> History:
    h = History()
    for f in files:
        h.arrived(f)
    return h


def test_queries_are_kept_in_order_and_a_step_back_goes_to_the_one_before():
    h = walked(A, B, B, C)  # (B shown again: more results)
    assert h.files == [A, B, C] and h.at == 2
    index = rows(A, B, C)
    assert h.target(-1, C, index) == (1, 1)
    assert h.target(1, C, index) is None  # nothing ahead
    assert h.can_step(C) == (True, False)
    h.went(1)
    assert h.going == B and h.can_step(C) == (True, True)
    h.arrived(C)  # the worker's picture from before the step: not a new query
    assert h.files == [A, B, C] and h.at == 1
    h.arrived(B)  # the step's picture
    assert h.going is None and h.target(-1, B, index) == (0, 0)
    assert h.target(1, B, index) == (2, 2)


def test_two_quick_steps_back_go_two_back():
    h = walked(A, B, C)
    index = rows(A, B, C)
    h.went(h.target(-1, C, index)[0])
    # the picture shown is still C: the step on its way counts as where it goes
    assert h.target(-1, C, index) == (0, 0)


def test_back_with_a_new_query_on_its_way_goes_to_the_picture_on_show():
    """A slow picture clicked, then Backspace at once, went two back."""
    h = walked(A, B)
    h.asked = True  # C clicked, not shown yet
    assert h.target(-1, B, rows(A, B, C)) == (1, 1)
    h.went(1)
    h.arrived(C)  # the click's picture, come after the step: no query
    h.arrived(B)
    assert h.files == [A, B] and h.at == 1 and not h.asked


def test_a_new_query_after_a_step_back_drops_the_steps_ahead():
    h = walked(A, B, C)
    h.went(1)
    h.arrived(B)
    h.arrived(D)
    assert h.files == [A, B, D] and h.at == 2 and h.can_step(D) == (True, False)


def test_from_a_live_picture_back_goes_to_the_last_picture_of_the_collection():
    h = walked(A, B)
    assert h.target(-1, None, rows(A, B)) == (1, 1)
    assert h.can_step(None) == (True, False)
    assert walked(A).can_step(None) == (True, False)
    assert walked(A).can_step(A) == (False, False)
    assert History().can_step(None) == (False, False)
    assert History().target(-1, None, rows(A)) is None


def test_pictures_the_index_no_longer_holds_are_passed_over():
    h = walked(A, B, C, D)
    assert h.target(-1, D, rows(A, D)) == (0, 0)  # B and C deleted
    assert h.target(-1, D, rows(D)) is None
    assert h.can_step(D)[0]  # (there were: the viewer says they are not in this index)


def test_a_snapshot_restored_keeps_the_steps_ahead_and_a_skipped_picture_is_no_query():
    """A double-click opens a result: the history goes back to what it was before its first
    press (after a step back, the steps ahead were lost)."""
    h = walked(A, B, C)
    h.went(1)
    h.arrived(B)
    kept = h.snapshot()
    h.asked = True
    h.arrived(D)  # the first press's picture
    assert h.files == [A, B, D]
    h.restore(kept)
    assert h.files == [A, B, C] and h.at == 1 and not h.asked
    h.skip = D  # (its picture still on its way)
    h.arrived(D)
    assert h.files == [A, B, C] and h.skip is None


def test_the_oldest_queries_go_first():
    h = walked(*(Path(f"/pics/{i}.jpg") for i in range(MAX_ENTRIES + 10)))
    assert len(h.files) == MAX_ENTRIES and h.at == MAX_ENTRIES - 1
    assert h.files[0] == Path("/pics/10.jpg")


def test_what_is_kept_between_runs_is_relative_to_the_folder_and_round_the_one_shown():
    """The history kept with the index (memory.py): its pictures relative to the image
    folder (another index's left out), the entry shown with as many round it as
    HISTORY_BYTES hold, the steps back first."""
    from rtsearch.viewer.history import kept
    from rtsearch.viewer.memory import HISTORY_BYTES

    other = Path("/elsewhere/x.jpg")
    h = walked(A, other, B, C, D)
    h.went(3)  # (C, shown when the viewer closed; D a step ahead)
    assert kept(h, Path("/pics")) == (("a.jpg", "b.jpg", "c.jpg", "d.jpg"), 2)
    assert kept(h, Path("/elsewhere")) == (("x.jpg",), 0)
    assert kept(History(), Path("/pics")) is None
    long = [Path(f"/pics/{i:04d}-" + "n" * 94 + ".jpg") for i in range(MAX_ENTRIES)]
    fit = HISTORY_BYTES // len(json.dumps(long[0].name))  # (all of one length, quoted: 106)
    h = walked(*long)
    h.went(100)
    names, at = kept(h, Path("/pics"))
    assert len(names) == fit and names[at] == long[100].name
    assert names[0] == long[0].name and names[-1] == long[fit - 1].name  # (steps ahead too)
    h.went(400)  # more steps back than fit: none ahead
    names, at = kept(h, Path("/pics"))
    assert names[at] == names[-1] == long[400].name and names[0] == long[400 - fit + 1].name


def test_a_history_kept_is_taken_up_at_the_query_shown_last_or_before_it(tmp_path):
    """The next run starts on the query shown last; one the index or the folder lost
    since, at the one before it; none left, a random picture (row None)."""
    from types import SimpleNamespace

    from rtsearch.viewer.history import recalled

    files = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        files.append(tmp_path / name)
        files[-1].write_bytes(b"x")
    index = rows(*files[:2], tmp_path / "d.jpg")
    session = SimpleNamespace(base_dir=tmp_path, row_at=index)
    h, row = recalled(("a.jpg", "b.jpg", "c.jpg"), 1, session)
    assert h.files == files and h.at == 1 and row == 1
    h, row = recalled(("a.jpg", "b.jpg", "c.jpg"), 2, session)  # (c: not in the index)
    assert h.at == 1 and row == 1
    files[1].unlink()  # (b: not in the folder)
    h, row = recalled(("a.jpg", "b.jpg", "c.jpg"), 2, session)
    assert h.at == 0 and row == 0
    files[0].unlink()
    assert recalled(("a.jpg", "b.jpg"), 1, session)[1] is None
