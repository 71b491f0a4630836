"""Viewer geometry without a GUI: tile layout, hit testing, the screengrab rectangle, keys."""

from __future__ import annotations

import pytest

from rtsearch.viewer import layout
from rtsearch.viewer.grab_region import MIN_SIZE, GrabRegion, detect_scale
from rtsearch.viewer.shortcuts import SHORTCUTS, action_for


def test_results_flow_in_rows_keeping_aspect():
    lay = layout.compute(1000, 320, 200, 4 / 3, [1.5] * 7)
    widths = {round(r[2] - r[0]) for r in lay.results}
    heights = {round(r[3] - r[1]) for r in lay.results}
    assert widths == {300} and heights == {200}
    rows = sorted({r[1] for r in lay.results})
    assert len(rows) == 3  # 3 per row fit in 1000 px, not 4
    assert all(r[2] <= 1000 - layout.MARGIN for r in lay.results)
    assert lay.query[3] - lay.query[1] == 320
    assert lay.results[0][1] > lay.query[3]  # results below the query


def test_layout_follows_the_window_width():
    narrow = layout.compute(700, 320, 200, 1.0, [1.0] * 10)
    wide = layout.compute(2000, 320, 200, 1.0, [1.0] * 10)
    assert len({r[1] for r in narrow.results}) > len({r[1] for r in wide.results})
    assert wide.height < narrow.height


def test_too_wide_pictures_shrink_instead_of_overflowing():
    lay = layout.compute(400, 480, 300, 5.0, [6.0])
    assert lay.query[2] <= 400 - layout.MARGIN + 1e-6
    assert lay.results[0][2] <= 400 - layout.MARGIN + 1e-6


def test_strips_and_panoramas_get_cells_they_can_be_seen_and_clicked_in():
    """A 3000x1 strip's result was drawn a row wide and 3 px tall (impossible to hover or
    click, an empty row under it), and a panorama's enlarged past its thumbnail's pixels.
    Cells are 1:4 to 2:1; the picture keeps its aspect inside, centred."""
    lay = layout.compute(1400, 320, 232, 4 / 3, [3000.0, 1 / 3000, 4 / 3, 10.0])
    strip, needle, photo, pano = lay.results
    assert strip[2] - strip[0] == 464 and strip[3] - strip[1] == 232
    assert needle[2] - needle[0] == 58 and photo[2] - photo[0] == pytest.approx(232 * 4 / 3)
    assert len({r[1] for r in lay.results}) == 1  # one row: nothing a row wide
    drawn = layout.picture_rect(strip, 3000.0)
    assert drawn[0] == strip[0] and drawn[2] == strip[2]
    assert drawn[1] == pytest.approx(strip[1] + 116 - 464 / 3000 / 2)
    assert layout.picture_rect(photo, 4 / 3) == photo
    x0, y0, x1, y1 = layout.picture_rect(pano, 10.0)  # 464 x 46.4, not 2320 x 232
    assert (x1 - x0, round(y1 - y0, 1)) == (464, 46.4)
    x0, _, x1, _ = layout.picture_rect(needle, 1 / 3000)
    assert (x0 + x1) / 2 == pytest.approx((needle[0] + needle[2]) / 2)
    # the cell, not the 3 px line, is what a click or the pointer finds
    assert layout.hit(lay.results, strip[0] + 5, strip[1] + 5) == 0


def test_hit_finds_the_clicked_tile():
    lay = layout.compute(1000, 320, 200, 1.0, [1.0] * 5)
    x0, y0, x1, y1 = lay.results[3]
    assert layout.hit(lay.results, (x0 + x1) / 2, (y0 + y1) / 2) == 3
    assert layout.hit(lay.results, 1, 1) is None


def test_grab_region_drags_by_body_and_clamps_to_screen():
    g = GrabRegion(1440, 900, (100, 100, 400, 300))
    p = g.fit_preview(0, 0, 720, 450)  # half scale
    x0, y0, x1, y1 = g.preview_rect(p)
    assert g.part_at(p, (x0 + x1) / 2, (y0 + y1) / 2) == "body"
    assert g.begin("body", 300, 250)
    g.drag(5000, 5000)
    assert g.box == (1440 - 400, 900 - 300, 400, 300)
    g.drag(-5000, -5000)
    assert g.box == (0, 0, 400, 300)
    g.end()
    assert not g.dragging


def test_grab_region_corners_resize_and_never_invert():
    g = GrabRegion(1440, 900, (100, 100, 400, 300))
    p = g.fit_preview(0, 0, 1440, 900)
    assert g.part_at(p, 100, 100) == "tl" and g.part_at(p, 500, 400) == "br"
    g.begin("br", 500, 400)
    g.drag(700, 600)
    assert g.box == (100, 100, 600, 500)
    g.drag(-1000, -1000)  # past the other corner: stays at the minimum size
    assert g.box[2:] == (MIN_SIZE, MIN_SIZE)
    g.end()
    g.begin("tl", 100, 100)
    g.drag(50, 60)
    assert g.box[:2] == (50, 60)
    g.drag(-50, -50)
    assert g.box[:2] == (0, 0)


def test_a_click_beside_the_region_centres_it_there():
    g = GrabRegion(1440, 900, (100, 100, 400, 300))
    g.center_on(800, 450)
    assert g.box == (600, 300, 400, 300)
    g.center_on(1430, 890)  # near the corner: clamped, same size
    assert g.box == (1040, 600, 400, 300)


def test_grab_region_overlap_with_the_app_window_uses_hidpi_scale():
    g = GrabRegion(2880, 1800, (1500, 0, 400, 400))
    assert not g.overlaps((0, 0, 800, 600))
    g.scale = detect_scale(2880, 1440)
    assert g.scale == 2.0
    assert g.overlaps((0, 0, 800, 600))  # 800 logical = 1600 physical
    assert detect_scale(1440, None) == 1.0


@pytest.mark.parametrize(
    ("key", "ctrl", "action"),
    [("R", False, "random"), ("S", False, "screen"), ("S", True, "save"), ("O", True, "load"),
     ("Space", False, "pause"), ("?", False, "help"), ("F1", False, "help"), ("Q", False, None)],
)  # fmt: skip
def test_shortcuts(key, ctrl, action):
    assert action_for(key, ctrl) == action


def test_help_lists_every_action():
    listed = {a for _, a, _ in SHORTCUTS}
    wanted = {action_for(k) for k in "RWVSG"} | {"pause", "more", "fewer", "load", "save", "help"}
    assert wanted <= listed


def test_rows_wrap_in_order_and_an_oversized_item_gets_a_row_of_its_own():
    assert layout.pack_rows([100, 100, 100], 400, 10) == [[0, 1, 2]]
    assert layout.pack_rows([100, 100, 100], 305, 10) == [[0, 1], [2]]
    assert layout.pack_rows([100, 100, 100], 320, 10) == [[0, 1, 2]]  # exactly full
    assert layout.pack_rows([50, 500, 50, 50], 300, 10) == [[0], [1], [2, 3]]
    assert layout.pack_rows([], 300, 10) == []
    for rows in (layout.pack_rows([90] * 11, w, 8) for w in (90, 200, 700, 2000)):
        assert [i for row in rows for i in row] == list(range(11))


def test_a_region_that_does_not_fit_the_screen_is_moved_or_cut_and_said_so():
    g = GrabRegion(1440, 900)
    assert g.set_box((100, 100, 400, 300)) == ""
    note = g.set_box((5000, 5000, 100, 100))
    assert g.box == (1340, 800, 100, 100)  # its size kept
    assert "5000,5000,100,100 does not fit the 1440x900 screen" in note
    assert "grabbing 1340,800,100,100 instead" in note
    assert "grabbing 840,0,600,300" in g.set_box((1200, 0, 600, 300))  # partly off
    assert "grabbing 0,0,1440,900" in g.set_box((-10, 0, 3000, 2000))  # larger than the screen
    note = g.set_box((100, 100, 3, 3))
    assert g.box == (100, 100, 16, 16)
    assert note.startswith("the screen region 100,100,3,3 is smaller than 16x16: grabbing")


def test_every_key_the_help_and_the_buttons_name_does_what_they_say():
    """The help's table, the buttons' labels and the key handler's maps are three tables:
    a key named in one must act in the others."""
    from rtsearch.viewer.shortcuts import SHORTCUTS, action_for, key_for

    for shown, action, _ in SHORTCUTS:
        if not action:
            continue  # mouse gestures, Enter: not shortcuts
        for key in shown.split(" or "):
            ctrl = key.startswith("Ctrl+")
            name = {"Esc": "Escape"}.get(key, key)  # as shown -> as the handler names it
            assert action_for(name.removeprefix("Ctrl+"), ctrl) == action, (key, action)
        assert key_for(action) == shown.split(" or ")[0]
