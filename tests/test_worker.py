"""The viewer's worker without a window: what it searches, what it skips, what it publishes."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import make_copy, make_gallery, make_image, make_photo_gallery

from rtsearch.sources import READING, Frame, RandomSource
from rtsearch.viewer import layout
from rtsearch.viewer import worker as worker_mod
from rtsearch.viewer.worker import UNCHANGED, Published, Worker


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_model) -> tuple[Path, Path]:
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    root = tmp_path_factory.mktemp("worker")
    make_gallery(root / "pics", 12)
    out = root / "pics.dat"
    analyze(root / "pics", out, Extractor(tiny_model, threads=1), Settings(dims=16))
    return root / "pics", out


class CountingSession:
    """Opens the index; counts model runs (one per search)."""

    def __new__(cls, index_path: Path, model: Path):
        from rtsearch.session import SearchSession

        class Counted(SearchSession):
            runs = 0
            last_run = 0.0

            def features_of(self, images):
                type(self).runs += 1
                type(self).last_run = time.perf_counter()
                return super().features_of(images)

        s = SearchSession.open(index_path, model=str(model), threads=1)
        return Counted(s.index, s.extractor, s.base_dir, source=s.source)


class Pictures:
    """A live source whose picture the test sets; ``reads`` counts the grabs."""

    live = True

    def __init__(self, image: np.ndarray) -> None:
        self.name, self.message = "screen", ""
        self.image, self.reads = image, 0

    def read(self) -> Frame | None:
        self.reads += 1
        return Frame(self.image.copy(), time.perf_counter())

    def close(self) -> None:
        pass


def picture(seed: int) -> np.ndarray:
    return np.asarray(make_image(seed, (640, 480)))


def noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """A camera's look at a still scene: the same picture with fresh sensor noise."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def wait_for(check, timeout: float = 10.0) -> None:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def searched(worker: Worker, runs: int, session=None) -> Published:
    """Wait until ``session`` has run the model ``runs`` times and the last is published."""
    s = session or worker.session

    def done() -> bool:
        pub = worker.latest()
        return s.runs == runs and pub is not None and pub.finished > s.last_run

    wait_for(done)
    return worker.latest()


def drawn(worker: Worker, after: float = 0.0) -> Published:
    """Wait until a picture of the collection captured after ``after`` is published (it
    is searched with its stored vector: no model run to count)."""

    def done() -> bool:
        pub = worker.latest()
        return pub is not None and pub.row is not None and pub.captured > after

    wait_for(done)
    return worker.latest()


def began(worker: Worker) -> Published:
    """Wait until a search is published (of a source whose picture changes at every read,
    searched 50 times a second: ``searched(worker, 1)`` missed the moment runs was 1)."""
    wait_for(lambda: worker.session.runs >= 1 and worker.latest() is not None)
    return worker.latest()


@pytest.fixture
def running(index, tiny_model):
    worker = Worker(CountingSession(index[1], tiny_model), k=5, max_qps=50.0)
    worker.start()
    yield worker
    assert worker.join()


def published(worker: Worker) -> Published:
    pub = worker.latest()
    assert pub is not None
    return pub


def test_a_still_picture_is_searched_once_and_a_change_at_once(running):
    source = Pictures(picture(1))
    running.send("source", source)
    trimmed = searched(running, 1).searched is not None
    # grabbed again and again, searched once (trimmed: the whole picture once more as it
    # stands still, for its verified results)
    wait_for(lambda: running.session.runs == 1 + trimmed)
    reads = source.reads
    time.sleep(0.5)
    assert running.session.runs == 1 + trimmed
    assert source.reads >= reads + 5
    first = published(running).results
    source.image = picture(2)
    searched(running, 2 + trimmed)
    wait_for(lambda: published(running).results != first)


def test_a_live_source_a_clicked_result_replaced_is_kept_a_moment_for_a_double_click(running):
    """A double-click opens a result, and its first press made that result the query: the
    live source was closed then, and the screen's search stopped. It is kept open PARK_S,
    and taken back; later, or for another source, closed."""
    from rtsearch.viewer.worker import PARK_S

    closed: list[str] = []

    class Closing(Pictures):
        def close(self) -> None:
            closed.append(self.name)

    screen = Closing(picture(1))
    running.send("source", screen)
    searched(running, 1)
    running.send("row", 3)  # the first press
    wait_for(lambda: published(running).row == 3)
    assert closed == []
    running.send("unpark")  # the second
    wait_for(lambda: published(running).source == "screen" and screen.reads > 1)
    reads = screen.reads
    wait_for(lambda: screen.reads > reads + 3)  # grabbed again: its search goes on
    assert closed == []
    running.send("row", 4)  # a plain click: closed once PARK_S has passed
    wait_for(lambda: published(running).row == 4)
    time.sleep(PARK_S / 2)
    assert closed == []
    wait_for(lambda: closed == ["screen"], timeout=PARK_S + 5)
    running.send("unpark")  # too late: nothing to take back
    time.sleep(0.2)
    assert published(running).row == 4
    other = Closing(picture(2))
    other.name = "video"
    running.send("source", other)
    running.send("row", 5)
    running.send("source", Pictures(picture(3)))  # another source: the one kept is closed
    wait_for(lambda: closed == ["screen", "video"])


def test_a_camera_on_a_still_scene_is_searched_once_and_a_small_change_again(running):
    scene = picture(7)

    class Camera(Pictures):
        def read(self) -> Frame | None:
            self.reads += 1
            return Frame(noisy(self.image, 4.0, self.reads), time.perf_counter())

    camera = Camera(scene)
    running.send("source", camera)
    searched(running, 1)
    reads = camera.reads
    time.sleep(0.5)
    assert running.session.runs == 1 and camera.reads >= reads + 5  # noise is not a change
    moved = scene.copy()
    moved[200:204, 300:304] += 128  # a 4x4 patch of 640x480, each value 128 off
    camera.image = moved
    searched(running, 2)


def test_a_still_picture_is_searched_once_and_says_why(running, monkeypatch):
    monkeypatch.setattr(worker_mod, "IDLE_S", 0.3)
    source = Pictures(picture(3))
    running.send("source", source)
    searched(running, 1)
    # (and its results verified, shown again once: still a picture searched once)
    wait_for(lambda: published(running).message == UNCHANGED)
    wait_for(lambda: published(running).results[0].inliers is not None)
    pub = published(running)
    assert len(pub.results) == 5 and running.session.runs == 1
    assert pub.message == UNCHANGED
    seq = pub.seq
    time.sleep(0.5)
    assert published(running).seq == seq  # said once, not every poll
    source.image = picture(4)
    searched(running, 2)
    assert published(running).message == ""
    # paused, the picture is not looked at: the claim goes (it stayed under "Resume")
    wait_for(lambda: published(running).message == UNCHANGED)
    running.send("pause", True)
    wait_for(lambda: published(running).message == "")
    assert len(published(running).results) == 5
    running.send("pause", False)


def test_changing_k_or_the_index_searches_the_paused_picture_again(running, index, tiny_model):
    source = Pictures(picture(5))
    running.send("source", source)
    searched(running, 1)
    running.send("pause", True)
    time.sleep(0.1)
    reads = source.reads
    running.send("k", 9)
    wait_for(lambda: len(published(running).results) == 9)
    assert source.reads == reads  # the paused source was not read: its last picture was
    other = CountingSession(index[1], tiny_model)
    running.send("session", other)
    searched(running, 1, other)
    time.sleep(0.2)
    assert other.runs == 1 and source.reads == reads


def test_taller_rows_take_the_results_on_show_from_the_tall_box_without_a_search(running):
    """Rows taller than the usual box allows get their pictures fitted to TALL_BOX: the
    results on show are published again with such tiles (paused: the picture is not read
    or searched again), and rows back at the usual height go back to the usual tiles."""
    source = Pictures(picture(7))
    running.send("source", source)
    first = searched(running, 1)
    assert running.cache.size == worker_mod.THUMB_BOX
    assert {t.tile.shape for t in first.thumbs} == {(224, 299, 3)}
    running.send("pause", True)
    time.sleep(0.1)
    reads, runs = source.reads, running.session.runs
    running.send("rows", layout.THUMB_DEFAULT)  # the default: the usual tiles
    running.send("rows", 400)
    wait_for(lambda: published(running).seq > first.seq)
    tall = published(running)
    assert running.cache.size == worker_mod.TALL_BOX == (840, 420)
    assert tall.results == first.results and tall.query is first.query
    assert tall.captured == first.captured  # not a new latency to count
    assert {t.tile.shape for t in tall.thumbs} == {(420, 560, 3)}
    for small, big in zip(first.thumbs, tall.thumbs, strict=True):
        assert big.height > 1.8 * small.height
        assert abs(big.aspect - small.aspect) < 0.02
    running.send("rows", 235)
    wait_for(lambda: published(running).seq > tall.seq)
    again = published(running)
    assert {t.tile.shape for t in again.thumbs} == {(224, 299, 3)}
    assert source.reads == reads and running.session.runs == runs
    # a new search decodes at the size in force
    running.send("rows", 300)
    wait_for(lambda: published(running).seq > again.seq)
    running.send("pause", False)
    source.image = picture(8)
    searched(running, runs + 1)
    assert {t.tile.shape for t in published(running).thumbs} == {(420, 560, 3)}


def test_the_query_picture_is_its_header_height_never_enlarged_and_bounded():
    from rtsearch.viewer.worker import query_picture

    for shape, header, size in (
        ((480, 640), 320, (427, 320)),  # 4:3 in the default header
        ((1080, 1920), 320, (569, 320)),  # 16:9: as tall as the header too
        ((1080, 1920), 480, (739, 415)),  # a big header: at most QUERY_MAX_TEXELS
        ((80, 100), 320, (100, 80)),  # small: never enlarged (the renderer does that)
        ((500, 3000), 320, (640, 107)),  # a panorama: at most twice as wide as tall
        # the default header at UI scale 2 (640 screen pixels): the picture at its height,
        # not 640x480 drawn enlarged; the bound grows as the square of the height past 480
        ((1200, 1600), 640, (853, 640)),
        ((1080, 1920), 960, (1478, 831)),
    ):
        image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
        query = query_picture(image, header)
        assert (query.width, query.height) == size
        assert query.tile.shape == (size[1], size[0], 3) and query.tile.flags.c_contiguous
        most = worker_mod.QUERY_MAX_TEXELS * max(1, header / 480) ** 2
        assert query.width * query.height <= most
    small = np.zeros((80, 100, 3), np.uint8)
    assert query_picture(small, 320).tile is not small  # a copy: the frame stays the source's


def test_a_new_header_height_shows_the_query_again_at_that_size_without_a_search(running):
    source = Pictures(picture(9))  # 640x480
    running.send("source", source)
    first = searched(running, 1)
    assert (first.query.width, first.query.height) == (427, 320)
    running.send("pause", True)
    time.sleep(0.1)
    runs = running.session.runs
    running.send("header", 200)
    wait_for(lambda: published(running).seq > first.seq)
    again = published(running)
    assert (again.query.width, again.query.height) == (267, 200)
    assert again.results == first.results and again.thumbs == first.thumbs
    assert again.captured == first.captured and running.session.runs == runs


def test_k_on_a_random_query_keeps_its_row_excluded_without_reading_the_file(running):
    s = running.session
    files: list[int] = []

    def file_of(row: int) -> Path:
        files.append(row)
        return s.base_dir / s.index.paths[row]

    running.send("source", RandomSource(len(s.index.paths), file_of, seed=0))
    row = drawn(running).row
    running.send("k", 11)
    wait_for(lambda: len(published(running).results) == 11)
    pub = published(running)
    assert pub.row == row and row not in {r.row for r in pub.results}
    assert files == [row]


def subset(session, rows: list[int]):
    """``session`` with only these rows of its index, as ``update`` leaves it after files
    were dropped (the same model and projection)."""
    import dataclasses

    from rtsearch.session import SearchSession

    index = session.index
    part = dataclasses.replace(
        index,
        paths=[index.paths[r] for r in rows],
        sizes=index.sizes[rows],
        mtimes=index.mtimes[rows],
        projected=index.projected[rows],
        features=None if index.features is None else index.features[rows],
    )
    return SearchSession(part, session.extractor, session.base_dir, source=session.source)


def test_an_updated_index_keeps_the_random_query_on_its_picture(running):
    """``view --watch`` swaps in the folder's new index after each change: the query stays
    the picture it was, at that picture's row in the new index (it jumped to another random
    picture); a query whose picture is gone gives way to another."""
    s = running.session
    running.send("row", 5)
    wait_for(lambda: running.latest() is not None and running.latest().row == 5)
    path = s.index.paths[5]
    fewer = subset(s, [r for r in range(len(s.index.paths)) if r not in (0, 2)])
    running.send("session", fewer)

    def shows(session, row: int) -> bool:
        pub = running.latest()
        return pub is not None and pub.row == row and pub.results[0].path in session.index.paths

    wait_for(lambda: shows(fewer, 3) and running.session is fewer)
    assert fewer.index.paths[3] == path
    assert all(r.path != path for r in published(running).results)  # itself still excluded
    gone = subset(fewer, [r for r in range(len(fewer.index.paths)) if r != 3])
    seq = published(running).seq
    running.send("session", gone)
    wait_for(lambda: published(running).seq > seq and running.session is gone)
    pub = published(running)
    assert pub.row is not None and gone.index.paths[pub.row] != path


def test_the_random_query_follows_its_picture_moved_within_the_folder(running, tmp_path):
    """`view --watch` after the query's picture moved into a subfolder (its row kept under
    its new path, `N moved`): the query jumped to another random picture."""
    import dataclasses
    import shutil

    from rtsearch.session import SearchSession

    s = running.session
    running.send("row", 5)
    wait_for(lambda: running.latest() is not None and running.latest().row == 5)
    folder = tmp_path / "pics"
    shutil.copytree(s.base_dir, folder)  # (copy2: times kept)
    old_path = s.index.paths[5]
    new_path = f"sorted/{Path(old_path).name}"
    (folder / "sorted").mkdir()
    shutil.move(folder / old_path, folder / new_path)
    paths = [new_path if p == old_path else p for p in s.index.paths]
    order = sorted(range(len(paths)), key=paths.__getitem__)  # as an index keeps them
    index = dataclasses.replace(
        s.index,
        paths=[paths[r] for r in order],
        sizes=s.index.sizes[order],
        mtimes=s.index.mtimes[order],
        projected=s.index.projected[order],
        features=None,
    )
    moved = SearchSession(index, s.extractor, folder, source=s.source)
    running.send("session", moved)
    at = index.paths.index(new_path)
    wait_for(lambda: running.session is moved and published(running).row == at)
    assert all(r.path != new_path for r in published(running).results)  # still excluded


def test_another_collection_does_not_start_on_the_picture_of_the_same_name(running, tmp_path):
    """The query keeps its picture in a version of its collection (the index file again, or
    its folder), not in another collection that has a picture of the same name: two
    folders of camera files (IMG_0001.jpg...) started on like names."""
    import shutil

    from rtsearch.session import SearchSession
    from rtsearch.viewer.worker import same_row

    s = running.session
    other = tmp_path / "other"
    shutil.copytree(s.base_dir, other)  # another collection, its files named alike
    theirs = tmp_path / "other.dat"
    shutil.copy(s.source, theirs)
    another = SearchSession(s.index, s.extractor, other, source=theirs)
    assert same_row(s, another, 5) is None
    again = SearchSession(s.index, s.extractor, s.base_dir, source=theirs)  # a copy of it
    moved = SearchSession(s.index, s.extractor, other, source=s.source)  # its folder moved
    assert same_row(s, again, 5) == 5 and same_row(s, moved, 5) == 5
    gone = SearchSession(s.index, s.extractor, tmp_path / "unplugged", source=s.source)
    assert same_row(s, gone, 5) == 5
    running.send("row", 5)
    wait_for(lambda: running.latest() is not None and running.latest().row == 5)
    draws = []
    for _ in range(3):  # (a random draw is the same row one time in 12)
        seq = published(running).seq
        running.send("session", another)
        wait_for(lambda seq=seq: running.session is another and published(running).seq > seq)
        draws.append(published(running).row)
        running.send("session", s)
        running.send("row", 5)
        wait_for(lambda: running.session is s and published(running).row == 5)
    assert draws != [5, 5, 5], draws


def test_a_new_index_whose_folder_lacks_the_query_picture_clears_the_old_results(running, tmp_path):
    """An index loaded with a folder that holds some of its images: the random query's
    picture was not there, no search ran, and the old index's picture and results stayed,
    unlabelled, beside the new index's message (right-click copied the old folder's file)."""
    from rtsearch.session import SearchSession

    s = running.session
    running.send("row", 4)
    wait_for(lambda: running.latest() is not None and running.latest().row == 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # holds none of the pictures
    moved = SearchSession(s.index, s.extractor, elsewhere, source=s.source)
    running.send("session", moved)
    wait_for(lambda: running.session is moved and published(running).query is None)
    pub = published(running)
    assert pub.results == () and pub.thumbs == ()
    # (another picture of the index is drawn in its place: none is there either)
    n = len(s.index.paths)
    said = f"{n} pictures of the index could not be read: {elsewhere / s.index.paths[4]}"
    assert pub.message == f"{said}: file not found", pub.message


def test_a_new_source_is_searched_even_when_its_picture_is_the_last_one(running):
    image = picture(6)
    running.send("source", Pictures(image))
    searched(running, 1)
    running.send("source", Pictures(image))
    searched(running, 2)


def test_a_camera_that_stops_keeps_its_picture_and_one_never_there_shows_none(running):
    """A source without a picture says why; the picture and results on show stay only when
    they are its own (a camera unplugged), not another source's (a camera not there)."""

    class Camera(Pictures):
        def __init__(self, image, name: str, frames: int) -> None:
            super().__init__(image)
            self.name, self.frames = name, frames

        def read(self) -> Frame | None:
            if self.reads >= self.frames:
                self.message = f"{self.name} stopped sending frames; retrying"
                return None
            return super().read()

    running.send("source", Camera(picture(3), "webcam:0", frames=3))
    wait_for(lambda: (p := running.latest()) is not None and p.message.endswith("retrying"))
    pub = published(running)
    assert pub.source == "webcam:0" and pub.query is not None and len(pub.results) == 5
    running.send("source", Camera(picture(3), "webcam:1", frames=0))
    wait_for(lambda: published(running).source == "webcam:1")
    pub = published(running)
    assert pub.query is None and pub.results == () and "webcam:1 stopped" in pub.message
    # the screen, its region moved into a gap between monitors: not the pictures of the
    # region before (a paste that fails keeps the last one pasted: test_viewer)
    screen = Camera(picture(4), "screen", frames=2)
    screen.region = (0, 0, 640, 480)
    running.send("source", screen)
    wait_for(lambda: (p := running.latest()) is not None and p.message.startswith("screen"))
    assert published(running).query is not None
    gap = Camera(picture(5), "screen", frames=0)  # (its words its own: the region's)
    gap.region = (2000, 800, 300, 200)
    gap.read = lambda: setattr(gap, "message", "the region is on no monitor") or None
    running.send("source", gap)
    wait_for(lambda: published(running).message == "the region is on no monitor")
    pub = published(running)
    assert pub.source == "screen" and pub.query is None and pub.results == ()


def test_a_source_slow_to_give_its_first_picture_says_so_meanwhile(running):
    """Ctrl+V on a slow clipboard program, or a camera opening: the last source's picture,
    results and words stayed on show until the new source's first read returned."""
    running.send("source", Pictures(picture(1)))
    wait_for(lambda: (p := running.latest()) is not None and p.query is not None)
    release = threading.Event()

    class Slow(Pictures):
        def __init__(self, image) -> None:
            super().__init__(image)
            self.name, self.message = "clipboard", READING

        def read(self) -> Frame | None:
            release.wait(10)
            self.message = "query: clipboard (640x480, pasted)"
            return super().read()

    running.send("source", Slow(picture(2)))
    wait_for(lambda: published(running).source == "clipboard")
    pub = published(running)
    assert pub.message == READING and pub.query is None and pub.results == ()
    release.set()
    wait_for(lambda: published(running).query is not None)
    assert published(running).message.startswith("query: clipboard")


def test_a_source_that_is_not_live_is_never_skipped(running):
    s = running.session
    source = RandomSource(len(s.index.paths), lambda r: s.base_dir / s.index.paths[r], seed=1)
    running.send("source", source)
    first = drawn(running)
    running.send("row", first.row)  # the same picture asked for again: searched again
    assert drawn(running, after=first.captured).row == first.row


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_worker_and_its_decoders_run_nicer_than_the_window(running):
    """NICER than the window, the decoders too: started by the worker, they inherited its
    nice and ran at twice NICER (with two busy programs on the cores, a video's searches
    waited seconds for their results' pictures)."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    want = min(19, base + worker_mod.NICER)
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, running._thread.native_id) == want)
    running.send("source", Pictures(picture(6)))  # its results' pictures: the worker
    searched(running, 1)  # starts the decoders
    decoders = [t.native_id for t in running._decoders._threads]
    assert decoders and all(os.getpriority(os.PRIO_PROCESS, d) == want for d in decoders)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # not the caller


def test_unreadable_results_are_grey_tiles_and_the_message_counts_them(tmp_path):
    """Three results that cannot be read show three grey tiles (one shared picture, so one
    texture); the message names the first file and says how many more there are."""
    from rtsearch.session import Result

    good = tmp_path / "good.jpg"
    make_image(1, (120, 90)).save(good)
    broken = []
    for name in ("b1.jpg", "b2.jpg", "b3.jpg"):
        broken.append(tmp_path / name)
        broken[-1].write_text("not a picture")
    files = [good, *broken]
    results = [Result(i, f.name, f, float(i)) for i, f in enumerate(files)]
    worker = Worker(None, k=4)
    try:
        thumbs, message = worker._thumbs(results)
        _, one = worker._thumbs(results[:2])
    finally:
        worker._decoders.shutdown()
    assert thumbs[1] is thumbs[2] is thumbs[3] and thumbs[0] is not thumbs[1]
    assert message.startswith("cannot show ") and "b1.jpg" in message
    assert message.endswith("(and 2 more grey tiles)")
    assert "b1.jpg" in one and "more" not in one
    # a result whose file is gone (moved or deleted since the index was made): the update
    # that brings the index up to date is said, as `query` says it
    import types

    worker = Worker(None, k=4)
    index = types.SimpleNamespace(
        base_dir=str(tmp_path), sizes=np.array([f.stat().st_size for f in files] + [0] * 6)
    )
    worker.session = types.SimpleNamespace(
        source=tmp_path / "my index.dat", base_dir=tmp_path, index=index
    )
    gone = Result(9, "gone.jpg", tmp_path / "gone.jpg", 1.0)
    try:
        _, message = worker._thumbs([results[0], gone])
        # ... but not when another folder was chosen for the index's pictures (a copy of
        # some of them) and its own folder holds it: `update` would have moved the index
        own = tmp_path / "own"
        own.mkdir()
        shutil.copy(good, own / "gone.jpg")
        index.base_dir = str(own)
        _, elsewhere = worker._thumbs([results[0], gone])
        # the viewer's --watch brings it up to date: no update to run (it was advised)
        index.base_dir = str(tmp_path)
        task = types.SimpleNamespace(index=tmp_path / "my index.dat", finished=False)
        worker.watching = task
        _, watched = worker._thumbs([results[0], gone])
        task.finished = True  # (a watch ended: the update is advised again)
        _, ended = worker._thumbs([results[0], gone])
    finally:
        worker._decoders.shutdown()
    assert watched.endswith("; gone since the index was made: --watch is taking it out")
    assert ended == message
    assert message.endswith(
        f"; gone since it was made: rtsearch update '{tmp_path / 'my index.dat'}' {tmp_path}"
    ), message
    assert elsewhere.endswith(f"; not in {tmp_path}: the index's own folder {own} holds it")


def on_page(pic: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    h, w = pic.shape[:2]
    page = np.full((h + top + bottom, w + left + right, 3), 255, np.uint8)
    page[top : top + h, left : left + w] = pic
    return page


def test_a_live_picture_is_searched_without_its_plain_borders(running, index):
    """A picture grabbed with the page around it (here 3x its width of white on the left)
    is searched as the picture: its own row first, far ahead of the next, and the query
    shows what was searched. With the trim off (B), the page is searched with it, and
    another picture comes first."""
    from PIL import Image

    pics, _ = index
    file = sorted(pics.rglob("*.png"))[1]  # lossless: the row is the picture's own
    pic = np.asarray(Image.open(file).convert("RGB"))
    h, w = pic.shape[:2]
    page = on_page(pic, 20, 30, 3 * w, 10)
    running.send("source", Pictures(page))
    trimmed = searched(running, 1)
    own = file.relative_to(pics).as_posix()
    first, second = trimmed.results[:2]
    assert first.path == own and first.distance < 0.2 * second.distance
    # the page is shown, the part searched outlined (a query texture of the part's size,
    # made anew as it changed, kept 1.3 MB of Dear PyGui's memory each time)
    ph, pw = page.shape[:2]
    assert abs(trimmed.query.aspect - pw / ph) < 0.05
    want = (20 / ph, (20 + h) / ph, 3 * w / pw, 4 * w / pw)
    assert trimmed.searched is not None
    assert np.allclose(trimmed.searched, want, atol=0.005), (trimmed.searched, want)
    running.send("trim", False)
    whole = searched(running, 2)  # the same picture, searched again at once
    assert whole.results[0].path != own and whole.searched is None


def test_pictures_of_the_collection_are_searched_as_stored(running, monkeypatch):
    """Random pictures (and results clicked) are the indexed files themselves: no trim,
    which could cut into a cut-out's own plain background."""
    calls = []
    real = worker_mod.trimmed_views
    monkeypatch.setattr(worker_mod, "trimmed_views", lambda im: calls.append(1) or real(im))
    running.send("random")
    drawn(running)
    assert calls == []
    running.send("source", Pictures(picture(5)))
    searched(running, 1)
    assert calls == [1]


def test_a_picture_of_the_collection_is_searched_with_its_stored_vector(running, index):
    """A random picture (or a result clicked) was searched with the live model's vector
    of a reduced decode: its results ranked otherwise than `query`'s for the same file
    (a crop of it 2nd there, 7th in the viewer). Its row's vector is searched, as `query`
    searches it, and no model runs; a file changed since it was analysed runs the model."""
    s = running.session
    running.send("random")
    pub = drawn(running)
    want = s.query_vector(np.asarray(s.index.projected[pub.row]), 5, exclude=pub.row)
    assert [r.row for r in pub.results] == [r.row for r in want]
    assert np.allclose([r.distance for r in pub.results], [r.distance for r in want])
    assert pub.stored and s.runs == 0 and pub.inference_ms == 0.0
    changed = s.file_of(pub.row)
    st = changed.stat()
    os.utime(changed, (st.st_atime, st.st_mtime + 100))  # (another picture, for all it knows)
    try:
        running.send("row", pub.row)
        again = searched(running, 1)
    finally:
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))  # (the module's gallery)
    assert again.row == pub.row and not again.stored and again.inference_ms > 0


def test_a_plain_picture_is_not_searched_and_the_last_results_stay(running, monkeypatch):
    """A black frame between two scenes, or an empty part of the screen, was searched: the
    grid flipped to the same unrelated pictures at every fade through black and back."""
    monkeypatch.setattr(worker_mod, "IDLE_S", 0.2)
    black = np.zeros((480, 640, 3), np.uint8)
    source = Pictures(black)  # plain from the start: shown, with nothing searched
    running.send("source", source)
    wait_for(lambda: running.latest() is not None and running.latest().query is not None)
    pub = published(running)
    assert (pub.message, pub.results, running.session.runs) == (worker_mod.PLAIN, (), 0)
    source.image = picture(5)
    first = searched(running, 1)
    assert first.message == "" and len(first.results) == 5
    for plain in (black, np.full((480, 640, 3), (200, 30, 90), np.uint8), noisy(black, 2.0, 1)):
        runs = running.session.runs
        source.image = plain
        wait_for(lambda: published(running).message == worker_mod.PLAIN_KEPT)
        time.sleep(0.4)  # past IDLE_S: still not "these results are current"
        pub = published(running)
        assert pub.message == worker_mod.PLAIN_KEPT, plain[0, 0]
        # (the picture before: the same picture, searched before the last time when it was
        # not left to stand still since)
        assert np.array_equal(pub.query.tile, first.query.tile) and pub.results == first.results
        assert running.session.runs == runs
        source.image = picture(5)  # the scene after the fade: searched again
        searched(running, runs + 1)
        first = published(running)
        assert first.message == ""
    # k changed on a plain picture: the last picture searched is searched again, and the
    # plain one is still said (it said "these results are current" a second later)
    runs = running.session.runs
    source.image = black
    wait_for(lambda: published(running).message == worker_mod.PLAIN_KEPT)
    running.send("k", 4)
    searched(running, runs + 1)
    time.sleep(0.4)  # past IDLE_S
    pub = published(running)
    assert len(pub.results) == 4 and pub.message == worker_mod.PLAIN_KEPT
    assert np.array_equal(pub.query.tile, first.query.tile)  # the last picture searched
    # a fade through black: the dimmer frames on the way are searched, and the picture
    # that stood still before the fade stays through the black, not the last dim one's
    runs = running.session.runs
    source.image = picture(6)
    steady = searched(running, runs + 1)
    time.sleep(0.3 + worker_mod.STILL_S)  # it stands still a while
    for share in (0.6, 0.4, 0.25):
        runs = running.session.runs
        source.image = (picture(6) * share).astype(np.uint8)
        searched(running, runs + 1)
    assert published(running).query is not steady.query
    source.image = black
    wait_for(lambda: published(running).message == worker_mod.PLAIN_KEPT)
    pub = published(running)
    assert pub.query is steady.query and pub.results == steady.results
    assert pub.captured == steady.captured  # (not counted as a new query shown)
    # a picture with a little on it is searched: a caption on black
    captioned = black.copy()
    captioned[400:440, 100:540] = 255
    source.image = captioned
    searched(running, running.session.runs + 1)


def gated_decodes(monkeypatch) -> tuple[threading.Event, list[Path]]:
    """Result pictures decode only once the gate is set (each for at most 20 s); the
    files whose decode has begun, in order."""
    from rtsearch import thumbs

    gate, begun = threading.Event(), []
    load = thumbs.ThumbCache._load

    def slow(self, path, stamp):
        begun.append(path)
        gate.wait(20)
        return load(self, path, stamp)

    monkeypatch.setattr(thumbs.ThumbCache, "_load", slow)
    return gate, begun


def gated_worker(index, tiny_model, monkeypatch) -> tuple[threading.Event, list[Path], Worker]:
    """A running worker (k 5) whose result pictures decode once the gate is set
    (gated_decodes), with the files whose decode has begun."""
    gate, begun = gated_decodes(monkeypatch)
    worker = Worker(CountingSession(index[1], tiny_model), k=5, max_qps=50.0)
    worker.start()
    return gate, begun, worker


def test_results_show_before_their_pictures_are_decoded_and_fill_in(index, tiny_model, monkeypatch):
    """A new picture's results waited for all 20 of their pictures to decode (4K PNGs: 2 s),
    the last picture and results showing meanwhile under "the picture has not changed".
    They now show after THUMB_WAIT_S, the pictures not decoded yet as dark tiles, filled in
    as they come."""
    gate, _, worker = gated_worker(index, tiny_model, monkeypatch)
    try:
        worker.send("source", Pictures(picture(6)))
        pub = searched(worker, 1)
        assert pub.pending == 5
        assert all((t.tile == worker_mod.LOADING_GREY).all() for t in pub.thumbs)
        assert len(pub.results) == 5 and pub.message == ""
        time.sleep(0.6)  # past THUMB_REFRESH_S: nothing new to show, nothing published
        assert published(worker).seq == pub.seq
        # a command meanwhile is taken at once: k (R, a source, pause) waited for every
        # picture to decode, the results looking done meanwhile
        worker.send("k", 3)
        fewer = searched(worker, 2)
        assert len(fewer.results) == 3 and fewer.pending == 3
        gate.set()
        wait_for(lambda: published(worker).pending == 0)
        done = published(worker)
        assert done.seq > fewer.seq and done.results == fewer.results
        assert done.query is fewer.query
        for dark, thumb in zip(fewer.thumbs, done.thumbs, strict=True):
            # the dark tile had the picture's shape, from its header: the rows do not move
            assert (dark.width, dark.height) == (thumb.width, thumb.height)
            assert not (thumb.tile == worker_mod.LOADING_GREY).all()
        assert done.captured == fewer.captured and worker.session.runs == 2  # no new search
    finally:
        gate.set()
        assert worker.join()


class Moving(Pictures):
    """A live source whose picture changes at every read (a video playing)."""

    def read(self) -> Frame | None:
        self.reads += 1
        return Frame(picture(100 + self.reads % 7), time.perf_counter())


def test_a_new_picture_that_stands_still_is_searched_while_the_last_results_decode(
    index, tiny_model, monkeypatch
):
    """A live picture that changed while the last results' pictures decoded waited for all
    of them (a page scrolled on to another photo: 2 s behind 20 4K PNGs), unless a key was
    pressed. One that stands still from one look to the next is now searched at once; one
    that keeps changing (a video) still waits, so that its results show whole. Decodes of
    the results before that have not begun are dropped, and a file among both results'
    decodes once."""
    gate, begun, worker = gated_worker(index, tiny_model, monkeypatch)
    try:
        moving = Moving(picture(6))
        worker.send("source", moving)
        first = searched(worker, 1)
        assert first.pending == 5
        reads = moving.reads
        time.sleep(0.6)  # looked at, never the same twice: not searched
        assert worker.session.runs == 1 and moving.reads > reads

        source = Pictures(picture(6))
        worker.send("source", source)
        shown = searched(worker, 2)
        source.image = picture(8)  # no key pressed: the page scrolled on
        started = time.perf_counter()
        then = searched(worker, 3)
        assert time.perf_counter() - started < 1.0  # (the gate holds decodes for 20 s)
        assert then.pending > 0 and then.query is not shown.query
        gate.set()
        wait_for(lambda: published(worker).pending == 0)
        done = published(worker)
        assert done.results == then.results and worker.session.runs == 3
        assert not any((t.tile == worker_mod.LOADING_GREY).all() for t in done.thumbs)
        # each file decoded once; of the results before, only those begun or wanted again
        assert len(begun) == len(set(begun))
        wanted = {r.file for r in then.results}
        dropped = {r.file for r in shown.results} - wanted - set(begun[: worker_mod.cores()])
        assert dropped and not dropped & set(begun)
    finally:
        gate.set()
        assert worker.join()


def test_a_picture_that_keeps_changing_waits_for_the_last_results_a_second_at_most(
    index, tiny_model, monkeypatch
):
    """A video's next picture waited for the last results' pictures, however long their
    decodes took: on cores held by two busy programs, or pictures on a slow disk, the
    video's picture stood still 5-10 s. It waits FILL_WAIT_S at most, then is searched,
    the pictures not decoded showing as dark tiles."""
    gate, _, worker = gated_worker(index, tiny_model, monkeypatch)  # (held for 20 s)
    try:
        worker.send("source", Moving(picture(6)))
        first = searched(worker, 1)
        assert first.pending == 5
        second = searched(worker, 2)
        waited = second.finished - first.finished
        assert worker_mod.FILL_WAIT_S <= waited < worker_mod.FILL_WAIT_S + 1.0, waited
        assert second.pending > 0 and second.query is not first.query
    finally:
        gate.set()
        assert worker.join()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, tiny_model) -> tuple[list[Path], Path]:
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    root = tmp_path_factory.mktemp("photos")
    files = make_photo_gallery(root / "pics", 40)
    out = root / "photos.dat"
    analyze(root / "pics", out, Extractor(tiny_model, threads=1), Settings(dims=16))
    return files, out


def test_a_still_live_picture_has_its_results_verified_as_query_verifies_them(photos, tiny_model):
    """Live results were ranked by vector alone, where `query` verifies (matching
    keypoints): over a grid's thumbnail with its neighbours' edges, the source came first 9
    or 10 times in 12 live, 12 in 12 by `query`. A live picture that stands still now has
    its nearest results verified and shown again so ranked, as the same search (no model
    run, the same capture time); one that keeps changing is not verified."""
    from PIL import Image

    from rtsearch.verify import MIN_INLIERS

    files, index_path = photos
    source_file = files[6]  # (2nd by the tiny model's vector, first verified)
    copy = make_copy(Image.open(source_file).convert("RGB"), np.random.default_rng(3))
    worker = Worker(CountingSession(index_path, tiny_model), k=5, max_qps=50.0)
    worker.start()
    try:
        moving = Moving(picture(6))
        moving.name = "video"
        worker.send("source", moving)
        began(worker)
        time.sleep(1.0)  # searched at every look: never still, never verified
        assert all(r.inliers is None for r in published(worker).results)

        worker.send("source", Pictures(np.asarray(copy.resize((640, 480)))))
        wait_for(lambda: worker.latest().source == "screen" and worker.latest().results)
        runs = worker.session.runs
        first = searched(worker, runs)
        assert all(r.inliers is None for r in first.results)  # by vector, at once
        assert first.results[0].file != source_file  # (the tiny model's vectors miss it)
        wait_for(lambda: published(worker).results[0].inliers is not None)
        wait_for(lambda: published(worker).pending == 0)
        verified = published(worker)
        assert verified.results[0].file == source_file
        assert verified.results[0].inliers >= MIN_INLIERS
        assert len(verified.results) == 5 and verified.pending == 0
        assert verified.captured == first.captured and worker.session.runs == runs
        assert verified.query is not None and verified.seq > first.seq
    finally:
        assert worker.join()


def test_a_still_picture_whose_own_margins_were_trimmed_finds_its_file(tmp_path, tiny_model):
    """A video of the collection's pictures: one drawn on white, its margins its own, was
    trimmed as a page's, and its file was not among the results (text on white, a logo).
    Standing still, the whole picture is searched too, and its file comes first."""
    from PIL import Image

    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    files = make_gallery(tmp_path / "pics", 24)
    inner = np.asarray(Image.open(files[2]).convert("RGB").resize((100, 75)))
    drawn = on_page(inner, 120, 285, 300, 240)  # (the picture of a document, say)
    Image.fromarray(drawn).save(tmp_path / "pics" / "drawn.png")
    out = tmp_path / "pics.dat"
    analyze(tmp_path / "pics", out, Extractor(tiny_model, threads=1), Settings(dims=16))
    worker = Worker(CountingSession(out, tiny_model), k=1, max_qps=50.0)
    worker.start()
    try:
        worker.send("source", Pictures(drawn))  # (a frame of the video: the file's pixels)
        first = searched(worker, 1)
        assert first.searched is not None  # trimmed: its margins taken for a page's
        # (the tiny model's vectors put the file inside it first: a real model's had the
        # file drawn far down, past 20)
        assert [r.path for r in first.results] == [
            files[2].relative_to(tmp_path / "pics").as_posix()
        ]
        wait_for(lambda: published(worker).results[0].inliers is not None)
        looked = published(worker)
        assert looked.results[0].path == "drawn.png" and looked.results[0].distance < 1e-3
        assert worker.session.runs == 2 and looked.captured == first.captured
        assert looked.searched == first.searched  # (what was searched first stays outlined)
        # ... inside a video's black bars too: searched whole, the bars took it far off
        framed = np.zeros((drawn.shape[0], drawn.shape[1] + 300, 3), np.uint8)
        framed[:, 150:-150] = drawn
        worker.send("source", Pictures(framed))
        wait_for(lambda: published(worker).results[0].inliers is not None)
        assert published(worker).results[0].path == "drawn.png"
    finally:
        assert worker.join()


def test_a_grab_that_takes_in_the_viewer_is_searched_twice_a_second(running):
    """A screen grab whose rectangle took in the viewer's own window was searched 30 times
    a second (its picture changes with every search: a core spent on the viewer's picture
    of itself). While the app says so ("mirror"), it is searched MIRROR_QPS times a second."""
    moving = Moving(picture(1))
    running.send("source", moving)
    began(running)
    running.send("mirror", True)
    time.sleep(0.3)
    runs = running.session.runs
    time.sleep(1.5)
    assert 1 <= running.session.runs - runs <= 4  # (2 a second)
    running.send("mirror", False)
    time.sleep(0.3)
    runs = running.session.runs
    time.sleep(0.5)
    assert running.session.runs - runs >= 8  # as fast as it comes again (max_qps 50 here)


def test_a_command_ends_the_pause_between_two_searches(running):
    """The worker paused between two searches (1/30 s; half a second while the grab took
    in the viewer's window) before it took a command: R, k or a source waited for the
    pause to end, and a test switching sources 50 times found a dialog opened by V, the
    video still on show. A command now ends the pause at once."""
    source = Pictures(picture(2))
    running.send("source", source)
    searched(running, 1)
    running.send("mirror", True)
    source.image = picture(3)
    first = searched(running, 2)  # (then it pauses half a second)
    running.send("k", 3)
    sent = time.perf_counter()
    again = searched(running, 3)
    assert len(again.results) == 3 and again.seq > first.seq
    assert time.perf_counter() - sent < 0.25


def test_grey_tiles_stay_said_while_a_live_picture_stands_still(tmp_path, tiny_model, monkeypatch):
    """A live source (a picture opened as the video) whose results hold a deleted file:
    a second later the grey tile's message went, replaced by the source's empty one."""
    from rtsearch.analyze import Settings, analyze
    from rtsearch.extractor import Extractor

    monkeypatch.setattr(worker_mod, "IDLE_S", 0.3)
    make_gallery(tmp_path / "pics", 6)
    out = tmp_path / "pics.dat"
    analyze(tmp_path / "pics", out, Extractor(tiny_model, threads=1), Settings(dims=4))
    gone = sorted((tmp_path / "pics").rglob("*.*"))[0]
    gone.unlink()
    worker = Worker(CountingSession(out, tiny_model), k=6, max_qps=50.0)
    worker.start()
    try:
        worker.send("source", Once(picture(1)))
        wait_for(lambda: running_message(worker).startswith("cannot show "))
        time.sleep(0.6)  # past IDLE_S
        message = published(worker).message
    finally:
        assert worker.join()
    assert message.startswith(f"cannot show {gone}: ") and "rtsearch update" in message


def running_message(worker: Worker) -> str:
    pub = worker.latest()
    return "" if pub is None else pub.message


class Once(Pictures):
    """A picture handed out once, as a video source hands out a still picture."""

    def read(self) -> Frame | None:
        self.reads += 1
        return Frame(self.image.copy(), time.perf_counter()) if self.reads == 1 else None


def test_the_worker_outlives_a_failure_outside_a_search(running, monkeypatch):
    """An error while it took commands or filled in the grid's pictures (a result it could
    not stat) ended the worker's thread: dark tiles and 0 queries/s for good, unsaid."""
    source = Pictures(picture(1))
    running.send("source", source)
    searched(running, 1)

    def broken(value) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(running, "_on_boom", broken, raising=False)
    running.send("boom", None)
    wait_for(lambda: published(running).message == "worker: [Errno 13] Permission denied")
    source.image = picture(2)  # searched still
    wait_for(lambda: running.session.runs >= 2)
    assert running._thread.is_alive()


def test_results_replaced_under_their_names_are_said(tmp_path):
    """A folder whose pictures were replaced by others under the same names: `query` said
    so ("not the file indexed (another size)"); the viewer showed the new pictures at the
    old ones' distances, its message line empty."""
    import types

    from rtsearch.session import Result

    files = [tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"]
    for i, f in enumerate(files):
        make_image(i, (120, 90)).save(f)
    sizes = np.array([f.stat().st_size for f in files])
    sizes[1:] += 1  # (b and c: not the files indexed)
    index = types.SimpleNamespace(base_dir=str(tmp_path), sizes=sizes)
    worker = Worker(None, k=3)
    worker.session = types.SimpleNamespace(
        source=tmp_path / "i.dat", base_dir=tmp_path, index=index
    )
    results = [Result(i, f.name, f, float(i)) for i, f in enumerate(files)]
    try:
        _, message = worker._thumbs(results)
        _, same = worker._thumbs(results[:1])
        files[2].write_text("no picture now")  # a grey tile is said first
        _, grey = worker._thumbs(results)
    finally:
        worker._decoders.shutdown()
    assert message == (
        f"not the picture indexed (another size now): {files[1]} (and 1 more); changed since "
        f"it was made: rtsearch update {tmp_path / 'i.dat'} {tmp_path}"
    )
    assert worker_mod.is_problem(message) and same == ""
    assert grey.startswith(f"cannot show {files[2]}: ")
