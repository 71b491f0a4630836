"""Generated near-duplicate copies of an image, for measuring copy detection.

A copy combines what happens to a picture passed around: a crop keeping 70-85% of each side,
a small rotation (±5°), brightness ±20%, a horizontal flip (half the time), a text caption,
a resize (0.5-1.5x) and JPEG re-compression at quality 30-60. Each step is a pure function
of an RGB uint8 (H, W, 3) array so it can be tested on its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rtsearch.decode import RGBImage

CROP_RANGE = (0.70, 0.85)
ROTATION_DEG = 5.0
BRIGHTNESS = 0.20
FLIP_PROBABILITY = 0.5
RESIZE_RANGE = (0.5, 1.5)
JPEG_QUALITY = (30, 60)
CAPTIONS = ("me and my friends", "LOL", "look at this!", "#throwback", "(c) 2024", "SALE -50%")


@dataclass(frozen=True)
class CopyParams:
    """One copy's random choices; ``crop`` is the kept fraction of width and height."""

    crop: float
    crop_x: float  # where the crop window sits, 0..1 of the free margin
    crop_y: float
    angle: float
    brightness: float  # multiplier, 0.8-1.2
    flip: bool
    caption: str
    scale: float
    quality: int

    @classmethod
    def draw(cls, rng: np.random.Generator) -> CopyParams:
        return cls(
            crop=float(rng.uniform(*CROP_RANGE)),
            crop_x=float(rng.random()),
            crop_y=float(rng.random()),
            angle=float(rng.uniform(-ROTATION_DEG, ROTATION_DEG)),
            brightness=float(rng.uniform(1 - BRIGHTNESS, 1 + BRIGHTNESS)),
            flip=bool(rng.random() < FLIP_PROBABILITY),
            caption=str(rng.choice(CAPTIONS)),
            scale=float(rng.uniform(*RESIZE_RANGE)),
            quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
        )


def make_copy(image: RGBImage, rng: np.random.Generator) -> RGBImage:
    return apply(image, CopyParams.draw(rng))


def apply(image: RGBImage, p: CopyParams) -> RGBImage:
    out = crop(image, p.crop, p.crop_x, p.crop_y)
    out = rotate(out, p.angle)
    out = brighten(out, p.brightness)
    if p.flip:
        out = np.ascontiguousarray(out[:, ::-1])
    out = caption(out, p.caption)
    out = rescale(out, p.scale)
    return jpeg(out, p.quality)


def crop(image: RGBImage, keep: float, fx: float = 0.5, fy: float = 0.5) -> RGBImage:
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    y0, x0 = round((h - ch) * fy), round((w - cw) * fx)
    return np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw])


def rotate(image: RGBImage, degrees: float) -> RGBImage:
    # Same size; the uncovered corners take the image's median colour, not black, so the
    # copy does not gain a dark frame the original never had.
    img = Image.fromarray(image).rotate(degrees, resample=Image.BILINEAR)
    rotated = np.asarray(img)
    mask = np.asarray(Image.new("L", img.size, 255).rotate(degrees, resample=Image.NEAREST))
    fill = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
    return np.where(mask[..., None] > 0, rotated, fill)


def brighten(image: RGBImage, factor: float) -> RGBImage:
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def caption(image: RGBImage, text: str) -> RGBImage:
    """White text with a dark outline along the bottom, sized to the image like a meme."""
    img = Image.fromarray(image)
    h, w = image.shape[:2]
    size = max(8, min(h // 8, w // max(len(text), 1) * 2))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = max(0, (w - (right - left)) // 2)
    y = max(0, h - (bottom - top) - max(2, h // 20))
    stroke = max(1, size // 12)
    draw.text((x, y), text, font=font, fill="white", stroke_width=stroke, stroke_fill="black")
    return np.asarray(img)


def rescale(image: RGBImage, scale: float) -> RGBImage:
    h, w = image.shape[:2]
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def jpeg(image: RGBImage, quality: int) -> RGBImage:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))
