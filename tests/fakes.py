"""Things tests make for themselves: a tiny ONNX feature model and distinct images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw

from rtsearch.models import ModelInfo

# Root reads mode-000 files; without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH it cannot.
DROP_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def tiny_model_info(dims: int = 128, name: str = "tiny", sha: str = "0" * 64) -> ModelInfo:
    return ModelInfo(
        name=name,
        variant="fp32",
        feature_layer="fc",
        feature_output="features",
        dims=dims,
        input_name="input",
        input_size=(32, 32),
        channel_order="RGB",
        mean=(127.5, 127.5, 127.5),
        std=(64.0, 64.0, 64.0),
        resize="squash",
        weights_sha256=sha,
        exporter_version="test",
    )


def write_tiny_model(
    path: Path,
    dims: int = 128,
    seed: int = 0,
    name: str = "tiny",
    *,
    props: dict[str, str] | None = None,
    nan_weight: bool = False,
) -> Path:
    """A 2-conv + fc ReLU network on 32x32 input with random weights: fast, deterministic,
    and discriminative enough to tell generated images apart. ``props``: metadata values to
    write instead (raw JSON strings, keys without the "rtsearch." prefix); ``nan_weight``:
    one NaN in the first convolution, as in a damaged weights file."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3
    if nan_weight:
        w1[0, 0, 1, 1] = np.nan
    w2 = rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1
    wf = rng.standard_normal((32 * 8 * 8, dims)).astype(np.float32) * 0.03
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (wf, "wf"))]
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "wf"], ["fc"]),
        helper.make_node("Relu", ["fc"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dims])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sha = f"{seed:064d}"
    meta = tiny_model_info(dims, name, sha).to_props()
    meta.update({"rtsearch." + k: v for k, v in (props or {}).items()})
    helper.set_model_props(model, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def int8_twin(models: Path) -> Path:
    """tiny.onnx and a faithful "int8" twin of it (the same graph, int8 by its metadata) in
    ``models``; returns the twin. Point RTSEARCH_MODELS at ``models`` for names to find them."""
    from dataclasses import replace

    from rtsearch.models import read_model_info

    fp32 = write_tiny_model(models / "tiny.onnx")
    twin = onnx.load(str(fp32))
    props = replace(read_model_info(fp32), variant="int8", int8_cosine=0.995).to_props()
    helper.set_model_props(twin, props)
    onnx.save(twin, str(models / "tiny-int8.onnx"))
    return models / "tiny-int8.onnx"


def make_image(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct picture per seed: a colour gradient background and a few shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w)[None, :, None]
    bg = (c0 * (1 - t) + c1 * t).repeat(h, axis=0).astype(np.uint8)
    img = Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 10), rng.integers(0, h - 10)
        x1, y1 = x0 + rng.integers(10, w // 2), y0 + rng.integers(10, h // 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
    return img


def write_video(path: Path, seeds: list[int], frames_each: int, fps: float = 25.0) -> Path:
    """An MJPG .avi showing make_image(seed) for ``frames_each`` frames per seed."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened()
    for seed in seeds:
        bgr = cv2.cvtColor(np.asarray(make_image(seed)), cv2.COLOR_RGB2BGR)
        for _ in range(frames_each):
            writer.write(bgr)
    writer.release()
    return path


def iso_box(kind: bytes, payload: bytes) -> bytes:
    """One ISO-BMFF (MP4) box."""
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def write_mp4(path: Path, frames: int = 60, fps: float = 20.0, *, keep: float = 1.0,
              header_first: bool = False) -> Path:  # fmt: skip
    """An MP4 (MPEG-4 part 2, as OpenCV writes it: its media, then its movie header) of
    ``frames`` grey levels; ``keep`` < 1: its video track's edit list keeps that part of
    them (a trim copied without re-encoding); ``header_first``: its movie header moved
    before its media, as a web MP4's is (the media's offsets moved with it)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (160, 120))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((120, 160, 3), i * 4 % 256, np.uint8))
    writer.release()
    top = _iso_boxes(path.read_bytes())
    moov = next(payload for kind, payload in top if kind == b"moov")
    if keep < 1.0:
        moov = _iso_rebuilt(moov, lambda kind, payload: _kept(kind, payload, keep))
    if header_first:  # the media's offsets (stco) move by the header's size
        size = len(iso_box(b"moov", moov))
        moov = _iso_rebuilt(moov, lambda kind, payload: _moved(kind, payload, size))
        top = [(b"moov", moov)] + [(k, p) for k, p in top if k != b"moov"]
        top.insert(0, top.pop(next(i for i, (k, _) in enumerate(top) if k == b"ftyp")))
    path.write_bytes(b"".join(iso_box(k, moov if k == b"moov" else p) for k, p in top))
    return path


def _iso_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        out.append((data[i + 4 : i + 8], data[i + 8 : i + size]))
        i += size
    return out


def _iso_rebuilt(payload: bytes, change) -> bytes:
    """A container's payload with each box in it (at any depth) as ``change`` makes it."""
    parts = []
    for kind, inner in _iso_boxes(payload):
        if kind in (b"trak", b"mdia", b"minf", b"stbl", b"edts"):
            inner = _iso_rebuilt(inner, change)
        parts.append(iso_box(kind, change(kind, inner)))
    return b"".join(parts)


def _kept(kind: bytes, payload: bytes, part: float) -> bytes:
    """tkhd's length and edts/elst's one edit cut to ``part`` (version 0 boxes)."""
    if kind == b"tkhd":
        length = int(int.from_bytes(payload[20:24], "big") * part)
        return payload[:20] + length.to_bytes(4, "big") + payload[24:]
    if kind == b"elst":  # one edit: its length, from the media's start, at rate 1
        length = int(int.from_bytes(payload[8:12], "big") * part)
        return bytes(4) + (1).to_bytes(4, "big") + length.to_bytes(4, "big") + bytes(4) + \
            (0x10000).to_bytes(4, "big")  # fmt: skip
    return payload


def _moved(kind: bytes, payload: bytes, by: int) -> bytes:
    if kind != b"stco":
        return payload
    n = int.from_bytes(payload[4:8], "big")
    offsets = [int.from_bytes(payload[8 + 4 * i : 12 + 4 * i], "big") + by for i in range(n)]
    return payload[:8] + b"".join(o.to_bytes(4, "big") for o in offsets)


def write_sound_mp4(path: Path) -> Path:
    """An MP4 as a voice memo app writes it: its media, then a movie header of one sound
    track."""
    hdlr = iso_box(b"hdlr", bytes(8) + b"soun" + bytes(13))
    track = iso_box(b"trak", iso_box(b"mdia", hdlr))
    ftyp = iso_box(b"ftyp", b"isom" + bytes(4) + b"isomiso2mp41")
    path.write_bytes(ftyp + iso_box(b"mdat", bytes(3000)) + iso_box(b"moov", track))
    return path


def ebml(ident: int, payload: bytes, *, unknown: bool = False) -> bytes:
    """One EBML (Matroska, WebM) element: its id, its size as an 8-byte vint (all ones:
    unknown, as live recordings write a Segment's), its payload."""
    size = (1 << 56) - 1 if unknown else len(payload)
    return (
        ident.to_bytes((ident.bit_length() + 7) // 8, "big")
        + ((1 << 56) | size).to_bytes(8, "big")
        + payload
    )


def write_webm(path: Path, kinds: tuple[int, ...] = (2,)) -> Path:
    """A WebM file as a browser or yt-dlp writes sound (track type 2; 1 is video): EBML
    header, then a Segment of unknown size holding Info, Tracks and a Cluster."""
    header = ebml(0x1A45DFA3, ebml(0x4282, b"webm"))
    entries = b"".join(ebml(0xAE, ebml(0xD7, bytes([i + 1])) + ebml(0x83, bytes([k])))
                       for i, k in enumerate(kinds))  # fmt: skip
    segment = ebml(0x1549A966, ebml(0x2AD7B1, b"\x0f\x42\x40")) + ebml(0x1654AE6B, entries)
    segment += ebml(0x1F43B675, bytes(2000))
    path.write_bytes(header + ebml(0x18538067, segment, unknown=True))
    return path


def make_gallery(root: Path, n: int, *, start: int = 0, subdirs: int = 3) -> list[Path]:
    """n JPEG/PNG files spread over a few sub-folders; returns their paths."""
    files = []
    for i in range(start, start + n):
        ext = ".png" if i % 5 == 0 else ".jpg"
        path = root / f"d{i % subdirs}" / f"img{i:05d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_image(i).save(path, quality=92) if ext == ".jpg" else make_image(i).save(path)
        files.append(path)
    return files


# scikit-image's bundled photos (installed with the package, no download).
SAMPLE_PHOTOS = (
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins",
    "colorwheel", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo",
    "moon", "retina", "rocket", "page", "text",
)  # fmt: skip


def sample_photos() -> list[Image.Image]:
    """scikit-image's sample photos as RGB images (grey ones repeated, alpha dropped)."""
    import skimage.data

    out = []
    for name in SAMPLE_PHOTOS:
        a = np.asarray(getattr(skimage.data, name)())
        a = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a[:, :, :3]
        out.append(Image.fromarray(a.astype(np.uint8)))
    out.append(Image.fromarray(skimage.data.stereo_motorcycle()[0]))
    return out


def make_photo_gallery(root: Path, n: int, *, seed: int = 0) -> list[Path]:
    """n photo-like JPEGs: 2x2 mosaics of random crops (25-60% of a side, random flip and
    channel order) of the sample photos. Real content, and harder than a real collection:
    with only 21 sources, many images share a crop's material with others."""
    photos = sample_photos()
    rng = np.random.default_rng(seed)
    w, h = 320, 240
    files = []
    for i in range(n):
        canvas = Image.new("RGB", (w, h))
        for x0, y0 in ((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)):
            src = photos[rng.integers(len(photos))]
            f = rng.uniform(0.25, 0.6)
            cw, ch = int(src.width * f), int(src.height * f)
            x, y = rng.integers(0, src.width - cw + 1), rng.integers(0, src.height - ch + 1)
            tile = src.crop((x, y, x + cw, y + ch)).resize((w // 2, h // 2), Image.BILINEAR)
            if rng.random() < 0.5:
                tile = tile.transpose(Image.FLIP_LEFT_RIGHT)
            tile = Image.fromarray(np.asarray(tile)[:, :, rng.permutation(3)])
            canvas.paste(tile, (x0, y0))
        path = root / f"p{i % 4}" / f"photo{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path, quality=90)
        files.append(path)
    return files


def make_copy(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What a copy on the web looks like: 70-80% crop, resize, small rotation, brightness
    change (the caller saves it as JPEG quality 40)."""
    from PIL import ImageEnhance

    w, h = img.size
    f = rng.uniform(0.7, 0.8)
    x0, y0 = rng.integers(0, int(w * (1 - f)) + 1), rng.integers(0, int(h * (1 - f)) + 1)
    img = img.crop((x0, y0, x0 + int(w * f), y0 + int(h * f))).resize((w // 2 + 17, h // 2))
    img = img.rotate(rng.uniform(-5, 5), resample=Image.BILINEAR, expand=False)
    return ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))


def live_processes() -> dict[int, list[str]]:
    """Every live (not zombie) process's /proc stat fields after its name, by pid: [0] is
    the state, [3] the session id."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[0] != "Z":
            found[int(entry)] = fields
    return found


def padded_tile(image: np.ndarray, box: tuple[int, int]):
    """``image`` fitted to ``box`` (width, height) in the top-left corner of a black tile of
    exactly that size: how the viewer kept pictures before they held only their own pixels
    (a 4:3 box for results, 512x384 for the query), to compare with."""
    from rtsearch.thumbs import Thumb, fit

    picture = fit(image, box)
    h, w = picture.shape[:2]
    tile = np.zeros((box[1], box[0], 3), np.uint8)
    tile[:h, :w] = picture
    return Thumb(tile, w, h)


def close_like_a_window_manager(window: int | None = None) -> None:
    """Ask ``window`` (else each of this process's own) to close as a window manager does
    for its X or Alt+F4: a WM_DELETE_WINDOW message (ICCCM), sent on the display of $DISPLAY."""
    import ctypes

    from rtsearch.viewer.wakeup import CLIENT_MESSAGE, _ClientMessage, _Event
    from rtsearch.viewer.windows import own_windows
    from rtsearch.x11 import libx11

    x11 = libx11()
    display = x11.XOpenDisplay(None)
    assert display, "no X display"
    try:
        protocols = x11.XInternAtom(display, b"WM_PROTOCOLS", False)
        delete = x11.XInternAtom(display, b"WM_DELETE_WINDOW", False)
        windows = [window] if window is not None else own_windows(x11, display)
        assert windows, "no window to close"
        for target in windows:
            event = _Event()
            event.xclient = _ClientMessage(
                type=CLIENT_MESSAGE, window=target, message_type=protocols, format=32
            )
            event.xclient.data[0] = delete  # (data[1], the time: 0, CurrentTime)
            x11.XSendEvent(display, target, 0, 0, ctypes.byref(event))
        x11.XFlush(display)
    finally:
        x11.XCloseDisplay(display)
