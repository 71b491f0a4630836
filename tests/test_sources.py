"""Query sources and thumbnails, without a GUI: frames come out, failures become messages."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from fakes import iso_box, make_image, write_mp4, write_sound_mp4, write_video, write_webm
from PIL import Image

from rtsearch.sources import RandomSource, ScreenSource, VideoSource, WebcamSource, parse_region
from rtsearch.thumbs import ThumbCache, to_thumb


def test_video_plays_in_real_time_loops_and_pauses(tmp_path):
    video = write_video(tmp_path / "v.avi", [1, 2], frames_each=5, fps=50.0)  # 0.2 s
    src = VideoSource(video)
    assert src.message == ""
    start = time.perf_counter()
    first = src.read()
    assert first is not None and first.image.shape == (120, 160, 3)
    seen, late = [], 0
    while time.perf_counter() - start < 1.0:  # five loops' worth of time, polled at ~200/s
        frame = src.read()
        if frame is not None:
            seen.append(int(frame.image[60, 80].sum()))
            late += time.perf_counter() - start > 0.8  # loops: still running at the end
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    # never ahead of the clock (the worker asks up to 30 times a second; a 10 fps file must
    # not play at 30), and not starved either: most of the 50 frames a second come out
    assert len(seen) + 1 <= elapsed * 50.0 + 2
    assert len(seen) >= 20 and late >= 1
    assert len(set(seen)) >= 2  # both pictures came by
    src.set_paused(True)
    assert src.read() is None
    src.set_paused(False)
    assert src.read() is not None  # resumes where it stopped, at once
    src.close()


def test_video_not_in_real_time_hands_out_every_frame(tmp_path):
    video = write_video(tmp_path / "v.avi", [1, 2, 3], frames_each=2, fps=1.0)
    src = VideoSource(video, realtime=False)
    values = [int(src.read().image[60, 80].sum()) for _ in range(12)]  # two loops, at once
    assert values[:6] == values[6:]  # every frame, in order, then again from the start
    assert len(set(values[0:2])) == 1 and len(set(values[:6])) == 3
    src.close()


def test_a_video_cut_short_is_said_as_it_plays_on(tmp_path):
    """A file whose header counts more frames than a pass plays (a download or a copy cut
    short, its header first) looped without a word; it is said, as a problem, while it
    plays on; a whole file, and one finished since, say nothing."""
    from rtsearch.errors import Problem

    video = write_video(tmp_path / "v.avi", [1, 2, 3], frames_each=20, fps=20.0)  # 3 s
    whole = video.read_bytes()
    video.write_bytes(whole[: len(whole) // 2])
    src = VideoSource(video, realtime=False)
    said = [(src.read() is not None, src.message) for _ in range(70)]
    src.close()
    assert all(shown for shown, _ in said)  # played on, in a loop
    assert said[0][1] == ""  # (not known before the first pass's end)
    short = said[-1][1]
    assert isinstance(short, Problem) and short.startswith(f"{video}: ends at 0:01 of the 0:03")
    assert "cut short" in short
    video.write_bytes(whole)  # finished since: the next pass is whole, and says nothing
    src = VideoSource(video, realtime=False)
    assert all(src.read() is not None and src.message == "" for _ in range(130))
    src.close()
    # an MP4 with its header first (as the web's are), cut; a trim whose edit list keeps
    # half its frames (copied without re-encoding: its frame count is all of them) is whole
    video = tmp_path / "v.mp4"
    cases = {  # (the part kept, header first, cut): what a pass says
        (1.0, True, True): f"{video}: ends at 0:01 of the 0:03",
        (0.5, False, False): "",
        (0.5, True, False): "",
    }
    for (kept, first, cut), said in cases.items():
        write_mp4(video, 60, 20.0, keep=kept, header_first=first)
        if cut:
            video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
        src = VideoSource(video, realtime=False)
        shown = [(src.read() is not None, src.message) for _ in range(130)]
        src.close()
        last = shown[-1][1]
        assert all(frame for frame, _ in shown) and last.startswith(said), (kept, first, last)
        assert bool(last) == bool(said), (kept, first, last)


def test_a_video_header_gives_its_length_or_none_and_never_fails():
    """The movie header's video track length, version 0 or 1; a header cut inside its
    track header raised IndexError out of the video's open."""
    import io

    from rtsearch.sniff import video_length_ms

    ftyp = iso_box(b"ftyp", b"isom" + bytes(4) + b"isom")
    mvhd = iso_box(b"mvhd", bytes(12) + (1000).to_bytes(4, "big") + bytes(84))  # in ms
    mdia = iso_box(b"mdia", iso_box(b"hdlr", bytes(8) + b"vide" + bytes(13)))

    def length(tkhd: bytes) -> float | None:
        data = ftyp + iso_box(b"moov", mvhd + iso_box(b"trak", iso_box(b"tkhd", tkhd) + mdia))
        return video_length_ms(io.BytesIO(data), data[:400])

    assert length(bytes(20) + (2500).to_bytes(4, "big") + bytes(60)) == 2500.0
    assert length(b"\x01" + bytes(27) + (7000).to_bytes(8, "big") + bytes(60)) == 7000.0
    assert length(bytes(20) + b"\xff" * 4 + bytes(60)) is None  # (not known)
    for damaged in (b"", b"\x01", bytes(10), b"\x01" + bytes(30)):
        assert length(damaged) is None


def test_bad_video_and_missing_camera_are_messages_not_crashes(tmp_path, capfd):
    mp4_start = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"  # ffmpeg takes it for one
    headless = (
        " (an MP4 or QuickTime file without its movie header: still being copied, or cut short?)"
    )
    cannot = "cannot open as a video"
    for name, data, why in (("not-a-video.avi", b"\x00\x01nothing\xfe\xff", cannot),
                            ("words.avi", b"nothing here", "a text file, not a video"),
                            ("cut.mp4", mp4_start + bytes(2000), cannot + headless)):  # fmt: skip
        bad = tmp_path / name
        bad.write_bytes(data)
        src = VideoSource(bad)
        assert src.read() is None and src.message == f"{bad}: {why}"
    cam = WebcamSource(device=57)  # no such camera
    deadline = time.perf_counter() + 10
    while "no camera" not in cam.message and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert cam.read() is None and "no camera" in cam.message
    cam.close()
    said = capfd.readouterr()  # the message says it once; OpenCV and ffmpeg do not
    assert "WARN" not in said.err and "moov atom" not in said.out + said.err, said


def test_a_sound_file_given_as_a_video_is_named_as_one(tmp_path):
    """An MP3 or WAV chosen with V said "cannot open as a video", as of a damaged video."""
    import wave

    song = tmp_path / "song.wav"
    with wave.open(str(song), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(16000))
    tagged = tmp_path / "song.mp3"
    tagged.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00" + bytes(500))
    for path, kind in ((song, "a WAV"), (tagged, "an MP3")):
        src = VideoSource(path)
        assert src.read() is None
        assert src.message == f"{path}: {kind} file: sound only, no pictures to search"
        src.close()


def test_a_sound_or_text_file_is_refused_as_a_video_source_before_it_replaces_one(tmp_path):
    """A script or a song chosen with V (or --source video:) replaced the source on show
    with an empty page that said why; its first bytes tell: refused as it is chosen. A
    file that may still be being copied (empty, an MP4 without its header) is taken."""
    from rtsearch.sources import parse_source

    script = tmp_path / "script.avi"
    script.write_text("#!/bin/sh\necho 'not a video' \u00e9\n")
    song = tmp_path / "song.mp4"
    song.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00" + bytes(500))
    memo = write_sound_mp4(tmp_path / "memo.mp4")  # (it replaced the source on show)
    sound = write_webm(tmp_path / "talk.webm")  # (it said "cannot open as a video")
    refused_as = {
        script: "a text file, not a video",
        song: "an MP3 file: sound only, no pictures to search",
        memo: "an MP4 or QuickTime file: sound only, no pictures to search",
        sound: "a Matroska or WebM file: sound only, no pictures to search",
    }
    for path, why in refused_as.items():
        with pytest.raises(ValueError) as refused:
            parse_source(f"video:{path}")
        assert str(refused.value) == f"{path}: {why}"
    empty = tmp_path / "empty.mp4"
    empty.touch()
    binary = tmp_path / "odd.mp4"
    binary.write_bytes(bytes(range(256)) * 4)
    film = write_webm(tmp_path / "film.webm", (1, 2))  # a picture and its sound: taken
    cut = tmp_path / "cut.webm"  # its tracks not there yet: tried
    cut.write_bytes(film.read_bytes()[:60])
    for path in (empty, binary, film, cut):
        assert parse_source(f"video:{path}") == ("video", str(path))
    src = VideoSource(empty)  # waited for, and it came as text: said so
    assert src.read() is None and "empty file" in src.message
    empty.write_text("just some words\n")
    time.sleep(1.1)  # (its time and size tell a change)
    for _ in range(20):
        if src.read() is None and "text" in src.message:
            break
        time.sleep(0.1)
    assert src.message == f"{empty}: a text file, not a video"
    src.close()


def test_an_mp4_of_sound_only_or_cut_short_is_said_so(tmp_path):
    """An MP4 holding only sound (a podcast, a voice memo), and one whose movie header,
    written last, is missing (still being copied), both said "cannot open as a video"."""
    from rtsearch.sniff import iso_tracks

    memo = write_sound_mp4(tmp_path / "memo.mp4")
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    with open(clip, "rb") as f:
        assert iso_tracks(f) == [b"vide"]
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: data.index(b"moov") - 4])
    picture = tmp_path / "photo.mp4"  # an AVIF picture's ISO-BMFF: no tracks, no header
    picture.write_bytes(
        iso_box(b"ftyp", b"avif" + bytes(4) + b"avifmif1") + iso_box(b"meta", bytes(40))
    )
    said = {
        picture: "cannot open as a video",
        memo: "an MP4 or QuickTime file: sound only, no pictures to search",
        cut: "cannot open as a video (an MP4 or QuickTime file without its movie header: "
        "still being copied, or cut short?)",
    }
    for path, why in said.items():
        src = VideoSource(path)
        assert src.read() is None and src.message == f"{path}: {why}"
        src.close()


def test_screen_source_without_a_display_reports_it(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    src = ScreenSource((0, 0, 100, 100))
    assert src.read() is None
    assert src.message.startswith("screen capture failed")


def test_random_source_gives_one_frame_per_trigger_with_its_row(tmp_path):
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        make_image(i).save(files[-1])
    src = RandomSource(3, lambda r: files[r], seed=0)
    frame = src.read()
    assert frame is not None and frame.row in (0, 1, 2)
    assert src.read() is None  # nothing new until asked
    src.trigger(2)
    again = src.read()
    assert again is not None and again.row == 2
    np.testing.assert_array_equal(again.image, np.asarray(make_image(2)))
    files[1].unlink()
    src.trigger(1)
    assert src.read() is None and "1.png" in src.message


def test_random_source_never_draws_the_picture_on_show(tmp_path):
    """R drew the picture on show again one time in the index's size (a key that seemed to
    do nothing; a viewer test flaked on it): a draw now skips it, and still reaches every
    other picture."""
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        make_image(i).save(files[-1])
    src = RandomSource(3, lambda r: files[r], seed=0)
    seen = set()
    last = src.read().row
    for _ in range(60):
        src.trigger()
        row = src.read().row
        assert row != last
        seen.add(row)
        last = row
    assert seen == {0, 1, 2}
    src.trigger(last)  # a row asked for is given, on show or not
    assert src.read().row == last
    one = RandomSource(1, lambda r: files[r], seed=0)
    assert one.read().row == 0
    one.trigger()
    assert one.read().row == 0  # (the only picture there is)


def test_random_source_passes_over_pictures_it_cannot_read(tmp_path):
    """An index out of date with its folder (files moved away) showed an empty window with
    "file not found" for its first query: a draw now passes over a file it cannot read for
    another, says how many it passed over, and does not draw them again. A row asked for
    (a result clicked) is not replaced, unless it was a recalled query's (``fallback``)."""
    files = []
    for i in range(10):
        files.append(tmp_path / f"{i}.png")
        make_image(i).save(files[-1])
    for f in files[:9]:
        f.unlink()
    for seed in range(5):
        src = RandomSource(10, lambda r: files[r], seed=seed)
        frame = src.read()
        assert frame is not None and frame.row == 9 and not frame.chosen
        if src.unread:  # (drawn first: nothing passed over, nothing said)
            assert f"{len(src.unread)} picture" in src.message and "passed over" in src.message
            assert "file not found" in src.message
        src.trigger()  # the one left is on show: it is drawn again
        assert src.read().row == 9
    src.trigger(3)
    assert src.read() is None and "3.png" in src.message and "passed over" not in src.message
    src.trigger(4, fallback=True)
    frame = src.read()
    assert frame is not None and frame.row == 9 and not frame.chosen
    assert "4.png" in src.message
    files[9].unlink()  # none left: each is tried again, and said
    src = RandomSource(10, lambda r: files[r], seed=0)
    assert src.read() is None and "file not found" in src.message
    assert src.message.startswith("10 pictures of the index could not be read: ")
    src.trigger()
    assert src.read() is None and src.message.startswith("10 pictures")


def test_parse_region():
    assert parse_region("10,20,300,200") == (10, 20, 300, 200)
    for bad in ("10,20,0,5", "abc", "1,2,3", "1.5,2,3,4", ""):
        with pytest.raises(ValueError, match=r"^screen region must be x,y,w,h in whole pixels"):
            parse_region(bad)


def test_tiles_keep_aspect_and_cache_drops_the_oldest(tmp_path):
    thumb = to_thumb(np.full((100, 300, 3), 255, np.uint8), 224)  # a square box
    assert (thumb.width, thumb.height) == (224, 75) and thumb.tile.shape == (75, 224, 3)
    assert thumb.tile.dtype == np.uint8  # bytes, as decoded: a quarter of float32's memory
    # result thumbnails: fitted to the viewer's 2:1 box, so a 16:9, 4:3 or portrait picture
    # is as tall as the box (only a panorama is not), holding only its own pixels
    from rtsearch.viewer.worker import THUMB_BOX

    assert THUMB_BOX == (448, 224)
    for shape, used in (((1080, 1920), (398, 224)), ((480, 640), (299, 224)),
                        ((400, 300), (168, 224)), ((30, 40), (299, 224)),
                        ((10, 400), (448, 11))):  # fmt: skip
        image = np.full((*shape, 3), 200, np.uint8)
        thumb = to_thumb(image, THUMB_BOX)
        assert thumb.tile.shape == (used[1], used[0], 3) and (thumb.width, thumb.height) == used
        assert thumb.tile.dtype == np.uint8 and (thumb.tile == 200).all()
    exact = np.full((224, 448, 3), 7, np.uint8)
    assert to_thumb(exact, THUMB_BOX).tile is not exact  # a copy: the caller keeps its own
    cache = ThumbCache(64, capacity=2)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        make_image(i).save(paths[-1])
    for p in paths:
        cache.get(p)
    assert len(cache) == 2 and cache.misses == 3
    cache.get(paths[2])
    assert cache.misses == 3  # a hit
    cache.get(paths[0])
    assert cache.misses == 4  # was dropped


def test_a_thumbnail_is_read_again_when_its_file_is_replaced(tmp_path):
    """`view --watch` re-indexes a picture replaced on disk; its tile must be the new
    picture (and shape), not the cached old one, whichever way the cache is asked."""
    import os

    from rtsearch.viewer.worker import THUMB_BOX

    path = tmp_path / "a.jpg"
    make_image(1, (400, 300)).save(path, quality=90)
    cache = ThumbCache(THUMB_BOX)
    old = cache.get(path)
    assert cache.get(path) is old and cache.get_many([path])[0] is old  # hits
    stat = os.stat(path)
    make_image(2, (200, 300)).save(path, quality=90)  # portrait now
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its old mtime
    new = cache.get_many([path])[0]
    assert new is not old and (new.width, new.height) != (old.width, old.height)
    assert new.height > new.width and cache.get(path) is new
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: read again
    assert cache.get(path) is not new and cache.misses == 3


def test_thumbnails_decode_together_in_order_with_errors_in_place(tmp_path):
    """The worker's cold results decode on a pool: same tiles, same order, as one by one;
    an unreadable file gives its error in its place; repeats decode once; hits stay hits."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.jpg")
        make_image(i, (400, 300)).save(paths[-1], quality=90)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    wanted = [paths[0], broken, *paths[1:], paths[2]]
    serial = ThumbCache(96)
    expected = [serial.get(p).tile for p in paths]
    cache = ThumbCache(96)
    cache.get(paths[3])
    with ThreadPoolExecutor(3) as pool:
        got = cache.get_many(wanted, pool)
    assert isinstance(got[1], Exception) and "broken.jpg" in str(got[1])
    tiles = [t.tile for i, t in enumerate(got) if i != 1]
    for tile, exp in zip(tiles, [expected[0], *expected[1:], expected[2]], strict=True):
        assert np.array_equal(tile, exp)
    assert cache.misses == 1 + 5  # paths[3] was cached; paths[2] asked twice, decoded once
    assert cache.get_many(paths, None)[4] is got[5]


def test_zero_length_and_frameless_videos_are_messages(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    frameless = tmp_path / "frameless.avi"
    cv2.VideoWriter(str(frameless), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120)).release()
    for path in (empty, frameless):
        src = VideoSource(path)
        assert src.read() is None and path.name in src.message, src.message
        src.close()


def test_a_video_of_one_frame_is_decoded_once_and_kept(tmp_path):
    """After a one-frame file's end OpenCV's seek back to 0 says yes and the next read
    fails: the viewer showed the frame under "no frames could be decoded". Then it was
    opened and decoded again for every frame time, 25 times a second (an 8000x6000 one:
    14.5 s of CPU in 17.6 s, 1 GB): it is kept as the still picture it is."""
    one = write_video(tmp_path / "one.avi", [3], frames_each=1)
    live = VideoSource(one)
    frames = []
    for _ in range(8):
        frames.append(live.read())
        time.sleep(0.05)  # past the next frame's time at 25 fps
    shown = [f for f in frames if f is not None]
    assert live.message == "" and 1 <= len(shown) <= 2 and frames[-3:] == [None] * 3
    assert live.cap is None and live.single is not None  # nothing open, nothing read again
    bench = VideoSource(one, realtime=False)  # every frame in turn: the one, each time
    frames = [bench.read() for _ in range(4)]
    assert all(f is not None and np.array_equal(f.image, shown[0].image) for f in frames)


def played(src: VideoSource, seconds: float) -> list[int]:
    """What ``src`` hands out when asked every 10 ms for ``seconds``: each frame's centre."""
    start, seen = time.perf_counter(), []
    while time.perf_counter() - start < seconds:
        frame = src.read()
        if frame is not None:
            seen.append(int(frame.image[60, 80].sum()))
        time.sleep(0.01)
    return seen


def test_a_video_plays_at_its_own_times_not_a_rate_guessed(tmp_path):
    """A 0.5 fps slideshow played at 25 (rates under 1 or over 240 were taken for 25), and
    a clip whose rate changes played at its mean rate: each frame comes at its own time."""
    slides = write_video(tmp_path / "slides.avi", [1, 2, 3], frames_each=1, fps=0.5)
    src = VideoSource(slides)
    seen = played(src, 1.0)
    assert len(seen) == 1 and src.interval_ms == 2000.0  # the next comes at 2 s
    src.close()


def test_a_video_that_does_not_open_is_tried_again_when_it_changes(tmp_path):
    """A file still being copied or recorded (0 bytes when chosen) stayed "cannot open as a
    video" after it was whole: the source opened it once."""
    late = tmp_path / "late.avi"
    late.write_bytes(b"")
    src = VideoSource(late)
    assert src.read() is None
    assert src.message == f"{late}: cannot open as a video (empty file: still being copied?)"
    write_video(tmp_path / "whole.avi", [4, 5], frames_each=3).replace(late)
    deadline, frame = time.perf_counter() + 5, None
    while frame is None and time.perf_counter() < deadline:
        frame = src.read()
        time.sleep(0.02)
    assert frame is not None and src.message == ""
    src.close()


def test_a_still_picture_as_a_video_is_decoded_as_analyze_decodes_it(tmp_path):
    """A picture given as the video went through OpenCV's reader, which drops transparency:
    a cut-out showed on black and found itself at distance 0.42 instead of 0. It is shown
    once (it never changes) with the decoder's white background."""
    from rtsearch.decode import load_rgb

    cutout = np.zeros((40, 60, 4), np.uint8)
    cutout[..., 0] = 255
    cutout[:20, :, 3] = 255  # the top half opaque red, the rest transparent
    path = tmp_path / "cutout.png"
    Image.fromarray(cutout).save(path)
    src = VideoSource(path)
    frame = src.read()
    assert frame is not None and np.array_equal(frame.image, load_rgb(path))
    assert frame.image[30, 0].tolist() == [255, 255, 255]  # white, not black
    src.set_paused(True)
    src.set_paused(False)
    assert src.read() is None and src.message == ""
    src.close()
    gif = tmp_path / "moving.gif"  # an animated one still plays as a video
    frames = [Image.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (0, 120, 240)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=40, loop=0)
    src = VideoSource(gif, realtime=False)
    assert src.still is None and src.read() is not None
    src.close()


class FakeCamera:
    """cv2.VideoCapture stand-in: plugged in, unplugged after 3 frames, missing on the next
    open, back on the one after."""

    opens = 0

    def __init__(self, device: int) -> None:
        FakeCamera.opens += 1
        self.plugged = FakeCamera.opens != 2
        self.frames = 3 if FakeCamera.opens == 1 else 10**9

    def isOpened(self) -> bool:  # OpenCV's spelling
        return self.plugged

    def read(self):
        if self.frames == 0:
            return False, None
        self.frames -= 1
        time.sleep(0.005)
        return True, np.full((48, 64, 3), 90, np.uint8)

    def release(self) -> None:
        pass


def test_camera_unplugged_mid_stream_says_so_and_comes_back(monkeypatch):
    import rtsearch.sources as sources

    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCamera)
    monkeypatch.setattr(WebcamSource, "RETRY_S", 0.1)
    FakeCamera.opens = 0
    cam = WebcamSource(0)
    seen, messages = 0, set()
    deadline = time.perf_counter() + 10
    while FakeCamera.opens < 3 or cam.read() is None:
        assert time.perf_counter() < deadline, messages
        seen += cam.read() is not None
        messages.add(cam.message)
        time.sleep(0.002)
    cam.close()
    assert any("stopped sending frames" in m for m in messages), messages
    assert any("no camera found" in m for m in messages), messages
    assert cam.message == ""  # frames again after it came back


def test_screen_region_off_screen_empty_or_partly_visible():
    pyvirtualdisplay = pytest.importorskip("pyvirtualdisplay")
    with pyvirtualdisplay.Display(size=(640, 480), color_depth=24):
        part = ScreenSource((600, 440, 100, 100))  # 40x40 of it on the desktop
        frame = part.read()
        assert frame is not None and frame.image.shape == (40, 40, 3) and part.message == ""
        off = ScreenSource((700, 500, 50, 50))
        assert off.read() is None and "off the desktop" in off.message
        off.region = (10, 10, 50, 50)  # moved back: the next read works again
        assert off.read() is not None and off.message == ""
        empty = ScreenSource((0, 0, 0, 10))
        assert empty.read() is None and "empty" in empty.message
        # A grab that fails in mss (e.g. monitors changed under the cached handle) drops
        # the handle, so the next read opens a fresh one and sees the current monitors.
        stale = ScreenSource((10, 10, 50, 50))
        stale._local.mss = StaleGrabber(stale._mss())
        assert stale.read() is None and "monitors changed" in stale.message
        assert stale._local.mss is None
        assert stale.read() is not None and stale.message == ""
        # a desktop that shrank and grew back (a monitor unplugged, plugged in again): the
        # handle that saw it small said "off the desktop" for ever
        back = ScreenSource((300, 300, 50, 50))
        back._local.mss = ShrunkGrabber(back._mss())
        back._reread_at = time.perf_counter()  # (just read: kept for REREAD_S)
        for _ in range(2):
            assert back.read() is None and "off the desktop (100x100)" in back.message
        back.REREAD_S = 0.0
        assert back.read() is None  # (this read finds it off, and lets the handle go)
        assert back.read() is not None and back.message == ""
        for src in (part, off, empty, stale, back):
            src.close()


class ShrunkGrabber:
    """An mss handle that saw a 100x100 desktop."""

    def __init__(self, real) -> None:
        desk = {"left": 0, "top": 0, "width": 100, "height": 100}
        self.monitors = [desk, desk]
        real.close()

    def close(self) -> None:
        pass


class StaleGrabber:
    """An mss handle whose monitors are cached but whose grabs fail."""

    def __init__(self, real) -> None:
        self.monitors = real.monitors
        real.close()

    def grab(self, box):
        raise RuntimeError("monitors changed")

    def close(self) -> None:
        pass


def test_a_camera_that_opencv_refuses_or_that_errs_leaves_a_message_not_a_dead_thread(
    monkeypatch,
):
    """A device number OpenCV cannot take raised in the camera thread, which died with a
    traceback: the viewer showed "opening the camera..." for ever."""
    import rtsearch.sources as sources

    def overflow(device):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(sources.cv2, "VideoCapture", overflow)
    cam = WebcamSource(10**20)
    cam._thread.join(2.0)
    assert (
        cam.message
        == "camera 100000000000000000000: cannot open (Python int too large to convert to C long)"
    )
    assert cam.read() is None
    cam.close()

    class Erring(FakeCamera):
        def read(self):
            raise sources.cv2.error("driver went away")

    monkeypatch.setattr(sources.cv2, "VideoCapture", Erring)
    monkeypatch.setattr(WebcamSource, "RETRY_S", 0.05)
    FakeCamera.opens = 0
    cam = WebcamSource(0)
    time.sleep(0.3)
    assert cam._thread.is_alive() and cam.message == "camera 0: driver went away; retrying"
    cam.close()


def test_a_video_named_from_home_is_found(tmp_path, monkeypatch):
    """`--source video:~/Videos/clip.mp4`: no shell expands a `~` after "video:", and the
    viewer said "video file not found" of a file that is there."""
    from rtsearch.sources import parse_source

    (tmp_path / "Videos").mkdir()
    clip = write_video(tmp_path / "Videos" / "clip.avi", [1], frames_each=2)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_source("video:~/Videos/clip.avi") == ("video", str(clip))


def test_a_video_that_decodes_slower_than_it_plays_still_moves(tmp_path, monkeypatch):
    """An 8K 120 fps file (each frame slower to decode than its time) froze the viewer on
    its first frame: each read skipped ahead to catch up, never did, and went round the
    file for ever. After a stall (a suspended process) one read spent seconds skipping."""
    video = write_video(tmp_path / "v.avi", list(range(8)), frames_each=5, fps=50.0)
    real = cv2.VideoCapture

    class Slow:
        def __init__(self, *args) -> None:
            self.cap = real(*args)

        def grab(self) -> bool:
            time.sleep(0.03)  # 30 ms a frame of 20 ms
            return self.cap.grab()

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", Slow)
    src = VideoSource(video)
    frames = played(src, 1.5)
    assert len(frames) >= 5 and len(set(frames)) >= 3, frames  # it plays on, slower
    monkeypatch.undo()
    src = VideoSource(video)
    assert src.read() is not None
    src.start -= 600.0  # ten minutes stopped
    asked = time.perf_counter()
    src.read()
    assert time.perf_counter() - asked < 0.5  # not a pass through 30,000 frames
    src.close()


class UnequalMonitors:
    """An mss handle on a 200x200 monitor beside a 100x100 one: a desktop of 300x200 whose
    lower right 100x100 is on no monitor."""

    def __init__(self) -> None:
        self.monitors = [
            {"left": 0, "top": 0, "width": 300, "height": 200},
            {"left": 0, "top": 0, "width": 200, "height": 200},
            {"left": 200, "top": 0, "width": 100, "height": 100},
        ]

    def grab(self, box):
        return np.full((box["height"], box["width"], 4), 200, np.uint8)

    def close(self) -> None:
        pass


def test_a_region_in_the_gap_between_unequal_monitors_is_said_not_searched_as_black():
    """The dead part of a desktop of unequal monitors was grabbed as a black picture and
    searched; a region touching a monitor is grabbed."""
    gap = ScreenSource((240, 130, 50, 50))
    gap._local.mss = UnequalMonitors()
    gap.REREAD_S = 1e9  # (this handle kept, not the display's read again)
    assert gap.read() is None and gap.message == (
        "screen capture failed: the region 240,130,50,50 is on no monitor (a gap between "
        "them); move it with G"
    )
    gap.region = (180, 130, 50, 50)  # its left 20 px on the first monitor
    frame = gap.read()
    assert frame is not None and frame.image.shape == (50, 50, 3) and gap.message == ""
    gap.region = (240, 230, 50, 50)
    assert gap.read() is None and "the region 240,230,50,50 is off the desktop (300x200)" in (
        gap.message
    )
    gap.close()


def test_a_stand_in_has_the_shape_its_picture_takes_from_the_header_alone(tmp_path):
    """What shows while a result's picture decodes: a grey tile of the shape the picture
    will take, so the rows do not move when it comes (4:3 tiles did: 16:9 wallpapers and
    portraits then moved between rows)."""
    from rtsearch.thumbs import placeholder, stand_in

    files = {"wide.png": (1600, 400), "tall.jpg": (300, 600), "small.png": (80, 60)}
    for name, size in files.items():
        make_image(3, size).save(tmp_path / name)
    turned = tmp_path / "turned.jpg"  # stored 640x480, shown 480x640 (EXIF orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    make_image(4, (640, 480)).save(turned, "JPEG", exif=exif)
    for box in ((448, 224), (840, 420)):
        cache = ThumbCache(box)
        for path in [*(tmp_path / n for n in files), turned]:
            grey, thumb = stand_in(path, box, 52), cache.get(path)
            assert (grey.width, grey.height) == (thumb.width, thumb.height), (path, box)
            assert grey.tile.shape[:2] == (grey.height, grey.width) and (grey.tile == 52).all()
        broken = tmp_path / "broken.jpg"
        broken.write_text("not a picture")
        assert stand_in(broken, box, 52) is placeholder(box[1], 52)
