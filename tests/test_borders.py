"""Plain borders off live pictures (rtsearch/borders.py), on generated pictures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtsearch.borders import MIN_SIDE, content_box, is_plain, trim_borders


def picture(h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    """A busy photo-like picture: smooth colour fields, shapes and noise, no plain edge."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), int(rng.integers(5, 60)), c, -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def on_page(pic: np.ndarray, colour, top: int, bottom: int, left: int, right: int):
    h, w = pic.shape[:2]
    page = np.empty((h + top + bottom, w + left + right, 3), np.uint8)
    page[:] = colour
    page[top : top + h, left : left + w] = pic
    return page, (top, top + h, left, left + w)


def jpeg(img: np.ndarray, quality: int = 85) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def close(box, want, slack: int = 0) -> bool:
    """``box`` keeps all of ``want`` and at most ``slack`` pixels of border on each side."""
    t, b, left, r = box
    wt, wb, wl, wr = want
    return (
        wt - slack <= t <= wt
        and wb <= b <= wb + slack
        and wl - slack <= left <= wl
        and (wr <= r <= wr + slack)
    )


@pytest.mark.parametrize("colour", [(255, 255, 255), (200, 200, 200), (0, 0, 0), (30, 90, 200)])
@pytest.mark.parametrize("margins", [(60, 60, 80, 80), (10, 150, 0, 230), (0, 0, 120, 0)])
def test_a_picture_on_a_plain_page_comes_off_it(colour, margins):
    page, want = on_page(picture(), colour, *margins)
    assert close(content_box(page), want), (content_box(page), want)
    # JPEG rings round the picture within its 8x8 block: some of that may stay
    assert close(content_box(jpeg(page)), want, slack=8), content_box(jpeg(page))


def test_a_letterboxed_video_frame_loses_its_bars():
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, 160:1120] = cv2.resize(picture(), (960, 720))
    assert close(content_box(jpeg(frame, 70)), (0, 720, 160, 1120), slack=5)


def test_layers_of_a_window_come_off_one_pass_each():
    """A plain title bar, a frame line, then the page: three colours, three passes."""
    pic = picture(240, 320)
    page, inner = on_page(pic, (255, 255, 255), 40, 40, 40, 40)
    framed, _ = on_page(page, (90, 90, 90), 3, 3, 3, 3)
    window, _ = on_page(framed, (50, 60, 70), 28, 0, 0, 0)
    want = (inner[0] + 31, inner[1] + 31, inner[2] + 3, inner[3] + 3)
    assert close(content_box(window), want)


def test_each_layer_trimmed_leaves_a_box_of_its_own():
    """A page with white margins inside a video's black bars: the page (the bars off),
    then the picture on it; the last is content_box's. A picture with no border: none."""
    from rtsearch.borders import layer_boxes

    page, _ = on_page(picture(200, 260), (255, 255, 255), 60, 60, 50, 50)
    frame, at = on_page(page, (0, 0, 0), 0, 0, 150, 150)
    layers = layer_boxes(frame)
    assert len(layers) == 2 and layers[-1] == content_box(frame), layers
    assert close(layers[0], at) and close(layers[1], (at[0] + 60, at[0] + 260, 200, 460))
    assert layer_boxes(picture()) == []
    assert layer_boxes(np.full((300, 400, 3), 255, np.uint8)) == []  # (all border: whole)


def test_specks_in_the_margin_do_not_stop_it():
    page, want = on_page(picture(), (255, 255, 255), 80, 80, 80, 80)
    page[20, 30:34] = 0  # a few dark pixels: a cursor's tip, dust
    page[5:8, 500] = 0
    assert close(content_box(page), want)


def test_pictures_without_a_plain_border_are_searched_whole():
    pic = picture()
    assert trim_borders(pic) is pic
    sky = np.zeros((300, 400, 3), np.uint8)  # a gradient: no two lines alike for long
    sky[:] = np.linspace(40, 250, 300, dtype=np.uint8)[:, None, None]
    assert trim_borders(sky) is sky


def test_a_plain_or_nearly_plain_frame_is_left_whole():
    """A blank screen, or a picture that is mostly its background: never more than 90% of a
    side comes off, and never down to a sliver."""
    blank = np.full((600, 800, 3), 255, np.uint8)
    assert trim_borders(blank) is blank
    dot = blank.copy()
    cv2.circle(dot, (400, 300), 10, (0, 0, 0), -1)  # 20 px of 800: 97% would go
    assert content_box(dot) == (0, 600, 0, 800)
    tiny = picture(12, 12)
    assert trim_borders(tiny) is tiny


def test_what_is_left_is_never_below_the_smallest_side():
    page, _ = on_page(picture(20, 20), (255, 255, 255), 2, 2, 2, 2)
    t, b, left, r = content_box(page)
    assert b - t >= MIN_SIDE and r - left >= MIN_SIDE


def test_a_trim_is_a_view_into_the_picture():
    page, want = on_page(picture(), (0, 0, 0), 50, 50, 50, 50)
    out, (t, b, left, r) = trim_borders(page), content_box(page)
    assert close((t, b, left, r), want) and np.shares_memory(out, page)
    assert out.shape[:2] == (b - t, r - left) and (out == page[t:b, left:r]).all()


def test_the_cut_never_reaches_into_the_picture_whatever_its_size():
    """The shrunk copy's line i is the picture's line i * h // sh exactly: cv2.resize's
    nearest picked the line before now and then, and the cut took a line of the picture
    (2 of 3,000 random pages)."""
    rng = np.random.default_rng(1)
    page = np.full((416, 321, 3), 255, np.uint8)  # the case found: it cut row 117
    page[117:300, 40:280] = rng.integers(0, 200, (183, 240, 3), dtype=np.uint8)
    assert content_box(page)[0] <= 117
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(17, 1300, 2))
        t, left = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
        b, r = int(rng.integers(t + h // 3, h + 1)), int(rng.integers(left + w // 3, w + 1))
        page = np.full((h, w, 3), 255, np.uint8)
        page[t:b, left:r] = rng.integers(0, 200, (b - t, r - left, 3), dtype=np.uint8)
        ct, cb, cl, cr = content_box(page)
        assert ct <= t and cb >= b and cl <= left and cr >= r, ((h, w), (t, b, left, r))


def test_a_thin_strip_is_not_peeled_a_column_a_pass():
    """Shrunk to one line across, every pixel was a "plain" line of its own."""
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (16, 4000, 3), dtype=np.uint8)
    assert trim_borders(noise) is noise
    strip = np.full((16, 4000, 3), 255, np.uint8)
    strip[:, 1000:3000] = noise[:, 1000:3000]
    assert close(content_box(strip), (0, 16, 1000, 3000), slack=0)


def test_a_picture_of_one_colour_all_over_is_plain_and_one_with_anything_on_it_is_not():
    """What the viewer does not search (a black frame between scenes, an empty screen)."""
    rng = np.random.default_rng(0)
    black = np.zeros((720, 1280, 3), np.uint8)
    noise = np.clip(rng.normal(128, 2.0, (480, 640, 3)), 0, 255).astype(np.uint8)
    for plain in (black, np.full((50, 3000, 3), (250, 20, 90), np.uint8), noise,
                  np.zeros((4, 4, 3), np.uint8)):  # fmt: skip
        assert is_plain(plain), plain.shape
    caption = black.copy()
    caption[600:660, 200:1080] = 255  # a caption on black: 5.7% of the picture
    sky = np.repeat(np.linspace(90, 140, 480, dtype=np.uint8)[:, None, None], 640, 1)
    sky = np.repeat(sky, 3, 2)  # a sky's gradient, 50 levels from top to bottom
    for busy in (
        caption,
        sky,
        picture(),
        on_page(picture(60, 80), (255, 255, 255), 200, 60, 300, 20)[0],
    ):
        assert not is_plain(busy), busy.shape
    # a logo on a white page (2% of it), and a drawing of thin lines: taken for plain, they
    # were never searched; a cursor on a blank screen still is plain
    logo = np.full((600, 800, 3), 255, np.uint8)
    logo[260:330, 330:470] = (30, 160, 60)
    lines = np.full((600, 800, 3), 255, np.uint8)
    for x in range(200, 600, 80):
        cv2.line(lines, (x, 150), (x + 40, 450), (0, 0, 0), 1)
    assert not is_plain(logo) and not is_plain(lines)
    cursor = black.copy()
    cursor[300:316, 600:611] = 255
    assert is_plain(cursor)
