"""The viewer on a virtual display: what a user would see and do, in one Dear PyGui process.

Dear PyGui gets one viewer per process here (a second context in the same process crashed
under llvmpipe), so the tests share one ViewerApp and each sets the source it needs.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import (
    int8_twin,
    make_gallery,
    make_image,
    padded_tile,
    write_sound_mp4,
    write_tiny_model,
    write_video,
)
from PIL import Image

from rtsearch.viewer import grab_view
from rtsearch.viewer.status import source_name
from rtsearch.viewer.worker import PLAIN, UNCHANGED

pytestmark = pytest.mark.gui

dpg = pytest.importorskip("dearpygui.dearpygui")
pyvirtualdisplay = pytest.importorskip("pyvirtualdisplay")

SHOW_AT = (1000, 150, 400, 300)  # where a picture is put on screen, clear of the viewer


@pytest.fixture(scope="module")
def display():
    with pyvirtualdisplay.Display(size=(1440, 900), color_depth=24) as disp:
        yield disp


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, tiny_model):
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    root = tmp_path_factory.mktemp("gallery")
    make_gallery(root, 30)
    out = root.parent / "gallery.dat"
    analyze(root, out, Extractor(tiny_model, threads=1), Settings(dims=32, keep_features=True))
    return root, out


@pytest.fixture(scope="module")
def app(display, gallery, tiny_model):
    from rtsearch.session import SearchSession
    from rtsearch.viewer.app import ViewerApp, ViewerOptions

    session = SearchSession.open(gallery[1], model=str(tiny_model), threads=1)
    opts = ViewerOptions("random", k=8, header_h=200, thumb_h=150, width=900, height=700)
    viewer = ViewerApp(session, opts)
    viewer.build()
    dpg.set_viewport_pos([0, 0])
    # the window as a user first sees it: clicks sent before its first results had been
    # drawn, and a few frames after, never arrived (a test run on its own failed so)
    pump(viewer, lambda: viewer.published is not None)
    for _ in range(10):
        viewer.frame()
    yield viewer
    viewer.close()


@pytest.fixture(autouse=True)
def closed_windows(request):
    """A test that fails with a dialog open must not leave it over the next tests: a modal
    dialog takes every click and key. Nor is the pointer left over a result, whose caption
    would cover part of its tile in the next test's screenshots."""
    yield
    if "app" in request.fixturenames:
        app = request.getfixturevalue("app")
        app.ids.close_dialog()
        dpg.hide_item(app.ids.help)
        if dpg.is_item_shown(app.ids.question):
            app.on_key(dpg.mvKey_Escape)
        if app.grab_mode:
            app.perform("escape")
        if app.captioned is not None and shutil.which("xdotool"):
            xdotool(app, "mousemove", "2", "2")  # over the toolbar's margin


def pump(app, until, timeout: float = 20.0) -> None:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.frame()
        if until():
            return
    pub = app.published
    last = (pub.seq, pub.source, pub.message) if pub else None
    faulthandler.dump_traceback(all_threads=True)  # where a task that never ended waits
    tasks = [t.name for t in app.tasks]
    raise AssertionError(f"timed out; message: {app.message!r}, last: {last}, tasks: {tasks}")


def fresh(app, source: str | None = None):
    """Wait for a result newer than now (a picture captured since: not the last one shown
    again, as after a change of the rows' or header's height), optionally from a source."""
    captured = app.published.captured if app.published else 0.0

    def ready() -> bool:
        pub = app.published
        new = pub is not None and pub.captured > captured and bool(pub.results)
        return new and (source is None or pub.source.startswith(source))

    pump(app, ready)
    return app.published


def top_is(app, source: str, file) -> bool:
    pub = app.published
    return pub.source == source and bool(pub.results) and pub.results[0].file == file


def crop(shot: np.ndarray, rect, origin) -> np.ndarray:
    x0, y0, x1, y1 = (round(v) for v in rect)
    ox, oy = origin
    return shot[oy + y0 + 2 : oy + y1 - 2, ox + x0 + 2 : ox + x1 - 2, :3].astype(np.float32)


def looks_like(region: np.ndarray, thumb) -> float:
    """Mean absolute difference (0-255) between a screen region and a tile's picture."""
    pic = thumb.tile[: thumb.height, : thumb.width, :3]
    h, w = region.shape[:2]
    shown = np.asarray(Image.fromarray(pic).resize((w + 4, h + 4)))[2:-2, 2:-2]
    return float(np.abs(shown.astype(np.float32) - region).mean())


def texture_of(app, thumb, rank: int):
    """The texture kept for ``thumb`` at the height its tile at ``rank`` takes."""
    from rtsearch.viewer.textures import texture_height

    return app.tiles.find(thumb, texture_height(thumb, app.layout.results[rank]))


def test_the_analyze_dialog_starts_in_the_pictures_folder(app, tmp_path, monkeypatch):
    """*Analyze folder...* started in the folder rtsearch was started from, at every run:
    now the user's pictures folder, else home."""
    from rtsearch.viewer import dialogs

    app.perform("analyze")
    for _ in range(5):
        app.frame()
    start = dpg.get_file_dialog_info(app.ids.analyze_dialog)["current_path"]
    app.ids.close_dialog()
    assert start and os.path.samefile(start, dialogs.pictures_folder())
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_PICTURES_DIR", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert dialogs.pictures_folder() == str(tmp_path)
    (tmp_path / "Pictures").mkdir()
    assert dialogs.pictures_folder() == str(tmp_path / "Pictures")


def test_screenshot_shows_the_query_and_the_result_tiles(app, tmp_path):
    app.perform("random")
    pub = fresh(app, "random")
    for _ in range(5):
        app.frame()
    out = tmp_path / "shot.png"
    app._screenshot(out)
    shot = np.asarray(Image.open(out).convert("RGB"))
    assert shot.std() > 20  # not blank
    origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
    assert looks_like(crop(shot, app.layout.query, origin), pub.query) < 20
    for i in range(3):
        assert looks_like(crop(shot, app.layout.results[i], origin), pub.thumbs[i]) < 20
    # and the tiles are different pictures, not one texture shown three times
    assert looks_like(crop(shot, app.layout.results[0], origin), pub.thumbs[1]) > 20
    # the window draws no background of its own; the viewport is cleared to the same colour
    from rtsearch.viewer.ui import BACKGROUND

    ox, oy = origin
    q = app.layout.query
    beside = (ox + round(q[2]) + 30, oy + round(q[1]) + 30)  # right of the query picture
    for x, y in ((5, 5), beside):
        assert tuple(shot[y, x]) == BACKGROUND, (x, y)


def test_a_screenshot_taken_as_the_results_arrive_shows_them(app, tmp_path):
    """`--screenshot` with few frames: the capture reads a frame drawn before the latest,
    and the query taken in the last frame showed black, the status bar still empty."""
    app.perform("random")
    pub = fresh(app, "random")  # the frame that took the result has just been drawn
    out = tmp_path / "at-once.png"
    app._screenshot(out)
    shot = np.asarray(Image.open(out).convert("RGB"))
    origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
    assert app.published is pub
    assert looks_like(crop(shot, app.layout.query, origin), pub.query) < 20
    assert looks_like(crop(shot, app.layout.results[0], origin), pub.thumbs[0]) < 20
    assert "source random" in dpg.get_value(app.ids.status)


def test_results_show_at_once_with_dark_tiles_filled_in_as_their_pictures_decode(
    app, monkeypatch, tmp_path
):
    """A new picture's results waited for all their pictures to decode (20 4K PNGs: 2 s),
    the last query and results on show meanwhile. They show at once, the pictures not yet
    decoded as dark tiles, each filled in as it comes."""
    from rtsearch import thumbs
    from rtsearch.viewer.worker import LOADING_GREY, THUMB_WAIT_S

    gate, load = threading.Event(), thumbs.ThumbCache._load
    monkeypatch.setattr(
        thumbs.ThumbCache, "_load", lambda self, *a: gate.wait(20) and load(self, *a)
    )
    cache = app.worker.cache
    with cache._lock:
        cache._items.clear()  # every result's picture to decode
    try:
        app.perform("random")
        pub = fresh(app, "random")
        assert pub.pending == len(pub.results)
        assert all((t.tile == LOADING_GREY).all() for t in pub.thumbs)
        assert pub.finished - pub.captured < THUMB_WAIT_S + 1.0  # not after the decoding
        pump(app, lambda: not app.tiles_waiting)
        out = tmp_path / "loading.png"
        app._screenshot(out)
        shot = np.asarray(Image.open(out).convert("RGB"))
        origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
        assert looks_like(crop(shot, app.layout.query, origin), pub.query) < 20  # the new one
        assert looks_like(crop(shot, app.layout.results[0], origin), pub.thumbs[0]) < 3
    finally:
        gate.set()
    pump(app, lambda: not app.published.pending and not app.tiles_waiting)
    done = app.published
    assert done.results == pub.results and done.captured == pub.captured
    out = tmp_path / "filled.png"
    app._screenshot(out)
    shot = np.asarray(Image.open(out).convert("RGB"))
    for rank in range(3):
        dark, thumb = pub.thumbs[rank], done.thumbs[rank]
        assert (dark.width, dark.height) == (thumb.width, thumb.height)  # no row moved
        assert looks_like(crop(shot, app.layout.results[rank], origin), done.thumbs[rank]) < 20


def test_help_window_is_opaque_over_the_pictures(app, tmp_path):
    pump(app, lambda: app.published is not None and bool(app.published.results))
    dpg.configure_item(app.ids.help, pos=(40, 60))
    app.on_key(dpg.mvKey_F1)
    for _ in range(3):
        app.frame()
    out = tmp_path / "help.png"
    app._screenshot(out)
    app.on_key(dpg.mvKey_Escape)
    shot = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    x0, y0 = (round(v) for v in dpg.get_item_pos(app.ids.help))
    # the lower rows of the table lie over result tiles: mostly the window's own colour
    # between the lines of text, where a see-through window would show the pictures
    inside = shot[y0 + 260 : y0 + 400, x0 + 300 : x0 + 540]
    plain = (np.abs(inside - inside[-1, -1]).max(axis=2) <= 2).mean()
    assert plain > 0.6, plain


def test_only_the_tiles_on_screen_have_textures_and_scrolling_rebinds_them(app, tmp_path):
    """Results scrolled out of view get no texture and no draw item; scrolling down shows
    the later results' pictures, each tile drawn from its own picture's texture."""
    from rtsearch.viewer import tiles

    app.set_k(20)
    try:
        pub = fresh(app, "random")
        for _ in range(3):
            app.frame()
        shown = tiles.visible_results(app)
        assert 0 < len(shown) < 20 and shown[0] == 0
        assert len(app.ids.tiles) == len(shown)
        dpg.set_y_scroll(app.ids.canvas, dpg.get_y_scroll_max(app.ids.canvas))
        app.worker.send("pause", True)  # keep these results while we look
        pub = app.published
        for _ in range(20):  # new textures are made a few a frame
            app.frame()
        later = tiles.visible_results(app)
        assert later[-1] == 19 and later[0] > 0
        assert not app.tiles_waiting
        for slot, rank in enumerate(later):
            item = dpg.get_item_configuration(app.ids.tiles[slot])
            assert item["texture_tag"] == texture_of(app, pub.thumbs[rank], rank)
            assert list(item["pmin"])[:2] == pytest.approx(app.layout.results[rank][:2])
        out = tmp_path / "scrolled.png"
        app._screenshot(out)
        shot = np.asarray(Image.open(out).convert("RGB"))
        origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
        last = app.layout.results[19]
        assert looks_like(crop(shot, last, origin), pub.thumbs[19]) < 20
    finally:
        app.worker.send("pause", False)
        dpg.set_y_scroll(app.ids.canvas, 0)
        app.set_k(8)


def test_result_textures_are_made_once_a_few_a_frame_and_freed_beyond_the_kept(app, monkeypatch):
    """A static texture per picture: showing the same results again makes none, a frame
    makes what fits in MAKE_BUDGET (the others wait, keeping the picture their place
    showed), and the least recently shown beyond ``keep`` are freed, never one still drawn."""
    from rtsearch.viewer import textures, tiles

    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    keep = app.tiles.keep
    try:
        app.tiles.keep = 0  # start with no textures but those drawn now
        app.dirty = True
        for _ in range(10):  # the pause is taken and said; the tiles are all made
            app.frame()
        pump(app, lambda: not app.tiles_waiting)
        pub = app.published
        drawn = {s[0] for s in app.ids.tile_shows if s}
        assert len(app.tiles) == len(drawn) > 0
        # the same results shown again: nothing is made
        made = app.tiles.made
        for _ in range(3):
            app.dirty = True
            app.frame()
        assert app.tiles.made == made
        # a new thumbnail object for every result (as after the cache dropped them)
        from dataclasses import replace

        new = [replace(t) for t in pub.thumbs]
        new[1] = new[0]  # one picture in two tiles (grey tiles share one): one texture
        again = replace(pub, thumbs=tuple(new))
        monkeypatch.setattr(app.worker, "latest", lambda: again)
        # a headless run's screenshot waits for every tile's texture
        monkeypatch.setattr(app.opts, "screenshot", Path("unused.png"))
        app.dirty = True  # same results: only a layout change rebinds them
        # the last tile shows nothing (as after its place moved): it is made first
        last = len(tiles.visible_results(app)) - 1
        tiles._hide_tile(app.ids, last)
        waited, per_frame = 0, []
        while True:
            before = set(app.tiles._made)
            app.frame()
            per_frame.append([k for k in app.tiles._made if k not in before])
            if len(per_frame) == 1:
                rank = tiles.visible_results(app)[last]
                assert app.ids.tile_shows[last][0] == texture_of(app, new[rank], rank)
            shows = [s for s in app.ids.tile_shows if s]
            # every tile still shows a picture: a waiting one keeps the one it had
            assert len(shows) == len(tiles.visible_results(app))
            assert {s[0] for s in shows} <= app.tiles.textures()
            assert app._settled() == (not app.tiles_waiting)
            if not app.tiles_waiting:
                break
            waited += 1
        pictures = len({id(new[rank]) for rank in tiles.visible_results(app)})
        made_keys = [key for keys in per_frame for key in keys]
        assert len(made_keys) == pictures
        kept = app.tiles._made
        costs = [[textures.make_cost(kept[k][0], k[1]) for k in keys] for keys in per_frame]
        assert len(per_frame) == waited + 1 > 1
        for spent, left in zip(costs, [*costs[1:], []], strict=True):  # each made what fitted
            assert sum(spent) <= tiles.MAKE_BUDGET or len(spent) == 1
            assert not left or sum(spent) + left[0] > tiles.MAKE_BUDGET
        # 150 px rows take 164 px textures (not the whole 224 px tiles): 3 or 4 a frame
        visible = tiles.visible_results(app)
        heights = {textures.texture_height(new[r], app.layout.results[r]) for r in visible}
        assert {k[1] for k in made_keys} == heights == {164}
        assert max(map(len, per_frame)) <= 4
        # the old textures were freed once nothing drew them
        assert len(app.tiles) == pictures
        # the registry holds the kept textures, the query's and the blank one, nothing else
        registry = dpg.get_item_children(app.registry, 1)
        static = {t for t in registry if dpg.get_item_info(t)["type"].endswith("StaticTexture")}
        assert static == app.tiles.textures() | {app.blank_tex}
        shown = {t for t in registry if dpg.get_item_info(t)["type"].endswith("DynamicTexture")}
        assert shown == app.query_tex.textures() | app.preview_tex.textures()
        assert not static & drawn
        for slot, rank in enumerate(tiles.visible_results(app)):
            assert app.ids.tile_shows[slot][0] == texture_of(app, new[rank], rank)
    finally:
        monkeypatch.undo()
        app.tiles.keep = keep
        app.worker.send("pause", False)
    assert textures.KEEP_TILES >= 20  # a page of results and its neighbours stay made


def test_small_rows_take_small_textures_and_fill_faster(app, monkeypatch, tmp_path):
    """The smallest rows (90 px) show textures made 91 px tall: a sixth of a whole tile's
    texels, so many more are made a frame, and the picture still right. Rows made taller
    show the small ones (drawn larger) until theirs are made."""
    from dataclasses import replace

    from rtsearch.viewer import layout, textures, tiles

    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    thumb_h = app.opts.thumb_h
    try:
        app.set_k(24)
        pub = fresh(app)
        app.opts.thumb_h = layout.THUMB_RANGE[0]
        new = tuple(replace(t) for t in pub.thumbs)  # nothing made for these yet
        again = replace(pub, thumbs=new)
        monkeypatch.setattr(app.worker, "latest", lambda: again)
        app.dirty = True
        frames, made_per_frame = 0, []
        while True:
            before = app.tiles.made
            app.frame()
            frames += 1
            made_per_frame.append(app.tiles.made - before)
            if not app.tiles_waiting:
                break
        shown = tiles.visible_results(app)
        assert len(shown) >= 12
        for slot, rank in enumerate(shown):
            thumb, rect = new[rank], app.layout.results[rank]
            assert textures.texture_height(thumb, rect) == 91
            tex = app.tiles.find(thumb, 91)
            assert app.ids.tile_shows[slot][0] == tex
            conf = dpg.get_item_configuration(tex)
            assert conf["height"] == 91
            assert conf["width"] == round(thumb.width * 91 / thumb.height)
        assert max(made_per_frame) >= 6  # 232 px rows: 2 or 3
        assert frames <= -(-len(shown) // 6) + 1
        out = tmp_path / "small.png"
        app._screenshot(out)
        shot = np.asarray(Image.open(out).convert("RGB"))
        origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
        for rank in (shown[0], shown[len(shown) // 2]):  # (the last row may be cut off)
            assert looks_like(crop(shot, app.layout.results[rank], origin), new[rank]) < 20
        # taller rows again: every tile shows its picture at once, the small texture
        # standing in (drawn larger) until its own is made
        app.opts.thumb_h = 150
        app.dirty = True
        app.frame()
        assert app.tiles_waiting
        for slot, rank in enumerate(tiles.visible_results(app)):
            tex, rect, file = app.ids.tile_shows[slot]
            assert rect == tuple(app.layout.results[rank]) and file == pub.results[rank].file
            assert tex in (app.tiles.find(new[rank], 164), app.tiles.find(new[rank], 91))
        pump(app, lambda: not app.tiles_waiting)
        for slot, rank in enumerate(tiles.visible_results(app)):
            assert app.ids.tile_shows[slot][0] == app.tiles.find(new[rank], 164)
    finally:
        monkeypatch.undo()
        app.opts.thumb_h = thumb_h
        app.worker.send("pause", False)
        app.set_k(8)
        app.dirty = True
    # the next tests start from a settled window: 8 results at the usual height, all drawn
    pump(app, lambda: len(app.published.results) == 8 and app._settled())


def sharpness(region: np.ndarray, reference: np.ndarray) -> float:
    """Fine detail left in a screen region, as a share of the reference's (the picture
    shrunk to the region's size by area averaging): the spread of their Laplacians."""
    import cv2

    def detail(a: np.ndarray) -> float:
        grey = cv2.cvtColor(a.astype(np.float32), cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_32F).std())

    return detail(region) / detail(reference)


def detailed_photos(folder: Path, size: tuple[int, int] | None = None) -> list[Path]:
    """Three photos with fine texture all over (512x512, or cropped to ``size`` (w, h) and
    resized to it), as PNG files."""
    from fakes import SAMPLE_PHOTOS, sample_photos

    photos = dict(zip(SAMPLE_PHOTOS, sample_photos(), strict=False))
    files = []
    for name in ("grass", "gravel", "brick"):
        picture = photos[name]
        if size is not None:  # the middle band of the wanted aspect, then that size
            w, h = size
            band = round(512 * h / w)
            top = (512 - band) // 2
            picture = picture.crop((0, top, 512, top + band)).resize(size, Image.LANCZOS)
        files.append(folder / f"{name}.png")
        picture.save(files[-1])
    return files


def put_back(app, monkeypatch, thumb_h: int, header_h: int) -> None:
    """Undo a test's pictures, row and header heights and scroll; resume the worker."""
    monkeypatch.undo()
    app.opts.thumb_h, app.opts.header_h = thumb_h, header_h
    dpg.set_y_scroll(app.ids.canvas, 0)
    app.worker.send("pause", False)
    app.dirty = True


def detail_on_screen(app, monkeypatch, tmp_path, files: list[Path], thumbs: tuple) -> list[float]:
    """Show ``thumbs`` as the results for ``files`` (the window's first row scrolled into
    full view) and measure each first-row tile on a screenshot against its file shrunk to
    the tile's size: ``sharpness`` per tile, after checking it shows the right picture."""
    from dataclasses import replace

    import cv2

    from rtsearch.session import Result
    from rtsearch.viewer import tiles

    base = app.published
    results = tuple(Result(i, f.name, f, 0.0) for i, f in enumerate(files))
    shown = replace(base, seq=base.seq + 1, results=results, thumbs=thumbs)
    monkeypatch.setattr(app.worker, "latest", lambda: shown)
    pump(app, lambda: app.published is shown and not app.tiles_waiting)
    row = app.layout.results[0]
    target = row[1] - 4  # the first row at the top, as far as the canvas scrolls
    dpg.set_y_scroll(app.ids.canvas, target)

    def in_view() -> bool:
        want = min(target, dpg.get_y_scroll_max(app.ids.canvas))
        return not app.tiles_waiting and abs(dpg.get_y_scroll(app.ids.canvas) - want) < 1

    pump(app, in_view)
    assert row[3] - dpg.get_y_scroll(app.ids.canvas) <= app.canvas_size[1]  # all of the row
    out = tmp_path / "detail.png"
    app._screenshot(out)
    shot = np.asarray(Image.open(out).convert("RGB"))
    origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
    figures = []
    for rank in tiles.visible_results(app):
        rect = app.layout.results[rank]
        if rect[1] != row[1]:
            continue
        region = crop(shot, rect, origin)
        x0, y0, x1, y1 = (round(v) for v in rect)
        original = np.asarray(Image.open(files[rank]).convert("RGB"))
        ref = cv2.resize(original, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        ref = ref[2:-2, 2:-2].astype(np.float32)
        assert region.shape == ref.shape
        assert float(np.abs(region - ref).mean()) < 20  # the right picture
        figures.append(sharpness(region, ref))
    return figures


def test_tall_rows_show_pictures_decoded_and_made_at_their_height(app, monkeypatch, tmp_path):
    """400 px rows: the worker fits results to an 840x420 box (these 512x512 photos: 420x420)
    and each is made a texture of 420 px (the first step at least as tall as the row), so a
    detailed photo keeps its detail on screen; a 224 px picture drawn enlarged, as before,
    loses most of it."""
    from rtsearch.thumbs import to_thumb
    from rtsearch.viewer import tiles, worker

    files = detailed_photos(tmp_path)
    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    thumb_h, header_h = app.opts.thumb_h, app.opts.header_h
    try:
        for _ in range(3):
            app.frame()
        before = {shows[2] for shows in app.ids.tile_shows if shows}
        app.opts.header_h = 100
        # the worker hears of the rows' height and publishes the results again, fitted to the
        # tall box; meanwhile, and until their textures are made (one a frame at this
        # height), a tile that showed its picture keeps showing it (drawn larger), none goes
        # blank, even while the slider still moves (the rows change every frame: 260, 256...)
        end = time.perf_counter() + 20
        frames, waited = 0, 0
        while app.published.thumbs[0].tile.shape != (420, 560, 3) or app.tiles_waiting:
            frames += 1
            app.opts.thumb_h = 260 if frames % 2 or frames > 100 else 256
            app.dirty = True
            app.frame()
            waited += app.tiles_waiting
            for slot, rank in enumerate(tiles.visible_results(app)):
                if app.published.results[rank].file in before:
                    assert app.ids.tile_shows[slot] is not None
            assert time.perf_counter() < end
        assert waited >= 2 and len(tiles.visible_results(app)) >= 3
        assert app.worker.cache.size == worker.TALL_BOX
        app.opts.thumb_h = 400
        app.dirty = True
        tall = tuple(app.worker.cache.get(f) for f in files)
        assert {t.tile.shape for t in tall} == {(420, 420, 3)}
        sharp = detail_on_screen(app, monkeypatch, tmp_path, files, tall)
        assert len(sharp) >= 2
        for slot, rank in enumerate(tiles.visible_results(app)):
            tex = app.ids.tile_shows[slot][0]
            assert dpg.get_item_configuration(tex)["height"] == 420
            assert app.layout.results[rank][3] - app.layout.results[rank][1] == 400
        # beyond the bytes kept, only the textures on screen stay (their floats: 16 B a texel)
        keep_bytes, app.tiles.keep_bytes = app.tiles.keep_bytes, 0
        try:
            app.dirty = True
            app.frame()
            drawn = {shows[0] for shows in app.ids.tile_shows if shows}
            assert app.tiles.textures() == drawn
            sizes = [dpg.get_item_configuration(t) for t in drawn]
            assert app.tiles.nbytes == sum(16 * c["width"] * c["height"] for c in sizes)
        finally:
            app.tiles.keep_bytes = keep_bytes
        pictures = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        usual = tuple(to_thumb(p, worker.THUMB_BOX) for p in pictures)
        blurred = detail_on_screen(app, monkeypatch, tmp_path, files, usual)
        print(f"detail kept: tall box {sharp}, usual box enlarged {blurred}")
        assert min(sharp) > 0.7  # 0.76 and 0.81 here; the reference itself: 1
        assert max(blurred) < 0.6  # 0.38 and 0.48 here
    finally:
        put_back(app, monkeypatch, thumb_h, header_h)
    pump(app, lambda: app.worker.cache.size == worker.THUMB_BOX and app._settled())
    pump(app, lambda: app.published.thumbs[0].tile.shape == (224, 299, 3))


def test_wide_pictures_fill_the_default_rows_from_their_own_pixels(app, monkeypatch, tmp_path):
    """At the default row height (232), a 16:9 picture is fitted 224 px tall (398x224) and
    its texture made so, where a 4:3 box gave it 296x166, drawn enlarged 1.4x: the 16:9
    screenshots, video frames and phone photos of a collection keep their detail."""
    from rtsearch.viewer import layout, worker

    files = detailed_photos(tmp_path, (640, 360))
    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    thumb_h, header_h = app.opts.thumb_h, app.opts.header_h
    try:
        app.opts.thumb_h, app.opts.header_h = layout.THUMB_DEFAULT, 100
        app.dirty = True
        pump(app, lambda: app.worker.cache.size == worker.THUMB_BOX and not app.tiles_waiting)
        thumbs = tuple(app.worker.cache.get(f) for f in files)
        assert {(t.width, t.height) for t in thumbs} == {(398, 224)}
        sharp = detail_on_screen(app, monkeypatch, tmp_path, files, thumbs)
        assert len(sharp) >= 2
        heights = {dpg.get_item_configuration(s[0])["height"] for s in app.ids.tile_shows if s}
        assert heights == {224}
        pictures = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        four_three = tuple(padded_tile(p, (296, 224)) for p in pictures)  # as before: 296x166
        assert {(t.width, t.height) for t in four_three} == {(296, 166)}
        blurred = detail_on_screen(app, monkeypatch, tmp_path, files, four_three)
        print(f"detail kept: 2:1 box {sharp}, 4:3 box enlarged {blurred}")
        assert min(sharp) > 0.7  # 0.77 and 0.81 here
        assert max(blurred) < 0.66  # 0.52 and 0.60 here
    finally:
        put_back(app, monkeypatch, thumb_h, header_h)
    pump(app, lambda: app._settled())


def test_the_query_is_drawn_from_a_texture_of_its_own_size(app, monkeypatch, tmp_path):
    """The query picture comes shrunk to the header's height and its raw texture is remade at
    that size (one raw texture, never two): a detailed 16:9 picture in a 400 px header keeps
    its detail, where the 512x384 tile it was fitted into before (512x288) was drawn
    enlarged 1.4x; and a 4:3 one in the default header uploads 427x320 texels a frame."""
    from dataclasses import replace

    import cv2

    from rtsearch.viewer import layout, worker

    image = np.asarray(Image.open(detailed_photos(tmp_path, (1280, 720))[0]).convert("RGB"))
    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    header_h = app.opts.header_h

    def raw_textures() -> set:  # (there are none: a texture kept for each query size)
        registry = dpg.get_item_children(app.registry, 1)
        return {t for t in registry if dpg.get_item_info(t)["type"].endswith("RawTexture")}

    def detail(query) -> float:
        shown = replace(app.published, seq=app.published.seq + 1, query=query)
        monkeypatch.setattr(app.worker, "latest", lambda: shown)
        pump(app, lambda: app.published is shown)
        assert raw_textures() == set()
        assert app.query_tex.used == query.tile.shape[1::-1]
        out = tmp_path / "query.png"
        app._screenshot(out)
        shot = np.asarray(Image.open(out).convert("RGB"))
        origin = [round(v) for v in dpg.get_item_rect_min(app.ids.drawlist)]
        region = crop(shot, app.layout.query, origin)
        x0, y0, x1, y1 = (round(v) for v in app.layout.query)
        ref = cv2.resize(image, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        ref = ref[2:-2, 2:-2].astype(np.float32)
        assert region.shape == ref.shape
        assert float(np.abs(region - ref).mean()) < 20  # the right picture
        return sharpness(region, ref)

    try:
        app.opts.header_h = 400
        app.dirty = True
        pump(app, lambda: app.worker.header_h == 400)  # (the gallery's own are small)
        sharp = detail(worker.query_picture(image, 400))
        assert app.query_tex.used == (711, 400)
        blurred = detail(padded_tile(image, (512, 384)))  # as before: a 512x288 picture
        print(f"query detail kept: its own size {sharp}, the old tile enlarged {blurred}")
        assert sharp > 0.9  # 1.11 here (drawn at its own size)
        assert blurred < 0.8  # 0.68 here
        monkeypatch.undo()
        app.opts.header_h = layout.HEADER_DEFAULT
        app.dirty = True
        four_three = worker.query_picture(np.zeros((480, 640, 3), np.uint8), 320)
        assert (four_three.width, four_three.height) == (427, 320)
    finally:
        put_back(app, monkeypatch, app.opts.thumb_h, header_h)
    pump(app, lambda: app.published.query.height <= header_h and app._settled())
    assert raw_textures() == set()


def edged_picture(height: int, width: int) -> np.ndarray:
    """A purple picture with a white bottom row and a yellow right column: drawn with its
    edges wrapped round, a line of them shows along its top and its left."""
    image = np.full((height, width, 3), (60, 20, 140), np.uint8)
    image[-1, :] = 255
    image[:, -1] = (255, 255, 0)
    return image


def assert_no_opposite_edge(app, tmp_path: Path, rect: tuple, scroll: float = 0.0) -> None:
    """The picture drawn at ``rect`` (canvas) shows plain purple along its top and left."""
    for _ in range(3):
        app.frame()
    app._screenshot(tmp_path / "edge.png")
    shot = np.asarray(Image.open(tmp_path / "edge.png").convert("RGB")).astype(int)
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    x0, y0, x1, y1 = rect
    top, left = round(oy + y0 - scroll), round(ox + x0)
    inner = shot[top : top + 2, left + 10 : round(ox + x1) - 10]  # the top rows
    assert np.abs(inner - (60, 20, 140)).max() <= 6, inner[:, ::40].tolist()
    side = shot[top + 10 : round(oy + y1 - scroll) - 10, left : left + 2]  # the left columns
    assert np.abs(side - (60, 20, 140)).max() <= 6, side[::40].tolist()


def test_a_small_query_drawn_larger_shows_no_line_of_its_opposite_edge(app, monkeypatch, tmp_path):
    """A query picture smaller than the header is drawn enlarged; filtering at its edges
    wrapped round to the opposite ones: a line of its bottom row showed along its top,
    and of its right column along its left."""
    from dataclasses import replace

    from rtsearch.viewer import worker

    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    query = worker.query_picture(edged_picture(101, 150), 200)
    shown = replace(app.published, seq=app.published.seq + 1, query=query)
    monkeypatch.setattr(app.worker, "latest", lambda: shown)
    pump(app, lambda: app.published is shown)
    _, y0, _, y1 = app.layout.query
    assert y1 - y0 > 101 * 1.5  # drawn enlarged
    assert_no_opposite_edge(app, tmp_path, app.layout.query)
    monkeypatch.undo()
    app.worker.send("pause", False)


def test_result_pictures_show_no_line_of_their_opposite_edge(app, monkeypatch, tmp_path):
    """The query's fix, for results: a picture drawn even a little larger than its
    texture (a 224 px picture in 232 px rows) showed a line of its right column beside its
    left, and of its bottom row along its top."""
    from dataclasses import replace

    from rtsearch.thumbs import Thumb

    app.perform("random")
    fresh(app, "random")
    app.worker.send("pause", True)
    image = edged_picture(60, 80)
    thumbs = tuple(Thumb(image, 80, 60) for _ in app.published.thumbs)
    shown = replace(app.published, seq=app.published.seq + 1, thumbs=thumbs)
    monkeypatch.setattr(app.worker, "latest", lambda: shown)
    pump(app, lambda: app.published is shown and not app.tiles_waiting)
    _, y0, _, y1 = app.layout.results[0]
    assert y1 - y0 > 60 * 1.4  # drawn enlarged
    scroll = dpg.get_y_scroll(app.ids.canvas)
    assert_no_opposite_edge(app, tmp_path, app.layout.results[0], scroll)
    monkeypatch.undo()
    app.worker.send("pause", False)


def test_the_primary_window_draws_no_background(app):
    """Dear PyGui draws a primary window's background at full alpha whatever its theme
    says (a 1280x860 blended fill: ~6 ms a frame under llvmpipe); the flag must stay set
    after the window was made primary, which resets its flags."""
    assert dpg.get_item_configuration(app.ids.window)["no_background"]


def test_clicking_a_result_makes_it_the_query(app, monkeypatch):
    from rtsearch.viewer import mouse, status

    app.perform("random")
    pub = fresh(app, "random")
    x0, y0, x1, y1 = app.layout.results[2]
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    xdotool(app, "mousemove", str(round(ox + (x0 + x1) / 2)), str(round(oy + (y0 + y1) / 2)))
    threads, real = [], mouse.on_click
    on = threading.current_thread
    monkeypatch.setattr(mouse, "on_click", lambda a: (threads.append(on()), real(a)))
    xdotool(app, "click", "1")
    clicked = pub.results[2]
    pump(app, lambda: app.published.row == clicked.row)
    assert clicked.row not in [r.row for r in app.published.results]  # its own entry excluded
    # on the thread that draws, between frames (Dear PyGui's own thread changed the state a
    # frame was drawing)
    assert threads == [threading.main_thread()]
    # the status bar names no random draw (it said `source random`), nor after back; R does
    status.update_status(app)
    assert dpg.get_value(app.ids.status).startswith("source collection  |"), app.message
    app.perform("back")
    pump(app, lambda: app.published.row == pub.row)
    status.update_status(app)
    assert dpg.get_value(app.ids.status).startswith("source collection  |")
    app.perform("random")
    fresh(app, "random")
    status.update_status(app)
    assert dpg.get_value(app.ids.status).startswith("source random  |")


def test_hovering_a_result_shows_its_rank_file_and_distance(app, tmp_path):
    """The tiles said nothing of what they were: a file's name took a right-click and a
    paste. Under the pointer a result now shows its rank, path and distance."""
    app.perform("pause")  # the results stay put while the pointer is on them
    pub = app.published
    band, text = app.ids.caption
    x0, y0, x1, y1 = app.layout.results[1]
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    xdotool(app, "mousemove", str(round(ox + (x0 + x1) / 2)), str(round(oy + (y0 + y1) / 2)))
    hit = pub.results[1]
    said = dpg.get_item_configuration(text)["text"]
    assert said == f"2. {hit.path}  (distance {hit.distance:.3f})" or said.startswith(
        f"2. {hit.path}  (distance {hit.distance:.3f}, "
    )
    assert dpg.is_item_shown(band) and dpg.is_item_shown(text)
    lo, hi = (dpg.get_item_configuration(band)[k] for k in ("pmin", "pmax"))
    assert lo[0] >= 0 and hi[1] == y1 and lo[1] > y0  # across the tile's foot
    shot = tmp_path / "caption.png"
    app._screenshot(shot)
    foot = np.asarray(Image.open(shot).convert("L"))[
        round(oy + lo[1]) + 2 : round(oy + hi[1]) - 2, round(ox + lo[0]) : round(ox + hi[0])
    ]
    assert (foot > 200).mean() > 0.02 and np.median(foot) < 60  # light text on a dark band
    q = app.layout.query
    xdotool(app, "mousemove", str(round(ox + q[0] + 5)), str(round(oy + q[1] + 5)))
    assert not dpg.is_item_shown(band) and not dpg.is_item_shown(text)
    # a tile cut off by the canvas's foot: the caption at the foot of what shows (it was
    # drawn out of sight)
    bottom = app.canvas_size[1]
    cut = [r for r in app.layout.results[: len(pub.results)] if r[1] < bottom - 40 < bottom < r[3]]
    if cut:
        x0, y0, x1, _ = cut[0]
        xdotool(app, "mousemove", str(round(ox + (x0 + x1) / 2)), str(round(oy + y0 + 20)))
        assert dpg.is_item_shown(band)
        assert dpg.get_item_configuration(band)["pmax"][1] == pytest.approx(bottom)
    app.perform("pause")


def test_a_result_under_a_resting_pointer_answers_after_the_focus_comes_back(app):
    """Another window took the focus (a browser, by its keyboard) while the pointer rested
    on a result: when the viewer had it back, a right-click copied nothing (the message
    line still saying the path copied before) and no caption showed, until the pointer
    moved. Dear PyGui takes the canvas for hovered again only then; X11 says where the
    pointer is meanwhile."""
    pytest.importorskip("tkinter")
    app.perform("pause")
    pub = app.published
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    x0, y0, x1, y1 = app.layout.results[0]
    xdotool(app, "mousemove", str(round(ox + (x0 + x1) / 2)), str(round(oy + (y0 + y1) / 2)))
    band, _ = app.ids.caption
    assert dpg.is_item_shown(band)
    # a window beside the viewer, given the focus without the pointer moving
    mine = subprocess.run(["xdotool", "getwindowfocus"], capture_output=True, text=True).stdout
    other = subprocess.Popen(
        [sys.executable, "-c", "import tkinter as t; r = t.Tk(); r.title('rtsearch-other');"
         " r.geometry('300x200+1100+100'); t.Entry(r).pack(); r.mainloop()"]
    )  # fmt: skip
    try:
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--name", "^rtsearch-other$"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        xdotool(app, "windowfocus", "--sync", found.stdout.split()[0])
        for _ in range(10):
            app.frame()
        dpg.set_clipboard_text("")
        app.message = ""
        xdotool(app, "click", "3")
        hit = pub.results[0]
        assert app.message == f"copied: {hit.file}"
        assert dpg.get_clipboard_text() == str(hit.file)
        assert dpg.is_item_shown(band)  # its caption too
    finally:
        other.kill()
        other.wait()
        xdotool(app, "windowfocus", "--sync", mine.strip())  # (keys for the next tests)
        app.perform("pause")


def test_double_clicking_a_result_opens_that_result(app, monkeypatch):
    """The first press makes the result the query and the results move; the double-click
    still opens the picture it was made on, not the one that moved under the pointer, and
    the query goes back to the picture before (the results being browsed were lost)."""
    opened: list[Path] = []

    def open_file(path: Path) -> None:
        opened.append(path)
        app.message = f"{path}: cannot open it here: xdg-open is not installed"

    monkeypatch.setattr(app, "open_file", open_file)
    app.perform("random")
    pub = fresh(app, "random")
    queries = app.history.snapshot()
    x0, y0, x1, y1 = app.layout.results[2]
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    xdotool(app, "mousemove", str(round(ox + (x0 + x1) / 2)), str(round(oy + (y0 + y1) / 2)))
    clicked = pub.results[2]
    xdotool(app, "click", "--repeat", "2", "--delay", "150", "1")
    pump(app, lambda: opened == [clicked.file] and app.published.row == pub.row)
    for _ in range(20):  # and the second press did not query the one under it
        app.frame()
    assert app.published.row == pub.row
    assert [r.file for r in app.published.results] == [r.file for r in pub.results]
    # why it did not open is said (putting the query back cleared it)
    assert app.message == f"{clicked.file}: cannot open it here: xdg-open is not installed"
    # nor was the picture opened a query of its own: back goes to the one before
    assert app.history.files[app.history.at] == pub.file
    assert app.history.snapshot() == queries


def test_opening_a_result_without_a_system_viewer_says_so(app, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no xdg-open on it
    picture = tmp_path / "a.jpg"
    app.open_file(picture)
    assert app.message == f"{picture}: cannot open it here: xdg-open is not installed"


def show_picture(path: Path, box) -> subprocess.Popen:
    """A borderless Tk window showing ``path`` scaled to ``box`` (x, y, w, h)."""
    x, y, w, h = box
    code = (
        "import sys, tkinter\nfrom PIL import Image, ImageTk\n"
        "root = tkinter.Tk(); root.overrideredirect(True)\n"
        f"root.geometry('{w}x{h}+{x}+{y}')\n"
        f"img = ImageTk.PhotoImage(Image.open(sys.argv[1]).convert('RGB').resize(({w}, {h})))\n"
        "tkinter.Label(root, image=img, borderwidth=0).pack()\n"
        "root.after(30000, root.destroy); root.mainloop()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(path)], env=dict(os.environ))


def test_screen_source_finds_the_picture_on_screen_at_rank_1(app, gallery):
    root, _ = gallery
    target = sorted(root.rglob("img00017.*"))[0]
    proc = show_picture(target, SHOW_AT)
    try:
        time.sleep(1.5)  # let Tk map the window
        app.region.set_box(SHOW_AT)
        app.perform("screen")
        pump(app, lambda: top_is(app, "screen", target))  # once the window surely showed
        # a still screen is not searched again: after a second the status says so
        pump(app, lambda: app.published.message == UNCHANGED)
        assert top_is(app, "screen", target)
        app.frames = 0  # the status and message lines are written every 10th frame
        app.frame()
        assert dpg.get_value(app.ids.message) == UNCHANGED
        # and the rate, counted over the last 5 s, falls to 0
        pump(app, lambda: "  0.0 queries/s" in dpg.get_value(app.ids.status), timeout=8)
    finally:
        proc.kill()
        proc.wait()


def test_a_screen_region_off_the_screen_is_moved_on_and_said_so(app):
    app._start_source("screen:5000,5000,120,90")
    assert app.region.box == (1440 - 120, 900 - 90, 120, 90)
    assert "does not fit the 1440x900 screen" in app.message
    # grabbed there: an empty corner of the screen, plain black, so not searched
    pump(app, lambda: (app.published.source, app.published.message) == ("screen", PLAIN))
    app._start_source("screen:10,20,120,90")
    assert app.region.box == (10, 20, 120, 90) and app.message == ""
    app._start_source("screen:mouse")
    assert app.message == ""
    # moved on onto this window: both are said, the move and the overlap
    app._start_source("screen:-500,-500,200,200")
    fresh(app, "screen")
    app.frames = 0  # the message line is written every 10th frame
    app.frame()
    lines = dpg.get_value(app.ids.message).splitlines()
    assert "does not fit the 1440x900 screen: now 0,0,200,200" in lines[0]
    assert lines[1].startswith("the grab region overlaps this window")
    assert lines[1].endswith("(searched 2 times a second meanwhile)")
    assert app.mirrored  # the worker was told: it searched the viewer 30 times a second
    app.perform("pause")  # paused, it is not searched: not said so
    app.frames = 0
    app.frame()
    assert dpg.get_value(app.ids.message).endswith("does not search itself")
    app.perform("pause")
    app.perform("random")
    fresh(app, "random")
    app.frames = 0
    app.frame()
    assert not app.mirrored


def test_the_grab_region_is_on_the_whole_desktop_and_follows_its_changes(app, gallery, monkeypatch):
    """On a desktop of several monitors G previewed the first one mss lists and kept the
    region on it; where that one did not start at 0,0 the preview showed one place and the
    grab took another (the viewer's own window). A change of resolution while the viewer
    ran left the preview stretched to the old shape. Here Xvfb's 1440x900 is the desktop
    and its right half is said to be the first monitor."""
    from rtsearch.sources import ScreenSource
    from rtsearch.viewer.worker import ScreenPreview

    root, _ = gallery
    target = sorted(root.rglob("img00017.*"))[0]
    monkeypatch.setattr(ScreenSource, "monitor", lambda self: (720, 0, 720, 900))
    proc = show_picture(target, SHOW_AT)  # 1000,150: on that "first monitor"
    try:
        time.sleep(1.5)  # let Tk map the window
        app.perform("grab_mode")
        assert app.region.desk == (0, 0, 1440, 900) and app.region.home == (720, 0, 720, 900)
        assert app.preview.size == (640, 400)
        p = grab_view.grab_preview(app)  # the preview shows the desktop from its corner
        assert app.region.to_screen(p, p.x, p.y) == (0, 0)
        app._leave_grab_mode(apply=False)
        app._start_source("screen:" + ",".join(map(str, SHOW_AT)))
        assert app.message == "" and app.region.box == SHOW_AT
        pump(app, lambda: top_is(app, "screen", target))  # grabbed where it is
        # the desktop changes while the mode is on: the preview takes the new shape and
        # the region is moved onto it
        app.perform("grab_mode")
        monkeypatch.setattr(ScreenPreview, "REREAD_S", 0.0)
        monkeypatch.setattr(ScreenSource, "desktop", lambda self: (0, 0, 1200, 900))
        monkeypatch.setattr(ScreenSource, "monitor", lambda self: (0, 0, 1200, 900))
        pump(app, lambda: app.region.desk == (0, 0, 1200, 900))
        assert app.preview.size == (640, 480)
        assert app.region.box == (800, 150, 400, 300)
        assert "does not fit the 1200x900 screen: now 800,150,400,300" in app.message
        for _ in range(5):
            app.frame()
        app.perform("escape")  # the region from before, on the desktop as it is now
        assert not app.grab_mode and app.region.box == (800, 150, 400, 300)
    finally:
        app._leave_grab_mode(apply=False)
        monkeypatch.undo()
        app.region.set_desktop((0, 0, 1440, 900))
        proc.kill()
        proc.wait()
        app.perform("random")  # and its words gone from the message line (a line less)
        pump(app, lambda: "does not fit" not in dpg.get_value(app.ids.message))


def test_the_grab_preview_outlines_each_monitor_of_a_desktop_of_several(app):
    """The gap between unequal monitors looked like a black wallpaper on the preview: a
    region put there grabs nothing. Each monitor's edges are drawn; one monitor, none."""
    from rtsearch.viewer import grab_view

    monitors = ((0, 0, 1920, 1080), (1920, 0, 1280, 720))
    before = app.region.desk, app.region.home, app.region.monitors
    items = app.ids.grab
    app.perform("grab_mode")
    app.preview.close()  # (its own reads of this one-screen display would undo the fake)
    app.preview = None
    try:
        app.region.set_desktop((0, 0, 3200, 1080), monitors[0], monitors)
        grab_view.draw_grab(app)
        p = grab_view.grab_preview(app)
        drawn = [dpg.get_item_configuration(items[f"monitor{i}"]) for i in range(3)]
        assert [d["show"] for d in drawn] == [True, True, False]
        want = app.region.monitor_rects(p)
        got = [v for d in drawn[:2] for v in (*d["pmin"][:2], *d["pmax"][:2])]
        assert got == pytest.approx([v for rect in want for v in rect])
        assert want[1][0] == pytest.approx(want[0][2])  # side by side, the second shorter
        assert want[1][3] < want[0][3]
        app.region.set_desktop(*before)
        grab_view.draw_grab(app)
        assert not any(dpg.get_item_configuration(items[f"monitor{i}"])["show"] for i in range(3))
    finally:
        app.region.set_desktop(*before)
        app.perform("escape")


def test_grab_mode_and_query_sizes_coming_and_going_keep_memory_flat(app):
    """Each texture made anew leaked its memory inside Dear PyGui (3 MiB for a 640x400
    raw texture deleted): entering the grab mode made the preview's, each new size of
    query picture the query's; a user's G/Esc 60 times took the viewer from 269 to
    471 MiB, an hour of random pictures and source switches past 2 GB."""
    from rtsearch.thumbs import Thumb

    def rss_mib() -> float:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS"))
                   .split()[1]) / 1024  # fmt: skip

    def cycle(i: int) -> None:
        app.perform("grab_mode")
        # the last preview's picture is not shown before the new one's first
        preview = app.ids.grab["preview"]
        assert not dpg.get_item_configuration(preview)["show"]
        pump(app, lambda: dpg.get_item_configuration(preview)["show"])
        assert app.preview is not None and app.preview_tex.used != (1, 1)
        app.perform("escape")
        w, h = 150 + 17 * (i % 20), (200, 240)[i % 2]  # 20 shapes, as random pictures
        app._show_query(Thumb(np.full((h, w, 3), i, np.uint8), w, h))
        for _ in range(2):
            app.frame()

    for i in range(20):  # warm: every size's texture and buffer made once
        cycle(i)
    before = rss_mib()
    for i in range(40):
        cycle(i)
    grown = rss_mib() - before
    print(f"RSS grew {grown:.1f} MiB over 40 cycles")
    assert grown < 40  # (made anew each time: about 3.4 MiB a cycle, 135 MiB)
    registry = dpg.get_item_children(app.registry, 1)
    dynamic = [t for t in registry if dpg.get_item_info(t)["type"].endswith("DynamicTexture")]
    assert len(dynamic) <= app.query_tex.keep + app.preview_tex.keep
    app.perform("random")


def test_the_status_shows_no_stale_figures_when_paused_or_a_source_fails(app, tmp_path):
    def status() -> str:
        app.frames = 0  # the status line is written every 10th frame
        app.frame()
        return dpg.get_value(app.ids.status)

    video = write_video(tmp_path / "live.avi", list(range(0, 30, 3)), frames_each=3)
    app._start_source(f"video:{video}")
    pump(app, lambda: app.published.source == "video:live.avi" and len(app.latencies) > 3)
    assert "latency -" not in status() and "inference -" not in status()
    app.perform("pause")
    for _ in range(5):
        app.frame()
    shown = status()
    assert "(paused)" in shown and "latency -" in shown and "inference -" in shown
    assert "0.0 queries/s" in shown
    assert dpg.get_item_label(app.ids.pause_button) == "Resume (Space)"
    app.perform("pause")
    shown = status()  # just resumed: both figures wait for the next result, not one of them
    assert "latency -" in shown and "inference -" in shown, shown
    pump(app, lambda: "latency -" not in status())
    assert "inference -" not in status()
    assert dpg.get_item_label(app.ids.pause_button) == "Pause (Space)"
    # queries/s: a picture that changes every 1.5 s is searched 0.7 times a second
    slow = write_video(tmp_path / "slow.avi", [3, 7, 11, 15, 19], frames_each=15, fps=10.0)
    app._start_source(f"video:{slow}")
    pump(app, lambda: app.published.source == "video:slow.avi")
    end = time.perf_counter() + 4.0
    while time.perf_counter() < end:
        app.frame()
    assert 0.3 <= app.query_rate() <= 1.2, app.query_rate()
    # and the last source's rate does not stay up after switching to R
    app.perform("random")
    fresh(app, "random")
    assert app.query_rate() <= 2.0 and "queries/s" in status()
    # a picture of the collection is searched with its stored vector: no model run, said
    # so (not "inference 0.0 ms"), its latency still shown
    assert "inference stored" in status() and "latency -" not in status(), status()
    app.perform("pause")  # ... and after a pause: it went to "inference -" for good
    assert "inference -" in status()
    app.perform("pause")
    assert "inference stored" in status(), status()
    # a webcam that is not there: its status does not carry the video's figures
    app._start_source("webcam:57")
    pump(app, lambda: app.published.message.startswith("no camera found"))
    for _ in range(5):
        app.frame()
    shown = status()
    assert "latency -" in shown and "inference -" in shown and "0.0 queries/s" in shown
    assert "no camera found (device 57)" in dpg.get_value(app.ids.message)
    # nor the video's picture and results: it has none of its own to show
    assert app.published.query is None and not app.published.results
    assert not dpg.is_item_shown(app.ids.query_image)
    assert not any(dpg.is_item_shown(tile) for tile in app.ids.tiles)
    said = dpg.get_item_configuration(app.ids.no_picture)["text"]  # where the picture was
    assert dpg.is_item_shown(app.ids.no_picture), said
    assert said.replace("\n", " ") == f"No picture from webcam:57: {app.published.message}"
    app.perform("random")
    fresh(app, "random")
    assert not dpg.is_item_shown(app.ids.no_picture)


def test_video_source_updates_the_results(app, gallery, tmp_path):
    video = write_video(tmp_path / "clip.avi", [3, 7, 11], frames_each=12, fps=25.0)
    app._start_source(f"video:{video}")
    tops = set()
    end = time.perf_counter() + 6.0
    while time.perf_counter() < end and len(tops) < 3:
        tops.add(fresh(app, "video").results[0].file.stem)
    assert tops == {"img00003", "img00007", "img00011"}


def test_the_status_never_shows_a_latency_below_the_inference_it_holds(app, monkeypatch, tmp_path):
    """Capture-to-display holds the inference: the status showed the median latency beside
    the last query's inference, so one slow inference read "latency 27 ms | inference
    58.8 ms". Both are now medians over the same queries."""
    import re

    real = type(app.session).features_of
    calls = []

    def uneven(self, images):  # every fourth inference is slow
        calls.append(1)
        if len(calls) % 4 == 0:
            time.sleep(0.15)
        return real(self, images)

    monkeypatch.setattr(type(app.session), "features_of", uneven)
    video = write_video(tmp_path / "uneven.avi", [3, 7, 11], frames_each=4, fps=25.0)
    app._start_source(f"video:{video}")
    seen = 0
    end = time.perf_counter() + 4.0
    while time.perf_counter() < end:
        app.frame()
        status = dpg.get_value(app.ids.status)
        figures = re.search(r"latency (\d+) ms.*inference ([\d.]+) ms", status.replace("\n", " "))
        if figures:
            seen += 1
            assert float(figures[1]) + 0.5 >= float(figures[2]), status
    assert seen > 10 and len(calls) >= 8


def test_switching_sources_50_times_with_the_shortcuts(app, tmp_path):
    # V plays the video played before (with none, it opens the file dialog: the test run on
    # its own met that dialog)
    app._start_source(f"video:{write_video(tmp_path / 'clip.avi', [3, 7], frames_each=5)}")
    pump(app, lambda: app.published.source == "video:clip.avi")
    keys = [dpg.mvKey_R, dpg.mvKey_W, dpg.mvKey_V, dpg.mvKey_S, dpg.mvKey_G, dpg.mvKey_G]
    threads_before = threading.active_count()
    for i in range(50):
        app.on_key(keys[i % len(keys)])
        for _ in range(3):
            app.frame()
    assert not app.grab_mode  # G pressed an even number of times
    assert not dpg.is_item_shown(app.ids.video_dialog)  # V played the video again
    assert threading.active_count() <= threads_before + 2  # no camera/preview threads left
    app.on_key(dpg.mvKey_W)
    pump(
        app,
        lambda: (
            "no camera" in dpg.get_value(app.ids.message)
            or app.published.source.startswith("webcam")
        ),
    )
    app.on_key(dpg.mvKey_R)
    app.on_key(dpg.mvKey_R)  # the first press switches to random, the second asks again
    assert fresh(app, "random").results


def test_a_result_published_while_the_frame_waits_is_shown_in_that_frame(app, monkeypatch):
    import dataclasses

    pump(app, lambda: app.published is not None and bool(app.published.results))
    app.worker.send("pause", True)
    pace = app._pace
    newer = []

    def pace_then_publish() -> None:  # the worker finishes a query during the frame's wait
        pace()
        with app.worker._lock:
            last = app.worker._slot
            app.worker._slot = dataclasses.replace(last, seq=last.seq + 1)
            newer.append(app.worker._slot)

    monkeypatch.setattr(app, "_pace", pace_then_publish)
    app.frame()
    monkeypatch.undo()
    app.worker.send("pause", False)
    assert app.published is newer[0]


def test_a_picture_published_again_is_not_counted_as_a_new_latency(app):
    """Messages and the idle rate re-publish the last picture; its capture time is old,
    and counting it again put seconds into the latency the status shows."""
    import dataclasses

    pump(app, lambda: app.published is not None and bool(app.published.results))
    app.worker.send("pause", True)
    time.sleep(0.3)  # a query already running is published before the pause
    app.frame()
    before = list(app.latencies)
    with app.worker._lock:
        last = app.worker._slot
        app.worker._slot = dataclasses.replace(last, seq=last.seq + 1, message="note")
    app.frame()
    app.worker.send("pause", False)
    assert app.published.message == "note"
    assert list(app.latencies) == before


def test_help_overlay_and_result_count_keys(app):
    app.on_key(dpg.mvKey_F1)
    app.frame()
    assert dpg.is_item_shown(app.ids.help)
    app.on_key(dpg.mvKey_Escape)
    assert not dpg.is_item_shown(app.ids.help)
    k = app.k
    app.on_key(dpg.mvKey_Plus)
    assert app.k == k + 1
    pump(app, lambda: len(app.published.results) == k + 1)
    app.on_key(dpg.mvKey_Minus)
    assert app.k == k
    title = lambda: dpg.get_item_configuration(app.ids.results_label)["text"]  # noqa: E731
    assert title() == "Nearest neighbor images"
    # more asked for, the results of fewer still on show (a 4K video's frame takes a while):
    # not "20 of 23 asked for, all the index has" of an index of 30
    from rtsearch.viewer import ui

    pump(app, lambda: len(app.published.results) == k)
    app.k = k + 3  # (as + sets it, before the worker has answered)
    assert ui.results_title(app) == "Nearest neighbor images"
    app.k = k
    app.perform("random")
    app.set_k(40)  # the gallery holds 30 images; a random query leaves itself out
    pump(app, lambda: len(app.published.results) == 29 and "29 of 40" in title())
    assert title() == (
        "Nearest neighbor images: 29 of 40 asked for, all the index has besides the query"
    )
    app.set_k(k)
    pump(app, lambda: title() == "Nearest neighbor images")


def test_layout_follows_window_resizes(app):
    def first_row() -> int:
        rects = app.layout.results
        return sum(1 for r in rects if r[1] == rects[0][1])

    app.perform("random")
    fresh(app, "random")
    narrow = first_row()
    dpg.set_viewport_width(1400)
    pump(app, lambda: first_row() > narrow)
    dpg.set_viewport_width(900)
    pump(app, lambda: first_row() == narrow)


def test_toolbar_and_status_bar_wrap_in_a_narrow_window(app):
    from rtsearch.viewer import layout, status

    bar = app.ids.toolbar
    chips = [c for section in bar.sections for c in section]

    def box(item) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 in the window (the primary window: the viewport)."""
        state = dpg.get_item_state(item)
        (x, y), (w, h) = state["pos"], state["rect_size"]
        return x, y, x + w, y + h

    def settled(width: int, more_than: int) -> bool:
        return (
            dpg.get_viewport_client_width() == width
            and len(set(bar.packed)) > more_than
            and max(box(c)[2] for c in chips) <= width
        )

    pump(app, lambda: bar.packed != ())
    wide_rows = len(set(bar.packed))
    try:
        dpg.set_viewport_width(560)
        pump(app, lambda: settled(560, wide_rows))
        for _ in range(25):  # two status refreshes
            app.frame()
        assert max(box(c)[2] for c in chips) <= 560
        assert dpg.get_value(app.ids.status).count("\n") >= 1
        assert box(app.ids.status)[2] <= 560
        # the canvas gives way to the extra rows above it and the lines below it
        assert box(chips[-1])[3] <= box(app.ids.canvas)[1]
        assert box(app.ids.canvas)[3] <= box(app.ids.status)[1]
        assert box(app.ids.message)[3] <= dpg.get_viewport_client_height()
        # the order of the buttons is kept across rows
        tops = [box(c)[1::-1] for c in chips]
        assert tops == sorted(tops)
        assert "\n" not in status.wrap_parts(["a" * 10, "b" * 10], 10_000)
        # the README's window (1280 px) shows the demo's status on one line
        demo = [
            "source random",
            "latency 113 ms",
            "inference 17.1 ms",
            "0.0 queries/s",
            "UI 60 fps",
            "index 881 images, 100-d",
            "model efficientnet-lite0 int8",
            "CPU",
        ]
        assert "\n" not in status.wrap_parts(demo, 1280 - 2 * layout.PAD)  # fmt: skip
        # a part wider than a row alone is broken, not cut at the window's edge
        long = "source video:clip_with_a_very_long_name_" + "x" * 120 + ".avi"
        lines = status.wrap_parts(["source random", long, "CPU"], 500).split("\n")
        assert lines[0] == "source random" and lines[-1] == "CPU"
        assert "".join(lines[1:-1]) == long.replace(" ", "") and len(lines) >= 4
        assert all(dpg.get_text_size(line)[0] <= 500 for line in lines)
        # a long path in the message breaks after a '/', not at the dot of '/root/.local'
        path = "/root/.local/share/rtsearch/gallery/stamps/household/dishes/utensils/grinder.png"
        app.message = f"query: {path}"
        for _ in range(25):  # set, then drawn
            app.frame()
        shown = dpg.get_value(app.ids.message).split("\n")
        assert "".join(shown) == f"query: {path}" and len(shown) >= 2, shown
        assert all(line.endswith("/") for line in shown[:-1])
        assert all(dpg.get_text_size(line)[0] <= 560 - 2 * layout.PAD for line in shown)
        one = dpg.get_text_size("A")[1]  # and Dear PyGui broke none of them again:
        assert round(dpg.get_item_rect_size(app.ids.message)[1] / one) == len(shown)
        # a message that grows gets its room at once, not from its size drawn a frame later
        app.message = "a message long enough to take three lines " * 5  # (wrapped to them)
        status.update_status(app)
        status_lines = dpg.get_value(app.ids.status).count("\n") + 1
        said = dpg.get_value(app.ids.message).count("\n") + 1
        assert said >= 3
        room = status.STATUS_H + round((status_lines + said - 2) * one)
        assert dpg.get_item_configuration(app.ids.canvas)["height"] == -room
    finally:
        dpg.set_viewport_width(900)
    pump(app, lambda: dpg.get_viewport_client_width() == 900 and len(set(bar.packed)) == wide_rows)


def test_a_word_too_long_for_a_line_breaks_after_a_slash_where_one_fits():
    from rtsearch.viewer import wrap

    one = dict.fromkeys("/abcdefghij.", 1)  # every character 1 px wide
    assert wrap._pieces("/a/bb/ccc", 4, one) == ["/a/", "bb/", "ccc"]
    assert wrap._pieces("/abcdefghij", 4, one) == ["/abc", "defg", "hij"]  # no '/' to use
    assert wrap._pieces("/a.b", 4, one) == ["/a.b"] and wrap._pieces("", 4, one) == [""]


def test_the_grab_preview_stays_put_when_the_overlap_note_comes_and_goes(app):
    """The note took the hint to another line and pushed the preview down in mid-drag: the
    rectangle jumped a line away from the pointer."""
    from rtsearch.viewer import grab_view

    app.perform("grab_mode")
    try:
        spots = {}
        for where, box in (("away", (1000, 300, 405, 330)), ("over", (100, 100, 405, 330))):
            app.region.set_box(box)
            for _ in range(3):
                app.frame()
            spots[where] = (grab_view.grab_hint(app), grab_view.grab_preview(app))
        assert not any("overlaps" in line for line in spots["away"][0])
        assert any("overlaps" in line for line in spots["over"][0])
        assert len(spots["over"][0]) > len(spots["away"][0])  # the note takes a line here
        assert spots["over"][1] == spots["away"][1]  # and the preview stays where it was
    finally:
        app.perform("escape")


def test_a_file_dialog_open_while_the_window_shrinks_stays_inside_it(app, tmp_path):
    """A file dialog keeps the place it was first shown at: made smaller for a smaller
    window, it went past its right edge, OK and Cancel with it. It is centred again."""

    def settle(width: int, height: int) -> None:
        dpg.set_viewport_width(width)
        dpg.set_viewport_height(height)
        pump(app, lambda: dpg.get_viewport_client_width() == width)
        for _ in range(10):
            app.frame()

    def blue_columns(shot: Path) -> np.ndarray:  # where the dialog's title bar is
        rgb = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
        blue = (rgb[..., 2] > 110) & (rgb[..., 2] > rgb[..., 0] + 60)
        return np.flatnonzero(blue.sum(axis=0) >= 8)

    dialog = app.ids.save_dialog
    try:
        settle(1100, 800)
        app.open_dialog(dialog)
        for _ in range(10):
            app.frame()
        settle(520, 420)
        assert dpg.is_item_shown(dialog)
        shot = tmp_path / "shrunk.png"
        app._screenshot(shot)
        cols = blue_columns(shot)
        assert len(cols) and cols.min() < 40 and cols.max() < 520 - 4, (cols.min(), cols.max())
    finally:
        app.ids.close_dialog()
        dpg.set_viewport_width(900)
        dpg.set_viewport_height(700)
    pump(app, lambda: dpg.get_viewport_client_height() == 700)
    for _ in range(10):
        app.frame()


def test_a_narrow_or_short_window_wraps_the_grab_hint_and_keeps_a_canvas(app, tmp_path):
    from rtsearch.viewer import grab_view, status

    def settle(width: int, height: int) -> None:
        dpg.set_viewport_width(width)
        dpg.set_viewport_height(height)
        pump(app, lambda: dpg.get_viewport_client_width() == width)
        for _ in range(25):  # the bars, then the canvas, then the status twice
            app.frame()

    try:
        settle(560, 480)
        # the dims box is named before it, apart from "num results"
        kids = dpg.get_item_children(dpg.get_item_parent(app.ids.dims_input), 1)
        label, box = kids[:2]
        assert dpg.get_value(label).strip() == "dims" and box == app.ids.dims_input
        assert dpg.get_item_state(label)["pos"][0] < dpg.get_item_state(box)["pos"][0]
        app.perform("grab_mode")
        for _ in range(5):
            app.frame()
        lines = grab_view.grab_hint(app)
        assert len(lines) >= 2
        assert (
            grab_view.grab_preview(app).y >= grab_view.HINT_TOP + len(lines) * grab_view.HINT_SIZE
        )
        out = tmp_path / "grab.png"
        app._screenshot(out)
        shot = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
        # the hint's yellow stops short of the canvas's right edge (its scrollbar, 14 px, and
        # half its padding): no line is cut there
        x0, y0 = (round(v) for v in dpg.get_item_rect_min(app.ids.drawlist))
        canvas = dpg.get_item_state(app.ids.canvas)
        clip = round(canvas["pos"][0] + canvas["rect_size"][0]) - 14 - 4
        rows = shot[y0 : y0 + grab_view.HINT_TOP + len(lines) * grab_view.HINT_SIZE, :clip]
        yellow = (np.abs(rows - np.array(grab_view.GRAB_BORDER[:3])).max(axis=2) < 40).any(axis=0)
        assert yellow[x0:].any() and not yellow[clip - 6 :].any()
        app.perform("escape")
        # a window too short for the bars and a canvas keeps a canvas and scrolls
        settle(600, 240)
        assert dpg.get_item_rect_size(app.ids.canvas)[1] >= status.MIN_CANVAS_H
    finally:
        dpg.set_viewport_width(900)
        dpg.set_viewport_height(700)
        if app.grab_mode:
            app.perform("escape")
    pump(app, lambda: dpg.get_viewport_client_height() == 700)
    for _ in range(25):
        app.frame()
    assert dpg.get_item_configuration(app.ids.canvas)["height"] < 0  # fills the window again


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_1000_frames_keep_textures_and_memory_flat(app, tmp_path):
    video = write_video(tmp_path / "soak.avi", list(range(0, 30, 3)), frames_each=3)
    app._start_source(f"video:{video}")
    for _ in range(100):
        app.frame()
    textures, rss = len(dpg.get_all_items()), rss_mb()
    seq = app.published.seq
    for _ in range(900):
        app.frame()
    assert app.published.seq > seq + 20  # results kept changing
    assert len(dpg.get_all_items()) == textures
    assert rss_mb() - rss < 40


def test_ui_stays_smooth_while_a_slow_model_runs(app, tmp_path):
    from rtsearch.session import SearchSession

    class Slow(SearchSession):
        def features_of(self, images):
            time.sleep(0.3)
            return super().features_of(images)

    s = app.session
    app.set_session(Slow(s.index, s.extractor, s.base_dir, source=s.source))
    video = write_video(tmp_path / "slow.avi", list(range(0, 30, 3)), frames_each=3)
    app._start_source(f"video:{video}")
    fresh(app, "video")
    start, seq = len(app.frame_times), app.published.seq
    for _ in range(60):
        app.frame()
    ms = np.diff(np.array(list(app.frame_times)[start - 1 :])) * 1000
    assert app.published.seq > seq  # the slow model did answer meanwhile
    assert np.median(ms) < 100 and ms.max() < 300  # never waited a whole 300 ms query
    app.set_session(s)


def test_dimensionality_and_analyze_from_the_ui(app, gallery, tmp_path, monkeypatch):
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    assert dpg.get_value(app.ids.dims_input) == app.session.index.dims  # the box shows it
    assert dpg.get_item_configuration(app.ids.dims_input)["max_value"] == 128  # the model's
    # two quick Apply dims: the last pressed is the one kept, whichever finishes last
    slow = SearchSession.reprojected

    def reprojected(self, dims):
        if dims == 20:
            time.sleep(1.5)
        return slow(self, dims)

    monkeypatch.setattr(SearchSession, "reprojected", reprojected)
    for dims in (20, 12):
        dpg.set_value(app.ids.dims_input, dims)
        actions.reproject(app)
    pump(app, lambda: not any(t.name == "re-projection" for t in app.tasks))
    assert app.session.index.dims == 12 and dpg.get_value(app.ids.dims_input) == 12
    assert app.message == "re-projected to 12 dimensions (30 images)"
    monkeypatch.undo()
    folder = tmp_path / "new"
    make_gallery(folder, 9, start=100)
    (folder / "corrupt.jpg").write_bytes(b"not a picture")
    (folder / "empty.png").write_bytes(b"")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    actions.analyze(app, folder)
    pump(app, lambda: len(app.session.index.paths) == 9, timeout=60)
    made = actions.analysis_output(folder, actions.model_key(app.session.extractor.info))
    assert made.is_file()
    # the file in the data folder is what plain `rtsearch` opens next time (a Ctrl+O away,
    # in a hidden folder, it was the one index a user could not find again)
    from rtsearch.viewer.memory import recall

    assert (recall().index, recall().base_dir) == (made, folder)
    # the files skipped are named, with their reasons, not only counted
    assert "(9 images); skipped 2 files: " in app.message
    assert f"{folder}/corrupt.jpg: " in app.message and f"{folder}/empty.png: " in app.message
    app.perform("random")  # the live source stays; R now draws from the new index
    assert fresh(app, "random").results[0].file.parent.parent == folder


def test_a_watch_adds_rows_made_with_the_file_that_made_the_index_not_the_queries(
    app, tmp_path, monkeypatch
):
    """`view --watch` analysed new pictures with the live queries' int8 twin: their rows
    came back at 0.07-0.11 from their own pictures, for good (`update` finds the files
    unchanged). It makes them with the file that made the index, as `update` does."""
    from dataclasses import replace

    from rtsearch import update
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    before = app.session
    twin = int8_twin(tmp_path / "models")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    app.set_session(SearchSession(before.index, Extractor(twin), before.base_dir,
                                  source=before.source))  # fmt: skip
    used = []

    def follow(path, base, extractor, **kw):
        used.append(extractor.info.variant)
        return iter(())

    monkeypatch.setattr(update, "follow", follow)
    actions.watch(app)
    pump(app, lambda: not any(t.name == "watch" for t in app.tasks))
    assert used == ["fp32"] and app.session.extractor.info.variant == "int8"
    # an index made with the int8 file takes rows of it, the live queries on the fp32 one
    # (fp32 rows went into it, as int8 ones into an fp32 index)
    made_by_int8 = replace(before.index, model=replace(before.index.model, variant="int8"))
    app.set_session(SearchSession(made_by_int8, Extractor(twin.with_name("tiny.onnx")),
                                  before.base_dir, source=before.source))  # fmt: skip
    actions.watch(app)
    pump(app, lambda: not any(t.name == "watch" for t in app.tasks))
    assert used == ["fp32", "int8"] and app.session.extractor.info.variant == "fp32"
    app.set_session(before)


def test_a_folder_analysed_with_another_model_before_is_analysed_again_not_refused(
    app, tmp_path, monkeypatch
):
    """Analyze from the viewer keeps one index per folder and model: keyed by the folder
    alone, analysing it with another model loaded was refused with "use the same --model
    or choose another -o", which the viewer offers no way to do."""

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    folder = tmp_path / "both"
    make_gallery(folder, 5, start=400)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    before = app.session
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    assert app.session.index.model.name == "tiny" and app.session.index.count == 5
    tiny_out = app.session.source
    key = actions.model_key(app.session.extractor.info)
    assert tiny_out == actions.analysis_output(folder, key) and "-tiny-" in tiny_out.name
    # another export of the same backbone from other weights: a file of its own
    from rtsearch.models import read_model_info

    retrained = read_model_info(write_tiny_model(tmp_path / "t2" / "tiny.onnx", seed=3))
    assert retrained.name == "tiny" and actions.model_key(retrained) != key
    other = write_tiny_model(tmp_path / "other.onnx", seed=7, name="other")
    make_gallery(tmp_path / "loaded", 4, start=500)
    loaded = tmp_path / "loaded.dat"
    analyze(tmp_path / "loaded", loaded, Extractor(other, threads=1), Settings(dims=8))
    app.set_session(SearchSession.open(loaded, model=str(other), threads=1))
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    assert app.session.index.model.name == "other" and app.session.index.count == 5, app.message
    assert app.session.source != tiny_out
    # live queries on the model's int8 twin: the index is made with its fp32 file, as
    # `analyze` makes it, into the one file of that model (int8 features went into a file
    # of their own)
    twin = int8_twin(tmp_path / "models")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    app.set_session(SearchSession(before.index, Extractor(twin), before.base_dir,
                                  source=before.source))  # fmt: skip
    stamp = tiny_out.stat().st_mtime_ns
    (folder / "d1" / "img00400.png").unlink()  # something to do
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    assert app.session.index.model.variant == "fp32" and app.session.index.count == 4
    assert app.session.source == tiny_out and tiny_out.stat().st_mtime_ns != stamp
    # and the live queries stay on the twin the viewer had chosen (they went over to the
    # analysis's fp32 file, at every core but one, without a word)
    assert app.session.extractor.path == twin
    app.set_session(before)


def test_the_live_model_of_an_index_loaded_or_analysed_in_the_viewer_follows_its_options(
    tmp_path, monkeypatch
):
    """The int8 twin unless --fp32, at --threads, as for an index given on the command
    line; the loaded model when it is of the index's weights."""
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.viewer.actions import live_extractor, open_index
    from rtsearch.viewer.app import ViewerOptions

    twin = int8_twin(tmp_path / "models")
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "models"))
    made_by = Extractor(tmp_path / "models" / "tiny.onnx", threads=1, streams=0)
    live = live_extractor(None, made_by, ViewerOptions(threads=2))
    assert live.path == twin and live.threads_per_stream == 2
    live = live_extractor(None, made_by, ViewerOptions(fp32=True))
    assert live.info.variant == "fp32" and live is not made_by and live.threads_per_stream == 1
    make_gallery(tmp_path / "g", 4)
    from rtsearch.analyze import Settings, analyze

    out = tmp_path / "g.dat"
    analyze(tmp_path / "g", out, made_by, Settings(dims=4))
    current = SearchSession.open(out, threads=1, prefer_int8=True)
    assert current.extractor.path == twin
    assert live_extractor(current, made_by, ViewerOptions(fp32=True)) is current.extractor
    # Load index...: without an index loaded before, as `view INDEX` picks it
    opened = open_index(out, tmp_path / "g", None, ViewerOptions(threads=2))
    assert opened.extractor.path == twin and opened.extractor.threads_per_stream == 2
    opened = open_index(out, tmp_path / "g", None, ViewerOptions(fp32=True))
    assert opened.extractor.info.variant == "fp32"


def test_a_folder_analysed_again_after_most_of_it_was_deleted_is_not_refused(
    app, tmp_path, monkeypatch
):
    """Analyze folder... on a folder whose pictures were mostly deleted since its last
    analysis was refused with `analyze`'s advice, "pass --replace to remove them", which
    the viewer has no way to pass: the index is the viewer's own file of that folder."""
    from rtsearch.viewer import actions

    folder = tmp_path / "culled"
    pictures = make_gallery(folder, 12, start=700)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    before = app.session
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    assert app.session.index.count == 12, app.message
    for picture in pictures[:10]:
        picture.unlink()
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    assert app.session.index.count == 2 and "--replace" not in app.message, app.message
    app.set_session(before)


def test_an_analysis_cancelled_says_its_work_is_kept_and_a_second_waits(app, tmp_path, monkeypatch):
    """Cancel said "analyze cancelled", nothing of the work kept (its checkpoints hold it,
    and Analyze folder... again goes on from there); A during an analysis opened the folder
    dialog, and said it was running only once a folder was chosen."""
    from rtsearch import store
    from rtsearch.checkpoints import CheckpointWriter
    from rtsearch.viewer import actions

    folder = tmp_path / "cancelled"
    make_gallery(folder, 24, start=500)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    real_add = CheckpointWriter.add

    def add_then_cancel(self, *args):
        real_add(self, *args)
        app.perform("analyze")  # a second, while it runs: said, no dialog
        actions.cancel_analyze(app)

    monkeypatch.setattr(CheckpointWriter, "add", add_then_cancel)
    before = app.session
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    assert not dpg.is_item_shown(app.ids.analyze_dialog)
    assert app.message == (
        f"analysis of {folder} cancelled: the images analysed so far are kept, and Analyze "
        "folder... (A) on it again goes on from there"
    )
    assert app.session is before
    made = actions.analysis_output(folder, actions.model_key(app.session.extractor.info))
    assert list(store.checkpoint_dir(made).glob("part-*.dat"))
    monkeypatch.undo()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    actions.analyze(app, folder)
    notes = set()

    def finished() -> bool:
        notes.update(t.note for t in app.tasks if t.name == "analyze" and t.note)
        return not any(t.name == "analyze" for t in app.tasks)

    pump(app, finished, timeout=60)
    assert app.session.index.count == 24 and not store.checkpoint_dir(made).exists()
    # its progress counts the images analysed before the cancel: of 24 (it said of 24 - N)
    assert notes and all(n.split(" ")[0].endswith("/24") for n in notes), notes
    assert dpg.get_viewport_title() == f"rtsearch - cancelled ({tmp_path})"  # the one on show
    app.set_session(before)


def test_analyze_right_after_a_cancel_opens_and_starts_once_the_first_has_stopped(
    app, tmp_path, monkeypatch
):
    """Cancel, then A at once: the bar had gone, but A said "an analysis is running: its
    Cancel, beside the progress bar, stops it" and did nothing. The dialog now opens, and
    the analysis chosen starts once the cancelled one has kept its work."""
    import threading

    from rtsearch import store
    from rtsearch.checkpoints import CheckpointWriter
    from rtsearch.viewer import actions

    first, second = tmp_path / "first", tmp_path / "second"
    make_gallery(first, 24, start=800)
    make_gallery(second, 5, start=900)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    real_add, started, go = CheckpointWriter.add, threading.Event(), threading.Event()

    def add_slowly(self, *args):
        real_add(self, *args)
        started.set()
        go.wait(30)

    monkeypatch.setattr(CheckpointWriter, "add", add_slowly)
    before = app.session
    try:
        actions.analyze(app, first)
        pump(app, started.is_set, timeout=60)
        actions.cancel_analyze(app)
        app.perform("analyze")
        app.frame()
        assert dpg.is_item_shown(app.ids.analyze_dialog), app.message
        assert app.message != actions.ANALYSIS_RUNNING
        app.on_key(dpg.mvKey_Escape)
        actions.analyze(app, second)  # what the dialog's OK calls
        assert app.message == f"analyzing {second}"
        go.set()
        pump(app, lambda: app.session.base_dir == second, timeout=60)
        made = actions.analysis_output(first, actions.model_key(app.session.extractor.info))
        assert list(store.checkpoint_dir(made).glob("part-*.dat"))  # its work kept
    finally:
        go.set()
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        app.set_session(before)


def test_analyzing_the_folder_of_the_index_on_show_brings_that_index_up_to_date(
    app, gallery, tmp_path, monkeypatch
):
    """*Analyze folder...* on the folder of the index on show (made by `rtsearch analyze`)
    analysed every picture again into a second index of the viewer's own, the one on show
    left as it was (796 pictures, in a user's trial). It now brings that index up to date,
    as `rtsearch update` does: only the new pictures are analysed; cancelled, their work is
    kept for the next time."""
    import threading

    from rtsearch import store
    from rtsearch.checkpoints import CheckpointWriter
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    before = app.session
    folder, path = tmp_path / "trip", tmp_path / "trip.dat"
    shutil.copytree(gallery[0], folder)
    shutil.copy(gallery[1], path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    indexed = store.load(path).paths
    make_gallery(folder, 40, start=300)  # new since
    (folder / indexed[0]).unlink()
    # (counted from the folder: the tests before may have changed the shared gallery)
    after = {f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()}
    new_files, grown = sorted(after - set(indexed)), len(after)
    removed = len(set(indexed) - after)
    analysed: list[str] = []
    real_add, held, go = CheckpointWriter.add, threading.Event(), threading.Event()

    def add(self, paths, *args):
        real_add(self, paths, *args)
        analysed.extend(paths)
        if not go.is_set():  # the first run: cancelled here
            held.set()
            go.wait(30)

    monkeypatch.setattr(CheckpointWriter, "add", add)
    try:
        shown = SearchSession.open(path, base_dir=folder, model=str(before.extractor.path))
        app.set_session(shown)
        actions.analyze(app, folder)
        assert app.message.startswith(f"bringing {path} up to date with {folder}")
        pump(app, held.is_set, timeout=60)
        actions.cancel_analyze(app)
        go.set()
        pump(app, lambda: not app.tasks or all(t.name == "watch" for t in app.tasks), timeout=60)
        assert app.message.startswith(f"update of {path} cancelled: the images analysed so far")
        assert store.load(path).count == len(indexed)  # as it was, its work in the checkpoints
        kept = len(analysed)
        actions.analyze(app, folder)  # goes on from there
        pump(app, lambda: app.session.index.count == grown, timeout=60)
        assert app.message.startswith(f"{path}: {grown} images ({len(new_files)} added, ")
        assert f" {removed} removed" in app.message and len(new_files) >= 40 and removed >= 1
        # 40 rows of 69 new since the PCA was fitted: said, as `update` says it
        assert app.message.endswith(
            f"a refit is advisable: rtsearch analyze {folder} -o {path} --model "
            f"{before.extractor.path} --pca --keep-features (it refits from the stored features)"
        ), app.message
        assert app.session.source == path and app.session.base_dir == folder
        assert store.load(path).count == grown and not (tmp_path / "data").exists()
        assert sorted(analysed) == new_files
        assert kept < len(analysed)  # (the second run analysed only what the first had not)
        # another index on show, then A on that folder: the index shown before from it is
        # brought up to date and shown (it analysed all of it again into a second index)
        app.set_session(before)
        extra = make_gallery(folder, 3, start=500)
        analysed.clear()
        actions.analyze(app, folder)
        assert app.message.startswith(f"bringing {path} up to date with {folder}")
        pump(app, lambda: app.session.source == path, timeout=60)
        assert app.session.index.count == grown + 3 and app.session.base_dir == folder
        assert sorted(analysed) == sorted(f.relative_to(folder).as_posix() for f in extra)
        assert app.message.startswith(f"{path}: {grown + 3} images (3 added, ")
        assert not (tmp_path / "data").exists()
        # ... but not once its file is written over by another folder's index: the folder
        # is analysed anew into the viewer's own, as before
        app.set_session(before)
        shutil.copy(gallery[1], path)
        actions.analyze(app, folder)
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        assert app.session.source.is_relative_to(tmp_path / "data"), app.message
        assert app.session.index.count == grown + 3 and store.load(path).count == len(indexed)
    finally:
        go.set()
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        app.set_session(before)


def drawn_as(app) -> str:
    """How the message line is drawn now: "problem" (the colour of what went wrong) or
    "message" (that of what reports or guides)."""
    from rtsearch.viewer.status import MESSAGE, PROBLEM

    colour = [round(c * 255) for c in dpg.get_item_configuration(app.ids.message)["color"]]
    return {tuple(PROBLEM): "problem", tuple(MESSAGE): "message"}[tuple(colour)]


def asked(app) -> str:
    """The question on show once it shows, its words unwrapped (wrapped at spaces, and
    after a '/')."""
    pump(app, lambda: dpg.is_item_shown(app.ids.question), timeout=20)
    return " ".join(dpg.get_value(app.ids.question_text).split()).replace("/ ", "/")


def test_closing_the_window_during_an_analysis_asks_first(app, tmp_path, monkeypatch):
    """The window's X (or Ctrl+Q) during an analysis closed the viewer without a word,
    cutting short an analysis that had run for an hour. It now asks, saying how far the
    analysis has got (as it goes on) and that its work is kept; asked again before the
    answer, it closes. A file dialog open is closed for the question (it showed only once
    the user had closed the dialog); another question on show is answered first, and said."""
    import threading

    from fakes import close_like_a_window_manager

    from rtsearch.checkpoints import CheckpointWriter
    from rtsearch.viewer import actions, dialogs

    folder = tmp_path / "long"
    make_gallery(folder, 24, start=700)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    real_add, started, go = CheckpointWriter.add, threading.Event(), threading.Event()
    calls = []

    def add_slowly(self, *args):
        real_add(self, *args)
        calls.append(1)
        if len(calls) > 1:  # (after the first batch's progress is said)
            started.set()
            go.wait(30)

    monkeypatch.setattr(CheckpointWriter, "add", add_slowly)
    stopped = []  # (the viewer itself stays open for the tests after this one)
    monkeypatch.setattr(dpg, "stop_dearpygui", lambda: stopped.append(app.frames))
    before = app.session

    def stay() -> None:
        app.on_key(dpg.mvKey_Escape)
        assert not dpg.is_item_shown(app.ids.question) and not stopped
        assert app.message == f"the analysis of {folder} goes on"

    def ctrl_q() -> None:
        app.on_key(dpg.mvKey_LControl)
        app.on_key(dpg.mvKey_Q)
        app.on_key_release(dpg.mvKey_LControl)

    try:
        close_like_a_window_manager()  # nothing running: it closes
        pump(app, lambda: bool(stopped))
        assert not dpg.is_item_shown(app.ids.question)
        stopped.clear()
        actions.analyze(app, folder)
        pump(app, started.is_set, timeout=60)
        close_like_a_window_manager()
        question = asked(app)
        assert question.startswith(f"The analysis of {folder} is at ") and "/24 images" in question
        assert "Quit now? The images analysed so far are kept" in question
        assert dpg.get_item_label(app.ids.question) == "Quit during an analysis?"
        assert not stopped
        stay()
        assert actions.analyzing(app)
        ctrl_q()  # Ctrl+Q asks too; Enter quits
        assert "Quit now?" in asked(app) and not stopped
        app.on_key(dpg.mvKey_Return)
        assert stopped and not dpg.is_item_shown(app.ids.question)
        stopped.clear()
        app.quit_asked = False
        # a file dialog open: closed, and the question shows (it waited, unseen); Ctrl+Q
        # over its name field asks too (it did nothing)
        for close in (close_like_a_window_manager, ctrl_q):
            app.perform("load")
            app.frame()
            assert dpg.is_item_shown(app.ids.load_dialog)
            close()
            assert "Quit now?" in asked(app) and not dpg.is_item_shown(app.ids.load_dialog)
            stay()
        # another question on show: answered first (said), then this one
        dialogs.ask(app, "Other", "Another question?", "Yes", lambda: None, lambda: None)
        assert "Another question?" in asked(app)
        close_like_a_window_manager()
        pump(app, lambda: "quitting during the analysis is asked once" in app.message)
        assert "Another question?" in asked(app)
        app.on_key(dpg.mvKey_Escape)
        assert "Quit now?" in asked(app)
        # the figures as they are while it is asked: the analysis ends meanwhile
        go.set()
        pump(app, lambda: "has ended" in " ".join(dpg.get_value(app.ids.question_text).split()))
        assert not stopped
        app.perform("quit")  # asked again before the answer (behind a file dialog): closes
        assert stopped
    finally:
        go.set()
        app.questions.clear()
        dpg.hide_item(app.ids.question)
        app.question_on_show = None
        app.quit_asked = False
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        app.set_session(before)


def test_quitting_with_a_re_projection_not_saved_asks_first(app, gallery, tmp_path, monkeypatch):
    """Apply dims, then Ctrl+Q or the window's close: the viewer quit without a word, and the
    next run showed the dimensions its file held (a PCA over a large index is minutes).
    It now asks; saved, it quits at once."""
    from fakes import close_like_a_window_manager

    from rtsearch import store
    from rtsearch.viewer import actions

    copy = tmp_path / "copy.dat"
    shutil.copy(gallery[1], copy)
    stopped: list[int] = []  # (the viewer itself stays open for the tests after this one)
    monkeypatch.setattr(dpg, "stop_dearpygui", lambda: stopped.append(app.frames))
    actions.open_session(app, copy, gallery[0])
    pump(app, lambda: app.session.source == copy)
    held = app.session.index.dims

    try:
        close_like_a_window_manager()  # nothing to lose: it closes
        pump(app, lambda: bool(stopped))
        stopped.clear()
        app.quit_asked = False
        dpg.set_value(app.ids.dims_input, 12)
        actions.reproject(app)
        pump(app, lambda: app.session.index.dims == 12)
        close_like_a_window_manager()
        assert asked(app) == (
            f"The index on show was re-projected here to 12 dimensions, and {copy} still "
            f"holds {held}. Quit without saving it? Save... (Ctrl+S) keeps it."
        )
        assert dpg.get_item_label(app.ids.question) == "Quit without saving?" and not stopped
        app.on_key(dpg.mvKey_Escape)
        assert app.message == "not quit: Save... (Ctrl+S) keeps the re-projection"
        assert not stopped and not dpg.is_item_shown(app.ids.question)
        actions.save(app, copy)  # (Ctrl+S, onto its own file)
        pump(app, lambda: app.message.startswith(f"saved {copy}"))
        assert store.load(copy).dims == 12
        close_like_a_window_manager()
        pump(app, lambda: bool(stopped))
        assert not dpg.is_item_shown(app.ids.question)
    finally:
        app.questions.clear()
        dpg.hide_item(app.ids.question)
        app.question_on_show = None
        app.quit_asked = False
        app.unsaved = None
        actions.open_session(app, gallery[1], gallery[0])
        pump(app, lambda: app.session.source == gallery[1])


def test_r_pressed_while_an_index_loads_draws_from_that_index(
    app, tiny_model, tmp_path, monkeypatch
):
    """Ctrl+O, an index chosen, then R at once: R drew a picture of the index being left,
    whose kept history then reopened on a picture the user never chose, and the index
    loaded opened on its own first picture. R now waits for the index being loaded."""
    import time

    from rtsearch import bigstore
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    folder = tmp_path / "loading"
    make_gallery(folder, 6, start=950)
    index = tmp_path / "loading.dat"
    analyze(folder, index, Extractor(tiny_model, threads=1), Settings(dims=8))
    real_load = bigstore.load
    monkeypatch.setattr(bigstore, "load", lambda *a, **k: (time.sleep(0.5), real_load(*a, **k))[1])
    before = app.session
    app.perform("random")
    pump(app, lambda: not app.history.asked)  # (its picture shown: nothing more to come)
    for _ in range(5):
        app.frame()
    shown = {app.published.file}
    try:
        actions.load(app, index)
        app.perform("random")
        assert app.message == "loading: R draws from the index being loaded once it is open"

        def drawn_there() -> bool:
            pub = app.published
            shown.add(pub.file)
            return (
                app.session.source == index
                and pub.file is not None
                and pub.file.is_relative_to(folder)
            )

        pump(app, drawn_there, timeout=30)
        old = [f for f in shown if f is not None and not f.is_relative_to(folder)]
        assert len(old) == 1, old  # no picture of the index left was drawn
        assert not app.random_after_load
    finally:
        app.set_session(before)


def test_an_analysis_that_ends_after_another_index_was_loaded_asks_before_showing_it(
    app, tmp_path, monkeypatch
):
    """Analyze folder..., then another index loaded while it ran: the analysis's index
    replaced the one chosen since, without a word, when it ended. It now asks; an index
    still on show from the start (or a version of it) is replaced as before."""
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    folder = tmp_path / "analysed"
    make_gallery(folder, 6, start=600)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    before = app.session
    elsewhere = tmp_path / "chosen"
    shutil.copytree(before.base_dir, elsewhere)
    chosen = SearchSession(before.index, before.extractor, elsewhere, source=tmp_path / "c.dat")
    try:
        for answer in (dpg.mvKey_Escape, dpg.mvKey_Return):
            app.set_session(before)
            actions.analyze(app, folder)
            app.set_session(chosen)  # Ctrl+O while it runs (its end is taken by a frame)
            pump(app, lambda: dpg.is_item_shown(app.ids.question), timeout=60)
            question = "".join(dpg.get_value(app.ids.question_text).split())  # (wrapped)
            assert f"Theanalysisof{folder}isdone:6images." in question, question
            assert app.session is chosen
            app.on_key(answer)
            assert not dpg.is_item_shown(app.ids.question)
            if answer == dpg.mvKey_Escape:
                assert app.session is chosen
                assert app.message.startswith(f"analysis of {folder} done (6 images")
            else:
                assert app.session.base_dir == folder and len(app.session.index.paths) == 6
        # the index on show from the start: replaced, as before
        app.set_session(chosen)
        actions.analyze(app, folder)
        pump(app, lambda: app.session.base_dir == folder, timeout=60)
        assert not dpg.is_item_shown(app.ids.question)
    finally:
        app.set_session(before)


def test_a_question_waits_for_the_question_or_file_dialog_on_show(app, tmp_path, monkeypatch):
    """An analysis that ended behind "Replace a file?" put its own question in that one's
    place, and the save was lost without a word; behind the save dialog it was never seen,
    and shown in the frame the dialog closed it closed with it, as if cancelled. A question
    now waits for those to close, and a frame drawn without them."""
    from rtsearch import store
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    folder = tmp_path / "analysed"
    make_gallery(folder, 6, start=700)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    before = app.session
    shown = tmp_path / "shown.dat"
    actions.save(app, shown)  # (a file of its own, for the index loaded meanwhile)
    pump(app, lambda: app.message.startswith(f"saved {shown} ("))
    elsewhere = tmp_path / "chosen"  # (another collection: not a version of the one shown)
    shutil.copytree(before.base_dir, elsewhere)
    chosen = SearchSession(before.index, before.extractor, elsewhere, source=shown)
    other = tmp_path / "other.dat"
    other.write_bytes(b"something else")
    import threading

    from rtsearch import analyze as analyze_module

    real, gate = analyze_module.analyze, threading.Event()

    def held(*args, **kwargs):  # (it ends once the question or dialog is open)
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(analyze_module, "analyze", held)

    def analysed_behind(opened) -> None:
        app.set_session(before)
        gate.clear()
        actions.analyze(app, folder)
        app.set_session(chosen)  # (Ctrl+O while it ran)
        opened()
        gate.set()
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        for _ in range(5):
            app.frame()
        assert app.session is chosen

    try:
        # behind the question of a save over another file: Replace saves, then it asks
        def save_over_other() -> None:
            actions.save_as(app, other)
            pump(app, lambda: dpg.is_item_shown(app.ids.question))

        analysed_behind(save_over_other)
        assert dpg.get_item_label(app.ids.question) == "Replace a file?"
        assert len(app.questions) == 1  # (waiting its turn)
        app.on_key(dpg.mvKey_Return)
        pump(app, lambda: app.message.startswith(f"saved {other} ("))
        assert len(store.load(other).paths) == len(before.index.paths)
        pump(app, lambda: dpg.is_item_shown(app.ids.question))
        assert dpg.get_item_label(app.ids.question) == "Analysis done"
        app.on_key(dpg.mvKey_Escape)
        assert app.session is chosen and not app.questions
        assert app.message.startswith(f"analysis of {folder} done (6 images")
        # behind the save dialog (Ctrl+S): its Esc closes it, then the question shows
        analysed_behind(app._do_save)
        assert not dpg.is_item_shown(app.ids.question) and len(app.questions) == 1
        assert dpg.is_item_shown(app.ids.save_dialog)
        app.on_key(dpg.mvKey_Escape)
        assert not dpg.is_item_shown(app.ids.save_dialog) and app.session is chosen
        pump(app, lambda: dpg.is_item_shown(app.ids.question))
        assert dpg.get_item_label(app.ids.question) == "Analysis done"
        app.on_key(dpg.mvKey_Return)
        assert app.session.base_dir == folder and len(app.session.index.paths) == 6
    finally:
        app.set_session(before)


def test_a_question_waiting_for_a_file_dialog_outlives_its_cancel_button(app):
    """The question that waited for the Load or Save dialog showed in the frame after its
    Cancel button was clicked, and closed with the dialog, as if cancelled (Esc and OK
    were right)."""
    from rtsearch.viewer import dialogs

    answers = []
    for tag, opened in ((app.ids.load_dialog, app._do_load), (app.ids.save_dialog, app._do_save)):
        opened()
        for _ in range(3):
            app.frame()
        dialogs.ask(app, "Asked", "Behind a dialog?", "Yes", lambda: answers.append(True),
                    lambda: answers.append(False))  # fmt: skip
        for _ in range(3):
            app.frame()
        assert not dpg.is_item_shown(app.ids.question) and len(app.questions) == 1
        # the dialog's Cancel, at its bottom left (the dialog is centred in the window)
        width = dpg.get_item_configuration(tag)["width"]
        height = dpg.get_item_configuration(tag)["height"]
        x = (dpg.get_viewport_client_width() - width) // 2 + 30
        y = (dpg.get_viewport_client_height() - height) // 2 + height - 16
        xdotool(app, "mousemove", str(x), str(y))
        xdotool(app, "click", "1")
        pump(app, lambda tag=tag: not dpg.is_item_shown(tag))
        pump(app, lambda: dpg.is_item_shown(app.ids.question))
        for _ in range(10):
            app.frame()
        assert dpg.is_item_shown(app.ids.question) and answers == [], answers
        app.on_key(dpg.mvKey_Escape)
        assert answers == [False] and not dpg.is_item_shown(app.ids.question)
        answers.clear()
        xdotool(app, "mousemove", "2", "2")


def test_a_cancel_that_comes_in_the_last_step_of_an_analysis_says_it_finished(
    app, tmp_path, monkeypatch
):
    """Cancel pressed at "160/160 images" (the fit and the save): the index was written in
    full, and the viewer said "analyze cancelled" and did not load it."""
    from rtsearch import analyze as analyze_module
    from rtsearch.viewer import actions

    folder = tmp_path / "late"
    make_gallery(folder, 6, start=300)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    real = analyze_module.save_over_checkpoints

    def cancelled_while_saving(index, out, warn):
        actions.cancel_analyze(app)  # the button, pressed now
        real(index, out, warn)

    monkeypatch.setattr(analyze_module, "save_over_checkpoints", cancelled_while_saving)
    before = app.session
    actions.analyze(app, folder)
    try:
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        assert len(app.session.index.paths) == 6 and app.message.endswith(
            "(6 images) (analyze finished before the cancel could stop it)"
        ), app.message
    finally:
        app.set_session(before)  # (the next tests look at the gallery's 30 images)


def test_dims_are_greyed_out_and_say_why_for_an_index_without_features(app, tiny_model, tmp_path):
    """An index saved without its features cannot change dimensions: the box and Apply dims
    took a value anyway, failed, and kept showing it while the index stayed as it was."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    session = app.session
    assert session.reprojectable
    assert dpg.get_item_configuration(app.ids.dims_input)["enabled"]
    assert "Apply dims" in dpg.get_value(app.ids.dims_tips[0])
    assert dpg.get_item_configuration(app.ids.dims_input)["step"] == 0  # no -/+ buttons
    # Apply dims at the dims it has: said, not re-projected again
    dpg.set_value(app.ids.dims_input, session.index.dims)
    actions.reproject(app)
    assert app.message == f"the index has {session.index.dims} dimensions already"
    assert not any(t.name == "re-projection" for t in app.tasks) and app.session is session
    folder = tmp_path / "bare"
    make_gallery(folder, 6, start=400)
    bare = tmp_path / "bare.dat"
    analyze(folder, bare, Extractor(tiny_model, threads=1), Settings(dims=16))
    actions.load(app, bare)
    pump(app, lambda: app.session.source == bare)
    assert not app.session.reprojectable
    for item in (app.ids.dims_input, app.ids.dims_apply):
        assert not dpg.get_item_configuration(item)["enabled"]
    assert "saved without its features" in dpg.get_value(app.ids.dims_tips[0])
    # re-projection asked for all the same (as a script could): the box shows the index's
    dpg.set_value(app.ids.dims_input, 3)
    actions.reproject(app)
    pump(app, lambda: app.message.startswith("re-projection failed"))
    assert dpg.get_value(app.ids.dims_input) == 16 == app.session.index.dims
    app.set_session(session)
    assert dpg.get_item_configuration(app.ids.dims_apply)["enabled"]


def test_save_and_load_from_the_ui_asks_for_a_moved_folder(app, tiny_model, tmp_path, monkeypatch):
    from rtsearch import store
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions
    from rtsearch.viewer.memory import recall

    before = app.session
    saved = tmp_path / "saved.dat"
    actions.save(app, saved)
    pump(app, lambda: app.message.startswith(f"saved {saved} ("))
    reads = []  # each a full read of the file, or a map of it (and a child's probe)
    for module, name in ((store, "load"), (store, "probe")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _r=real, _n=name, **kw: (
            reads.append(_n), _r(*a, **kw))[1])  # fmt: skip
    actions.load(app, saved)
    pump(app, lambda: app.session.source == saved)
    # read once (the folder it names, then the session, from the same read): it was read
    # in full for the folder alone, then again for the session
    assert reads == ["probe"] or reads == ["probe", "load"], reads
    monkeypatch.undo()
    # a loaded index holds no features in memory; a copy saved from it keeps its file's
    assert app.session.index.features is None and store.has_features(saved)
    copy = tmp_path / "copy.dat"
    actions.save(app, copy)
    pump(app, lambda: app.message.startswith(f"saved {copy} ("))
    assert store.has_features(copy)
    actions.load(app, copy)
    pump(app, lambda: app.session.source == copy)
    # kept for plain `rtsearch` to open next time, from the folder it is shown from
    assert (recall().index, recall().base_dir) == (copy, app.session.base_dir)
    dpg.set_value(app.ids.dims_input, 6)  # so the copy can still change dimensions
    actions.reproject(app)
    pump(app, lambda: app.session.index.dims == 6)
    folder = tmp_path / "moving"
    make_gallery(folder, 5, start=200)
    analyze(folder, tmp_path / "m.dat", Extractor(tiny_model, threads=1), Settings(dims=16))
    folder.rename(tmp_path / "moved")
    actions.load(app, tmp_path / "m.dat")
    pump(app, lambda: app.pending_load == tmp_path / "m.dat")
    assert dpg.is_item_shown(app.ids.base_dialog) and "is gone" in app.message
    # cancelled (Esc, as its Cancel): the load ends and says so ("... is gone" stayed)
    app.on_key(dpg.mvKey_Escape)
    assert not dpg.is_item_shown(app.ids.base_dialog) and app.pending_load is None
    assert app.message == (
        f"not loaded: {tmp_path / 'm.dat'} (no folder given for its images); {copy} stays"
    )
    actions.load(app, tmp_path / "m.dat")
    pump(app, lambda: app.pending_load == tmp_path / "m.dat")
    dpg.hide_item(app.ids.base_dialog)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    actions.open_session(app, app.pending_load, wrong)  # what the dialog calls
    pump(app, lambda: "holds none of the 5 images of" in app.message)
    assert dpg.is_item_shown(app.ids.base_dialog)  # asked again
    assert app.message.endswith("; choose the folder they are in now")
    dpg.hide_item(app.ids.base_dialog)
    # a folder holding 1 of the 5: taken, and said (it was taken without a word)
    few = tmp_path / "few"
    (few / "d0").mkdir(parents=True)
    first = sorted((tmp_path / "moved").rglob("*.*"))[0]
    (few / first.relative_to(tmp_path / "moved")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(first, few / first.relative_to(tmp_path / "moved"))
    actions.open_session(app, app.pending_load, few)
    pump(app, lambda: app.session.base_dir == few)
    assert app.message.endswith(
        f"; {few} holds only 1 of 5 images of {tmp_path / 'm.dat'} looked for: the others "
        "show as grey tiles"
    ), app.message
    # ... and one holding 4 of the 5: said too (only under half was)
    shutil.copytree(tmp_path / "moved", tmp_path / "most")
    (tmp_path / "most" / first.relative_to(tmp_path / "moved")).unlink()
    actions.open_session(app, tmp_path / "m.dat", tmp_path / "most")
    pump(app, lambda: app.session.base_dir == tmp_path / "most")
    assert app.message.endswith(
        f"; {tmp_path / 'most'} holds only 4 of 5 images of {tmp_path / 'm.dat'} looked for: "
        "the others show as grey tiles"
    ), app.message
    actions.open_session(app, tmp_path / "m.dat", tmp_path / "moved")  # chosen again
    pump(app, lambda: app.session.base_dir == tmp_path / "moved")
    assert (recall().index, recall().base_dir) == (tmp_path / "m.dat", tmp_path / "moved")
    # loaded again by its file: from the folder chosen, not the one stored (it asked)
    (tmp_path / "moving").mkdir()
    make_gallery(tmp_path / "moving", 2, start=900)  # (the one stored: other pictures)
    actions.load(app, tmp_path / "m.dat")
    pump(app, lambda: not app.tasks)
    assert app.session.base_dir == tmp_path / "moved"
    assert not dpg.is_item_shown(app.ids.base_dialog)
    # its stored folder holding other pictures, the one chosen gone: asked for, as when
    # it is gone (the load failed, "choose the folder they are in now", with no way to)
    (tmp_path / "moved").rename(tmp_path / "away")
    actions.load(app, tmp_path / "m.dat")
    pump(app, lambda: "holds none of the 5 images of" in app.message)
    (tmp_path / "away").rename(tmp_path / "moved")
    assert app.pending_load == tmp_path / "m.dat" and dpg.is_item_shown(app.ids.base_dialog)
    app.on_key(dpg.mvKey_Escape)
    actions.open_session(app, tmp_path / "m.dat", tmp_path / "moved")
    # (the index on show had that folder already: its load ended after this test)
    pump(app, lambda: not app.tasks and app.session.base_dir == tmp_path / "moved")
    assert "holds only" not in app.message
    # saved from here, the index names the folder chosen, not the one that is gone
    resaved = tmp_path / "resaved.dat"
    actions.save(app, resaved)
    pump(app, lambda: app.message.startswith(f"saved {resaved} ("))
    assert store.load(resaved).base_dir == str((tmp_path / "moved").resolve())
    assert recall().index == tmp_path / "m.dat"  # a copy saved is not what is shown
    app.set_session(before)  # (an index without features: the dims box takes no typing)


def test_saving_over_another_file_asks_first(app, tiny_model, tmp_path):
    """Save (Ctrl+S) replaced any file picked in its dialog without a word, another
    folder's index included. Now it asks, and Esc or Cancel leave the file as it was;
    the loaded index's own file is saved back without asking."""
    import hashlib

    from rtsearch import store
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    folder = tmp_path / "elsewhere"
    make_gallery(folder, 7, start=300)
    other = tmp_path / "other.dat"
    analyze(folder, other, Extractor(tiny_model, threads=1), Settings(dims=16))
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    session = app.session
    images = len(session.index.paths)
    assert images != 7
    actions.save_as(app, other)  # what the save dialog's OK calls
    pump(app, lambda: dpg.is_item_shown(app.ids.question))
    question = "".join(dpg.get_value(app.ids.question_text).split())  # without the wrapping
    said = f"{other} already exists, an index of 7 images of {folder.resolve()}"
    assert "".join(said.split()) in question
    try:  # the window made smaller meanwhile: the question shrinks into it (it was cut off)
        dpg.set_viewport_width(420)
        pump(app, lambda: dpg.get_viewport_client_width() == 420)
        for _ in range(3):
            app.frame()
        x = dpg.get_item_pos(app.ids.question)[0]
        width = dpg.get_item_configuration(app.ids.question)["width"]
        assert x >= 0 and x + width <= 420
    finally:
        dpg.set_viewport_width(900)
    pump(app, lambda: dpg.get_viewport_client_width() == 900)
    app.on_key(dpg.mvKey_Escape)
    assert not dpg.is_item_shown(app.ids.question)
    assert app.message == f"not saved: {other} is left as it was"
    for _ in range(10):
        app.frame()
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before
    app.message = ""
    actions.save_as(app, other)  # closed by its title bar's X: as Cancel (it said nothing)
    pump(app, lambda: dpg.is_item_shown(app.ids.question))
    x, y = dpg.get_item_pos(app.ids.question)
    width = dpg.get_item_configuration(app.ids.question)["width"]
    xdotool(app, "mousemove", str(round(x + width - 11)), str(round(y + 9)))
    xdotool(app, "click", "1")
    pump(app, lambda: not dpg.is_item_shown(app.ids.question))
    assert app.message == f"not saved: {other} is left as it was"
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before
    actions.save_as(app, other)
    pump(app, lambda: dpg.is_item_shown(app.ids.question))
    app.on_key(dpg.mvKey_R)
    assert dpg.is_item_shown(app.ids.question)  # a shortcut does not act behind it
    buttons = dpg.get_item_children(dpg.get_item_children(app.ids.question, 1)[1], 1)
    assert dpg.get_item_label(buttons[0]) == "Replace (Enter)"
    x, y = dpg.get_item_rect_min(buttons[0])
    xdotool(app, "mousemove", str(round(x + 20)), str(round(y + 8)))
    xdotool(app, "click", "1")
    pump(app, lambda: app.message.startswith(f"saved {other} ("))
    for _ in range(5):  # (hidden by the answer, not closed: no second answer)
        app.frame()
    assert not dpg.is_item_shown(app.ids.question) and app.message.startswith(f"saved {other} (")
    assert len(store.load(other).paths) == images
    # the loaded index's own file: saved back, no question
    actions.load(app, other)
    pump(app, lambda: app.session.source == other)
    app.message = ""
    actions.save_as(app, other)
    pump(app, lambda: app.message.startswith(f"saved {other} ("))
    assert not dpg.is_item_shown(app.ids.question)
    app.set_session(session)


def xdotool(app, *args: str) -> None:
    """Drive the real mouse on the virtual display, rendering frames meanwhile."""
    import shutil

    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    if args[0] == "type" and "--delay" not in args:  # (at its 12 ms, a busy machine lost keys)
        args = ("type", "--delay", "50", *args[1:])
    proc = subprocess.Popen(["xdotool", *args])
    pump(app, lambda: proc.poll() is not None, timeout=10)
    for _ in range(5):
        app.frame()


def test_a_save_saves_the_index_on_show_when_its_dialog_opened(app, tiny_model, tmp_path):
    """Ctrl+S while an analysis ran, the analysis ending before the dialog's OK: the
    analysed index was saved, under the name typed for the other; and over a file the
    question said it would replace with the other (its 250 images, then 300 of another
    folder written)."""
    import shutil

    from rtsearch import store
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    shown = app.session
    images = len(shown.index.paths)
    folder = tmp_path / "analysed"
    make_gallery(folder, 7, start=400)
    made = tmp_path / "analysed.dat"
    analyze(folder, made, Extractor(tiny_model, threads=1), Settings(dims=16))
    analysed = SearchSession.open(made, model=str(tiny_model), threads=1)
    try:
        for target in (tmp_path / "new.dat", tmp_path / "there.dat"):
            if target.name == "there.dat":
                shutil.copy(made, target)
            app.perform("save")
            for _ in range(3):
                app.frame()
            assert dpg.is_item_shown(app.ids.save_dialog)
            app.set_session(analysed)  # the analysis ends: its index on show
            dpg.hide_item(app.ids.save_dialog)  # (as its OK leaves it)
            app.dialogs_closed.put((app.ids.save_dialog, True))
            actions.save_as(app, target)  # what the dialog's OK calls
            if target.exists() and target.name == "there.dat":
                pump(app, lambda: dpg.is_item_shown(app.ids.question))
                question = "".join(dpg.get_value(app.ids.question_text).split())
                assert f"({images}images" in question, question
                app.on_key(dpg.mvKey_Return)
            pump(app, lambda t=target: app.message.startswith(f"saved {t} ("))
            assert f"({images} images of {shown.base_dir})" in app.message, app.message
            assert len(store.load(target).paths) == images
            app.set_session(shown)
        # without the dialog opened anew, a save is of the index on show
        app.set_session(analysed)
        actions.save_as(app, tmp_path / "now.dat")
        pump(app, lambda: app.message.startswith(f"saved {tmp_path / 'now.dat'} ("))
        assert len(store.load(tmp_path / "now.dat").paths) == 7
    finally:
        app.set_session(shown)


def test_grab_window_mode_drags_the_region_with_the_mouse(app):
    pump(app, lambda: app.published is not None)  # the status bar has its lines
    pump(app, lambda: not app.tiles_waiting)  # (every result's texture made: counted)
    app.region.set_box((200, 200, 400, 300))
    # the preview's texture of this size made once (kept, by design: PictureTexture), as a
    # test before did; what follows checks the mode leaves nothing more behind
    app.perform("grab_mode")
    steady_preview(app)
    app.perform("escape")
    pump(app, lambda: not app.tiles_waiting)
    items = len(dpg.get_all_items())
    app.perform("grab_mode")
    p = steady_preview(app)
    x0, y0, x1, y1 = app.region.preview_rect(p)
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    cx, cy = round(ox + (x0 + x1) / 2), round(oy + (y0 + y1) / 2)
    xdotool(app, "mousemove", str(cx), str(cy))
    xdotool(app, "mousedown", "1")
    for step in range(1, 6):
        xdotool(app, "mousemove", str(cx + 12 * step), str(cy + 8 * step))
    xdotool(app, "mouseup", "1")
    x, y, w, h = app.region.box
    assert (w, h) == (400, 300)
    assert (
        abs(x - (200 + 60 / p.scale)) <= 3 / p.scale
        and abs(y - (200 + 40 / p.scale)) <= 3 / p.scale
    )
    app.perform("screen")  # G or S leaves the mode and uses the region
    assert not app.grab_mode
    assert len(dpg.get_all_items()) == items  # the preview texture is freed, not uploaded
    assert fresh(app, "screen").query.width > 0
    # Esc cancels the mode: a region moved meanwhile goes back to where it was
    kept = app.region.box
    p = ui_preview(app)

    def grab_and_move_the_region() -> tuple:
        app.perform("grab_mode")
        for _ in range(12):
            app.frame()
        xdotool(app, "mousemove", str(round(ox + p.x + 6)), str(round(oy + p.y + 6)))
        xdotool(app, "click", "1")  # beside the region: brings it there
        return app.region.box

    assert grab_and_move_the_region() != kept
    xdotool(app, "key", "Escape")
    assert not app.grab_mode and app.region.box == kept
    # Enter uses the region as set, as G and S do (it did nothing)
    chosen = grab_and_move_the_region()
    xdotool(app, "key", "Return")
    assert not app.grab_mode and app.region.box == chosen and app.source_sent == "screen"
    # but Enter typed into a field (the toolbar's stay in grab mode) is the field's
    app.perform("grab_mode")
    typing = app.ids.typing
    app.ids.typing = lambda: True
    try:
        app.on_key(dpg.mvKey_Return)
        assert app.grab_mode
    finally:
        app.ids.typing = typing
    app.perform("escape")
    # M leaves the mode keeping the region as set, to follow the pointer with (it put back
    # the one before, and "make the box smaller with G" did nothing for it)
    moved = grab_and_move_the_region()
    assert moved != kept
    # B toggles the trim and stays in the mode, the rectangle as edited (it left the mode
    # and put the rectangle back, unsaid)
    xdotool(app, "key", "b")
    assert app.grab_mode and app.region.box == moved and not app.opts.trim
    app.perform("trim")
    app.perform("follow_mouse")
    assert not app.grab_mode and app.region.box == moved
    assert app.source_sent == "screen:mouse"


def test_leaving_the_grab_mode_scrolls_the_results_back_where_they_were(app, gallery):
    """Scrolled down the results, G then Esc jumped back to the top of the canvas."""
    from rtsearch.viewer import actions

    actions.open_session(app, gallery[1], gallery[0])  # 30 images, whatever came before
    pump(app, lambda: app.session.source == gallery[1] and not app.tasks)
    app.perform("random")
    fresh(app, "random")
    app.set_k(30)
    pump(app, lambda: len(app.published.results) >= 20 and app.layout.height > 1000)
    app.perform("pause")
    for _ in range(3):
        app.frame()
    try:
        dpg.set_y_scroll(app.ids.canvas, 300)
        for _ in range(3):
            app.frame()
        assert dpg.get_y_scroll(app.ids.canvas) == 300
        app.perform("grab_mode")
        for _ in range(5):
            app.frame()
        app.perform("escape")
        for _ in range(5):
            app.frame()
        assert dpg.get_y_scroll(app.ids.canvas) == 300
    finally:
        app.perform("pause")
        app.set_k(8)


def ui_preview(app):
    from rtsearch.viewer import grab_view

    return grab_view.grab_preview(app)


def steady_preview(app):
    """The grab mode's preview once its place has stopped changing: the message line and
    the status bar (redrawn every 10 frames) change the canvas's height a few frames after
    the mode begins, by as much as the previous test's message wrapped."""
    p, same = ui_preview(app), 0
    while same < 25:
        app.frame()
        p, before = ui_preview(app), p
        same = same + 1 if p == before else 0
    return p


def test_real_key_presses_reach_the_shortcuts(app):
    app.perform("escape")
    seq = app.published.seq
    xdotool(app, "key", "r")
    xdotool(app, "key", "r")
    pump(app, lambda: app.published.seq > seq and app.published.source == "random")
    xdotool(app, "key", "F1")
    assert dpg.is_item_shown(app.ids.help)
    xdotool(app, "key", "Escape")
    assert not dpg.is_item_shown(app.ids.help)
    k = app.k
    xdotool(app, "key", "plus")  # Shift+= on the main keyboard
    xdotool(app, "key", "equal")
    assert app.k == k + 2
    xdotool(app, "key", "minus")
    xdotool(app, "key", "minus")
    assert app.k == k


def test_the_keys_select_a_result_and_do_what_the_mouse_does(app, monkeypatch, tmp_path):
    """A user who keeps to the keyboard had no way to a result. The arrow keys (Home, End)
    select one, framed and captioned; Enter makes it the query, Ctrl+Enter opens it, Ctrl+C
    copies its path (none selected: the first's), Esc unselects. Real key presses."""
    from rtsearch.viewer import layout

    opened: list[Path] = []
    monkeypatch.setattr(app, "open_file", opened.append)
    app.perform("escape")
    xdotool(app, "mousemove", "2", "2")  # off the results: no hover caption
    app.set_k(8)
    app.perform("random")
    pub = fresh(app, "random")
    pump(app, lambda: len(app.layout.results) == len(app.published.results) == 8)
    frame, text = app.ids.selection_frame, app.ids.caption[1]
    assert not dpg.is_item_shown(frame)

    def key(*names: str) -> int | None:
        """Press the keys; the rank framed then (its caption names it), None if none."""
        for name in names:
            xdotool(app, "key", name)
        if not dpg.is_item_shown(frame):
            return None
        x0, y0 = dpg.get_item_configuration(frame)["pmin"]
        at = [
            i for i, r in enumerate(app.layout.results) if max(abs(r[0] - x0), abs(r[1] - y0)) < 4
        ]
        assert len(at) == 1 and dpg.is_item_shown(text), at
        assert dpg.get_item_configuration(text)["text"].startswith(f"{at[0] + 1}. ")
        return at[0]

    assert key("Right") == 0  # the first key selects the first result
    assert key("Right") == 1
    below = layout.step_rows(app.layout.results, 1, 1)
    assert below > 1 and key("Down") == below  # the next row of the grid
    assert key("Up") == 1
    assert (key("End"), key("Home"), key("Left")) == (7, 0, 0)
    # the pointer resting on another result: its caption shows until a key selects
    x0, y0, x1, y1 = app.layout.results[5]
    ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
    xdotool(app, "mousemove", str(round(ox + (x0 + x1) / 2)), str(round(oy + (y0 + y1) / 2)))
    assert dpg.get_item_configuration(text)["text"].startswith("6. ")
    assert key("Right") == 1  # (key() checks the caption names the one framed)
    xdotool(app, "mousemove_relative", "3", "0")  # moved: the hover's again
    assert dpg.get_item_configuration(text)["text"].startswith("6. ")
    xdotool(app, "mousemove", "2", "2")
    assert key("Left") == 0
    assert key("Right", "Right") == 2
    hit = pub.results[2]
    key("ctrl+c")
    assert dpg.get_clipboard_text() == str(hit.file) and app.message == f"copied: {hit.file}"
    # said for a moment (it stayed while a live source's results moved on)
    from rtsearch.viewer.app import BRIEF_S

    pump(app, lambda: app.message == "", timeout=BRIEF_S + 5)
    key("ctrl+Return")
    assert opened == [hit.file] and app.published is not None
    key("Return")  # the selected result becomes the query, shown from the top
    pump(app, lambda: app.published.row == hit.row and bool(app.published.results))
    assert key() == 0 and dpg.get_y_scroll(app.ids.canvas) == 0
    assert key("End") == 7
    key("minus", "minus", "minus")  # fewer results: the last of them
    pump(app, lambda: len(app.published.results) == len(app.layout.results) == 5)
    assert key() == 4
    assert key("Escape") is None and app.selected is None
    key("ctrl+c")
    assert dpg.get_clipboard_text() == str(app.published.results[0].file)
    app.message = ""
    key("Return")  # none selected: said
    assert app.message == "no result is selected: the arrow keys select one"
    # a result below the canvas's foot is scrolled into view, and back
    app.set_k(25)  # (of 30 pictures)
    pump(app, lambda: len(app.published.results) == len(app.layout.results) == 25)
    height = app.canvas_size[1]
    assert app.layout.results[-1][3] > height  # (the last row is below the foot)
    assert key("End") == 24
    for _ in range(5):
        app.frame()
    top = dpg.get_y_scroll(app.ids.canvas)
    assert top <= app.layout.results[-1][1] and app.layout.results[-1][3] <= top + height
    key("Home")  # the first row: all the way up, the query too
    for _ in range(5):
        app.frame()
    assert dpg.get_y_scroll(app.ids.canvas) == 0
    at = key("Next")  # Page Down, Page Up: the frame comes onto the page
    top = dpg.get_y_scroll(app.ids.canvas)
    assert top > height / 2 and at > 0 and app.layout.results[at][1] >= top
    assert app.layout.results[at - 1][1] < top  # (the first on it)
    key("Prior")
    assert dpg.get_y_scroll(app.ids.canvas) == 0 and key() == 0
    key("End")
    key("r")  # a new query asked for: from the top
    pump(app, lambda: app.published.row != hit.row)
    assert key() == 0 and dpg.get_y_scroll(app.ids.canvas) == 0
    key("End")  # another source chosen: its picture from the top too (S left it below)
    assert dpg.get_y_scroll(app.ids.canvas) > 0
    video = write_video(tmp_path / "top.avi", [3, 7], frames_each=5)
    app._start_source(f"video:{video}")
    for _ in range(5):
        app.frame()
    assert dpg.get_y_scroll(app.ids.canvas) == 0
    app.perform("random")
    app.perform("escape")
    app.set_k(8)


def test_back_and_forward_go_through_the_queries_as_in_a_browser(app, tmp_path):
    """A user browsing the collection (R, a result clicked, another) could not go back to
    a picture left behind. Backspace or Alt+Left, the mouse's back button and the toolbar's
    left arrow go back; Shift+Backspace or Alt+Right, the forward button and the right
    arrow forward; from a live source back goes to the last picture of the collection.
    Real key presses and clicks."""
    from rtsearch.viewer import history

    app.perform("escape")
    xdotool(app, "mousemove", "2", "2")
    app.history = history.History()  # (the tests before browsed too)
    # from a live source before any picture of the collection: none to go to, said so
    # (it said "the first query of the collection")
    app._start_source(f"video:{write_video(tmp_path / 'first.avi', [3, 7], frames_each=5)}")
    fresh(app, "video")
    for key, way in (("BackSpace", "back"), ("alt+Right", "forward")):
        xdotool(app, "key", key)
        assert app.message.endswith(f"nothing to go {way} to: {history.NONE_YET}")
    files = []
    while len(files) < 2:  # two random pictures...
        app.perform("random")
        pub = fresh(app, "random")
        if pub.file not in files:
            files.append(pub.file)
    xdotool(app, "key", "Right", "Return")  # ... and a result made the query
    pump(app, lambda: app.published.file == pub.results[0].file)
    files.append(pub.results[0].file)
    assert app.history.files[-3:] == files

    def shows(file: Path) -> bool:
        pump(app, lambda: app.published.file == file and app.published.source == "random")
        for _ in range(10):  # (the status, and so the arrows, every 10 frames)
            app.frame()
        return app.published.row == app.session.row_at(file)

    def arrows() -> tuple[bool, bool]:
        for _ in range(10):
            app.frame()
        return tuple(dpg.get_item_configuration(b)["enabled"] for b in app.ids.step_buttons)

    assert shows(files[2]) and arrows() == (True, False)
    xdotool(app, "key", "Right", "Right")
    assert app.selected == 2
    xdotool(app, "key", "BackSpace")
    assert shows(files[1]) and arrows() == (True, True)
    # shown from the top, the frame on the first result, as after Enter or R (the frame
    # stayed on the third: Enter then made another picture the query)
    assert app.selected == 0 and dpg.get_y_scroll(app.ids.canvas) == 0
    xdotool(app, "key", "alt+Left")
    assert shows(files[0])
    xdotool(app, "key", "shift+BackSpace")
    assert shows(files[1])
    xdotool(app, "key", "alt+Right")
    assert shows(files[2]) and arrows() == (True, False)
    xdotool(app, "key", "alt+Right")
    assert app.message == f"query: {files[2]}; {history.NONE_AFTER}"
    app.frame()  # as the message line draws it (it read "...png\\nnothing to go forward")
    assert "\\" not in dpg.get_value(app.ids.message), dpg.get_value(app.ids.message)
    xdotool(app, "click", "8")  # the mouse's back and forward buttons
    assert shows(files[1])
    xdotool(app, "click", "9")
    assert shows(files[2])
    ox, oy = dpg.get_item_rect_min(app.ids.step_buttons[0])  # the toolbar's left arrow
    xdotool(app, "mousemove", str(round(ox + 5)), str(round(oy + 5)), "click", "1")
    assert shows(files[1])
    xdotool(app, "mousemove", "2", "2")
    # a new query after a step back drops the steps ahead
    app.perform("random")  # (never the picture on show; files[2] may come, 1 in 29)
    pump(app, lambda: app.published.file not in (files[1], None))
    latest = app.published.file
    assert app.history.files[-3:] == [files[0], files[1], latest]
    assert app.history.at == len(app.history.files) - 1
    # from a live source back goes to the last picture of the collection shown
    video = write_video(tmp_path / "clip.avi", [3, 7], frames_each=5)
    app._start_source(f"video:{video}")
    fresh(app, "video")
    assert app.published.file is None and arrows() == (True, False)
    xdotool(app, "key", "BackSpace")
    assert shows(latest)
    # a picture the index no longer holds is passed over; none left is said
    app.history.files[app.history.at - 1] = tmp_path / "gone.png"
    xdotool(app, "key", "BackSpace")
    assert shows(files[0])
    xdotool(app, "key", "BackSpace")  # (the query's path stays in sight)
    assert app.message == f"query: {files[0]}; {history.NONE_BEFORE}"
    assert app.published.file == files[0] and arrows() == (False, True)
    app.history.files[1:] = [tmp_path / "gone.png"]
    assert arrows() == (False, False)  # (the arrow lit, and the step went nowhere)
    xdotool(app, "key", "alt+Right")
    assert app.message.endswith(history.LOST)
    # in the grab-window mode the keys, the mouse's buttons and the arrows leave the
    # rectangle being set alone (the arrows and the buttons left the mode and lost it)
    app.history.files[1:] = [files[1]]
    app.perform("grab_mode")
    assert arrows() == (False, False)
    xdotool(app, "key", "BackSpace")
    app.perform("forward")
    xdotool(app, "click", "9")
    assert app.grab_mode
    app.perform("escape")
    # nor behind a file dialog: the mouse's buttons stepped there
    app.perform("load")
    xdotool(app, "click", "9")
    assert app.published.file == files[0] and app.history.at == 0
    xdotool(app, "key", "Escape")
    assert not any(dpg.is_item_shown(d) for d in app.ids.dialogs())
    # a new query on its way (a slow picture clicked): back goes to the picture on show
    # (it went two back)
    xdotool(app, "key", "alt+Right")
    assert shows(files[1])
    app.query_row(pub.results[3].row)
    app.perform("back")
    pump(app, lambda: app.history.going is None)  # the step's picture came
    for _ in range(20):  # (the click's picture, come after: no query)
        app.frame()
    assert app.published.file == files[1] and app.history.files == files[:2]


def test_an_index_written_over_by_another_folders_opens_from_that_folder(app, tiny_model, tmp_path):
    """The viewer keeps the folder each index was shown from; a file written over since by
    another folder's index (a save in the viewer, `analyze -o`) still opened from the
    folder kept, from the Load dialog's list and by Ctrl+O: other pictures under the same
    names, in its title, its results and the copies saved from it."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions, recent

    first, second = tmp_path / "first", tmp_path / "second"
    make_gallery(first, 6, start=800)
    make_gallery(second, 6, start=800)  # (the same names: it holds the index's images)
    index = tmp_path / "i.dat"
    before = app.session

    def written_from(folder: Path) -> None:
        settings = Settings(dims=16, replace=True)
        analyze(folder, index, Extractor(tiny_model, threads=1), settings)
        app.set_session(before)  # (the index goes among those shown before)

    def opened_from(folder: Path) -> None:
        pump(app, lambda: not app.tasks and app.session.source == index)
        assert app.session.base_dir == folder
        assert dpg.get_viewport_title() == f"rtsearch - {folder.name} ({tmp_path})"

    try:
        written_from(first)
        actions.load(app, index)
        opened_from(first)
        written_from(second)
        recent.choose(app, next(e for e in recent.entries(app) if e.index == index))
        opened_from(second)
        written_from(first)
        actions.load(app, index)  # (Ctrl+O)
        opened_from(first)
    finally:
        app.set_session(before)


def test_the_load_dialog_lists_the_indexes_shown_before_each_at_its_last_query(
    app, gallery, tiny_model, tmp_path
):
    """Loading another index (or analysing a second folder) left the first to be found
    again in its folder, the viewer's own analyses in a hidden data folder, and its queries
    were lost. The Load dialog lists the indexes shown before; a click opens one from the
    folder it was shown from, at the query shown last with it, with its history."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions, memory, recent

    root, index = gallery
    make_gallery(tmp_path / "holiday", 6, start=200)
    other = tmp_path / "holiday.dat"
    analyze(tmp_path / "holiday", other, Extractor(tiny_model, threads=1), Settings(dims=4))
    app.perform("escape")
    if app.session.source != index:  # (a test before left another on show)
        actions.load(app, index)
        pump(app, lambda: app.session.source == index and not app.tasks)
    app._start_source("random")
    fresh(app, "random")
    chosen = app.session.file_of(5)
    app.query_row(5)
    pump(app, lambda: app.published.file == chosen)
    app.remembered = None  # (kept as a new run keeps it: the tests before kept theirs)
    app._remember(app.session)
    assert memory.recall().index == index
    actions.load(app, other)  # another collection: its own pictures, and history
    pump(app, lambda: app.session.source == other and app.published.file is not None)
    pump(app, lambda: app.published.file.is_relative_to(tmp_path / "holiday"))
    assert app.history.files == [app.published.file]

    def listed() -> list:
        title, hint, *rest = dpg.get_item_children(app.recent_panel, 1)
        assert dpg.get_value(title) == recent.TITLE and dpg.get_value(hint) == recent.HINT
        return [i for i in rest if dpg.get_item_type(i).endswith("mvSelectable")]

    xdotool(app, "key", "ctrl+o")
    assert dpg.is_item_shown(app.ids.load_dialog) and dpg.is_item_shown(app.recent_panel)
    items = listed()
    assert len(items) == 1
    assert dpg.get_item_label(items[0]) == root.name
    x, y = dpg.get_item_rect_min(items[0])
    xdotool(app, "mousemove", str(round(x + 10)), str(round(y + 5)), "click", "1")
    pump(app, lambda: app.session.source == index and app.published.file == chosen)
    assert not dpg.is_item_shown(app.ids.load_dialog)
    assert app.history.files[app.history.at] == chosen
    # the other one is listed now, the one on show not; one whose file is gone not either
    xdotool(app, "key", "ctrl+o")
    assert [dpg.get_item_label(i) for i in listed()] == ["holiday"]
    xdotool(app, "key", "Escape")
    other.unlink()
    xdotool(app, "key", "ctrl+o")  # (the panel stays, and says what comes there)
    _, hint = dpg.get_item_children(app.recent_panel, 1)
    assert dpg.get_value(hint) == recent.OTHERS  # (the one on show is not listed)
    xdotool(app, "key", "Escape")
    xdotool(app, "mousemove", "2", "2")


def test_an_index_loaded_by_its_file_opens_from_the_folder_it_was_shown_from(
    app, gallery, tiny_model, tmp_path
):
    """An index whose images moved, their new folder chosen once, asked for it again when
    loaded by its file (its entry among those shown before did not); and the question's
    folder dialog opened where it was left, not near the folder the images were in."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    _, index = gallery
    before = app.session
    make_gallery(tmp_path / "old" / "trip", 5, start=400)
    trip = tmp_path / "trip.dat"
    analyze(tmp_path / "old" / "trip", trip, Extractor(tiny_model, threads=1), Settings(dims=4))
    (tmp_path / "new").mkdir()
    shutil.move(tmp_path / "old" / "trip", tmp_path / "new" / "trip")
    app.remembered = None
    actions.load(app, trip)
    pump(app, lambda: dpg.is_item_shown(app.ids.base_dialog))
    assert "is gone; choose where the images are" in app.message
    # near where they were: the folder above the one gone
    shown = dpg.get_file_dialog_info(app.ids.base_dialog)["current_path"]
    assert Path(shown) == tmp_path / "old"
    app.ids.close_dialog()
    actions.open_session(app, trip, tmp_path / "new" / "trip")  # (the folder chosen)
    pump(app, lambda: app.session.source == trip and app.published.file is not None)
    actions.load(app, index)
    pump(app, lambda: app.session.source == index)
    actions.load(app, trip)  # by its file, as Ctrl+O gives it: from the folder chosen
    pump(app, lambda: app.session.source == trip and not app.tasks)
    assert app.session.base_dir == tmp_path / "new" / "trip"
    assert not dpg.is_item_shown(app.ids.base_dialog)
    # an index moved together with its images is opened from beside it, said
    make_gallery(tmp_path / "pack" / "walk", 4, start=500)
    walk = tmp_path / "pack" / "walk.dat"
    analyze(tmp_path / "pack" / "walk", walk, Extractor(tiny_model, threads=1), Settings(dims=4))
    (tmp_path / "pack").rename(tmp_path / "pack2")
    moved = tmp_path / "pack2" / "walk.dat"
    actions.load(app, moved)
    pump(app, lambda: app.session.source == moved and not app.tasks)
    assert app.session.base_dir == tmp_path / "pack2" / "walk"
    assert not dpg.is_item_shown(app.ids.base_dialog)
    assert f"its images' folder {tmp_path / 'pack' / 'walk'} is gone; shown from " in app.message
    app.set_session(before)


def test_a_double_click_opens_a_result_and_leaves_the_query_and_its_history(
    app, tmp_path, monkeypatch
):
    """A double-click opens a result; its first press made it the query. The query goes
    back: a live source's search goes on (it was left with the result for its query), and
    the steps ahead of a step back stay (they were lost)."""
    from rtsearch.viewer import history

    opened: list[Path] = []
    monkeypatch.setattr(app, "open_file", opened.append)
    app.perform("escape")
    app.history = history.History()
    files: list[Path] = []
    while len(files) < 3:
        app.perform("random")
        pub = fresh(app, "random")
        # (of the index on show: run after a test that ended by swapping one in, the first
        # draw was at times the index before's, which back then could not step to)
        if pub.file not in files and pub.file.is_relative_to(app.session.base_dir):
            files.append(pub.file)
    app.perform("back")
    pump(app, lambda: app.published.file == files[1] and app.history.going is None)

    def double_click(rank: int) -> None:
        x0, y0, x1, y1 = app.layout.results[rank]
        ox, oy = dpg.get_item_rect_min(app.ids.drawlist)
        x, y = round(ox + (x0 + x1) / 2), round(oy + (y0 + y1) / 2)
        hit = app.published.results[rank].file
        xdotool(app, "mousemove", str(x), str(y), "click", "--repeat", "2", "--delay", "120",
                "1")  # fmt: skip
        pump(app, lambda: opened[-1:] == [hit])
        for _ in range(30):
            app.frame()
        xdotool(app, "mousemove", "2", "2")

    double_click(2)
    assert app.published.file == files[1]
    assert (app.history.files, app.history.at) == (files, 1)  # files[2] still ahead
    video = write_video(tmp_path / "clip.avi", [3, 7, 11], frames_each=20, fps=25.0)
    app._start_source(f"video:{video}")
    fresh(app, "video")
    double_click(1)
    assert fresh(app, "video").source.startswith("video")  # it goes on
    assert (app.history.files, app.history.at) == (files, 1)
    # a random draw's picture back is said to be drawn (it said "source collection"), and
    # a picture stepped back to, asked for
    assert source_name(app.published) == "video:clip.avi"
    app.perform("random")
    drawn = fresh(app, "random").file
    assert source_name(app.published) == "random"
    double_click(1)
    assert app.published.file == drawn and source_name(app.published) == "random"
    app.perform("back")
    pump(app, lambda: app.published.file != drawn and app.history.going is None)
    double_click(1)
    assert source_name(app.published) == "collection"


def test_keys_of_german_and_french_keyboards_do_what_their_labels_say(app):
    """On a German keyboard '+' did nothing and '?' (Shift+ß) asked for fewer results:
    Dear PyGui names those keys by where a US keyboard has ']' and '-'. French '+' and '?'
    (shifted), Ctrl++ and the letters are driven too, as a user types them."""
    import shutil

    if shutil.which("setxkbmap") is None:
        pytest.skip("setxkbmap is not installed")

    def layout(name: str) -> None:
        subprocess.run(["setxkbmap", name], check=True, timeout=10)
        for _ in range(5):
            app.frame()

    app.perform("random")
    fresh(app, "random")
    k, scale = app.k, app.ui_scale
    try:
        for name in ("de", "fr"):
            layout(name)
            xdotool(app, "key", "plus")
            assert app.k == k + 1, name
            xdotool(app, "key", "minus")
            assert app.k == k, name
            xdotool(app, "key", "question")
            assert dpg.is_item_shown(app.ids.help) and app.k == k, name
            xdotool(app, "key", "Escape")
            assert not dpg.is_item_shown(app.ids.help), name
            xdotool(app, "key", "ctrl+plus")
            assert app.ui_scale == scale + 0.25, name
            xdotool(app, "key", "ctrl+0")
            xdotool(app, "key", "r")  # a letter: where the layout has it
            assert app.published.source == "random" and app.source_sent == "random", name
    finally:
        layout("us")
        app.set_k(k)
        if app.ui_scale != scale:
            app.set_ui_scale(scale)


def test_keys_held_are_read_as_the_layout_types_them(app):
    """On a Swedish keyboard '+' asked for fewer results: Dear PyGui names it '-', as its
    '-', by its place on a US keyboard. A key still held when its press is handled is read
    from the X server as the layout types it (held as a hand holds a key, 150 ms); Shift+'-'
    on a US keyboard ('_') does nothing."""
    import shutil

    if shutil.which("setxkbmap") is None:
        pytest.skip("setxkbmap is not installed")

    def held(*keys: str) -> None:
        """``keys`` (X keysyms of keys of the layout) pressed together, held, let go."""
        down = [w for key in keys for w in ("keydown", key)]
        up = [w for key in reversed(keys) for w in ("keyup", key)]
        xdotool(app, *down, "sleep", "0.15", *up)

    # each layout's keys for '+', '-' and '?', as its keysyms name them unshifted
    layouts = {
        "se": (["plus"], ["minus"], ["shift", "plus"]),
        "es": (["plus"], ["minus"], ["shift", "apostrophe"]),
        "us": (["shift", "equal"], ["minus"], ["shift", "slash"]),
    }
    app.perform("random")
    fresh(app, "random")
    k, scale = app.k, app.ui_scale
    try:
        for name, (more, fewer, question) in layouts.items():
            subprocess.run(["setxkbmap", name], check=True, timeout=10)
            for _ in range(5):
                app.frame()
            held(*more)
            assert app.k == k + 1, name
            held(*fewer)
            assert app.k == k, name
            held(*question)
            assert dpg.is_item_shown(app.ids.help) and app.k == k, name
            held("Escape")
            held("ctrl", *more)
            assert app.ui_scale == scale + 0.25, name
            held("ctrl", "0")
            assert app.ui_scale == scale, name
        subprocess.run(["setxkbmap", "ru"], check=True, timeout=10)
        held("shift", "7")  # the Russian '?'
        assert dpg.is_item_shown(app.ids.help)
        held("Escape")
        subprocess.run(["setxkbmap", "us"], check=True, timeout=10)
        held("shift", "7")  # ('&' on a US keyboard: no shortcut)
        held("shift", "minus")  # ('_': none either)
        assert not dpg.is_item_shown(app.ids.help) and app.k == k
        held("ctrl", "equal")  # Ctrl+'=' and Ctrl+Shift+'-', as Ctrl++ and Ctrl+-
        assert app.ui_scale == scale + 0.25
        held("ctrl", "shift", "minus")
        assert app.ui_scale == scale
    finally:
        subprocess.run(["setxkbmap", "us"], check=True, timeout=10)
        app.set_k(k)
        if app.ui_scale != scale:
            app.set_ui_scale(scale)


def test_the_keys_reach_the_help_the_grab_rectangle_dims_and_analyze(app):
    """What a keyboard-only user's trial could not reach: the help's rows below its foot
    (the arrows moved the results' frame behind it), the grab rectangle (arrows did
    nothing), dims (Enter in the box did not apply it, and said "no result is selected"),
    and Analyze folder (a button only); the save dialog opened in the folder the viewer
    was started in, not the index's. Real key presses."""
    from rtsearch.viewer import actions

    app.perform("escape")
    assert app.selected is None
    xdotool(app, "key", "F1")
    help_window = app.ids.help
    assert dpg.get_y_scroll_max(help_window) > 0  # (its rows reach below its foot)
    for name in ("Down", "Down", "Next"):
        xdotool(app, "key", name)
    assert dpg.get_y_scroll(help_window) > 0 and app.selected is None
    xdotool(app, "key", "End")
    assert dpg.get_y_scroll(help_window) == dpg.get_y_scroll_max(help_window)
    xdotool(app, "key", "Home")
    assert dpg.get_y_scroll(help_window) == 0
    xdotool(app, "key", "Escape")
    assert not dpg.is_item_shown(help_window)

    xdotool(app, "key", "g")
    assert app.grab_mode
    app.region.set_box((300, 200, 400, 300))
    step = 900 // 50  # a fiftieth of the 1440x900 desktop's shorter side
    xdotool(app, "key", "Right")
    xdotool(app, "key", "Down")
    assert app.region.box == (300 + step, 200 + step, 400, 300)
    xdotool(app, "key", "shift+Left")  # sized by its bottom-right corner
    assert app.region.box == (300 + step, 200 + step, 400 - step, 300)
    xdotool(app, "key", "ctrl+Up")  # a pixel
    assert app.region.box == (300 + step, 199 + step, 400 - step, 300)
    for name in ("Next", "Prior", "Home", "End"):  # nothing (they left the mode: lost)
        xdotool(app, "key", name)
    assert app.grab_mode and app.region.box == (300 + step, 199 + step, 400 - step, 300)
    assert "arrow keys: move it" in dpg.get_item_configuration(app.ids.grab["hint"])["text"]
    xdotool(app, "key", "Escape")
    assert not app.grab_mode

    dims = app.session.index.dims
    dpg.focus_item(app.ids.dims_input)  # (as Tab reaches it)
    pump(app, lambda: dpg.is_item_active(app.ids.dims_input))
    app.message = ""
    xdotool(app, "type", str(dims - 2))
    xdotool(app, "key", "Return")
    pump(app, lambda: app.session.index.dims == dims - 2 and not app.tasks)
    # (of the index on show: a test run before it may have left another one analysed)
    shown = f"re-projected to {dims - 2} dimensions ({app.session.index.count} images)"
    assert app.message.startswith(shown), app.message
    # typed, then *Apply dims* clicked: the number typed (it read the one before, and the
    # box went back to it: the box kept what was typed until Enter)
    dpg.focus_item(app.ids.dims_input)
    pump(app, lambda: dpg.is_item_active(app.ids.dims_input))
    xdotool(app, "type", str(dims - 3))
    x, y = dpg.get_item_rect_min(app.ids.dims_apply)
    xdotool(app, "mousemove", str(round(x + 8)), str(round(y + 6)), "click", "1")
    pump(app, lambda: app.session.index.dims == dims - 3 and not app.tasks)
    assert dpg.get_value(app.ids.dims_input) == dims - 3
    xdotool(app, "mousemove", "2", "2")
    dpg.set_value(app.ids.dims_input, dims)  # as it was, for the next tests
    actions.reproject(app)
    pump(app, lambda: app.session.index.dims == dims and not app.tasks)

    xdotool(app, "key", "a")
    assert dpg.is_item_shown(app.ids.analyze_dialog)
    xdotool(app, "key", "Escape")
    assert not dpg.is_item_shown(app.ids.analyze_dialog)
    # Ctrl+S and Ctrl+O: in the index's folder (it was the folder the viewer started in)
    for keys, dialog in (("ctrl+s", app.ids.save_dialog), ("ctrl+o", app.ids.load_dialog)):
        xdotool(app, "key", keys)
        assert dpg.is_item_shown(dialog)
        shown = dpg.get_file_dialog_info(dialog)["current_path"]
        assert Path(shown).resolve() == app.session.source.parent.resolve()
        xdotool(app, "key", "Escape")
        assert not dpg.is_item_shown(dialog)


def test_ctrl_v_searches_the_picture_or_the_file_on_the_clipboard(app, gallery, tmp_path):
    """A picture copied (as an image editor or a browser offers it: served by xclip here),
    a result's path copied by the viewer itself (right-click), and text naming no picture,
    each pasted with Ctrl+V; the clipboard is read by the worker, the drawing goes on."""
    from rtsearch.clipboard import NOTHING

    if shutil.which("xclip") is None:
        pytest.skip("xclip is not installed")
    root, _ = gallery
    png = root / "d0" / "img00000.png"
    subprocess.run(["xclip", "-selection", "clipboard", "-target", "image/png", "-i", str(png)],
                   check=True, timeout=10)  # fmt: skip
    xdotool(app, "key", "ctrl+v")
    pump(app, lambda: top_is(app, "clipboard", png))
    assert app.published.results[0].distance < 1e-4
    pump(app, lambda: dpg.get_value(app.ids.message).startswith("query: clipboard ("))
    assert drawn_as(app) == "message"
    other = root / "d1" / "img00007.jpg"
    dpg.set_clipboard_text(str(other))  # what a right-click on its tile does
    app.perform("paste")  # (the toolbar's Paste button goes here too)
    pump(app, lambda: top_is(app, "clipboard", other))
    w, h = Image.open(other).size  # (the message line is written every few frames)
    pump(app, lambda: dpg.get_value(app.ids.message) == f"query: img00007.jpg ({w}x{h}, pasted)")
    # nothing to search for: said; the source on show stays, its picture and results
    # (another source's, a random picture's, went blank: a paste of no picture blanked a
    # video playing)
    dpg.set_clipboard_text("no picture's name")
    app.perform("paste")
    pump(app, lambda: dpg.get_value(app.ids.message) == NOTHING)
    assert top_is(app, "clipboard", other) and drawn_as(app) == "problem"
    app.perform("random")
    fresh(app, "random")
    shown = app.published
    app.perform("paste")
    pump(app, lambda: app.message == NOTHING)
    pump(app, lambda: dpg.get_value(app.ids.message) == NOTHING)
    assert app.published.source == "random" and app.published.file == shown.file
    assert app.published.results == shown.results and app.published.query is shown.query
    assert app.source_sent == "random"
    # a path of no file, or of a folder: said so
    missing = tmp_path / "nope" / "missing.png"
    for text, said in ((missing, "no such file"), (tmp_path, "is a folder")):
        dpg.set_clipboard_text(str(text))
        app.perform("paste")
        pump(app, lambda t=text, w=said: app.message.startswith(f"{t}: {w}"))
        assert app.published.file == shown.file
    # a video file copied (a file manager's URI, as xclip serves it): played, as V plays one
    clip = write_video(tmp_path / "clip.avi", [3, 4], frames_each=10)
    subprocess.run(["xclip", "-selection", "clipboard", "-i"], input=f"file://{clip}\n",
                   text=True, check=True, timeout=10)  # fmt: skip
    xdotool(app, "key", "ctrl+v")
    pump(app, lambda: app.published.source == "video:clip.avi" and len(app.published.results))
    seq = app.published.seq
    pump(app, lambda: app.published.seq > seq + 2)  # playing: a picture after another
    assert "source video:clip.avi" in dpg.get_value(app.ids.status)
    dpg.set_clipboard_text("no picture's name")  # pasted over a video playing: it plays on
    app.perform("paste")
    pump(app, lambda: app.message == NOTHING)
    seq = app.published.seq
    pump(app, lambda: app.published.seq > seq + 2 and len(app.published.results))
    assert app.published.source == "video:clip.avi"
    assert dpg.get_value(app.ids.message) == NOTHING  # (until the next action)
    app.perform("random")
    fresh(app, "random")


def test_a_picture_file_pasted_is_searched_as_it_is_stored(app, tmp_path, tiny_model):
    """A picture file of the collection with a plain strip of its own (a yellow frame),
    pasted by its name: the strip was trimmed as a live picture's border is, and its copy in
    the collection came at distance 0.41, not 0 (a user's trial). The same picture pasted
    as image data (copied from a page, a screenshot) is still trimmed."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession

    if shutil.which("xclip") is None:
        pytest.skip("xclip is not installed")
    folder = tmp_path / "framed"
    make_gallery(folder, 6, start=640)
    framed = np.asarray(make_image(641, (320, 240))).copy()
    framed[:40] = (250, 220, 0)  # the picture's own plain strip
    picture = folder / "framed.png"
    Image.fromarray(framed).save(picture)
    out = tmp_path / "framed.dat"
    analyze(folder, out, Extractor(tiny_model, threads=1), Settings(dims=4))
    before = app.session
    try:
        app.set_session(SearchSession.open(out, model=str(tiny_model), threads=1))
        dpg.set_clipboard_text(str(picture))  # its name (a right-click, a file manager)
        app.perform("paste")
        pump(app, lambda: top_is(app, "clipboard", picture))
        assert app.published.searched is None and app.published.results[0].distance < 1e-4
        subprocess.run(
            ["xclip", "-selection", "clipboard", "-target", "image/png", "-i", str(picture)],
            check=True, timeout=10,
        )  # fmt: skip
        app.perform("paste")
        pump(app, lambda: app.published.source == "clipboard" and app.published.searched)
        assert app.published.searched[0] > 0.1  # (the strip, 40 of 240 rows, left out)
    finally:
        app.set_session(before)


def test_b_and_its_checkbox_turn_the_border_trim_off_and_on(app):
    """Live pictures lose their plain borders before the search unless B (or the toolbar's
    box) says otherwise; the worker hears it, and the message says what it does."""
    from rtsearch.viewer.app import TRIMMED

    app.perform("escape")
    assert app.opts.trim and dpg.get_value(app.ids.trim_box)
    pump(app, lambda: app.worker.trim)  # (a test before may have just turned it back on)
    xdotool(app, "key", "b")
    assert not app.opts.trim and not dpg.get_value(app.ids.trim_box)
    assert app.message == TRIMMED[False]
    pump(app, lambda: not app.worker.trim)
    x, y = (round(v) + 8 for v in dpg.get_item_rect_min(app.ids.trim_box))  # its square
    xdotool(app, "mousemove", str(x), str(y), "click", "1")
    assert app.opts.trim and dpg.get_value(app.ids.trim_box)
    assert app.message == TRIMMED[True]
    pump(app, lambda: app.worker.trim)


def test_the_part_of_a_live_picture_searched_is_outlined_on_it(app, monkeypatch):
    """The query is drawn whole, with the part searched outlined; a picture searched whole
    has no outline."""
    from dataclasses import replace

    app.perform("random")
    fresh(app, "random")
    outline = app.ids.query_outline
    assert not dpg.get_item_configuration(outline)["show"]  # a collection's own: whole
    trimmed = replace(app.published, seq=app.published.seq + 1, searched=(0.1, 0.9, 0.25, 0.75))
    monkeypatch.setattr(app.worker, "latest", lambda: trimmed)
    pump(app, lambda: app.published is trimmed)
    app.frame()
    x0, y0, x1, y1 = app.layout.query
    conf = dpg.get_item_configuration(app.ids.query_outline)
    assert conf["show"]
    assert np.allclose(conf["pmin"][:2], (x0 + 0.25 * (x1 - x0), y0 + 0.1 * (y1 - y0)))
    assert np.allclose(conf["pmax"][:2], (x0 + 0.75 * (x1 - x0), y0 + 0.9 * (y1 - y0)))
    monkeypatch.undo()
    pump(app, lambda: app.published.searched is None and app.published is not trimmed)
    app.frame()
    assert not dpg.get_item_configuration(app.ids.query_outline)["show"]


def test_keys_typed_into_a_file_dialog_are_not_shortcuts(app):
    app.perform("load")
    app.frame()
    k, source = app.k, app.worker.source
    try:
        for key in (dpg.mvKey_Minus, dpg.mvKey_S, dpg.mvKey_V, dpg.mvKey_R, dpg.mvKey_Spacebar):
            app.on_key(key)
        assert app.k == k and app.worker.source is source and not app.paused
        assert dpg.is_item_shown(app.ids.load_dialog)
        assert not dpg.is_item_shown(app.ids.video_dialog)
    finally:
        dpg.hide_item(app.ids.load_dialog)
    app.on_key(dpg.mvKey_Minus)
    assert app.k == k - 1
    app.set_k(k)


def test_a_large_still_picture_as_the_video_is_decoded_off_the_drawing_thread(
    app, tmp_path, monkeypatch
):
    """Callbacks run on the drawing thread: a 48 MP picture chosen as the video was decoded
    there (VideoSource decoded it when made), and the window froze for 1.5-2.8 s. It is
    decoded by the first read, on the worker's thread."""
    from rtsearch import sources

    picture = tmp_path / "still.png"
    pixels = np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)
    Image.fromarray(pixels).save(picture)  # (not of one colour: that is not searched)
    threads, real = [], sources.load_rgb

    def slow_decode(path, **kw):
        threads.append(threading.current_thread())
        time.sleep(1.0)  # as a huge picture takes
        return real(path, **kw)

    monkeypatch.setattr(sources, "load_rgb", slow_decode)
    start = time.perf_counter()
    app._start_source(f"video:{picture}")
    assert time.perf_counter() - start < 0.5
    frames = app.frames
    assert fresh(app, "video").query is not None
    assert threads and threading.main_thread() not in threads
    assert app.frames - frames > 10  # the window drew meanwhile
    monkeypatch.undo()
    app.perform("random")


def test_a_video_typed_into_its_dialog_plays_and_esc_closes_a_dialog(app, tmp_path):
    """A real file dialog, driven with the mouse and keys: the name typed under the first
    filter is the file opened (it used to come back as clip.* and not be found)."""
    from rtsearch.viewer import dialogs

    video = write_video(tmp_path / "clip.mp4", list(range(0, 30, 3)), frames_each=3)
    dialog = app.ids.video_dialog
    dpg.configure_item(dialog, default_path=str(tmp_path))
    app.open_dialog(dialog)
    for _ in range(5):
        app.frame()
    # a modal file dialog centres itself in the window; its name field and OK are at its foot
    vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
    w, h = (dpg.get_item_configuration(dialog)[k] for k in ("width", "height"))
    assert (w, h) == dialogs.DIALOG_SIZE
    x0, y0 = (vw - w) // 2, (vh - h) // 2
    xdotool(app, "mousemove", str(x0 + w // 2), str(y0 + h - 44))
    xdotool(app, "click", "1")
    xdotool(app, "type", "clip.mp4")
    xdotool(app, "mousemove", str(x0 + 18), str(y0 + h - 18))
    xdotool(app, "click", "1")
    assert not dpg.is_item_shown(dialog)
    assert fresh(app, "video").source == "video:clip.mp4"
    assert app.video_path == video and "not found" not in app.message
    # V with a video playing: the dialog opens in that video's folder (it opened where the
    # viewer was started), with pictures among its filters (V opens a picture too)
    (tmp_path / "sub").mkdir()
    other = write_video(tmp_path / "sub" / "other.avi", [1, 2], frames_each=3)
    app._start_source(f"video:{other}")
    fresh(app, "video:other.avi")
    app.perform("video")
    for _ in range(3):
        app.frame()
    dialog = app.ids.video_dialog
    assert dpg.is_item_shown(dialog)
    assert dpg.get_file_dialog_info(dialog)["current_path"] == str(other.parent)
    app.on_key(dpg.mvKey_Escape)
    assert not dpg.is_item_shown(dialog)
    # V after another source plays the last video again; one deleted since: the dialog
    # (V said "video file not found" at every press, and never opened it)
    app.perform("random")
    other.unlink()
    app.perform("video")
    for _ in range(3):
        app.frame()
    assert dpg.is_item_shown(dialog), app.message
    assert app.message == f"{other}: gone since it played; choose another"
    assert dpg.get_file_dialog_info(dialog)["current_path"] == str(other.parent)
    app.on_key(dpg.mvKey_Escape)
    # Esc closes a dialog as its Cancel does; the next Esc is a shortcut again
    app.perform("load")
    app.frame()
    app.on_key(dpg.mvKey_Escape)
    assert not dpg.is_item_shown(app.ids.load_dialog)
    # Enter in the name field is the dialog's OK; with no name yet, it waits for one
    dialog = app.ids.save_dialog
    dpg.configure_item(dialog, default_path=str(tmp_path))
    app.open_dialog(dialog)
    for _ in range(5):
        app.frame()
    app.on_key(dpg.mvKey_Return)
    assert dpg.is_item_shown(dialog)
    xdotool(app, "mousemove", str(x0 + w // 2), str(y0 + h - 44))
    xdotool(app, "click", "1")
    xdotool(app, "type", "entered.dat")
    xdotool(app, "key", "Return")
    assert not dpg.is_item_shown(dialog)
    pump(app, lambda: app.message.startswith(f"saved {tmp_path / 'entered.dat'} ("))
    # closed from here (Enter, Esc), a dialog opens again empty, in the folder it showed
    # (it kept the name typed, and the next name typed went after it)
    for close in ("Return", "Escape"):
        app.open_dialog(dialog)
        for _ in range(5):
            app.frame()
        info = dpg.get_file_dialog_info(dialog)
        assert info["file_name"] == "" and Path(info["current_path"]) == tmp_path, close
        xdotool(app, "mousemove", str(x0 + w // 2), str(y0 + h - 44))
        xdotool(app, "click", "1")
        xdotool(app, "type", "again.dat")
        assert dpg.get_file_dialog_info(dialog)["file_name"] == "again.dat"
        xdotool(app, "key", close)
        pump(app, lambda: not dpg.is_item_shown(dialog))
    assert app.message.startswith(f"saved {tmp_path / 'again.dat'} (")  # by the Return, not the Esc


def open_at_name_field(app, dialog) -> tuple[int, int, int, int]:
    """A file dialog opened (it centres itself in the window) and its name field, at its
    foot, clicked; the dialog's box."""
    app.open_dialog(dialog)
    for _ in range(5):
        app.frame()
    vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
    w, h = (dpg.get_item_configuration(dialog)[k] for k in ("width", "height"))
    x0, y0 = (vw - w) // 2, (vh - h) // 2
    xdotool(app, "mousemove", str(x0 + w // 2), str(y0 + h - 44))
    xdotool(app, "click", "1")
    return x0, y0, w, h


def type_into_dialog(app, dialog, text: str) -> None:
    """``text`` typed into a file dialog's name field, then Enter."""
    open_at_name_field(app, dialog)
    xdotool(app, "type", text)
    xdotool(app, "key", "Return")
    pump(app, lambda: not dpg.is_item_shown(dialog))
    for _ in range(5):
        app.frame()


def test_a_name_typed_in_the_save_dialog_is_the_file_saved(app, tmp_path):
    """What follows a dot in a typed name is kept and .dat added (photos.2024 was saved as
    photos.dat, s2.v2 as s2.dat, over another index); a folder typed with its '/' is
    refused (it saved a hidden file named '.dat' in it); the Load dialog finds a typed
    name's .dat."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "s2.dat").write_bytes(b"another index")
    dialog = app.ids.save_dialog
    dpg.configure_item(dialog, default_path=str(tmp_path))
    for typed, saved in (("photos.2024", "photos.2024.dat"), ("s2.v2", "s2.v2.dat"),
                         ("UP.DAT", "UP.DAT"), ("plain ", "plain.dat")):  # fmt: skip
        app.to_save = app.session
        type_into_dialog(app, dialog, typed)
        pump(app, lambda saved=saved: app.message.startswith(f"saved {tmp_path / saved} ("))
        assert (tmp_path / saved).is_file()
    assert (tmp_path / "s2.dat").read_bytes() == b"another index"
    for folder in ("sub/", ".", ".."):  # (hidden files named '.dat', '..dat', '...dat')
        app.to_save = app.session
        type_into_dialog(app, dialog, folder)
        assert app.message == (
            f"not saved: {tmp_path}/{folder} names a folder; type a file name after it"
        )
    assert list((tmp_path / "sub").iterdir()) == [] and not list(tmp_path.glob(".*dat"))
    app.message = ""
    dialog = app.ids.load_dialog
    dpg.configure_item(dialog, default_path=str(tmp_path))
    type_into_dialog(app, dialog, "UP")
    pump(app, lambda: app.session.source == tmp_path / "UP.DAT")


def test_the_load_dialogs_list_of_indexes_gives_way_in_a_narrow_window(app):
    """In a 520-px window the Load dialog's "Shown before" list kept its 200 px (hidden,
    the dialog kept its room all the same), and the file list beside it showed '[F.dat'
    for every name: where both do not fit, the list is left out."""
    from rtsearch.viewer import dialogs

    dialog = app.ids.load_dialog
    try:
        dpg.set_viewport_width(560)  # too narrow for both: the file list alone
        pump(app, lambda: dpg.get_viewport_client_width() == 560)
        app.perform("load")
        pump(app, lambda: dpg.is_item_shown(dialog))
        assert dpg.get_item_configuration(dialog)["width"] <= 560 - 2 * dialogs.DIALOG_MARGIN
        assert not app.recent_panel
        app.on_key(dpg.mvKey_Escape)
        dpg.set_viewport_width(900)
        pump(app, lambda: dpg.get_viewport_client_width() == 900)
        app.perform("load")
        pump(app, lambda: dpg.is_item_shown(dialog))  # (its full width again)
        assert dpg.get_item_configuration(app.recent_panel)["width"] == app.px(200)
        assert dpg.is_item_shown(app.recent_panel)
        # the window made narrower, then wider, with the dialog open: the dialog is made
        # again each time, as it takes in its side pane only then (the names stayed
        # squeezed, or the list did not come, till it was opened again)
        for width, listed in ((560, False), (900, True)):
            made = dpg.get_alias_id(dialog)
            dpg.set_viewport_width(width)
            pump(app, lambda width=width: dpg.get_viewport_client_width() == width)
            pump(
                app,
                lambda made=made: dpg.is_item_shown(dialog) and dpg.get_alias_id(dialog) != made,
            )
            assert bool(app.recent_panel) == listed
        assert dpg.is_item_shown(app.recent_panel)
        assert len(dpg.get_item_children(app.recent_panel, 1)) >= 2  # (filled: its title, ...)
    finally:
        app.on_key(dpg.mvKey_Escape)
        dpg.set_viewport_width(900)
        pump(app, lambda: dpg.get_viewport_client_width() == 900)


def test_a_file_dialog_is_used_from_the_keyboard_alone(app, tmp_path):
    """As the README says: Tab goes to the Search field, Tab again to the name field, and
    Enter opens what was typed there (a keyboard user, typing at once, typed nowhere)."""
    from rtsearch import store

    dialog = app.ids.load_dialog
    # a shorter path (pytest's base folder, not this test's): fewer keys to type, each of
    # which a busy machine takes a while to bring to the field
    folder = tmp_path.parent / "keyboard"
    folder.mkdir()
    typed = folder / "typed.dat"
    store.save(app.session.index, typed)
    app.perform("load")
    pump(app, lambda: dpg.is_item_shown(dialog))
    for _ in range(5):
        app.frame()
    xdotool(app, "key", "Tab", "Tab")
    xdotool(app, "type", str(typed))
    # (typed, it may take a few frames more to reach the field on a busy machine)
    pump(app, lambda: dpg.get_file_dialog_info(dialog)["file_name"].endswith("typed.dat"))
    xdotool(app, "key", "Return")
    pump(app, lambda: app.session.source == typed)


def test_a_state_folder_that_cannot_be_written_is_said_on_the_message_line(
    app, tmp_path, monkeypatch
):
    """With an index on show, the first keep to fail was the index's own (keep_shown), and
    the message line never said it: only stderr did."""
    from rtsearch.viewer import memory

    blocked = tmp_path / "file"
    blocked.write_text("a file where the state folder should be")
    monkeypatch.setattr(memory, "state_file", lambda: blocked / "viewer.json")
    monkeypatch.setattr(memory, "unkept", "")
    monkeypatch.setattr(app, "unkept_said", False)
    memory.keep_shown(app.session.source or tmp_path / "x.dat", app.session.base_dir, None)
    assert memory.unkept
    pump(app, lambda: app.message == memory.unkept)


def test_a_folder_picked_around_the_one_on_show_is_asked_about_first(app, monkeypatch):
    """A then Enter: the folder dialog opens beside the folder on show, and its Enter
    analysed all of the folder around it (a whole ~/Pictures, for ~/Pictures/Trip) unasked."""
    from rtsearch.viewer import actions

    started: list[Path] = []
    monkeypatch.setattr(actions, "analyze", lambda app, folder, kept=True: started.append(folder))
    shown = app.session.base_dir
    actions.analyze_picked(app, shown.parent)
    pump(app, lambda: dpg.is_item_shown(app.ids.question))
    text = " ".join(dpg.get_value(app.ids.question_text).split())  # (wrapped)
    assert text.startswith(f"{shown.parent} holds {shown}, the folder on show, and everything")
    app.on_key(dpg.mvKey_Escape)
    assert app.message == f"not analysed: {shown.parent}" and started == []
    actions.analyze_picked(app, shown.parent)
    pump(app, lambda: dpg.is_item_shown(app.ids.question))
    app.on_key(dpg.mvKey_Return)
    pump(app, lambda: started == [shown.parent])
    for folder in (shown, shown / "d0", shown.parent / "elsewhere"):  # not around it: unasked
        actions.analyze_picked(app, folder)
        assert started[-1] == folder and not dpg.is_item_shown(app.ids.question)


def test_a_folder_picked_in_a_dialog_is_the_one_analysed_and_not_picked_again(
    app, tmp_path, monkeypatch
):
    """A folder clicked in the folder dialog is the one its OK gives; opened again, the
    dialog showed it still picked beside a path that said '.', and OK gave the folder
    around it."""
    from rtsearch.viewer import actions

    asked: list[Path] = []
    monkeypatch.setattr(actions, "analyze", lambda app, folder: asked.append(folder))
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
    dialog = app.ids.analyze_dialog
    dpg.configure_item(dialog, default_path=str(tmp_path))
    vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
    for _ in range(2):
        app.open_dialog(dialog)
        for _ in range(5):
            app.frame()
        w, h = (dpg.get_item_configuration(dialog)[k] for k in ("width", "height"))
        x0, y0 = (vw - w) // 2, (vh - h) // 2
        info = dpg.get_file_dialog_info(dialog)
        assert Path(info["current_path"]) == tmp_path and not info["selections"]
        xdotool(app, "mousemove", str(x0 + 60), str(y0 + 116))  # the second row: alpha
        xdotool(app, "click", "1")
        assert Path(dpg.get_file_dialog_info(dialog)["file_path_name"]).name == "alpha"
        xdotool(app, "mousemove", str(x0 + 18), str(y0 + h - 18))  # OK
        xdotool(app, "click", "1")
        pump(app, lambda: not dpg.is_item_shown(dialog))
        app.frame()
    assert asked == [tmp_path / "alpha"] * 2
    # closed with Esc after a click into alpha: it opens again where it was, in alpha (the
    # rule for a folder picked by OK, beside it, took it back out)
    app.open_dialog(dialog)
    for _ in range(5):
        app.frame()
    xdotool(app, "mousemove", str(x0 + 60), str(y0 + 116))
    xdotool(app, "click", "1")
    app.on_key(dpg.mvKey_Escape)
    app.open_dialog(dialog)
    for _ in range(5):
        app.frame()
    assert Path(dpg.get_file_dialog_info(dialog)["current_path"]) == tmp_path / "alpha"
    app.on_key(dpg.mvKey_Escape)


def test_a_full_path_typed_into_the_folder_dialog_is_the_folder_analysed(
    app, tmp_path, monkeypatch
):
    """The folder dialog's field starts as "."; a full path typed after it came back under
    the dialog's folder (`analyze failed: /home/me/tmp/x: folder not found`)."""
    from rtsearch.viewer import actions

    asked: list[Path] = []
    monkeypatch.setattr(actions, "analyze", lambda app, folder: asked.append(folder))
    import tempfile

    (tmp_path / "shown").mkdir()
    # (a short path: xdotool typed the long pytest one only in part)
    wanted = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp")) / "pics"
    wanted.mkdir()
    dialog = app.ids.analyze_dialog
    dpg.configure_item(dialog, default_path=str(tmp_path / "shown"))
    x0, y0, _, h = open_at_name_field(app, dialog)  # (the cursor lands after its ".")
    xdotool(app, "key", "End")
    xdotool(app, "type", str(wanted))
    xdotool(app, "mousemove", str(x0 + 18), str(y0 + h - 18))
    xdotool(app, "click", "1")
    pump(app, lambda: not dpg.is_item_shown(dialog))
    assert asked == [wanted]
    # opened again: beside the folder typed, as beside one clicked (it opened on the path
    # it came back as, a folder not there: empty, not even '..')
    app.frame()  # (made again)
    app.open_dialog(dialog)
    for _ in range(5):
        app.frame()
    assert Path(dpg.get_file_dialog_info(dialog)["current_path"]) == wanted.parent
    app.on_key(dpg.mvKey_Escape)
    shutil.rmtree(wanted.parent)


def test_a_dialog_gives_the_picked_file_not_its_filter_name(tmp_path):
    """app_data as the real dialogs gave it (recorded under Xvfb, Dear PyGui 2.3)."""
    from rtsearch.errors import RtsearchError
    from rtsearch.viewer.dialogs import chosen

    d = str(tmp_path)
    (tmp_path / "clip.mp4").touch()
    picked = {
        "file_path_name": f"{d}/clip.*",
        "current_filter": ".*",
        "selections": {"clip.mp4": f"{d}/clip.mp4"},
    }
    assert chosen(picked) == f"{d}/clip.mp4"
    typed = {"file_path_name": f"{d}/clip.*", "current_filter": ".*", "selections": {}}
    assert chosen(typed) == f"{d}/clip.mp4"  # the one file the name stands for
    (tmp_path / "clip.avi").touch()
    with pytest.raises(RtsearchError, match=r"clip\.\*: 2 files match; pick the file"):
        chosen(typed)
    as_typed = {"file_path_name": f"{d}/new.dat", "current_filter": ".dat", "selections": {}}
    assert chosen(as_typed) == f"{d}/new.dat"
    folder = {"file_path_name": f"{d}/sub", "selections": {"sub": f"{d}/sub/sub"}}
    assert chosen(folder, directory=True) == f"{d}/sub"
    # a file picked, then another name typed: the typed name (it was the picked file that
    # Save wrote over)
    retyped = {
        "file_path_name": f"{d}/new.dat",
        "file_name": "new.dat",
        "selections": {"victim.dat": f"{d}/victim.dat"},
    }
    assert chosen(retyped) == f"{d}/new.dat"
    picked["file_name"] = "clip.*"  # as picked under '.*'
    assert chosen(picked) == f"{d}/clip.mp4"
    retyped = {
        "file_path_name": f"{d}/other.*",
        "file_name": "other.*",
        "selections": {"clip.mp4": f"{d}/clip.mp4"},
    }
    (tmp_path / "other.mkv").touch()
    assert chosen(retyped) == f"{d}/other.mkv"
    # full paths typed into the name field come back joined onto the dialog's folder
    assert chosen({"file_path_name": f"{d}//data/x.dat", "file_name": "/data/x.dat"}) == (
        "/data/x.dat"
    )
    assert chosen({"file_path_name": f"{d}//data/pics"}, directory=True) == "/data/pics"
    home = os.path.expanduser("~")
    assert chosen({"file_path_name": f"{d}/~/pics"}, directory=True) == f"{home}/pics"


def test_dialogs_and_help_fit_a_small_window(app):
    from rtsearch.viewer import dialogs

    try:
        dpg.set_viewport_width(520)
        dpg.set_viewport_height(400)
        pump(app, lambda: dpg.get_viewport_client_width() == 520)
        app.perform("save")
        app.on_key(dpg.mvKey_F1)  # help: not while a dialog is open
        assert not dpg.is_item_shown(app.ids.help)
        for tag in (app.ids.save_dialog, app.ids.help):
            for _ in range(3):
                app.frame()
            conf = dpg.get_item_configuration(tag)
            assert conf["width"] <= 520 - 2 * dialogs.DIALOG_MARGIN
            assert conf["height"] <= dpg.get_viewport_client_height() - 2 * dialogs.DIALOG_MARGIN
            app.on_key(dpg.mvKey_Escape)
            assert not dpg.is_item_shown(tag)
            app.on_key(dpg.mvKey_F1)
        x, y = dpg.get_item_pos(app.ids.help)
        assert x >= 0 and y >= 0
        app.on_key(dpg.mvKey_Escape)
        app.open_dialog(app.ids.save_dialog)  # open while the window is small...
    finally:
        dpg.set_viewport_width(900)
        dpg.set_viewport_height(700)
    pump(app, lambda: dpg.get_viewport_client_width() == 900)
    app.frame()
    conf = dpg.get_item_configuration(app.ids.save_dialog)  # ...and full size as it grows
    assert (conf["width"], conf["height"]) == dialogs.DIALOG_SIZE
    dpg.hide_item(app.ids.save_dialog)


def test_keys_typed_into_a_slider_are_not_shortcuts_and_stay_in_range(app):
    """Ctrl+click turns a slider into a text field: 's' typed there used to switch to the
    screen source, and -200 put the results over the query."""
    from rtsearch.viewer import layout

    app.perform("random")
    fresh(app, "random")
    thumb = app.ids.fields[2]
    (x, y), (w, h) = dpg.get_item_rect_min(thumb), dpg.get_item_rect_size(thumb)
    source, k = app.worker.source, app.k
    xdotool(app, "mousemove", str(round(x + w / 2)), str(round(y + h / 2)))
    xdotool(app, "keydown", "ctrl", "click", "1", "keyup", "ctrl")
    assert dpg.is_item_active(thumb)
    xdotool(app, "type", "--", "s-")
    assert app.worker.source is source and app.k == k  # neither S nor - acted
    xdotool(app, "key", "--repeat", "8", "BackSpace")
    xdotool(app, "type", "--", "-9000")
    xdotool(app, "key", "Return")
    pump(app, lambda: app.opts.thumb_h == layout.THUMB_RANGE[0])
    assert dpg.get_value(thumb) == layout.THUMB_RANGE[0]


def test_a_quick_ctrl_s_saves_and_does_not_switch_to_the_screen(app):
    """xdotool presses and releases Ctrl+S at once, as a quick hand does: the Ctrl was
    released by the time the key handler asked, and S switched to the screen source."""
    app.perform("random")
    fresh(app, "random")
    source = app.worker.source
    for _ in range(3):
        xdotool(app, "key", "ctrl+s")
        assert dpg.is_item_shown(app.ids.save_dialog)
        app.on_key(dpg.mvKey_Escape)
    assert app.worker.source is source
    # the handler runs after the keys went up: the events' order decides, not is_key_down
    app.on_key(dpg.mvKey_LControl)
    app.on_key(dpg.mvKey_S)
    app.on_key_release(dpg.mvKey_LControl)
    assert dpg.is_item_shown(app.ids.save_dialog)
    app.on_key(dpg.mvKey_Escape)
    app.on_key(dpg.mvKey_S)  # and a plain S after it is S
    pump(app, lambda: app.published.source == "screen")
    app.perform("random")


def test_random_and_a_clicked_result_resume_a_paused_viewer(app):
    app.perform("random")
    pub = fresh(app, "random")
    app.perform("pause")
    time.sleep(0.2)
    app.perform("random")
    assert not app.paused
    fresh(app, "random")
    app.perform("pause")
    time.sleep(0.2)
    row = app.published.results[0].row
    app.message = "copied: a result's path"  # what a right-click leaves
    app.query_row(row)
    assert app.message == ""  # the click's query shows its own messages
    pump(app, lambda: app.published.row == row)
    assert not app.paused and pub.seq < app.published.seq


def test_watch_swaps_in_the_updated_index_without_a_restart(app, tiny_model, tmp_path, monkeypatch):
    """`rtsearch view INDEX --watch`: images added to and deleted from the folder reach the
    index file and the viewer's results while it runs."""
    import re

    from rtsearch import store
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    said: list[str] = []  # each version's summary, as swapped in
    swap_in = actions.swap_in
    monkeypatch.setattr(actions, "swap_in", lambda *a: (said.append(a[2]), swap_in(*a)))

    folder = tmp_path / "watched"
    make_gallery(folder, 6, start=300)
    index = tmp_path / "watched.dat"
    analyze(folder, index, Extractor(tiny_model, threads=1), Settings(dims=16, keep_features=True))
    actions.open_session(app, index, folder)
    pump(app, lambda: app.session.source == index)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    rows = app.opts.thumb_h  # (as the slider says: put back after)
    actions.watch(app)
    assert app.worker.watching.index == index  # (grey tiles then say no update to run)
    dpg.set_value(app.ids.dims_input, 10)  # dims applied here are kept through the swaps
    actions.reproject(app)
    pump(app, lambda: app.session.index.dims == 10)
    try:
        said.clear()
        added = make_gallery(folder, 3, start=400)
        pump(app, lambda: len(app.session.index.paths) == 9, timeout=60)
        # (in one version, or in two where the watch's first pass, slow on a busy machine,
        # read the folder while the three were being written: a rare failure before)
        assert sum(int(n) for line in said for n in re.findall(r"(\d+) added", line)) == 3
        assert sum("; skipped 1 file: " in line for line in said) == 1, said
        assert "added" in app.message
        assert app.session.index.dims == 10 and dpg.get_value(app.ids.dims_input) == 10
        added[0].unlink()
        pump(app, lambda: len(app.session.index.paths) == 8, timeout=60)
        assert store.load(index).count == 8  # the file on disk follows too
        # the broken file is said once, not on every pass after (3 lines of it, each time)
        assert "1 removed" in app.message and "skipped 1 file" not in app.message
        app.perform("random")
        assert fresh(app, "random").results[0].file.is_file()
        # the query's own file deleted: another picture is drawn, and that is said (only
        # "1 removed" was)
        query = Path(app.session.base_dir) / app.session.index.paths[0]
        app.query_row(0)
        pump(app, lambda: app.published.file == query and app.published.source == "random")
        app.opts.thumb_h, app.dirty = 400, True  # (rows that reach below the window's foot)
        pump(app, lambda: dpg.get_y_scroll_max(app.ids.canvas) > 0)
        dpg.set_y_scroll(app.ids.canvas, dpg.get_y_scroll_max(app.ids.canvas))
        app.frame()
        query.unlink()
        pump(app, lambda: len(app.session.index.paths) == 7, timeout=60)
        assert app.message.endswith(f"; the query's picture is gone from it ({query.name}): "
                                    "another drawn"), app.message  # fmt: skip
        app.frame()  # the picture drawn in its place shows from the top, as R's
        assert dpg.get_y_scroll(app.ids.canvas) == 0
        app.opts.thumb_h, app.dirty = rows, True
        pump(app, lambda: app.published.file not in (None, query))
        kept = app.published  # (drawn: the status says "random")
        # most of the folder gone: the index is kept, and the message says why (the watch
        # said nothing, and the viewer went on showing the files that were gone)
        more = make_gallery(folder, 12, start=500)
        pump(app, lambda: len(app.session.index.paths) == 19, timeout=60)
        assert "query's picture" not in app.message
        # the picture drawn, kept in the new version, is still said to be drawn (the status
        # bar said "source collection", as for a result clicked)
        pump(app, lambda: app.published.query is not None and app.published.query is not kept.query)
        assert app.published.file == kept.file and source_name(app.published) == "random"
        for f in more:
            f.unlink()
        pump(app, lambda: "holds only 7 of the 19 images" in app.message, timeout=60)
        assert app.message.startswith("watching: ") and "waiting for the folder" in app.message
        assert store.load(index).count == 19
    finally:
        app.opts.thumb_h, app.dirty = rows, True  # (as the slider says)
        for task in app.tasks:
            task.cancel.set()
        pump(app, lambda: not any(t.name == "watch" for t in app.tasks))
    assert app.worker.watching.finished


def test_a_step_back_frames_the_result_it_came_from(app, gallery):
    """A user going through the results from the keys (the 6th made the query, a look,
    Backspace) found the frame on the first result, and had to count their way back along
    the grid to the 7th. A step back now frames the result it came from, scrolled into
    view; a user of the mouse, who framed none, gets no frame."""
    from rtsearch.viewer import actions, history

    actions.open_session(app, gallery[1], gallery[0])  # 30 images, whatever came before
    # (loaded: shown already, its load ended after the keys below and took their frame)
    pump(app, lambda: app.session.source == gallery[1] and not app.tasks)
    app.perform("escape")
    xdotool(app, "mousemove", "2", "2")
    app.history = history.History()
    app.set_k(25)  # (of 30 pictures: the last rows below the canvas's foot)
    app.perform("random")
    pub = fresh(app, "random")
    pump(app, lambda: len(app.layout.results) == len(app.published.results) == 25)
    start = pub.file
    xdotool(app, "key", "End", "Left", "Left")  # the 23rd, below the fold
    assert app.selected == 22 and app.layout.results[22][3] > app.canvas_size[1]
    went = pub.results[22].file
    xdotool(app, "key", "Return")
    pump(app, lambda: app.published.file == went and bool(app.published.results))
    assert app.selected == 0 and dpg.get_y_scroll(app.ids.canvas) == 0
    xdotool(app, "key", "BackSpace")
    pump(app, lambda: app.published.file == start and app.selected != 0)
    for _ in range(5):
        app.frame()
    assert app.selected == 22 and app.published.results[22].file == went
    top, height = dpg.get_y_scroll(app.ids.canvas), app.canvas_size[1]
    rect = app.layout.results[22]
    assert top > 0 and top <= rect[1] and rect[3] <= top + height  # in view
    x0, y0 = dpg.get_item_configuration(app.ids.selection_frame)["pmin"]
    assert max(abs(rect[0] - x0), abs(rect[1] - y0)) < 4  # the frame drawn round it
    # forward, then back without a frame: none comes
    xdotool(app, "key", "shift+BackSpace")
    pump(app, lambda: app.published.file == went)
    xdotool(app, "key", "Escape")
    assert app.selected is None
    xdotool(app, "key", "BackSpace")
    pump(app, lambda: app.published.file == start)
    for _ in range(10):
        app.frame()
    assert app.selected is None and not dpg.is_item_shown(app.ids.selection_frame)
    app.set_k(8)


def test_back_follows_a_picture_the_watch_found_moved(app, tiny_model, tmp_path):
    """A picture that was the query, moved within the watched folder (its row kept, "1
    moved"), was passed over by back without a word, and kept under its old name."""
    import shutil

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions, history

    folder = tmp_path / "watched"
    make_gallery(folder, 6, start=700)
    index = tmp_path / "watched.dat"
    analyze(folder, index, Extractor(tiny_model, threads=1), Settings(dims=16))
    actions.open_session(app, index, folder)
    pump(app, lambda: app.session.source == index)
    actions.watch(app)
    try:
        files = [app.session.file_of(row) for row in (0, 1, 2)]
        for row, file in enumerate(files):
            app.query_row(row)
            pump(app, lambda file=file: app.published.file == file)
        (folder / "sub").mkdir()
        moved = folder / "sub" / files[0].name
        shutil.move(files[0], moved)
        pump(app, lambda: "1 moved" in app.message, timeout=60)
        for want in (files[1], moved):
            app.perform("back")
            pump(app, lambda want=want: app.published.file == want)
        # (and kept for the next run under its new name)
        names, at = history.kept(app.history, app.session.base_dir)
        rest = (f.relative_to(folder).as_posix() for f in files[1:])
        assert names[at : at + 3] == (f"sub/{moved.name}", *rest)
    finally:
        for task in app.tasks:
            task.cancel.set()
        pump(app, lambda: not any(t.name == "watch" for t in app.tasks))


def test_a_watch_pass_analysing_new_files_shows_its_progress(
    app, tiny_model, tmp_path, monkeypatch
):
    """--watch with many files added (a camera's card copied in): nothing showed until
    their index came. The progress bar says how far the pass has got, without the Cancel
    of an analysis (a watch is not stopped from there), and goes when it is done."""
    import threading

    from rtsearch import analyze as analyze_module
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    folder, index = tmp_path / "watched", tmp_path / "watched.dat"
    make_gallery(folder, 6, start=300)
    analyze(folder, index, Extractor(tiny_model, threads=1), Settings(dims=16))
    real, gate = analyze_module.extract_into, threading.Event()

    def held(done, writer, base_dir, todo, extractor, batch, report, warn, cancel, after=None):
        def after_batch() -> None:  # each batch of 2 waits for the test's look
            if after:
                after()
            gate.wait(30)

        real(done, writer, base_dir, todo, extractor, 2, report, warn, cancel, after_batch)

    monkeypatch.setattr(analyze_module, "extract_into", held)
    before = app.session
    actions.open_session(app, index, folder)
    pump(app, lambda: app.session.source == index)
    actions.watch(app)
    cancel = dpg.get_item_children(app.ids.progress_group, 1)[1]
    try:
        make_gallery(folder, 6, start=400)
        pump(app, lambda: dpg.is_item_shown(app.ids.progress_group), timeout=60)
        bar = dpg.get_item_configuration(app.ids.progress)["overlay"]
        assert bar.startswith("adding ") and "/6 images" in bar, bar
        assert 0 < dpg.get_value(app.ids.progress) < 1
        assert not dpg.is_item_shown(cancel)
        gate.set()
        pump(app, lambda: len(app.session.index.paths) == 12, timeout=60)
        assert not dpg.is_item_shown(app.ids.progress_group)
        assert "6 added" in app.message
    finally:
        gate.set()
        for task in app.tasks:
            task.cancel.set()
        pump(app, lambda: not any(t.name == "watch" for t in app.tasks))
        app.set_session(before)
    # an analysis's bar keeps its Cancel
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    gate.clear()
    actions.analyze(app, folder)
    try:
        pump(app, lambda: dpg.is_item_shown(app.ids.progress_group), timeout=60)
        assert dpg.is_item_shown(cancel)
    finally:
        gate.set()
        pump(app, lambda: not app.tasks, timeout=60)
        app.set_session(before)


def test_apply_dims_survives_a_watch_swap_meanwhile(app, tiny_model, tmp_path):
    """Apply dims, and before it is done ``--watch`` swaps in a newer version of the index:
    the newer version ends up shown with the applied dims and the message is not left at
    're-projecting...', whether the watch made its version before the press (so without
    the dims) or after it (with them). A failed re-projection says why and applies nothing."""
    from rtsearch import store
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    folder, index, newer = tmp_path / "w", tmp_path / "w.dat", tmp_path / "newer.dat"
    extractor = Extractor(tiny_model, threads=1)
    make_gallery(folder, 6, start=500)
    analyze(folder, index, extractor, Settings(dims=16, keep_features=True))
    make_gallery(folder, 2, start=600)
    analyze(folder, newer, extractor, Settings(dims=16, keep_features=True))

    def version(dims: int | None = None) -> SearchSession:
        """What the watch posts: the file's next version, under the same source."""
        session = SearchSession(store.load(newer, features=True), extractor, folder, source=index)
        return session if dims is None else session.reprojected(dims)

    for made_before_the_press, dims in ((True, 10), (False, 12)):
        actions.open_session(app, index, folder)
        pump(app, lambda: app.session.source == index and len(app.session.index.paths) == 6)
        posted = version() if made_before_the_press else None
        dpg.set_value(app.ids.dims_input, dims)
        actions.reproject(app)  # its result is taken on a later frame, after the swap
        actions.swap_in(app, posted or version(dims), "watching: 2 added")
        pump(app, lambda: not any(t.name == "re-projection" for t in app.tasks))
        assert len(app.session.index.paths) == 8 and app.session.index.dims == dims
        assert dpg.get_value(app.ids.dims_input) == dims
        assert app.message == (
            "watching: 2 added"
            if made_before_the_press
            else f"re-projected to {dims} dimensions (8 images); its 8 images span at most 7 "
            "of them: the rest carry nothing"
        )
    lean = tmp_path / "lean.dat"
    analyze(folder, lean, extractor, Settings(dims=16))
    actions.open_session(app, lean, folder)
    pump(app, lambda: app.session.source == lean)
    dpg.set_value(app.ids.dims_input, 8)
    actions.reproject(app)
    pump(app, lambda: "failed" in app.message)
    assert app.message.startswith("re-projection failed: this index was saved without features")
    assert app.session.index.dims == 16 and app.applied_dims == (lean, 16)


def test_pointer_reads_the_desktop_mouse_position(app):
    from rtsearch.pointer import Pointer

    pointer = Pointer()
    try:
        assert pointer.available, pointer.message
        xdotool(app, "mousemove", "123", "456")
        assert pointer.position() == (123, 456)
    finally:
        pointer.close()


def test_under_the_mouse_finds_the_picture_it_points_at(app, gallery):
    """M: the grab region follows the mouse over the desktop; pointing at a picture in
    another window finds it at rank 1; over the viewer's own window, or so near it that the
    box would take part of it in, nothing is grabbed."""
    from rtsearch.viewer import actions, grab_view

    root, index = gallery
    if app.session.source != index:  # an earlier test loaded another index
        actions.open_session(app, index, root)
        pump(app, lambda: app.session.source == index)
    target = sorted(root.rglob("img00023.*"))[0]
    proc = show_picture(target, SHOW_AT)
    try:
        time.sleep(1.5)  # let Tk map the window
        app.region.set_box((0, 0, *SHOW_AT[2:]))  # the size of the box that follows the mouse
        x, y, w, h = SHOW_AT
        xdotool(app, "mousemove", str(x + w // 2), str(y + h // 2))
        app.perform("follow_mouse")
        pump(app, lambda: top_is(app, "screen:mouse", target))
        assert app.worker.source.region == SHOW_AT  # centred on the pointer
        xdotool(app, "mousemove", "100", "100")  # over the viewer itself
        pump(app, lambda: "outside this window" in (app.published.message or ""))
        shown = app.published.captured
        for _ in range(30):
            app.frame()
        assert app.published.captured == shown  # the viewer did not search for itself
        vx, vy, vw, _ = grab_view.viewport_box()
        xdotool(app, "mousemove", str(vx + vw + 20), str(vy + 200))  # just outside it
        pump(app, lambda: "would take in this window" in (app.published.message or ""))
        shown = app.published.captured
        for _ in range(30):
            app.frame()
        assert app.published.captured == shown
    finally:
        proc.kill()
        proc.wait()


def os_threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def soak(app, tmp_path, seconds: float) -> dict:
    """The live loop on a looping video with the viewer drawing, for ``seconds``: returns
    what drifted. Windows of 10 s give queries/s; the first 5 s are warm-up."""
    video = write_video(tmp_path / "soak.avi", list(range(40, 70, 3)), frames_each=4)
    app._start_source(f"video:{video}")
    warm_end = time.perf_counter() + 5.0
    while time.perf_counter() < warm_end:
        app.frame()
    textures, rss, threads = len(dpg.get_all_items()), rss_mb(), os_threads()
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0, seq0 = time.perf_counter(), app.published.seq
        while time.perf_counter() - t0 < 10.0:
            app.frame()
        rates.append((app.published.seq - seq0) / (time.perf_counter() - t0))
    return {
        "textures": len(dpg.get_all_items()) - textures,
        "rss_mb": rss_mb() - rss,
        "threads": os_threads() - threads,
        "rates": rates,
        "source": app.published.source,
    }


def check_soak(result: dict) -> None:
    rates = result["rates"]
    third = max(1, len(rates) // 3)
    first, last = np.median(rates[:third]), np.median(rates[-third:])
    assert result["source"].startswith("video"), result
    assert result["textures"] == 0 and result["threads"] <= 0, result
    assert result["rss_mb"] < 40, result
    assert min(rates) > 1.0 and last >= 0.6 * first, result  # still live, no decay


def test_soak_60s(app, tmp_path):
    """CI's bounded soak: a minute of live video queries with the viewer under Xvfb."""
    check_soak(soak(app, tmp_path, 60.0))


@pytest.mark.slow
def test_soak_10min(app, tmp_path):
    check_soak(soak(app, tmp_path, 600.0))


def test_a_folder_an_earlier_version_analysed_from_the_viewer_is_taken_over(
    app, tmp_path, monkeypatch
):
    """Analyze folder... names its index by the folder and the model file's weights; the
    ones earlier versions named by the folder alone, or by the model's name, were not
    found: the folder was analysed again, full features and all, the old file left behind.
    An older file of the folder and these weights is taken over; one of other weights is
    left where it is."""
    import hashlib

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    folder = tmp_path / "kept"
    make_gallery(folder, 6, start=600)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    before = app.session
    model = before.extractor.path
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    by_folder = actions.analysis_output(folder, "x").with_name(f"kept-{digest}.dat")
    by_name = actions.analysis_output(folder, before.extractor.info.name)
    by_folder.parent.mkdir(parents=True)
    other = write_tiny_model(tmp_path / "other" / "tiny.onnx", seed=3)
    analyze(folder, by_folder, Extractor(other, threads=1), Settings(dims=8, keep_features=True))
    analyze(folder, by_name, Extractor(model, threads=1), Settings(dims=8, keep_features=True))
    from rtsearch import extraction

    decoded = []
    decode = extraction._decode_one
    monkeypatch.setattr(
        extraction, "_decode_one", lambda p, i: (decoded.append(p), decode(p, i))[1]
    )
    actions.analyze(app, folder)
    pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
    own = actions.analysis_output(folder, actions.model_key(before.extractor.info))
    assert app.session.source == own and app.session.index.count == 6
    assert decoded == [] and not by_name.exists() and by_folder.is_file()
    app.set_session(before)


def test_apply_dims_on_an_index_of_every_feature_reduces_it_and_says_a_thin_pca(app, tmp_path):
    """On a `--projection none` index (VGG16: 4096-d) Apply dims said "re-projected to 100
    dimensions" and left every dimension; more dimensions than the images span was not
    said, as `analyze` says it."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.session import SearchSession
    from rtsearch.viewer import actions

    before = app.session
    folder = tmp_path / "every"
    make_gallery(folder, 12, start=700)
    out = tmp_path / "every.dat"
    settings = Settings(projection="none", keep_features=True)
    analyze(folder, out, Extractor(before.extractor.path, threads=1), settings)
    app.set_session(SearchSession.open(out, model=str(before.extractor.path), threads=1))
    assert app.session.index.dims == 128
    for dims, said in (
        (8, "re-projected to 8 dimensions by pca (12 images)"),
        (20, "re-projected to 20 dimensions (12 images); its 12 images span at most 11 of "
         "them: the rest carry nothing"),
    ):  # fmt: skip
        dpg.set_value(app.ids.dims_input, dims)
        actions.reproject(app)
        pump(app, lambda: not any(t.name == "re-projection" for t in app.tasks))
        assert app.message == said
        assert app.session.index.dims == dims and app.session.index.projection.kind == "pca"
    app.set_session(before)


def test_a_caption_and_the_message_line_escape_a_name_and_a_caption_fits(app):
    """A newline in a file's name split the caption and the message line, an escape code
    showed as a blank, and a 255-byte name ran the caption off the window (its distance
    never showed)."""
    from rtsearch.viewer import mouse
    from rtsearch.viewer.wrap import text_width

    line = mouse.caption_line(0, "new\nline\x1b.jpg", "  (distance 0.100)", app)
    assert line == "1. new\\nline\\x1b.jpg  (distance 0.100)"
    long = "d/" + "x" * 300 + ".jpg"
    line = mouse.caption_line(4, long, "  (distance 0.250)", app)
    assert line.startswith("5. ...x") and line.endswith("x.jpg  (distance 0.250)")
    assert text_width(line, mouse.CAPTION_SIZE) <= app.canvas_size[0] - 2 * mouse.CAPTION_PAD
    app.perform("pause")
    app.message = "/w/new\nline.jpg: file not found"
    pump(app, lambda: "new\\nline.jpg" in dpg.get_value(app.ids.message))
    assert "\n" not in dpg.get_value(app.ids.message).split("not found")[0]
    app.message = ""
    app.perform("pause")


def test_an_index_just_shown_says_after_it_what_of_it_cannot_be_shown(app, tmp_path):
    """An index shown from a folder that lacks most of its pictures (moved since): the
    message line said only "index: X (N images)" over grey tiles and a random draw that
    passed over missing files, until a key was pressed. Their problem is said after it."""
    import shutil

    from rtsearch.session import SearchSession
    from rtsearch.viewer import worker

    before = app.session
    folder = tmp_path / "few"
    kept = before.index.paths[0]
    (folder / kept).parent.mkdir(parents=True)
    shutil.copy(before.base_dir / kept, folder / kept)
    app.set_session(SearchSession(before.index, before.extractor, folder, source=before.source))

    def line() -> str:
        return " ".join(dpg.get_value(app.ids.message).split())

    try:
        announced = app.message
        assert announced.startswith("index: ")
        pump(app, lambda: line().startswith(f"{announced}; "))
        assert worker.is_problem(line()[len(announced) + 2 :]), line()
        assert drawn_as(app) == "problem"  # (what is announced with it too)
        assert app.message == announced  # (the frame statistics' message: the viewer's own)
    finally:
        app.set_session(before)
        app.perform("random")
        fresh(app, "random")


def test_a_video_cut_short_says_so_on_the_message_line_as_it_plays(app, tmp_path):
    """Half a download of a video (its header first) looped without a word."""
    video = write_video(tmp_path / "half.avi", [3, 4, 5], frames_each=8, fps=40.0)
    whole = video.read_bytes()
    video.write_bytes(whole[: len(whole) // 2])
    app._start_source(f"video:{video}")  # what the video dialog's OK calls
    pump(app, lambda: "its header gives: cut short" in " ".join(
        dpg.get_value(app.ids.message).split()), timeout=20)  # fmt: skip
    assert app.published.source == "video:half.avi" and len(app.published.results)
    assert drawn_as(app) == "problem"
    app.perform("random")
    fresh(app, "random")


def test_a_text_file_chosen_as_a_video_leaves_the_source_on_show(app, tmp_path):
    """A script chosen with V replaced the picture and results on show with an empty page
    that said why: it is refused as it is chosen, and what was on show stays."""
    app.perform("random")
    shown = fresh(app, "random")
    script = tmp_path / "script.avi"
    script.write_text("#!/bin/sh\nexit 0\n")
    memo = write_sound_mp4(tmp_path / "memo.mp4")  # (it replaced them, and V played it again)
    refused_as = {
        script: "a text file, not a video",
        memo: "an MP4 or QuickTime file: sound only, no pictures to search",
    }
    for chosen, said in refused_as.items():
        app._start_source(f"video:{chosen}")  # what the video dialog's OK calls
        assert app.message == f"{chosen}: {said}"
        for _ in range(30):
            app.frame()
        assert drawn_as(app) == "problem"
        assert app.published.source == "random" and app.published.results == shown.results
        assert app.source_sent == "random" and app.video_path != chosen


def test_a_folder_name_that_is_not_utf8_is_drawn_escaped(app, tmp_path):
    """A picture of an index shown from a folder whose name is not UTF-8 (`--base-dir`
    naming a copy), not there: the query's place said why with the name's raw bytes, and
    the viewer crashed at that frame (Dear PyGui: "Error parsing Dear PyGui command", or a
    segmentation fault)."""
    from rtsearch.session import SearchSession

    before = app.session
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    folder.mkdir()  # holding none of the pictures: each random one fails
    app.set_session(SearchSession(before.index, before.extractor, folder, source=before.source))
    try:
        app.perform("random")
        pump(app, lambda: app.published is not None and "caf" in (app.published.message or ""))
        for _ in range(5):
            app.frame()
        drawn = " ".join(dpg.get_item_configuration(app.ids.no_picture)["text"].split())
        assert "caf\\xe9/" in drawn and "file not found" in drawn, drawn
        assert dpg.get_viewport_title() == f"rtsearch - caf\\xe9 ({tmp_path})"  # (it crashed too)
    finally:
        app.set_session(before)
        app.perform("random")
        fresh(app, "random")


def test_watch_follows_the_first_index_loaded_after_the_start(app, tiny_model, tmp_path):
    """`view --watch` opened without an index (or with the one shown last time, its folder
    asked for): the index loaded then was never followed ("watch: load an index file
    first", said once at the start)."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions

    assert not any(t.name == "watch" for t in app.tasks)
    folder = tmp_path / "later"
    make_gallery(folder, 4, start=600)
    index = tmp_path / "later.dat"
    analyze(folder, index, Extractor(tiny_model, threads=1), Settings(dims=8))
    app.opts.watch = True
    try:
        actions.open_session(app, index, folder)  # what the folder dialog of a load calls
        pump(app, lambda: app.session.source == index)
        assert [t.name for t in app.tasks if t.name == "watch"] == ["watch"]
        make_gallery(folder, 2, start=700)
        pump(app, lambda: len(app.session.index.paths) == 6, timeout=60)
        assert "2 added" in app.message
    finally:
        app.opts.watch = False
        for task in app.tasks:
            task.cancel.set()
        pump(app, lambda: not any(t.name == "watch" for t in app.tasks))


def test_watch_follows_each_index_loaded_and_is_not_taken_for_another_writer(
    app, tiny_model, tmp_path, monkeypatch
):
    """`view --watch`, then another index loaded: the watch stayed on the first until its
    folder changed, so the one on show was followed or not by chance; an analysis of the
    folder watched ended on a copy never followed. Analyze folder... on the folder whose
    index this viewer's watch is updating said another rtsearch was writing it."""
    import threading

    from rtsearch import atomic
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor
    from rtsearch.viewer import actions
    from rtsearch.viewer.tasks import Task

    before, release = app.session, threading.Event()
    indexes = []
    for name, start in (("first", 600), ("second", 650)):
        make_gallery(tmp_path / name, 4, start=start)
        indexes.append(tmp_path / f"{name}.dat")
        analyze(tmp_path / name, indexes[-1], Extractor(tiny_model, threads=1), Settings(dims=8))
    app.opts.watch = True
    try:
        actions.open_session(app, indexes[0], tmp_path / "first")
        pump(app, lambda: app.session.source == indexes[0])
        actions.open_session(app, indexes[1], tmp_path / "second")
        pump(app, lambda: app.session.source == indexes[1])
        following = [t.index for t in app.tasks if t.name == "watch" and not t.cancel.is_set()]
        assert following == [indexes[1]]
        make_gallery(tmp_path / "second", 2, start=700)
        pump(app, lambda: len(app.session.index.paths) == 6, timeout=60)
        assert "2 added" in app.message
        pump(app, lambda: not any(t.index == indexes[0] for t in app.tasks))
        assert "cancelled" not in app.message  # (the watch left is not said)
        # this viewer's own watch holding the index an analysis of its folder would write
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        folder = tmp_path / "first"
        out = actions.analysis_output(folder, actions.model_key(app.session.extractor.info))
        out.parent.mkdir(parents=True)
        shutil.copy(indexes[0], out)  # (as the viewer's analysis of it made it)
        indexes[0].unlink()  # (the index shown before from it would be brought up to date)

        def hold(task: Task) -> None:
            with atomic.writer_lock(out):
                release.wait(30)

        watch = Task("watch", hold, lambda _: None)
        watch.index, watch.quiet = out, True
        app.start_task(watch)
        pump(app, lambda: Path(str(out) + ".lock").exists())
        actions.analyze(app, folder)
        pump(app, lambda: not any(t.name == "analyze" for t in app.tasks), timeout=60)
        said = f"{folder}: --watch is bringing its index up to date; it shows when done"
        assert app.message == said
    finally:
        release.set()
        app.opts.watch = False
        for task in app.tasks:
            task.cancel.set()
        pump(app, lambda: not any(t.name == "watch" for t in app.tasks))
        app.set_session(before)


def test_names_beyond_ascii_are_drawn_with_their_own_letters(app, tmp_path):
    """Dear PyGui's built-in font has ASCII only: 'café.jpg' was drawn 'caf?.jpg', and
    names in Greek or Cyrillic as rows of '?'. The viewer draws in the system's monospace
    font where there is one (this machine's tests install fonts-dejavu-core)."""
    from rtsearch.viewer import fonts, status

    assert fonts.find_font() is not None

    def message_line(text: str) -> np.ndarray:
        app.message = text
        status.update_status(app)
        for _ in range(3):
            app.frame()
        out = tmp_path / "message.png"
        app._screenshot(out)
        x, y = (round(v) for v in dpg.get_item_rect_min(app.ids.message))
        w, h = (round(v) for v in dpg.get_item_rect_size(app.ids.message))
        return np.asarray(Image.open(out).convert("L"))[y : y + h, x : x + w].astype(int)

    asked = message_line("query: d0/?????.jpg")  # what the built-in font drew for each
    greek = message_line("query: d0/Ωμέγα.jpg")
    assert asked.std() > 10 and asked.shape[0] == greek.shape[0]
    # the same text up to there (less a column or two the next letter may reach into)
    left = round(dpg.get_text_size("query: d0/")[0]) - 2
    width = min(asked.shape[1], greek.shape[1])
    assert np.array_equal(asked[:, :left], greek[:, :left])
    assert np.abs(asked[:, left:width] - greek[:, left:width]).sum() > 500  # not '?'
    accent, plain = message_line("query: d0/café.jpg"), message_line("query: d0/cafe.jpg")
    assert accent.shape == plain.shape and not np.array_equal(accent, plain)  # é, not e or ?
    assert not np.array_equal(accent, message_line("query: d0/caf?.jpg"))
    app.message = ""


def test_the_settings_kept_at_close_leave_an_unconfirmed_grab_rectangle(app):
    """The window closed in the grab mode after a drag, without G, S or Enter: the dragged
    rectangle was kept for the next run, where Esc would have put the one before back."""
    from rtsearch.viewer.memory import recall

    app.settings_kept = None  # (written into another test's state folder before)
    app.on_key(dpg.mvKey_G)
    pump(app, lambda: app.grab_mode)
    before = app.region.box
    try:
        x, y, w, h = before
        app.region.set_box((x + 40, y + 30, w, h))  # as a drag moves it
        app.set_k(app.k + 1)  # (k changed meanwhile with its slider is kept)
        assert app.grab_mode
        app._keep_settings()
        kept = recall()
        assert kept.region in (None, before) and kept.k == app.k
        app.on_key(dpg.mvKey_Return)  # confirmed: that one is kept
        pump(app, lambda: not app.grab_mode)
        app._keep_settings()
        assert recall().region == (x + 40, y + 30, w, h)
    finally:
        app.on_key(dpg.mvKey_Escape)
        app.region.set_box(before)
        app.perform("random")
        fresh(app, "random")


def test_ctrl_plus_minus_and_0_draw_the_viewer_larger_smaller_and_as_the_desktop(app):
    """Ctrl++ and Ctrl+- change the UI scale as the viewer runs (a scale guessed wrong, or
    a window moved to another screen): text, Dear PyGui's controls, the canvas's margins
    and rows; Ctrl+0 goes back to the desktop's. A scale set so is kept for the next run."""
    from rtsearch.viewer import memory

    app.perform("random")
    fresh(app, "random")
    button = app.ids.toolbar.sections[0][0]

    def drawn() -> tuple:
        for _ in range(3):
            app.frame()
        return (
            tuple(dpg.get_text_size("M")), tuple(dpg.get_item_rect_size(button)),
            app.layout.query[:2], app.layout.results[0][3] - app.layout.results[0][1],
        )  # fmt: skip

    rows = app.opts.thumb_h  # the thumb height slider's
    one = drawn()
    assert one[:3] == ((7, 13), one[1], (8, 28)) and one[3] == rows
    xdotool(app, "key", "ctrl+equal")
    xdotool(app, "key", "ctrl+plus")
    xdotool(app, "key", "ctrl+equal")
    xdotool(app, "key", "ctrl+equal")
    assert app.ui_scale == 2.0 and app.message.startswith("UI scale 2x (Ctrl++ larger")
    two = drawn()
    assert two[0] == (14, 26) and two[1][1] == 2 * one[1][1]  # (widths: glyphs rounded)
    assert abs(two[1][0] - 2 * one[1][0]) <= 2
    assert two[2] == (16, 56) and two[3] == 2 * rows  # the slider's rows, at 2x
    assert dpg.get_value(app.ids.fields[2]) == rows
    xdotool(app, "key", "ctrl+minus")
    assert app.ui_scale == 1.75
    app._keep_settings()
    assert memory.recall().ui_scale == 1.75
    # past the range: stays at its ends
    for _ in range(8):
        app.on_key(dpg.mvKey_LControl)
        app.on_key(dpg.mvKey_Minus)
        app.on_key_release(dpg.mvKey_LControl)
    assert app.ui_scale == 0.75
    xdotool(app, "key", "ctrl+0")
    assert app.ui_scale == 1.0 and drawn() == one
    app._keep_settings()
    assert memory.recall().ui_scale is None  # the desktop's: for the desktop's next time
    # in the grab mode, and over a file dialog or the help: the mode and the dialog stay
    # (the grab mode ended, and the rectangle being edited was dropped; keys over a dialog
    # were passed over)
    app.perform("grab_mode")
    for _ in range(3):
        app.frame()
    xdotool(app, "key", "ctrl+equal")
    assert app.grab_mode and app.ui_scale == 1.25
    xdotool(app, "key", "ctrl+0")
    app.perform("escape")
    for opened in (app.ids.load_dialog, app.ids.help):
        app.perform("load" if opened == app.ids.load_dialog else "help")
        xdotool(app, "key", "ctrl+equal")
        assert dpg.is_item_shown(opened) and app.ui_scale == 1.25
        xdotool(app, "key", "ctrl+minus")
        assert dpg.is_item_shown(opened) and app.ui_scale == 1.0
        app.on_key(dpg.mvKey_Escape)
        assert not dpg.is_item_shown(opened)
    assert drawn() == one
    # plain + and - are still more and fewer results
    k = app.k
    xdotool(app, "key", "equal")
    assert app.k == k + 1 and app.ui_scale == 1.0
    app.set_k(k)


def test_default_heights_fit_a_short_window_until_a_slider_is_moved(app):
    """Started without heights given or kept, the header and rows are the defaults fitted
    to the window (a 200% screen of 1920x1080 showed the query and no result); moved, a
    slider's height is the user's, and kept, while the other one is still fitted and not
    kept (it was frozen at its fitted height, and kept for later runs)."""
    from rtsearch.viewer import layout, memory

    app.perform("random")
    fresh(app, "random")
    chosen = (app.opts.header_h, app.opts.thumb_h)
    _, header, thumb, _ = app.ids.fields
    app.opts.header_chosen = app.opts.thumb_chosen = False  # as run_viewer starts one so

    def fitted(height: int, **set_: int) -> tuple[int, int]:
        resize(app, 900, height)
        assert app.layout.results[0][3] <= app.canvas_size[1]  # a row of results in view
        shown = (app.opts.header_h, app.opts.thumb_h)
        assert shown == (dpg.get_value(header), dpg.get_value(thumb))  # the sliders say
        assert shown == layout.fit_heights(app.canvas_size[1], **set_)
        return shown

    try:
        short, tall = fitted(520), fitted(820)
        assert short[0] < tall[0] and short[1] < tall[1] and tall != chosen
        app._keep_settings()
        assert (memory.recall().header_h, memory.recall().thumb_h) == (None, None)
        dpg.get_item_callback(thumb)(thumb, 150, "thumb_h")  # moved: the user's from now on
        assert app.opts.thumb_chosen and not app.opts.header_chosen
        short = fitted(520, thumb=150)
        assert short[1] == 150 and short[0] < tall[0]  # the header: still fitted
        app._keep_settings()
        assert (memory.recall().header_h, memory.recall().thumb_h) == (None, 150)
    finally:
        app.opts.header_chosen = app.opts.thumb_chosen = True
        app.opts.header_h, app.opts.thumb_h = chosen
        dpg.set_value(header, chosen[0])
        dpg.set_value(thumb, chosen[1])
        app.dirty = True
        resize(app, 900, 700)


def test_a_window_resized_and_back_is_kept_at_the_size_it_was_left(app):
    """Resized, then back to its size at the start: the size in between was kept (written
    once the size differed from the first, never again once it was the same)."""
    from rtsearch.viewer import memory

    first = app.first_size
    try:
        resize(app, 1000, 640)
        app._keep_settings()
        assert (memory.recall().width, memory.recall().height) == (1000, 640)
        resize(app, *first)
        app._keep_settings()
        assert (memory.recall().width, memory.recall().height) == first
    finally:
        resize(app, 900, 700)


def test_a_short_narrow_window_wraps_the_toolbar_beside_its_scrollbar(app):
    """A window short enough to scroll has a scrollbar at its right: the toolbar's last
    chip ("trim borders (B)") was laid out under it, cut at 350x300."""
    from rtsearch.viewer import uiscale

    bar = app.ids.toolbar
    chips = [c for section in bar.sections for c in section]
    try:
        resize(app, 350, 300)
        assert dpg.get_y_scroll_max(app.ids.window) > 0  # it scrolls
        edge = 350 - 8 - uiscale.SIZES["ScrollbarSize"]  # the padding, the scrollbar
        rights = [dpg.get_item_state(c)["pos"][0] + dpg.get_item_rect_size(c)[0] for c in chips]
        assert max(rights) <= edge
    finally:
        resize(app, 900, 700)


def resize(app, width: int, height: int) -> None:
    """The window made ``width`` x ``height`` inside, and drawn a few frames so."""
    dpg.set_viewport_width(width)
    dpg.set_viewport_height(height)
    size = lambda: (dpg.get_viewport_client_width(), dpg.get_viewport_client_height())  # noqa: E731
    pump(app, lambda: size() == (width, height))
    for _ in range(25):
        app.frame()
