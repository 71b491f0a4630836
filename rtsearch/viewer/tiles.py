"""The result tiles on screen: which results show at the canvas's scroll, and which
texture each tile's draw item points at, made within a per-frame budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from rtsearch.viewer import layout
from rtsearch.viewer.textures import MAKE_FIXED_TEXELS, make_cost, texture_height
from rtsearch.viewer.worker import THUMB_BOX

if TYPE_CHECKING:
    from rtsearch.viewer.app import ViewerApp
    from rtsearch.viewer.ui import Ids

# result textures made in one frame, in texels' worth: two 4:3 ones for 232 px rows (~6 ms
# here), six for 91 px ones, one (whatever it costs) for rows of 300 px and more; the rest
# wait for the next frame (see bind_tiles)
MAKE_BUDGET = 2 * (round(THUMB_BOX[1] * 4 / 3) * THUMB_BOX[1] + MAKE_FIXED_TEXELS)  # 4:3 ones


def visible_results(app: ViewerApp) -> list[int]:
    """Ranks of the results whose tiles show in the canvas at its current scroll."""
    lay, pub = app.layout, app.published
    if lay is None or pub is None or app.grab_mode:
        return []
    top = dpg.get_y_scroll(app.ids.canvas)
    bottom = top + app.canvas_size[1]
    rects = lay.results[: len(pub.thumbs)]
    return [i for i, r in enumerate(rects) if r[3] > top and r[1] < bottom]


def scrolled(app: ViewerApp) -> bool:
    return dpg.get_y_scroll(app.ids.canvas) != app.tiles_scroll


def bind_tiles(app: ViewerApp) -> None:
    """Point a draw item at each visible result's texture, made at its row's height (see
    textures.HEIGHTS), and hide the other items. The textures made in one frame stay within
    MAKE_BUDGET; a tile whose texture waits for a later frame keeps the picture it showed if
    it is in the same place (a live source's new results), or shows the same picture at
    another height meanwhile (rows resized), and is hidden otherwise, so those that would be
    hidden are made first."""
    ids, lay, pub = app.ids, app.layout, app.published
    app.tiles_scroll = dpg.get_y_scroll(ids.canvas)
    shown = visible_results(app)
    assert not shown or (lay is not None and pub is not None)
    while len(ids.tiles) < len(shown):  # made hidden, on any texture, until bound
        item = dpg.draw_image(app.blank_tex, (0, 0), (1, 1), show=False, parent=ids.results_layer)
        ids.tiles.append(item)
        ids.tile_shows.append(None)
    thumbs = [pub.thumbs[rank] for rank in shown] if pub else []
    rects = (
        [layout.picture_rect(lay.results[r], pub.thumbs[r].aspect) for r in shown] if lay else []
    )
    files = [pub.results[rank].file for rank in shown] if pub else []
    # what each file's tile showed before this call, to stand in for a texture that waits
    before = {shows[2]: shows[0] for shows in ids.tile_shows if shows}
    heights = [texture_height(thumb, rect) for thumb, rect in zip(thumbs, rects, strict=True)]
    missing = [s for s, thumb in enumerate(thumbs) if app.tiles.find(thumb, heights[s]) is None]
    stand_ins = {s: _stand_in(app, thumbs[s], before.get(files[s])) for s in missing}
    # those that would show nothing first: no picture in place, none to stand in
    missing.sort(key=lambda s: _keeps_place(ids, s, rects[s]) or stand_ins[s] is not None)
    budget = MAKE_BUDGET
    for slot in missing:
        thumb, height = thumbs[slot], heights[slot]
        cost = make_cost(thumb, height)
        if cost > budget and budget < MAKE_BUDGET:  # the first is made whatever it costs
            break
        # one texture per picture: grey tiles share one picture
        if app.tiles.find(thumb, height) is None:
            app.tiles.make(thumb, height)
            budget -= cost
    app.tiles_waiting = False
    for slot, (thumb, rect) in enumerate(zip(thumbs, rects, strict=True)):
        tex = app.tiles.find(thumb, heights[slot])
        app.tiles_waiting |= tex is None
        if tex is None and not _keeps_place(ids, slot, rect):
            tex = stand_ins[slot]  # (no texture now: it was missing, and none was made)
        if tex is not None:
            uv_min, uv_max = app.tiles.uv(tex, rect)
            dpg.configure_item(
                ids.tiles[slot], texture_tag=tex, pmin=rect[:2], pmax=rect[2:], uv_min=uv_min,
                uv_max=uv_max,
            )  # fmt: skip
            dpg.show_item(ids.tiles[slot])
            ids.tile_shows[slot] = (tex, rect, files[slot])
        elif not _keeps_place(ids, slot, rect):
            _hide_tile(ids, slot)
    for slot in range(len(shown), len(ids.tiles)):
        _hide_tile(ids, slot)
    app.tiles.trim({shows[0] for shows in ids.tile_shows if shows})


def _stand_in(app: ViewerApp, thumb, shown: int | str | None) -> int | str | None:
    """What shows ``thumb``'s picture at another size until its texture is made: one made
    for it at another height, else ``shown``, the texture a tile showed its file with (from
    a thumbnail fitted to the other box: rows resized past worker.TALL_ABOVE)."""
    tex = app.tiles.find_any(thumb)
    return shown if tex is None else tex


def _keeps_place(ids: Ids, slot: int, rect: tuple) -> bool:
    """Whether the slot's tile shows a picture at ``rect`` already."""
    shows = ids.tile_shows[slot]
    return shows is not None and shows[1] == rect


def _hide_tile(ids: Ids, slot: int) -> None:
    if ids.tile_shows[slot] is not None:
        dpg.hide_item(ids.tiles[slot])
        ids.tile_shows[slot] = None
