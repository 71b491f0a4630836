"""What a file is, told by its first bytes, for the files no picture reader takes: a video
named or piped as a picture is called a video, and an audio file given as a video is called
audio, instead of "unknown format" or "cannot open"."""

from __future__ import annotations

from typing import BinaryIO

HEAD_BYTES = 400  # what the kinds below are told from: a file's first bytes


def ftyp_brands(head: bytes) -> list[bytes]:
    """The major brand, then the compatible ones, of an ISO-BMFF file's first box."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return []
    end = min(int.from_bytes(head[:4], "big"), len(head))
    return [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]


# ISO-BMFF brands of video files (MP4, QuickTime, 3GP, Flash's F4V); HEIF and AVIF are
# ISO-BMFF too, and audio-only M4A has its own brand
_VIDEO_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ",
     b"M4VH", b"M4VP", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash", b"mmp4", b"f4v ", b"MSNV",
     b"XAVC", b"CAEP"}  # (the last two: Sony's and Canon's cameras)
)  # fmt: skip
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
MATROSKA = b"\x1aE\xdf\xa3"  # EBML's header id: Matroska and WebM


def video_kind(head: bytes) -> str | None:
    """The kind of video ``head`` (a file's first HEAD_BYTES) starts, named for a user
    ("an MP4 or QuickTime"), or None when it starts none this knows."""
    brands = ftyp_brands(head[:64])
    if brands and brands[0] in _VIDEO_BRANDS:
        return "an MP4 or QuickTime"
    if head[:4] == MATROSKA:
        return "a Matroska or WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI"
    if head[:3] == b"FLV":
        return "a Flash"
    if head[:16] == _ASF:
        return "a Windows Media"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "an MPEG"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # 188-byte packets
        return "an MPEG-TS"
    if len(head) > 388 and head[4] == head[196] == head[388] == 0x47:  # Blu-ray's 192
        return "an MPEG-TS"
    return None


# audio-only files: what OpenCV cannot open as a video and no picture reader reads
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P "})


def audio_kind(head: bytes) -> str | None:
    """The kind of audio-only file ``head`` (its first HEAD_BYTES) starts ("an MP3"), or
    None."""
    brands = ftyp_brands(head[:64])
    if brands and brands[0] in _AUDIO_BRANDS:
        return "an AAC (M4A)"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "an MP3"  # (an ID3 tag, or a frame's sync word with layer III)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV"
    if head[:4] == b"fLaC":
        return "a FLAC"
    if head[:4] == b"OggS" and (b"OpusHead" in head[:80] or b"\x01vorbis" in head[:80]):
        return "an Ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF"
    return None


MOOV_MAX_BYTES = 64 << 20  # a movie header larger than this is not read (a few MB at most)


def iso_tracks(f: BinaryIO) -> list[bytes]:
    """The handler types (b"vide", b"soun", ...) of an ISO-BMFF file's tracks, read from its
    movie header wherever it lies (after the media in most files): its top-level boxes'
    headers are read and skipped. [] where there is no header to read."""
    moov = _box(f, b"moov")
    return [] if moov is None else [_handler(trak) for trak in _children(moov, b"trak")]


def _box(f: BinaryIO, kind: bytes) -> bytes | None:
    """The payload of the top-level box ``kind``, read from ``f``'s position on."""
    while True:
        head = f.read(8)
        if len(head) < 8:
            return None
        size, name = int.from_bytes(head[:4], "big"), head[4:]
        skip = 8
        if size == 1:  # a 64-bit size follows
            size, skip = int.from_bytes(f.read(8), "big"), 16
        if size == 0 and name != kind:  # to the end of the file
            return None
        if name == kind:
            length = (size - skip) if size else MOOV_MAX_BYTES
            return f.read(length) if 0 < length <= MOOV_MAX_BYTES else None
        if size < skip:
            return None
        f.seek(size - skip, 1)


def _children(payload: bytes, kind: bytes) -> list[bytes]:
    """The payloads of the boxes ``kind`` directly in ``payload``."""
    out, i = [], 0
    while i + 8 <= len(payload):
        size = int.from_bytes(payload[i : i + 4], "big")
        if size < 8:
            break
        if payload[i + 4 : i + 8] == kind:
            out.append(payload[i + 8 : i + size])
        i += size
    return out


def _handler(trak: bytes) -> bytes:
    """A track's handler type, from trak/mdia/hdlr (version and flags, pre_defined, then it)."""
    for mdia in _children(trak, b"mdia"):
        for hdlr in _children(mdia, b"hdlr"):
            return hdlr[8:12]
    return b""


# the top-level boxes an MP4 or QuickTime file may start with (QuickTime's of old have no
# ftyp)
_ISO_FIRST = frozenset({b"ftyp", b"moov", b"wide", b"free", b"skip", b"mdat", b"pnot"})
AVI_HEADER_BYTES = 64 << 10  # an AVI's stream headers lie in its first bytes (hdrl)


def video_length_ms(f: BinaryIO, head: bytes) -> float | None:
    """How long the video of the file ``f``, whose first bytes are ``head``, plays by its
    header: an MP4 or QuickTime file's longest video track (its tkhd: the length of its
    edit list, a trim copied without re-encoding shorter than the frames it keeps, else of
    its media), an AVI's video stream (its frames at its rate, empty ones a capture left
    for frames dropped too). None for other files, whose lengths are estimates, and where
    the header says none (a fragmented MP4). Read from ``f``'s start."""
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return _avi_video_ms(f.read(AVI_HEADER_BYTES))
    if head[4:8] not in _ISO_FIRST or (ftyp_brands(head) and video_kind(head) is None):
        return None  # (a HEIF or AVIF picture is ISO-BMFF too)
    moov = _box(f, b"moov")
    mvhd = next(iter(_children(moov or b"", b"mvhd")), b"")
    if len(mvhd) < 24:  # (its timescale lies within, in both versions)
        return None
    scale = _uint(mvhd, 20, 4) if mvhd[0] == 1 else _uint(mvhd, 12, 4)
    longest = 0
    for trak in _children(moov or b"", b"trak"):
        if _handler(trak) != b"vide":
            continue
        for tkhd in _children(trak, b"tkhd"):
            wide = tkhd[:1] == b"\x01"
            if len(tkhd) < (36 if wide else 24):  # (cut short: no length to read)
                continue
            length = _uint(tkhd, 28, 8) if wide else _uint(tkhd, 20, 4)
            if length != (1 << (64 if wide else 32)) - 1:  # (all ones: not known)
                longest = max(longest, length)
    return longest * 1000.0 / scale if scale and longest else None


def _avi_video_ms(data: bytes) -> float | None:
    """An AVI's first video stream's length, from its stream header (strh: fccType,
    handler, flags, priority, language, initial frames, then scale, rate, start, length)."""
    at = data.find(b"strh")
    while at >= 0 and at + 8 + 36 <= len(data):
        strh = data[at + 8 : at + 8 + 36]
        if strh[:4] == b"vids":
            scale, rate, length = (int.from_bytes(strh[i : i + 4], "little") for i in (20, 24, 32))
            return length * scale * 1000.0 / rate if scale and rate and length else None
        at = data.find(b"strh", at + 4)
    return None


def _uint(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at : at + size], "big")


# Matroska (MKV, WebM): its Tracks element comes before the first Cluster of media, within
# the file's first kilobytes (after the SeekHead and Info)
EBML_SCAN_BYTES = 1 << 20
_SEGMENT, _TRACKS, _TRACK_ENTRY, _TRACK_TYPE = 0x18538067, 0x1654AE6B, 0xAE, 0x83
_CLUSTER = 0x1F43B675
_TRACK_TYPES = {1: b"vide", 2: b"soun"}  # as ISO-BMFF names them (iso_tracks)


def matroska_tracks(f: BinaryIO) -> list[bytes] | None:
    """The kinds of a Matroska or WebM file's tracks (b"vide", b"soun", b"" for others),
    read from ``f``'s start; None where its Tracks element is not within EBML_SCAN_BYTES
    (still being written, cut short, or laid out otherwise)."""
    data = f.read(EBML_SCAN_BYTES)
    at = 0
    while at < len(data):
        element = _ebml(data, at)
        if element is None:
            return None
        ident, start, size = element
        if ident == _SEGMENT:
            at = start  # into it (its size is often "unknown")
            continue
        if ident == _CLUSTER:
            return None
        if ident == _TRACKS:
            if size is None or start + size > len(data):
                return None
            return [_track_kind(entry) for entry in _ebml_children(data[start : start + size])]
        if size is None:
            return None
        at = start + size
    return None


def _track_kind(entry: bytes) -> bytes:
    for ident, value in _ebml_items(entry):
        if ident == _TRACK_TYPE:
            return _TRACK_TYPES.get(int.from_bytes(value, "big"), b"")
    return b""


def _ebml_children(tracks: bytes) -> list[bytes]:
    return [value for ident, value in _ebml_items(tracks) if ident == _TRACK_ENTRY]


def _ebml_items(data: bytes) -> list[tuple[int, bytes]]:
    """The elements directly in ``data``, as (id, payload)."""
    out, at = [], 0
    while at < len(data):
        element = _ebml(data, at)
        if element is None or element[2] is None:
            break
        ident, start, size = element
        out.append((ident, data[start : start + size]))
        at = start + size
    return out


def _ebml(data: bytes, at: int) -> tuple[int, int, int | None] | None:
    """The element at ``at``: its id (length marker kept), where its payload starts, and
    its size (None: unknown); None where the bytes do not hold one."""
    ident = _vint(data, at, keep_marker=True)
    if ident is None or ident[1] > 4:
        return None
    size = _vint(data, at + ident[1], keep_marker=False)
    if size is None:
        return None
    value, length = size
    unknown = value == (1 << (7 * length)) - 1  # all ones: "unknown" (live streams)
    return ident[0], at + ident[1] + length, None if unknown else value


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """EBML's variable-length integer at ``at``: (value, bytes it takes)."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()  # the leading 1 bit says how many bytes follow
    if at + length > len(data):
        return None
    value = int.from_bytes(data[at : at + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length
