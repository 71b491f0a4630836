"""Back and forward through the queries (rtsearch/viewer/history.py), without a window."""

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
