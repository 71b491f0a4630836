"""Model files: their metadata contract and how a `--model` argument resolves to a file.

Every ``.onnx`` file rtsearch uses carries ``metadata_props`` with the keys below (prefix
``rtsearch.``); values are JSON-encoded strings. The runtime reads preprocessing from them
and never from constants, so any backbone exported with this metadata works unchanged.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

import platformdirs

from rtsearch.errors import RtsearchError, first_line, warn

META_PREFIX = "rtsearch."
METADATA_VERSION = 1
DEFAULT_MODEL = "efficientnet-lite0"
FIRST_USE = (DEFAULT_MODEL, DEFAULT_MODEL + "-int8")  # exported when first asked for
# An int8 file stands in for its fp32 twin by default (viewer, demo) only at this fidelity.
INT8_MIN_COSINE = 0.99
PROJECT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ModelInfo:
    """What an exported model is and how to feed it.

    mean/std are in 0..255 pixel units, in the model's channel order:
    input = (pixel - mean) / std, laid out NCHW float32 of size input_size (height, width).
    """

    name: str  # backbone, e.g. "efficientnet-lite0", "vgg16"
    variant: str  # "fp32" or "int8"
    feature_layer: str  # e.g. "pool", "fc7"
    feature_output: str  # ONNX output name holding the (N, dims) features
    dims: int
    input_name: str
    input_size: tuple[int, int]  # (height, width)
    channel_order: str  # "RGB" or "BGR"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str  # "squash": whole image resized to input_size, aspect not kept
    weights_sha256: str  # sha256 of the source weights file: the model's identity
    exporter_version: str
    source: str = ""  # human description of where the weights came from
    logits_output: str = ""  # optional classifier output, "" when absent
    # int8 files: mean feature cosine vs the fp32 twin on held-out photos, measured at export
    # on the exporting CPU (0.0: not measured, or an fp32 file)
    int8_cosine: float = 0.0

    @property
    def faithful_int8(self) -> bool:
        """An int8 file good enough to stand in for its fp32 twin by default."""
        return self.variant == "int8" and self.int8_cosine >= INT8_MIN_COSINE

    @property
    def label(self) -> str:
        """The model as summaries name it: "efficientnet-lite0", "efficientnet-lite0 int8"."""
        return f"{self.name} int8" if self.variant == "int8" else self.name

    @property
    def identity(self) -> str:
        """Features from two files are comparable iff their identities match (fp32 == int8)."""
        return f"{self.name}/{self.feature_layer}/{self.weights_sha256}"

    def to_props(self) -> dict[str, str]:
        props = {META_PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}
        props[META_PREFIX + "metadata_version"] = json.dumps(METADATA_VERSION)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> ModelInfo:
        try:
            raw = {
                k[len(META_PREFIX) :]: json.loads(v)
                for k, v in props.items()
                if k.startswith(META_PREFIX)
            }
        except json.JSONDecodeError as exc:
            raise RtsearchError(f"{where}: malformed rtsearch metadata ({exc})") from None
        if not raw:
            raise RtsearchError(
                f"{where}: not an rtsearch model (no rtsearch.* metadata; export it with "
                "tools/export_onnx.py)"
            )
        version = raw.pop("metadata_version", None)
        if version != METADATA_VERSION:
            raise RtsearchError(
                f"{where}: model metadata version {version}, this rtsearch reads {METADATA_VERSION}"
            )
        fields = set(cls.__dataclass_fields__)
        # the fields without a default (source, logits_output, int8_cosine have one)
        missing = sorted(
            f for f in fields - raw.keys() if cls.__dataclass_fields__[f].default is MISSING
        )
        if missing:
            raise RtsearchError(f"{where}: model metadata lacks {', '.join(missing)}")
        kwargs = {k: v for k, v in raw.items() if k in fields}
        try:
            return cls(**_checked(kwargs))
        except ValueError as exc:
            raise RtsearchError(f"{where}: bad model metadata: {exc}") from None


MAX_INPUT_SIDE = 4096
# Normalisation in 0..255 pixel units: torchvision's std is ~58, Keras' "caffe" 1, inputs
# scaled to 0..1 take 255. Far outside, the input overflows or drowns in rounding.
STD_RANGE = (1e-3, 1e5)
MEAN_LIMIT = 1e5
_STRINGS = ("name", "feature_layer", "feature_output", "input_name", "weights_sha256")
_CHOICES = {"variant": ("fp32", "int8"), "channel_order": ("RGB", "BGR"), "resize": ("squash",)}


def _checked(kw: dict) -> dict:
    """The metadata's values in their types, or ValueError naming the first bad one: a
    hand-edited or foreign file must be refused when it opens, not fail on every image."""

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def whole(v: object) -> bool:
        return number(v) and float(v).is_integer()  # type: ignore[arg-type]

    for key in _STRINGS:
        if not isinstance(kw[key], str) or not kw[key]:
            raise ValueError(f"{key} must be a non-empty string, got {kw[key]!r}")
    for key, allowed in _CHOICES.items():
        if kw[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {kw[key]!r}")
    for key in ("exporter_version", "source", "logits_output"):
        if not isinstance(kw.get(key, ""), str):
            raise ValueError(f"{key} must be a string, got {kw[key]!r}")
    size = kw["input_size"]
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(whole(v) and 1 <= v <= MAX_INPUT_SIDE for v in size)
    ):
        raise ValueError(
            f"input_size must be [height, width], each 1-{MAX_INPUT_SIDE}, got {size!r}"
        )
    kw["input_size"] = (int(size[0]), int(size[1]))
    for key in ("mean", "std"):
        v = kw[key]
        if not (isinstance(v, list) and len(v) == 3 and all(number(x) for x in v)):
            raise ValueError(f"{key} must be 3 numbers, got {v!r}")
        kw[key] = tuple(float(x) for x in v)
    # pixel units: (pixel - mean) / std must stay a sane float32 for pixels 0..255
    if not all(STD_RANGE[0] <= x <= STD_RANGE[1] for x in kw["std"]):
        raise ValueError(
            f"std must be 3 numbers from {STD_RANGE[0]:g} to {STD_RANGE[1]:g} (pixel units), "
            f"got {list(kw['std'])}"
        )
    if not all(abs(x) <= MEAN_LIMIT for x in kw["mean"]):
        raise ValueError(
            f"mean must be 3 numbers from {-MEAN_LIMIT:g} to {MEAN_LIMIT:g} (pixel units), "
            f"got {list(kw['mean'])}"
        )
    if not (whole(kw["dims"]) and kw["dims"] >= 1):
        raise ValueError(f"dims must be a positive whole number, got {kw['dims']!r}")
    kw["dims"] = int(kw["dims"])
    cosine = kw.get("int8_cosine", 0.0)
    if not (number(cosine) and -1.0 <= cosine <= 1.0):
        raise ValueError(f"int8_cosine must be a number from -1 to 1, got {cosine!r}")
    kw["int8_cosine"] = float(cosine)
    return kw


_INFOS: dict[tuple[str, int, int], ModelInfo] = {}  # read_model_info's, by file and version


def read_model_info(path: Path) -> ModelInfo:
    """Read a model file's metadata, checked against its graph, without building an
    inference session; kept while the file's size and time are unchanged (the protobuf is
    parsed whole: VGG16's fp32 file is 512 MiB, and a lookup may look at both twins)."""
    try:
        st = Path(path).stat()
        key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None  # refuse_non_model says why
    if key is not None and key in _INFOS:
        return _INFOS[key]
    info = _read_model_info(Path(path))
    if key is not None:
        _INFOS[key] = info
    return info


def _read_model_info(path: Path) -> ModelInfo:
    import onnx

    refuse_non_model(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        # (protobuf's own words: "Error parsing message with type 'onnx.ModelProto'")
        why = "damaged or truncated" if "parsing message" in str(exc) else first_line(exc)
        raise RtsearchError(f"{path}: not a readable ONNX model ({why})") from None
    props = {p.key: p.value for p in model.metadata_props}
    info = ModelInfo.from_props(props, where=str(path))
    weights = {t.name for t in model.graph.initializer}
    inputs = {v.name: _shape(v) for v in model.graph.input if v.name not in weights}
    check_graph(info, inputs, {v.name: _shape(v) for v in model.graph.output}, str(path))
    return info


def refuse_non_model(path: Path) -> None:
    """A model path that is no file (missing, a FIFO: reading one waited for ever), a
    0-byte one or an index file, in one line (onnx and onnxruntime only say "no graph", or
    "Protobuf parsing failed")."""
    path = Path(path)
    if not path.is_file():
        raise RtsearchError(
            f"{path}: not a regular file" if path.exists() else f"{path}: model file not found"
        )
    if path.stat().st_size == 0:
        raise RtsearchError(f"{path}: empty file (not a model; export it again)")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return  # loading it says why
    if head == b"\x89HDF\r\n\x1a\n":  # onnxruntime: "INVALID_PROTOBUF : Protobuf parsing failed"
        raise RtsearchError(
            f"{path}: an index file (HDF5), not a model: --model takes a .onnx file"
        )


def _shape(value) -> list[int | str | None]:
    """An ONNX value's shape: whole numbers where fixed, names (or None) where not."""
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]


def check_graph(info: ModelInfo, inputs: dict, outputs: dict, where: str) -> None:
    """The metadata's input and output are the graph's, with the sizes it states (shapes:
    name -> list of whole numbers where fixed, anything else where not)."""
    bad = f"{where}: bad model metadata"
    if info.input_name not in inputs:
        raise RtsearchError(
            f"{bad}: input_name {info.input_name!r} is not the graph's ({', '.join(inputs)})"
        )
    if info.feature_output not in outputs:
        raise RtsearchError(
            f"{bad}: feature_output {info.feature_output!r} is not among the graph's outputs "
            f"({', '.join(outputs)})"
        )
    shape = list(inputs[info.input_name])
    fixed = [d if isinstance(d, int) else None for d in shape]
    size_fits = fixed[2:] in ([None, None], list(info.input_size))  # free, or as stated
    if len(shape) != 4 or fixed[1] not in (None, 3) or not size_fits:
        raise RtsearchError(
            f"{bad}: input_size {list(info.input_size)} does not fit the graph's input "
            f"{shape} (N, 3, height, width)"
        )
    out = list(outputs[info.feature_output])
    if out and isinstance(out[-1], int) and out[-1] != info.dims:
        raise RtsearchError(
            f"{bad}: dims {info.dims}, but {info.feature_output} has {out[-1]} values"
        )


def unusable_env_dirs() -> list[str]:
    """$RTSEARCH_MODELS entries that name no folder: one line each, for `rtsearch models`."""
    lines = []
    for d in env_dirs():
        if not d.is_dir():
            why = "is a file, not a folder" if d.exists() else "folder not found"
            lines.append(f"$RTSEARCH_MODELS: {d}: {why} (ignored)")
    return lines


def env_dirs() -> list[Path]:
    """The folders $RTSEARCH_MODELS names, ``~`` expanded (a value set in quotes, or by a
    service manager, keeps it: it was looked for as a folder named ``~``)."""
    env = os.environ.get("RTSEARCH_MODELS") or ""
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p]


def search_dirs() -> list[Path]:
    """Where model names resolve, in order: $RTSEARCH_MODELS, the project's models/, user
    data; each folder once (named twice, its files were listed twice)."""
    dirs = env_dirs()
    if (PROJECT_MODELS_DIR.parent / "pyproject.toml").is_file():  # a source checkout
        dirs.append(PROJECT_MODELS_DIR)
    dirs.append(user_models_dir())
    seen: set[str] = set()
    unique = []
    for d in dirs:
        key = os.path.normcase(os.path.realpath(d))
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def user_models_dir() -> Path:
    return Path(platformdirs.user_data_dir("rtsearch")) / "models"


def writable_models_dir(*, make_named: bool = False) -> Path:
    """Where an export goes: the first search dir we can write to. A folder
    $RTSEARCH_MODELS names that is not there is passed over by the first use's export,
    not made (a typo's folder was made, and an 18 MB model exported into it); the export
    tool, asked for a model, makes it (``make_named``)."""
    named = set(env_dirs())
    tried: list[str] = []
    for d in search_dirs():
        if d in named and not make_named and not d.is_dir():
            continue
        tried.append(str(d))
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    # (it said "set $RTSEARCH_MODELS" to a user who had, to a folder of another's)
    raise RtsearchError(
        f"no models folder this user may write (tried {', '.join(tried) or 'none'}): set "
        "$RTSEARCH_MODELS to one"
    )


def model_files() -> dict[str, list[Path]]:
    """Every .onnx file in the search dirs by file name, in search order."""
    files: dict[str, list[Path]] = {}
    for d in search_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.onnx")):
                files.setdefault(f.name, []).append(f)
    return files


def available_models() -> list[Path]:
    """The model file each name finds, as names resolve (``first_readable``: a damaged
    file in an earlier folder does not hide a good one of its name)."""
    return [first_readable(files) for files in model_files().values()]


def _file_here(path: Path) -> bool | None:
    """Whether ``path`` is a file; None where this user may not look (an index made by
    another user names the model file in their private folder: it stopped every query)."""
    # (not is_file: from Python 3.14 it says False for every OSError)
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except PermissionError:
        return None
    except OSError:
        return False


def candidates(name: str) -> list[Path]:
    """Files named ``name``.onnx in the search dirs, in search order."""
    return [d / f"{name}.onnx" for d in search_dirs() if (d / f"{name}.onnx").is_file()]


def first_readable(files: list[Path]) -> Path:
    """The first of ``files`` (one name in several search dirs) whose metadata reads, saying
    which damaged ones it passes over: a damaged copy must not hide a good one. The first
    file when none reads (loading it says why)."""
    if len(files) == 1:
        return files[0]
    damaged = []
    for path in files:
        try:
            read_model_info(path)
        except RtsearchError as exc:
            damaged.append(str(exc))
            continue
        for problem in damaged:
            warn(f"{problem}; using {path}")
        return path
    return files[0]


def resolve_model(name_or_path: str | None = None, *, export_missing: bool = True) -> Path:
    """Turn a `--model` argument into a file; export the default model on first use. A
    bare file name (``vgg16-fc7.onnx``, as `rtsearch models` lists it) not in the current
    folder is looked up in the search dirs too."""
    name = name_or_path or DEFAULT_MODEL
    as_path = Path(name).expanduser()
    if as_path.suffix.lower() in (".pth", ".pt", ".h5") and as_path.is_file():
        raise RtsearchError(
            f"{as_path}: a weights file, not a model; VGG16 weights export to one with: "
            f"python tools/export_onnx.py vgg16 --weights {as_path}"
        )
    # (a file here with a name like one: loading it says what it is, an index or a photo)
    path_like = os.sep in name or "/" in name or (bool(as_path.suffix) and as_path.is_file())
    if as_path.suffix == ".onnx" or path_like:
        if as_path.is_file():
            return as_path
        found = [] if path_like else candidates(as_path.stem)
        if found:
            return _exported_readable(first_readable(found))
        if as_path.is_dir():
            raise RtsearchError(f"{as_path}: a folder, not a model file")
        if path_like:
            raise RtsearchError(f"{as_path}: model file not found")
        if export_missing and as_path.stem in FIRST_USE:  # as its name alone would
            return _export_first_use(as_path.stem)
        where = ", ".join(str(d) for d in search_dirs())
        raise RtsearchError(f"{as_path}: model file not found (here, nor in {where})")
    found = candidates(name)
    if found:
        return _exported_readable(first_readable(found))
    if export_missing and name in FIRST_USE:
        return _export_first_use(name)
    where = ", ".join(str(d) for d in search_dirs())
    near = sorted({Path(f).stem for f in model_files() if f.lower().startswith(name.lower())})
    # the model's own name, as `info` and `models` show it: vgg16 for vgg16-fc7.onnx, the
    # one file of that name but for its int8 twin (which the fp32 name leads to as usual)
    named = [
        s for s in near if s.lower().startswith(f"{name.lower()}-") and not s.endswith("-int8")
    ]
    if len(named) == 1:
        return resolve_model(named[0], export_missing=export_missing)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    raise RtsearchError(
        f"model {name!r} not found in {where} (export it with tools/export_onnx.py){hint}"
    )


def _exported_readable(path: Path) -> Path:
    """``path``; one of the files exported on first use that cannot be read is refused with
    the way out (a truncated one said only "not a readable ONNX model")."""
    if path.stem in FIRST_USE:
        try:
            read_model_info(path)
        except RtsearchError as exc:
            raise RtsearchError(f"{exc}: delete it, and it is exported again") from None
    return path


def _export_first_use(name: str) -> Path:
    from rtsearch.export import export_efficientnet_lite0

    out = writable_models_dir() / f"{name}.onnx"

    # on stderr: a command's stdout may be its data (`bench --json`, `query --json`)
    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    say(f"rtsearch: exporting {name} to {out} (first use)")
    try:
        export_efficientnet_lite0(out, int8=name.endswith("-int8"), log=say)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        raise RtsearchError(
            f"{out}: cannot write the {name} model ({exc.strerror or exc}); set "
            "$RTSEARCH_MODELS to a folder with room"
        ) from None
    return out


def find_model_for(
    name: str,
    feature_layer: str,
    identity: str,
    *,
    prefer_int8: bool = False,
    index: Path | None = None,
    variant: str = "",
    first: str = "",
    hint: str = "",
) -> Path:
    """The model file that made an index (same identity, ``index`` named when none is),
    found by conventional names, each file of a name looked at in turn until one fits: one
    of other weights, or damaged, in an earlier folder does not hide a good one in a later.

    ``variant`` ("fp32" | "int8") takes only files of it: the one rows are added to an
    index with (store.check_rows). ``first`` tries that variant first: the file that made
    the rows, so that `query` finds an indexed picture at distance 0. Without either,
    ``prefer_int8`` puts an int8 twin first, but only a faithful one (its export measured
    held-out feature cosine >= INT8_MIN_COSINE), and only on the CPU: on CUDA the int8 (QDQ)
    file runs slower than fp32 (EfficientNet-Lite0 on an H200: 320-358 vs 677-906 images/s
    at batch 1, 0.86-0.9x at the best batch). The default model's file of the kind wanted
    is exported on first use. ``hint``, where the file was (ModelRef.file), is looked at
    before them all."""
    from rtsearch.extractor import default_providers

    speed = prefer_int8 and not (variant or first)  # the viewer's faster twin, if faithful
    if speed and default_providers()[0] == "CUDAExecutionProvider":
        speed = False
    want = variant or first or ("int8" if speed else "fp32")
    stems = [name, f"{name}-{feature_layer}"]
    twins = [f"{s}-int8" for s in stems]
    names = twins + stems if want == "int8" else stems + twins
    damaged: list[str] = []
    others: list[str] = []  # files of this backbone that will not do, and why
    fallback: list[tuple[Path, ModelInfo]] = []  # of the other twin, or drifting: if none fits
    found: tuple[Path, ModelInfo] | None = None
    hinted = _file_here(Path(hint)) if hint else False
    looked = [Path(hint)] if hint and hinted else []
    looked += [path for stem in names for path in candidates(stem)]
    seen: set[Path] = set()  # (the hint is one of the others too, as a rule)
    for path in looked:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            info = read_model_info(path)
        except RtsearchError as exc:  # a damaged file must not hide a good one
            again = ", and it is exported again" if path.stem in FIRST_USE else ""
            damaged.append(f"{exc}: delete it{again}")
            continue
        if info.identity != identity:
            others.append(f"{path} has weights {short_weights(info.identity)}: another export")
        elif info.variant == want and (want == "fp32" or info.faithful_int8 or not speed):
            found = (path, info)
            break
        elif variant:
            others.append(f"{path} is the {info.variant} file")
        else:
            fallback.append((path, info))
    if found is None:  # the default model's file of that kind, on first use
        stem = next(
            (s for s in names if s in FIRST_USE and s.endswith("-int8") == (want == "int8")), None
        )
        if stem is not None and not candidates(stem):
            try:
                path = _export_first_use(stem)
                info = read_model_info(path)
            except RtsearchError as exc:  # its export failed: say why
                damaged.append(str(exc))
            else:
                if info.identity == identity:
                    found = (path, info)
    if found is None and fallback:  # the other twin; one that drifts last
        found = sorted(fallback, key=lambda m: m[1].variant == "int8" and not m[1].faithful_int8)[0]
    if found is not None:
        path, info = found
        for problem in dict.fromkeys(damaged):
            warn(f"{problem}; using {path}")
        if info.variant == "int8" and not info.faithful_int8 and "int8" not in (first, variant):
            warn(drift_warning(path, info))
        return path
    if hint and not hinted:  # (moved, or deleted: the index names it)
        gone = "not there now" if hinted is False else "in a folder this user may not read"
        others.insert(0, f"it was {hint}, {gone}")
    problems = list(dict.fromkeys(others + damaged))
    why = f" ({'; '.join(problems)})" if problems else ""
    way_out = (
        f"pass --model FILE of those weights (its {variant} file), or analyze the folder "
        "again into a new index"
        if variant
        else "pass --model FILE of those weights, or analyze the folder again into a new "
        "index with the model you have"
    )
    raise RtsearchError(
        (f"{index}: " if index is not None else "")
        + f"no {variant + ' ' if variant else ''}model file for {name} ({feature_layer}) "
        f"with the index's weights {short_weights(identity)}{why}; {way_out}"
    )


def model_option(path: Path) -> list[str]:
    """``--model X`` for a command a message suggests, naming the file at ``path``: nothing
    for the default model's fp32 file, its name where that finds this very file, else its
    path (a refit advised without it analysed with the default and was refused)."""
    try:
        same = resolve_model(path.stem, export_missing=False).resolve() == path.resolve()
    except (RtsearchError, OSError):
        same = False
    if same and path.stem == DEFAULT_MODEL:
        return []
    return ["--model", path.stem if same else str(path)]


def drift_warning(path: Path, info: ModelInfo) -> str:
    """What to say when an int8 file below INT8_MIN_COSINE is used."""
    measured = f"{info.int8_cosine:.3f}" if info.int8_cosine else "not measured"
    return (
        f"{path}: int8 model whose features drift from its fp32 twin's (held-out cosine "
        f"{measured}, under {INT8_MIN_COSINE}): results may differ; the fp32 model is exact"
    )


def twin_path(path: Path) -> Path:
    """The file named as ``path``'s twin beside it: NAME-int8.onnx for NAME.onnx, and the
    other way round."""
    stem = path.stem
    name = f"{stem[: -len('-int8')]}.onnx" if stem.endswith("-int8") else f"{stem}-int8.onnx"
    return path.with_name(name)


def short_weights(identity: str) -> str:
    """The weights part of a model identity, as `rtsearch models` and `info` show it."""
    return identity.rsplit("/", 1)[-1][:12]
