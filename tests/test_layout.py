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
    g = GrabRegion((0, 0, 1440, 900), (100, 100, 400, 300))
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
    g = GrabRegion((0, 0, 1440, 900), (100, 100, 400, 300))
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
    g = GrabRegion((0, 0, 1440, 900), (100, 100, 400, 300))
    g.center_on(800, 450)
    assert g.box == (600, 300, 400, 300)
    g.center_on(1430, 890)  # near the corner: clamped, same size
    assert g.box == (1040, 600, 400, 300)


def test_grab_region_overlap_with_the_app_window_uses_hidpi_scale():
    g = GrabRegion((0, 0, 2880, 1800), (1500, 0, 400, 400))
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


def test_up_and_down_keys_step_to_the_nearest_tile_of_the_next_row():
    # rows of 4, 3 (wider cells) and 1 tile, 100 px tall, 10 apart
    lay = layout.compute(460, 100, 100, 1.0, [1.0] * 4 + [1.4] * 3 + [1.0], scale=1.0)
    rows = sorted({r[1] for r in lay.results})
    assert [sum(r[1] == top for r in lay.results) for top in rows] == [4, 3, 1]
    assert layout.step_rows(lay.results, 0, 1) == 4  # straight down, then on
    assert layout.step_rows(lay.results, 3, 1) == 6  # the last of a row: the nearest below
    assert layout.step_rows(lay.results, 5, 1) == 7  # the short last row
    assert layout.step_rows(lay.results, 7, -1) == 4
    assert layout.step_rows(lay.results, 5, -1) in (1, 2)  # the middle tile: across two
    assert layout.step_rows(lay.results, 2, -1) == 2  # no row above: stays
    assert layout.step_rows(lay.results, 7, 1) == 7  # nor below
    assert layout.step_rows(lay.results, 2, 2) == 7 and layout.step_rows(lay.results, 7, -2) == 0
    assert layout.step_rows(lay.results, 6, 2) == 6  # two rows down: none


def test_rows_wrap_in_order_and_an_oversized_item_gets_a_row_of_its_own():
    assert layout.pack_rows([100, 100, 100], 400, 10) == [[0, 1, 2]]
    assert layout.pack_rows([100, 100, 100], 305, 10) == [[0, 1], [2]]
    assert layout.pack_rows([100, 100, 100], 320, 10) == [[0, 1, 2]]  # exactly full
    assert layout.pack_rows([50, 500, 50, 50], 300, 10) == [[0], [1], [2, 3]]
    assert layout.pack_rows([], 300, 10) == []
    for rows in (layout.pack_rows([90] * 11, w, 8) for w in (90, 200, 700, 2000)):
        assert [i for row in rows for i in row] == list(range(11))


def test_a_region_that_does_not_fit_the_screen_is_moved_or_cut_and_said_so():
    g = GrabRegion((0, 0, 1440, 900))
    assert g.set_box((100, 100, 400, 300)) == ""
    note = g.set_box((5000, 5000, 100, 100))
    assert g.box == (1340, 800, 100, 100)  # its size kept
    assert "5000,5000,100,100 does not fit the 1440x900 screen" in note
    assert "now 1340,800,100,100 (G to choose another)" in note
    assert "now 840,0,600,300" in g.set_box((1200, 0, 600, 300))  # partly off
    assert "now 0,0,1440,900" in g.set_box((-10, 0, 3000, 2000))  # larger than the screen
    note = g.set_box((100, 100, 3, 3))
    assert g.box == (100, 100, 16, 16)
    assert note.startswith("the screen region 100,100,3,3 is smaller than 16x16: now")


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


def test_the_region_lives_on_the_whole_desktop_of_several_monitors():
    """On a desktop of several monitors the region was kept to the first one mss lists (a
    rectangle on another was moved onto it: "does not fit the 1920x1080 screen"), and its
    coordinates counted from that monitor's corner, which need not be the desktop's: a
    monitor left of the main one (negative x), a laptop left of it (the main one at 1280):
    the preview showed one place and the grab took another."""
    home = (0, 0, 1920, 1080)
    g = GrabRegion((-1280, 0, 3200, 1080), home=home)  # a 1280x1024 one on the left
    assert g.box == (480, 270, 960, 540)  # the default: the middle of the first monitor
    assert g.set_box((-1000, 100, 400, 300)) == ""  # on the left monitor
    note = g.set_box((-5000, 900, 400, 300))
    assert g.box == (-1280, 780, 400, 300)
    assert "does not fit the 3200x1080 desktop at -1280,0: now -1280,780,400,300" in note
    p = g.fit_preview(10, 20, 640, 480)
    assert p.scale == 0.2 and g.to_screen(p, 10, 20) == (-1280, 0)
    assert g.desk_rect(p) == (10, 20, 650, 236)
    x0, y0, x1, y1 = g.preview_rect(p)  # drawn where it is on the desktop
    assert (x0, y0, x1, y1) == (10, 20 + 780 * 0.2, 10 + 400 * 0.2, 20 + 1080 * 0.2)
    assert g.begin("body", *g.to_screen(p, (x0 + x1) / 2, (y0 + y1) / 2))
    g.drag(10_000, -10_000)
    assert g.box == (1920 - 400, 0, 400, 300)  # to the desktop's far corner, not home's
    g.end()
    g.begin("tl", *g.box[:2])
    g.drag(-9000, 0)
    assert g.box[0] == -1280
    g.end()
    # the main monitor right of a laptop's: its corner at 1280,0
    g = GrabRegion((0, 0, 3200, 1080), (1400, 100, 512, 480), home=(1280, 0, 1920, 1080))
    assert g.box == (1400, 100, 512, 480)
    assert g.overlaps((1300, 50, 400, 300)) and not g.overlaps((100, 100, 800, 600))
    assert GrabRegion((0, 0, 1440, 900)).desk_text() == "1440x900 screen"


def test_a_region_is_never_moved_into_the_gap_between_unequal_monitors():
    """A region fitted to a desktop of unequal monitors (1920x1080 beside 1280x720) was
    moved into its bounding box only, landing where no monitor is (nothing to grab): it
    goes onto the nearest monitor; one the user leaves touching a monitor stays."""
    monitors = ((0, 0, 1920, 1080), (1920, 0, 1280, 720))
    g = GrabRegion((0, 0, 3200, 1080), home=monitors[0], monitors=monitors)
    note = g.set_box((3100, 1000, 300, 300))  # off the desktop's corner, into the gap
    assert g.box == (2900, 420, 300, 300) and note.endswith("now 2900,420,300,300 (G to "
                                                           "choose another)")  # fmt: skip
    g.center_on(2500, 950)  # a click in the gap: onto the second monitor, the nearer
    assert g.box == (2350, 420, 300, 300)
    assert g.set_box((1800, 800, 300, 200)) == ""  # straddling a monitor and the gap: kept
    g.set_box((2000, 900, 300, 150))
    assert g.box == (2000, 570, 300, 150)
    # each monitor's edges drawn on the preview (here at a tenth, from 10,20)
    p = g.fit_preview(10, 20, 320, 108)
    assert g.monitor_rects(p) == [(10, 20, 202, 128), (202, 20, 330, 92)]
    # the second monitor unplugged: the desktop shrinks to the first, no edges drawn
    g.set_desktop((0, 0, 1920, 1080), monitors[0], monitors[:1])
    assert g.box == (1620, 570, 300, 150) and g.monitor_rects(p) == []


def test_a_desktop_that_changed_takes_the_region_with_it():
    """After a change of resolution (4K to 1280x1024) the region stayed where the old
    desktop had room, off the new one."""
    g = GrabRegion((0, 0, 3840, 2160), (2200, 500, 1536, 1440))
    note = g.set_desktop((0, 0, 1280, 1024))
    assert g.box == (0, 0, 1280, 1024)  # no larger than the desktop, and on it
    assert note.startswith("the screen region 2200,500,1536,1440 does not fit the 1280x1024")
    assert g.set_desktop((0, 0, 1920, 1080)) == ""  # it fits: left where it is
    assert g.box == (0, 0, 1280, 1024)


def test_at_a_ui_scale_margins_labels_and_gaps_grow_with_it():
    """At UI scale 2 (a HiDPI desktop at 200%) the canvas is laid out as at 1, twice as
    large: the rows and header come in screen pixels, the rest is scaled here."""
    one = layout.compute(1000, 320, 200, 4 / 3, [1.5] * 7)
    two = layout.compute(2000, 640, 400, 4 / 3, [1.5] * 7, scale=2.0)
    assert two.query_label == (2 * layout.MARGIN, 2 * layout.MARGIN)
    assert two.query == tuple(2 * v for v in one.query)
    assert two.results == tuple(tuple(2 * v for v in r) for r in one.results)
    assert two.height == 2 * one.height


def test_a_short_canvas_starts_with_heights_that_show_a_row_of_results():
    """At 200% on a 1920x1080 screen (960x540 at 1x), or on a small laptop's, the default
    320 px header filled the canvas and every result was below it: the defaults shrink
    alike, until the query and a row of results fit."""
    assert layout.fit_heights(900) == (320, 232)  # room enough: the defaults
    for canvas_h in (600, 450, 300):
        header, rows = layout.fit_heights(canvas_h)
        assert header < 320 and rows < 232
        assert abs(header / rows - 320 / 232) < 0.02
        lay = layout.compute(1000, header, rows, 4 / 3, [4 / 3] * 3)
        assert canvas_h - 10 <= lay.results[0][3] <= canvas_h  # the first row in view
    assert layout.fit_heights(100) == (layout.HEADER_RANGE[0], layout.THUMB_RANGE[0])
    # one set with its slider stays as set; the other is fitted beside it (it was frozen
    # at its fitted height, and kept)
    assert layout.fit_heights(450, header=300) == (300, 90)
    assert layout.fit_heights(450, thumb=150) == (238, 150)
    assert layout.fit_heights(900, header=150) == (150, 232)
    assert layout.fit_heights(100, header=400, thumb=400) == (400, 400)
