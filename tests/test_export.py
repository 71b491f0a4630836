"""The exporters as a user meets them: weights files in, ONNX models out that compute what
the original networks compute, carry the metadata contract, and refuse bad or hostile input."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import pytest
import skimage.data
from export_helpers import (
    TorchTensor,
    keras_layers,
    keras_reference,
    torch_reference,
    vgg_weights,
    write_keras_h5,
    write_torch_pth,
)
from fakes import make_gallery, write_tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rtsearch.errors import RtsearchError
from rtsearch.export import export_efficientnet_lite0, export_vgg16, load_state_dict
from rtsearch.export.download import fetch_vgg16
from rtsearch.export.onnx_build import sha256_file
from rtsearch.export.quantize import HELD_OUT_SAMPLES, sample_image
from rtsearch.extractor import preprocess
from rtsearch.models import ModelInfo, read_model_info

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "export_onnx.py"
CAT_CLASSES = range(281, 286)  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_features(path: Path, images: list[np.ndarray]) -> tuple[np.ndarray, ModelInfo]:
    info = read_model_info(path)
    (features,) = session(path).run([info.feature_output], {"input": preprocess(images, info)})
    return features, info


def photos() -> list[np.ndarray]:
    return [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]


# ---------------------------------------------------------------- VGG16, slim widths


@pytest.fixture(scope="module")
def slim_sd() -> dict[str, np.ndarray]:
    return vgg_weights()


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_torchvision_vgg16_matches_numpy_forward(tmp_path, slim_sd, layout):
    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd, legacy=layout == "legacy")
    out = export_vgg16(weights, tmp_path / "vgg16-fc7.onnx", log=lambda _m: None)
    features, info = run_features(out, photos())
    expected = np.stack([torch_reference(x.transpose(1, 2, 0), slim_sd) for x in _inputs(info)])
    assert features.shape == (3, 64)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert (info.name, info.feature_layer, info.variant, info.dims) == ("vgg16", "fc7", "fp32", 64)
    assert (info.channel_order, info.mean, info.std) == (
        "RGB",
        (123.675, 116.28, 103.53),
        (58.395, 57.12, 57.375),
    )
    assert info.weights_sha256 == sha256_file(weights)
    assert sorted(os.listdir(tmp_path)) == ["vgg.pth", "vgg16-fc7.onnx"]  # no temp files left


def test_keras_vgg16_matches_numpy_forward(tmp_path, slim_sd):
    layers = keras_layers(slim_sd)
    # Named .pth on purpose: the layout is detected from the content, not the name.
    weights = write_keras_h5(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.pth", layers)
    out = export_vgg16(weights, tmp_path / "vgg.onnx", log=lambda _m: None)
    features, info = run_features(out, photos())
    expected = np.stack([keras_reference(x.transpose(1, 2, 0), layers) for x in _inputs(info)])
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert (info.channel_order, info.mean, info.std) == (
        "BGR",
        (103.939, 116.779, 123.68),
        (1.0, 1.0, 1.0),
    )
    assert info.identity == f"vgg16/fc7/{sha256_file(weights)}"


def _inputs(info: ModelInfo) -> np.ndarray:
    return preprocess(photos(), info)


def test_vgg16_int8_keeps_metadata_and_features(tmp_path, slim_sd):
    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    messages: list[str] = []
    out = export_vgg16(weights, tmp_path / "vgg-int8.onnx", int8=True, log=messages.append)
    fp32 = export_vgg16(weights, tmp_path / "vgg.onnx", log=messages.append)
    q, qinfo = run_features(out, photos())
    f, info = run_features(fp32, photos())
    assert qinfo.variant == "int8" and qinfo.identity == info.identity
    assert q.shape == f.shape
    assert any("cosine" in m and "held-out" in m for m in messages)


def test_int8_calibration_folder_and_quality_gate(tmp_path, slim_sd):
    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, image in enumerate(photos()):
        Image.fromarray(image).save(calib / f"{i}.jpg")
    (calib / "notes.txt").write_text("not an image")
    out = tmp_path / "models" / "vgg-int8.onnx"
    with pytest.raises(RtsearchError, match="int8 export rejected"):
        # No int8 model reproduces fp32 exactly, so a gate above 1 always rejects.
        export_vgg16(weights, out, int8=True, calib_dir=calib, min_cosine=1.01, log=print)
    assert not out.exists() and os.listdir(out.parent) == []
    with pytest.raises(RtsearchError, match="no images to calibrate int8 on"):
        export_vgg16(weights, out, int8=True, calib_dir=tmp_path / "models", log=print)


# ---------------------------------------------------------------- bad and hostile input


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoints_holding_other_objects_and_the_imagenet_example_convert(tmp_path, slim_sd):
    """A checkpoint's training arguments or a numpy scalar beside its weights refused it
    all ("refusing to unpickle argparse.Namespace (not a tensor)"); PyTorch's ImageNet
    example, whose DataParallel wraps only the features (features.module.0.weight), was
    "no torchvision VGG layers"."""
    import argparse

    plain = export_vgg16(write_torch_pth(tmp_path / "plain.pth", slim_sd), tmp_path / "p.onnx")
    want = run_features(plain, photos())[0]
    example = {
        k.replace("features.", "features.module.") if k.startswith("features.") else k: v
        for k, v in slim_sd.items()
    }
    checkpoints = {
        "kept.pth": {
            "epoch": 90, "best_acc1": np.float64(71.6), "arch": "vgg16",
            "args": argparse.Namespace(lr=0.01, arch="vgg16"), "state_dict": slim_sd,
        },
        "example.pth": {"epoch": 90, "arch": "vgg16", "state_dict": example},
    }  # fmt: skip
    for name, checkpoint in checkpoints.items():
        weights = write_torch_pth(tmp_path / name, checkpoint)
        got = run_features(export_vgg16(weights, tmp_path / "c.onnx", log=print), photos())[0]
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("layout", ["pickle", "zip"])
def test_malicious_pickle_is_refused_without_running(tmp_path, layout):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"features.0.weight": _Evil(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if layout == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(RtsearchError) as info:
        load_state_dict(path)
    assert not marker.exists()
    # nothing a checkpoint names but tensors is imported or called: it stands for nothing
    said = {
        "zip": f"no tensors in this PyTorch file (only objects of {os.system.__module__}.system, "
        "which are not read: a whole pickled model? torch.save its state_dict())",
        "pickle": "not a PyTorch weights file (no torch magic number)",
    }
    assert str(info.value) == f"{path}: {said[layout]}"
    with pytest.raises(RtsearchError):
        export_vgg16(path, tmp_path / "out.onnx", log=print)
    assert not marker.exists() and not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"just some text\n", "not a PyTorch (.pth) or Keras (.h5) weights file"),
        (b"", "empty file (not weights; an interrupted download?)"),
        (b"\x80\x02garbage", "not a PyTorch weights file"),
        (b"PK\x03\x04truncated zip", "truncated or damaged (a zip file without its end)"),
    ],
)
def test_bad_weights_file_names_the_file(tmp_path, content, problem):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(RtsearchError, match="^" + re.escape(str(path))) as info:
        export_vgg16(path, tmp_path / "out.onnx", log=print)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_nan_weights_are_refused(tmp_path, slim_sd):
    whole = write_torch_pth(tmp_path / "vgg.pth", slim_sd).read_bytes()
    cut = tmp_path / "cut.pth"  # an interrupted download
    cut.write_bytes(whole[: len(whole) * 9 // 10])
    with pytest.raises(RtsearchError, match=re.escape(f"{cut}: truncated or damaged")):
        export_vgg16(cut, tmp_path / "out.onnx", log=print)
    poisoned = dict(slim_sd)
    poisoned["classifier.0.weight"] = slim_sd["classifier.0.weight"].copy()
    poisoned["classifier.0.weight"][0, 0] = np.nan
    for weights in (
        write_torch_pth(tmp_path / "nan.pth", poisoned),
        write_keras_h5(tmp_path / "nan.h5", keras_layers(poisoned)),
    ):
        with pytest.raises(RtsearchError, match=re.escape(f"{weights}: fc6 holds NaN")):
            export_vgg16(weights, tmp_path / "out.onnx", log=print)
    assert not (tmp_path / "out.onnx").exists()


def test_weights_of_the_wrong_rank_type_or_flavour_are_one_line(tmp_path, slim_sd, capsys):
    """A layer of the wrong rank or of strings crashed the exporter with a traceback; the
    batch-norm VGG16 and Keras's top-less file were called a wrong conv count or
    'is this VGG16?'."""
    from rtsearch.export import cli

    flat_fc6 = dict(slim_sd, **{"classifier.0.weight": slim_sd["classifier.0.weight"].ravel()})
    layers = keras_layers(slim_sd)
    flat_conv = dict(
        layers, block1_conv1=(layers["block1_conv1"][0][0, 0], layers["block1_conv1"][1])
    )
    text_bias = dict(layers, fc2=(layers["fc2"][0], np.array([b"x"] * len(layers["fc2"][1]))))
    bn = dict(slim_sd)
    for key in [k for k in slim_sd if k.startswith("features.") and k.endswith(".bias")]:
        index = int(key.split(".")[1])
        bn[f"features.{index}.running_mean"] = np.zeros_like(slim_sd[key])
    notop = {k: v for k, v in layers.items() if not k.startswith("fc")}
    flat_group = write_keras_h5(tmp_path / "flatgroup.h5", layers)
    with h5py.File(flat_group, "r+") as f:  # fc1 a dataset where Keras has a group
        del f["fc1"]
        f["fc1"] = layers["fc1"][0]
    # shapes said as the Keras file holds them (they were said as turned for ONNX)
    fc1, (fc2, fc2_bias) = layers["fc1"][0], layers["fc2"]
    thin_fc2 = dict(layers, fc2=(fc2[:-3], fc2_bias))
    conv = layers["block2_conv1"][0]
    wide_conv = dict(
        layers, block2_conv1=(np.concatenate([conv, conv[:, :, :1]], 2), conv[0, 0, 0])
    )
    cases = [
        (
            write_keras_h5(tmp_path / "thin.h5", thin_fc2),
            f"fc1/fc2 kernels of shapes {fc1.shape}/{fc2[:-3].shape} do not fit VGG16 "
            f"(expected ({fc1.shape[0]}, *)/({fc1.shape[1]}, *))",
        ),
        (
            write_keras_h5(tmp_path / "wide.h5", wide_conv),
            f"Keras layer 'block2_conv1' has a kernel of shape {wide_conv['block2_conv1'][0].shape}"
            f", expected (3, 3, {conv.shape[2]}, *)",
        ),
        (write_torch_pth(tmp_path / "flat.pth", flat_fc6), "fc6/fc7 shapes"),
        (write_keras_h5(tmp_path / "flat.h5", flat_conv), "'block1_conv1' has a kernel of shape"),
        (write_keras_h5(tmp_path / "text.h5", text_bias), "layer fc2 holds text, not numbers"),
        (write_torch_pth(tmp_path / "bn.pth", bn), "batch-norm VGG16 (vgg16_bn) weights"),
        (write_keras_h5(tmp_path / "notop.h5", notop), "without its top (include_top=False)"),
        (flat_group, "Keras layer 'fc1' is not a group of weights"),
    ]
    for weights, problem in cases:
        out = tmp_path / "out.onnx"
        assert cli.main(["vgg16", "--weights", str(weights), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"export_onnx: error: {weights}: ") and err.count("\n") == 1
        assert problem in err, err
        assert not out.exists()


def test_the_output_is_checked_before_the_work_and_written_as_an_index_is(
    tmp_path, slim_sd, capsys
):
    """--out naming the weights file itself overwrote them; a symlinked --out lost its link;
    a folder that refuses files was found only after the weights were read."""
    from rtsearch.export import cli

    weights = write_torch_pth(tmp_path / "w.onnx", slim_sd)  # a user's odd naming
    before = weights.read_bytes()
    assert cli.main(["vgg16", "--weights", str(weights), "--out", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "is the weights file itself; choose another --out" in err
    assert weights.read_bytes() == before
    assert cli.main(["vgg16", "--weights", str(weights), "--out", "/proc/x.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("export_onnx: error: /proc/x.onnx: cannot write model (") and (
        "read " not in err
    )
    target = tmp_path / "store" / "vgg.onnx"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "models" / "vgg16-fc7.onnx"
    link.parent.mkdir()
    link.symlink_to(target)
    assert cli.main(["vgg16", "--weights", str(weights), "--out", str(link)]) == 0
    assert link.is_symlink() and read_model_info(target).name == "vgg16"


def test_export_requests_that_cannot_be_met_are_refused_before_the_work(tmp_path, capsys):
    from rtsearch.export import cli

    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    cases = [
        (["--calib", str(tmp_path)], "--calib and --force apply to --int8 exports only"),
        (["--force"], "--calib and --force apply to --int8 exports only"),
        (["--int8", "--calib", str(tmp_path / "nope")], f"{tmp_path / 'nope'}: folder not found"),
        (["--out", str(tmp_path / "m.bin")], "m.bin: the file name must end in .onnx"),
        (["--out", str(tmp_path / "afile/x.onnx")], "afile is a file, not a folder"),
        (
            ["--int8", "--out", str(tmp_path / "folder")],
            "cannot write (is a folder; name the .onnx file)",
        ),
    ]
    for args, problem in cases:
        assert cli.main(["efficientnet-lite0", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("export_onnx: error: ") and problem in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder"]


def test_a_weights_file_given_as_model_says_to_export_it(tmp_path, slim_sd):
    from rtsearch.models import resolve_model

    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    with pytest.raises(RtsearchError, match=re.escape(f"{weights}: a weights file, not a model")):
        resolve_model(str(weights))


def test_wrong_network_is_refused(tmp_path, slim_sd):
    small = {k: v for k, v in slim_sd.items() if not k.startswith("features.28")}
    weights = write_torch_pth(tmp_path / "twelve.pth", small)
    with pytest.raises(RtsearchError, match="12 conv layers"):
        export_vgg16(weights, tmp_path / "out.onnx", log=print)
    layers = keras_layers(slim_sd)
    del layers["fc2"]
    with pytest.raises(RtsearchError, match="'fc2'"):
        export_vgg16(write_keras_h5(tmp_path / "k.h5", layers), tmp_path / "out.onnx", log=print)


def test_cli_from_another_directory(tmp_path, slim_sd):
    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    out = tmp_path / "m" / "vgg.onnx"
    ok = _tool(tmp_path, "vgg16", "--weights", weights, "--out", out)
    assert ok.returncode == 0, ok.stderr
    assert read_model_info(out).name == "vgg16" and str(out) in ok.stdout
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    bad = _tool(tmp_path, "vgg16", "--weights", text, "--out", out)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"export_onnx: error: {text}: not a PyTorch (.pth) or Keras (.h5) weights file"
    ]


def test_cli_int8_gate_fails_unless_forced(tmp_path, slim_sd, monkeypatch, capsys):
    from rtsearch.export import cli

    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    out = tmp_path / "q.onnx"
    monkeypatch.setattr(cli, "QUALITY_GATE", 1.01)  # unreachable: every int8 model fails
    args = ["vgg16", "--weights", str(weights), "--int8", "--out", str(out)]
    assert cli.main(args) == 2 and not out.exists()
    assert "int8 export rejected" in capsys.readouterr().err
    assert cli.main([*args, "--force"]) == 0 and read_model_info(out).variant == "int8"


def _tool(cwd: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_download_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    from rtsearch.export import download

    monkeypatch.setattr(download, "weights_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(RtsearchError) as info:
        fetch_vgg16(log=lambda _m: None, url=(tmp_path / "absent.pth").as_uri())
    message = str(info.value)
    assert "put it at" in message and str(tmp_path / "cache" / download.VGG16_FILE) in message
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"not the weights")
    with pytest.raises(RtsearchError, match="not kept"):
        fetch_vgg16(log=lambda _m: None, url=wrong.as_uri())
    assert os.listdir(tmp_path / "cache") == []
    # a cut-short copy already there: the advice to put the file there says it is not it
    (tmp_path / "cache" / download.VGG16_FILE).write_bytes(b"half a download")
    said: list[str] = []
    with pytest.raises(RtsearchError) as info:
        fetch_vgg16(log=said.append, url=(tmp_path / "absent.pth").as_uri())
    assert "(the file there now has sha256 " in str(info.value)
    assert any("damaged or another file): not used" in line for line in said)


# ---------------------------------------------------------------- the restricted unpickler


@pytest.mark.parametrize("legacy", [False, True])
def test_unpickler_honours_offsets_strides_and_dtypes(tmp_path, legacy):
    storage = np.arange(60, dtype=np.float32)
    tensors = {
        "whole": TorchTensor(storage, 0, (6, 10), (10, 1)),
        "transposed": TorchTensor(storage, 0, (10, 6), (1, 10)),
        "window": TorchTensor(storage, 12, (3, 4), (10, 2)),
        "scalar": np.array(3, dtype=np.int64),
        "half": np.linspace(-1, 1, 7).astype(np.float16),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 4), np.float32),
    }
    loaded = load_state_dict(write_torch_pth(tmp_path / "t.pth", tensors, legacy=legacy))
    grid = storage.reshape(6, 10)
    np.testing.assert_array_equal(loaded["whole"], grid)
    np.testing.assert_array_equal(loaded["transposed"], grid.T)
    np.testing.assert_array_equal(loaded["window"], grid[1:4, 2:10:2])
    for name in ("scalar", "half", "mask", "empty"):
        assert loaded[name].dtype == tensors[name].dtype
        np.testing.assert_array_equal(loaded[name], tensors[name])


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    offset=st.integers(0, 5),
    permute=st.booleans(),
)
def test_unpickler_geometry_property(tmp_path_factory, shape, offset, permute):
    base = np.random.default_rng(0).standard_normal(offset + int(np.prod(shape)))
    view = base[offset:].reshape(shape)
    view = view.transpose() if permute else view
    strides = tuple(s // 8 for s in view.strides)
    tensor = TorchTensor(base, offset, view.shape, strides)
    path = tmp_path_factory.mktemp("geom") / "g.pth"
    loaded = load_state_dict(write_torch_pth(path, {"t": tensor}))["t"]
    assert loaded.tobytes() == np.ascontiguousarray(view).tobytes()


def test_tensor_past_its_storage_is_refused(tmp_path):
    bad = TorchTensor(np.zeros(4, np.float32), 2, (4,), (1,))
    with pytest.raises(RtsearchError, match="past its storage"):
        load_state_dict(write_torch_pth(tmp_path / "bad.pth", {"t": bad}))


def test_unpickler_bit_identical_to_torch_load(tmp_path):
    torch = pytest.importorskip("torch")
    from rtsearch.export.efficientnet_lite0 import weights_path

    g = torch.Generator().manual_seed(0)
    base = torch.randn(8, 9, generator=g)
    state = {
        "w": base,
        "t": base.t(),
        "s": base[2:5, 1:7],
        "h": base.half(),
        "i": torch.arange(5),
        "p": torch.nn.Parameter(torch.ones(3)),
    }
    files = [weights_path()]  # the real legacy-format file
    for legacy in (False, True):
        files.append(tmp_path / f"s{legacy}.pth")
        torch.save(state, files[-1], _use_new_zipfile_serialization=not legacy)
    for path in files:
        ours = load_state_dict(path)
        for key, tensor in torch.load(path, map_location="cpu", weights_only=True).items():
            ref = tensor.detach().numpy()
            assert ours[key].dtype == ref.dtype and ours[key].shape == ref.shape
            assert ours[key].tobytes() == ref.tobytes(), key


# ---------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> Path:
    return export_efficientnet_lite0(
        tmp_path_factory.mktemp("lite0") / "efficientnet-lite0.onnx", log=lambda _m: None
    )


@pytest.fixture(scope="module")
def lite0_int8(tmp_path_factory) -> tuple[Path, list[str]]:
    messages: list[str] = []
    out = tmp_path_factory.mktemp("lite0q") / "efficientnet-lite0-int8.onnx"
    return export_efficientnet_lite0(out, int8=True, log=messages.append), messages


def top5(model: Path, images: list[np.ndarray]) -> np.ndarray:
    info = read_model_info(model)
    batch = preprocess(images, info)
    (logits,) = session(model).run([info.logits_output], {info.input_name: batch})
    return np.argsort(-logits, axis=1)[:, :5]


def test_lite0_recognises_a_cat_and_an_espresso(lite0):
    cat, coffee = top5(lite0, [skimage.data.chelsea(), skimage.data.coffee()])
    assert cat[0] in CAT_CLASSES
    assert ESPRESSO in coffee


def test_lite0_metadata_and_outputs(lite0):
    info = read_model_info(lite0)
    assert (info.name, info.feature_layer, info.dims, info.variant) == (
        "efficientnet-lite0",
        "pool",
        1280,
        "fp32",
    )
    assert (info.input_size, info.channel_order, info.resize) == ((224, 224), "RGB", "squash")
    assert (info.mean, info.std, info.logits_output) == ((127,) * 3, (128,) * 3, "logits")
    features, _ = run_features(lite0, photos())  # batch of 3: the batch axis is dynamic
    assert features.shape == (3, 1280) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all()  # pooled ReLU6 maps


def test_lite0_int8_close_to_fp32(lite0, lite0_int8):
    path, messages = lite0_int8
    info, fp32_info = read_model_info(path), read_model_info(lite0)
    assert info.variant == "int8" and info.identity == fp32_info.identity
    images = [*photos(), *(sample_image(n) for n in HELD_OUT_SAMPLES)]
    q, _ = run_features(path, images)
    f, _ = run_features(lite0, images)
    cos = np.sum(q * f, axis=1) / (np.linalg.norm(q, axis=1) * np.linalg.norm(f, axis=1))
    assert cos.mean() >= 0.99, cos
    assert cos.min() >= 0.98, cos  # measured 0.989+ on AVX2-only, 0.993+ on VNNI CPUs
    assert top5(path, [skimage.data.chelsea()])[0][0] in CAT_CLASSES  # logits kept too
    assert any("int8 vs fp32 feature cosine" in m for m in messages)
    assert path.stat().st_size < 0.4 * lite0.stat().st_size
    # The held-out fidelity is recorded in the file; the viewer's default choice reads it.
    assert info.int8_cosine >= 0.99 and info.faithful_int8 and not fp32_info.faithful_int8


# ---------------------------------------------------------------- full size (slow)


@pytest.mark.slow
def test_full_size_vgg16(tmp_path):
    start = time.perf_counter()
    sd = vgg_weights(widths=(64, 128, 256, 512, 512), fc=4096, seed=1)
    weights = write_torch_pth(tmp_path / "vgg16.pth", sd)
    out = export_vgg16(weights, tmp_path / "vgg16-fc7.onnx", log=print)
    features, info = run_features(out, [skimage.data.astronaut()])
    assert info.dims == 4096 and features.shape == (1, 4096)
    x = preprocess([skimage.data.astronaut()], info)[0].transpose(1, 2, 0)
    expected = torch_reference(x, sd)
    error = np.linalg.norm(features[0] - expected) / np.linalg.norm(expected)
    assert error < 1e-4, error
    print(f"full-size VGG16 export + check: {time.perf_counter() - start:.1f} s")


@pytest.mark.parametrize(("recorded", "chosen"), [(0.995, "tiny-int8.onnx"), (0.95, "tiny.onnx")])
def test_viewer_default_takes_only_a_faithful_int8_twin(tmp_path, monkeypatch, recorded, chosen):
    """find_model_for(prefer_int8=True), as `rtsearch view` and `demo` call it, takes the
    int8 twin only when its export measured feature cosine >= 0.99; fp32 is always chosen
    without the preference."""
    from dataclasses import replace

    import onnx
    from fakes import write_tiny_model
    from onnx import helper

    from rtsearch.models import find_model_for

    fp32 = write_tiny_model(tmp_path / "tiny.onnx")
    model = onnx.load(str(fp32))
    info = read_model_info(fp32)
    helper.set_model_props(model, replace(info, variant="int8", int8_cosine=recorded).to_props())
    onnx.save(model, str(tmp_path / "tiny-int8.onnx"))
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path))
    args = (info.name, info.feature_layer, info.identity)
    assert find_model_for(*args, prefer_int8=True).name == chosen
    assert find_model_for(*args).name == "tiny.onnx"
    # with CUDA present fp32 wins: the int8 (QDQ) file runs slower there
    monkeypatch.setattr(
        "rtsearch.extractor.default_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert find_model_for(*args, prefer_int8=True).name == "tiny.onnx"


def test_a_damaged_int8_twin_is_passed_over_with_a_warning(tmp_path, monkeypatch, capsys):
    from fakes import write_tiny_model

    from rtsearch.models import find_model_for

    fp32 = write_tiny_model(tmp_path / "tiny.onnx")
    twin = tmp_path / "tiny-int8.onnx"
    twin.write_bytes(fp32.read_bytes()[:3000])  # an interrupted copy
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path))
    info = read_model_info(fp32)
    args = (info.name, info.feature_layer, info.identity)
    assert find_model_for(*args, prefer_int8=True) == fp32
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {twin}: not a readable ONNX model (")
    assert err.endswith(f"; using {fp32}\n") and err.count("\n") == 1
    fp32.unlink()
    with pytest.raises(RtsearchError, match=r"no model file for tiny .*not a readable ONNX"):
        find_model_for(*args, prefer_int8=True)


def test_a_failed_first_use_export_is_named_when_no_model_is_found(tmp_path, monkeypatch):
    """And the folders tried are named: it said "set $RTSEARCH_MODELS" to a user who had
    set it, to another user's folder."""
    from rtsearch import models

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    dirs = [blocked / "models", blocked / "user"]  # (as root, no folder is unwritable)
    monkeypatch.setattr(models, "search_dirs", lambda: dirs)
    said = (
        f"no models folder this user may write (tried {dirs[0]}, {dirs[1]}): set "
        "$RTSEARCH_MODELS to one"
    )
    with pytest.raises(RtsearchError) as refused:  # once, not once per file name tried
        models.find_model_for(models.DEFAULT_MODEL, "pool", "x/pool/y")
    assert f"weights y ({said}); pass --model" in str(refused.value)


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocess_is_the_metadata_formula(order):
    """The lookup-table normalisation equals (pixel - mean) / std in the model's channel
    order, NCHW, bit for bit, per channel (VGG16's Caffe means in BGR, torchvision's)."""
    from dataclasses import replace

    from fakes import tiny_model_info

    from rtsearch.extractor import fit_to_input

    info = replace(
        tiny_model_info(),
        input_size=(24, 40),
        channel_order=order,
        mean=(103.939, 116.779, 123.68),
        std=(58.395, 57.12, 1.0),
    )
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (50, 70, 3), dtype=np.uint8) for _ in range(3)]
    got = preprocess(images, info)
    for i, image in enumerate(images):
        pixels = fit_to_input(image, info).astype(np.float32)
        if order == "BGR":
            pixels = pixels[..., ::-1]
        want = (pixels - np.asarray(info.mean, np.float32)) / np.asarray(info.std, np.float32)
        np.testing.assert_array_equal(got[i], want.transpose(2, 0, 1))
    assert got.shape == (3, 3, 24, 40) and got.dtype == np.float32 and got.flags.c_contiguous


def test_an_empty_model_file_and_a_models_path_that_is_not_a_folder_are_said(
    tmp_path, monkeypatch, capsys
):
    """A 0-byte .onnx was 'not an rtsearch model' to `models` and onnxruntime's "No graph
    was found in the protobuf" to analyze; a mistyped $RTSEARCH_MODELS was ignored silently."""
    from rtsearch.cli import main
    from rtsearch.extractor import Extractor

    empty = tmp_path / "empty.onnx"
    empty.touch()
    said = f"{empty}: empty file (not a model; export it again)"
    with pytest.raises(RtsearchError) as info:
        Extractor(empty)
    assert str(info.value) == said
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv(
        "RTSEARCH_MODELS", os.pathsep.join([str(tmp_path / "typo"), str(tmp_path / "afile")])
    )
    assert main(["models"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: $RTSEARCH_MODELS: {tmp_path / 'typo'}: folder not found (ignored)",
        f"warning: $RTSEARCH_MODELS: {tmp_path / 'afile'}: is a file, not a folder (ignored)",
    ]
    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path))
    assert main(["models"]) == 0
    assert said in capsys.readouterr().out
    # a FIFO named .onnx: `models` waited on it for ever, `--model` said "not found"
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    assert main(["models"]) == 0
    assert f"{fifo}: not a regular file" in capsys.readouterr().out
    with pytest.raises(RtsearchError, match=f"^{fifo}: not a regular file$"):
        Extractor(fifo)
    # "~/..." set in quotes (or by a service manager) is the home folder's, not "./~"
    home = tmp_path / "home"
    write_tiny_model(home / "mm" / "tiny.onnx")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RTSEARCH_MODELS", "~/mm")
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["path"] == str(home / "mm" / "tiny.onnx")]
    assert len(mine) == 1 and mine[0]["int8_cosine"] is None  # fp32: none measured, not 0.0


def test_the_first_use_export_talks_on_stderr_only(tmp_path, monkeypatch, capsys):
    """`bench --json` on a fresh machine printed the export's progress into its JSON."""
    import rtsearch.export as export_pkg
    from rtsearch import models

    def fake_export(out: Path, int8: bool = False, log=print) -> Path:
        log(f"efficientnet-lite0: checking the fp32 model's features, then writing it to {out}")
        out.write_bytes(b"model")
        return out

    monkeypatch.setattr(models, "search_dirs", lambda: [])
    monkeypatch.setattr(models, "writable_models_dir", lambda: tmp_path)
    monkeypatch.setattr(export_pkg, "export_efficientnet_lite0", fake_export)
    got = models.resolve_model("efficientnet-lite0")
    out, err = capsys.readouterr()
    assert got == tmp_path / "efficientnet-lite0.onnx" and got.is_file()
    assert out == ""
    assert "(first use)" in err and "then writing it to" in err


# ------------------------------------------- found by a first-time user's export hunt


def test_keras_vgg19_weights_are_refused_not_exported_as_vgg16(tmp_path, slim_sd, capsys):
    """Keras VGG19's extra convs (block3_conv4, ...) were passed over: the 13 VGG16 names
    built a model of the right shapes and wrong features, without a word."""
    from rtsearch.export import cli

    layers = keras_layers(slim_sd)
    for block in (3, 4, 5):  # VGG19: a fourth conv in each of the last three blocks
        kernel, bias = layers[f"block{block}_conv3"]
        layers[f"block{block}_conv4"] = (kernel.copy(), bias.copy())
    weights = write_keras_h5(tmp_path / "vgg19.h5", layers)
    out = tmp_path / "v.onnx"
    assert cli.main(["vgg16", "--weights", str(weights), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"export_onnx: error: {weights}: 16 conv layers (block3_conv4, block4_conv4, "
        "block5_conv4 beyond VGG16's), VGG16 has 13 (is this VGG19?)\n"
    )
    assert not out.exists()


def test_a_checkpoint_of_two_weight_sets_is_not_guessed_at(tmp_path, slim_sd, capsys):
    """{"ema": zeros, "model": trained}: the first set found was exported without a word,
    and every picture got the same features."""
    from rtsearch.export import cli

    zeros = {f"ema.{k}": np.zeros_like(v) for k, v in slim_sd.items()}
    both = write_torch_pth(
        tmp_path / "ckpt.pth", {**zeros, **{f"model.{k}": v for k, v in slim_sd.items()}}
    )
    out = tmp_path / "v.onnx"
    assert cli.main(["vgg16", "--weights", str(both), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"export_onnx: error: {both}: holds 2 sets of VGG weights ('ema.', 'model.'); choose "
        "one with --weights-prefix, e.g. --weights-prefix ema.\n"
    )
    args = ["vgg16", "--weights", str(both), "--out", str(out), "--weights-prefix"]
    assert cli.main([*args, "student"]) == 2
    assert (
        "no VGG weights under 'student'; the file holds 'ema.', 'model.'" in capsys.readouterr().err
    )
    # the zeroed set: refused after the check of its features, nothing written
    assert cli.main([*args, "ema"]) == 2
    err = capsys.readouterr().err
    said = f"{out}: not written: the model gives all-zero features for each of 4 test photos"
    assert f"export_onnx: error: {said}" in err
    # it said "writing fp32 model to OUT" and then that OUT was not written
    assert "checking the fp32 model's features, then writing it" in err
    assert "writing fp32 model" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]
    assert cli.main([*args, "model."]) == 0
    plain = export_vgg16(
        write_torch_pth(tmp_path / "plain.pth", slim_sd), tmp_path / "p.onnx", log=print
    )
    images = photos()
    np.testing.assert_allclose(
        run_features(out, images)[0], run_features(plain, images)[0], rtol=1e-5, atol=1e-6
    )


def test_zero_and_integer_weights_are_refused(tmp_path, slim_sd):
    zero_fc7 = dict(slim_sd)
    zero_fc7["classifier.3.weight"] = np.zeros_like(slim_sd["classifier.3.weight"])
    zero_fc7["classifier.3.bias"] = np.zeros_like(slim_sd["classifier.3.bias"])
    out = tmp_path / "m" / "v.onnx"
    for int8 in (False, True):
        with pytest.raises(RtsearchError) as refused:
            export_vgg16(write_torch_pth(tmp_path / "z.pth", zero_fc7), out, int8=int8, log=print)
        assert str(refused.value) == (
            f"{out}: not written: the model gives all-zero features for each of 4 test photos "
            "(weights untrained, zeroed or damaged; a checkpoint may hold another set of them)"
        )
        assert os.listdir(out.parent) == []  # neither the model nor the int8 work folder
    whole = {k: np.rint(v * 100).astype(np.int64) for k, v in slim_sd.items()}
    weights = write_torch_pth(tmp_path / "int.pth", whole)
    with pytest.raises(RtsearchError, match="holds int64 values, not floating-point weights"):
        export_vgg16(weights, out, log=print)


def test_the_default_out_is_where_names_are_looked_up(tmp_path, slim_sd, monkeypatch, capsys):
    """Installed without -e, the default --out was models/ inside site-packages, where no
    lookup searched: `--model vgg16-fc7` then said "not found"."""
    from rtsearch import models
    from rtsearch.cli import main
    from rtsearch.export import cli

    monkeypatch.setenv("RTSEARCH_MODELS", str(tmp_path / "mine"))
    monkeypatch.setattr(models, "PROJECT_MODELS_DIR", tmp_path / "site-packages" / "models")
    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    assert cli.main(["vgg16", "--weights", str(weights)]) == 0
    made = tmp_path / "mine" / "vgg16-fc7.onnx"
    assert capsys.readouterr().out.startswith(f"{made} (")
    assert models.resolve_model("vgg16-fc7") == made
    assert models.resolve_model("vgg16-fc7.onnx") == made  # as `rtsearch models` names it
    # the model's own name, as `info` shows it ("model 'vgg16' not found ...; did you mean
    # vgg16-fc7?"); a part of one is not a name
    assert models.resolve_model("vgg16") == made == models.resolve_model("VGG16")
    with pytest.raises(
        RtsearchError, match=r"model 'vgg' not found in .*; did you mean vgg16-fc7\?$"
    ):
        models.resolve_model("vgg")
    assert main(["models"]) == 0
    assert capsys.readouterr().out.startswith(f"{made}\n  vgg16 fp32 fc7 64-d")
    # exporting other weights over it says what that means for indexes made with it
    other = write_torch_pth(tmp_path / "other.pth", vgg_weights(seed=1))
    old = read_model_info(made).identity
    twin = made.with_name("vgg16-fc7-int8.onnx")
    shutil.copy(made, twin)  # the int8 name beside it, of the old weights
    assert cli.main(["vgg16", "--weights", str(other)]) == 0
    err = capsys.readouterr().err
    assert f"note: {made} held vgg16 weights {old.rsplit('/', 1)[-1][:12]}, now " in err
    # and the file named as its twin is not one now (the viewer took the fp32 file, unsaid)
    new = read_model_info(made).identity.rsplit("/", 1)[-1][:12]
    assert (
        f"note: {twin} beside it holds vgg16 weights {old.rsplit('/', 1)[-1][:12]}, not {new}: "
        "the two are no twins; export it again from the same weights, or move one of them\n"
    ) in err


def test_a_damaged_model_does_not_hide_a_good_one_of_its_name(tmp_path, monkeypatch, capsys):
    from fakes import write_tiny_model

    from rtsearch.cli import main
    from rtsearch.models import available_models, find_model_for, resolve_model

    first, second = tmp_path / "first", tmp_path / "second"
    good = write_tiny_model(second / "tiny.onnx")
    first.mkdir()
    (first / "tiny.onnx").write_bytes(b"junk")
    monkeypatch.setenv("RTSEARCH_MODELS", os.pathsep.join(map(str, (first, second))))
    info = read_model_info(good)
    for found in (
        lambda: resolve_model("tiny"),
        lambda: find_model_for(info.name, info.feature_layer, info.identity),
        # what bench measures: it took the damaged file, and measured no tiny model at all
        lambda: next(p for p in available_models() if p.name == "tiny.onnx"),
    ):
        assert found() == good
        err = capsys.readouterr().err
        assert err.startswith(f"warning: {first / 'tiny.onnx'}: not a readable ONNX model")
        assert err.endswith(f"; using {good}\n")
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{first / 'tiny.onnx'}: not a readable ONNX model")
    assert out[0].endswith(f"(not used: its name finds {good})")  # (not "found first")
    assert out[1] == str(good)


def test_a_model_file_in_a_folder_this_user_may_not_read_is_looked_for_elsewhere(
    tmp_path, monkeypatch
):
    """An index made by another user names the model file in their home; where that is
    private (chmod 750), every query and update of the shared index stopped with
    `...efficientnet-lite0.onnx: Permission denied`, though this user had the same file."""
    from fakes import write_tiny_model

    from rtsearch.models import find_model_for

    theirs = write_tiny_model(tmp_path / "alice" / "tiny.onnx")
    mine = write_tiny_model(tmp_path / "bob" / "tiny.onnx")
    monkeypatch.setenv("RTSEARCH_MODELS", str(mine.parent))
    info = read_model_info(theirs)
    real_stat = Path.stat

    def stat(path: Path, **kwargs):  # (as root, permissions do not stop a look)
        if path.parent == theirs.parent:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    args = (info.name, info.feature_layer, info.identity)
    assert find_model_for(*args, hint=str(theirs)) == mine
    mine.unlink()
    with pytest.raises(RtsearchError) as refused:
        find_model_for(*args, hint=str(theirs), index=Path("i.dat"))
    assert f"it was {theirs}, in a folder this user may not read" in str(refused.value)


def test_the_index_file_is_found_past_other_files_of_its_name(tmp_path, monkeypatch, capsys):
    """Only the first file of each name was looked at: another export of the same name in
    an earlier folder hid the index's own file in a later one (`models` listed it,
    "hidden"); an int8 file saved under the fp32 name was passed over unsaid; a damaged
    own file gave advice that led back to the same error."""
    from dataclasses import replace

    import onnx
    from fakes import int8_twin, write_tiny_model
    from onnx import helper

    from rtsearch.models import find_model_for

    first, second = tmp_path / "first", tmp_path / "second"
    twin = int8_twin(second)
    fp32 = twin.with_name("tiny.onnx")
    other = write_tiny_model(first / "tiny.onnx", seed=5)  # another export, found first
    monkeypatch.setenv("RTSEARCH_MODELS", os.pathsep.join(map(str, (first, second))))
    info = read_model_info(fp32)
    args = (info.name, info.feature_layer, info.identity)
    assert find_model_for(*args) == fp32 and find_model_for(*args, variant="fp32") == fp32
    assert find_model_for(*args, first="int8") == twin  # a query of an int8 index
    assert find_model_for(*args, variant="int8") == twin
    assert capsys.readouterr().err == ""
    # the int8 file under the fp32 name: taken where int8 is wanted, named where it is not
    other.unlink()
    fp32.unlink()
    twin.rename(first / "tiny.onnx")
    assert find_model_for(*args, variant="int8") == first / "tiny.onnx"
    with pytest.raises(RtsearchError) as refused:
        find_model_for(*args, variant="fp32", index=Path("i.dat"))
    assert str(refused.value) == (
        "i.dat: no fp32 model file for tiny (fc) with the index's weights 000000000000 "
        f"({first / 'tiny.onnx'} is the int8 file); pass --model FILE of those weights (its "
        "fp32 file), or analyze the folder again into a new index"
    )
    # the only file of the index's kind damaged: said to be deleted, not looked for again
    (first / "tiny.onnx").write_bytes(b"junk")
    write_tiny_model(second / "tiny-int8.onnx")
    model = onnx.load(str(second / "tiny-int8.onnx"))
    helper.set_model_props(model, replace(info, variant="int8", int8_cosine=0.995).to_props())
    onnx.save(model, str(second / "tiny-int8.onnx"))
    with pytest.raises(RtsearchError) as refused:
        find_model_for(*args, variant="fp32")
    assert (
        f"int8 file; {first / 'tiny.onnx'}: not a readable ONNX model (damaged or truncated)"
        in str(refused.value)
    )
    assert "): delete it); pass --model FILE of those weights (its fp32 file)" in str(refused.value)


def test_the_default_models_file_name_is_exported_on_first_use_as_its_name_is(
    tmp_path, monkeypatch
):
    """`--model efficientnet-lite0.onnx` (the file name `rtsearch models` lists) on a fresh
    machine said "model file not found", where `--model efficientnet-lite0` exports it."""
    from rtsearch import models

    monkeypatch.setattr(models, "search_dirs", lambda: [tmp_path / "models"])
    asked = []

    def export(name):
        asked.append(name)
        return tmp_path / "models" / f"{name}.onnx"

    monkeypatch.setattr(models, "_export_first_use", export)
    monkeypatch.chdir(tmp_path)
    twin = "efficientnet-lite0-int8"
    assert models.resolve_model(f"{twin}.onnx") == tmp_path / "models" / f"{twin}.onnx"
    assert asked == [twin]
    with pytest.raises(RtsearchError) as refused:
        models.resolve_model("other.onnx")
    assert str(refused.value) == (
        f"other.onnx: model file not found (here, nor in {tmp_path / 'models'})"
    )
    with pytest.raises(RtsearchError, match=r"^sub/efficientnet-lite0.onnx: model file not found$"):
        models.resolve_model("sub/efficientnet-lite0.onnx")  # a path: that file, or nothing
    # an index given as the model, by its name here: said so (onnxruntime's "Protobuf
    # parsing failed", or "model 'i.dat' not found" in the models folders)
    import h5py

    h5py.File(tmp_path / "i.dat", "w").close()
    with pytest.raises(RtsearchError) as refused:
        models.read_model_info(models.resolve_model("i.dat"))
    assert (
        str(refused.value) == "i.dat: an index file (HDF5), not a model: --model takes a .onnx file"
    )


def test_an_int8_model_that_drifts_is_used_only_with_a_warning(tmp_path, monkeypatch, capsys):
    """Below 0.99 the only model of the index's weights was used by `query` without a word,
    and the viewer's lookup said no file of those weights existed."""
    from dataclasses import replace

    import onnx
    from fakes import write_tiny_model
    from onnx import helper

    from rtsearch.cli import main
    from rtsearch.models import find_model_for

    fp32 = write_tiny_model(tmp_path / "fp32" / "tiny.onnx")
    model, info = onnx.load(str(fp32)), read_model_info(fp32)
    helper.set_model_props(model, replace(info, variant="int8", int8_cosine=0.916).to_props())
    drifting = tmp_path / "models" / "tiny-int8.onnx"
    drifting.parent.mkdir()
    onnx.save(model, str(drifting))
    monkeypatch.setenv("RTSEARCH_MODELS", str(drifting.parent))
    said = (
        f"warning: {drifting}: int8 model whose features drift from its fp32 twin's "
        "(held-out cosine 0.916, under 0.99): results may differ; the fp32 model is exact\n"
    )
    for prefer in (True, False):
        assert (
            find_model_for(info.name, info.feature_layer, info.identity, prefer_int8=prefer)
            == drifting
        )
        assert capsys.readouterr().err == said
    make_gallery(tmp_path / "g", 3)
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "g"),
                "-o",
                str(tmp_path / "x.dat"),
                "--model",
                "tiny-int8",
                "--quiet",
            ]
        )
        == 0
    )
    assert said in capsys.readouterr().err
    assert main(["models"]) == 0
    assert (
        "feature cosine vs fp32 0.916, under 0.99: not used in its twin's place"
        in capsys.readouterr().out
    )


def test_int8_exports_clean_up_after_a_kill_keep_links_and_say_a_full_disk(
    tmp_path, slim_sd, monkeypatch, capsys
):
    """A killed int8 export left its work folder (a copy of the fp32 model, 0.5 GB at full
    size) for good; an int8 --out that was a symlink became a plain file; a disk that filled
    came out as protobuf's DecodeError traceback."""
    from google.protobuf.message import DecodeError

    from rtsearch.atomic import _HOST
    from rtsearch.export import checks, cli, quantize

    weights = write_torch_pth(tmp_path / "vgg.pth", slim_sd)
    target = tmp_path / "store" / "v8.onnx"
    target.parent.mkdir()
    target.write_bytes(b"old")
    target.chmod(0o640)
    models = tmp_path / "models"
    models.mkdir()
    link = models / "vgg16-fc7-int8.onnx"
    link.symlink_to(target)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    # the work folder is beside the file written: the link's target
    left = target.parent / f".rtsearch-int8-{_HOST}-{dead.stdout.strip()}-abcd"
    left.mkdir()
    (left / "fp32.onnx").write_bytes(b"x" * 1000)
    args = ["vgg16", "--weights", str(weights), "--int8", "--out", str(link)]
    assert cli.main(args) == 0
    assert link.is_symlink() and read_model_info(target).variant == "int8"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in target.parent.iterdir()) == ["v8.onnx"]
    capsys.readouterr()

    def full_disk(*_args, **_kw):
        raise DecodeError(
            "Error parsing message with type 'onnx.ModelProto': Wire format was corrupt"
        )

    monkeypatch.setattr(quantize, "_quantize", full_disk)
    assert cli.main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(
        f"export_onnx: error: {link}: the int8 export failed writing its files beside it "
        "(Error parsing"
    )
    assert err.endswith(" MiB free there)")
    assert read_model_info(target).variant == "int8"  # the model there stays
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda _p: types.SimpleNamespace(free=5 << 20))
    assert cli.main(args) == 2
    assert "not enough room to export an int8 model: it needs about " in capsys.readouterr().err
    assert sorted(p.name for p in target.parent.iterdir()) == ["v8.onnx"]


def test_calibration_folders_are_checked_first_and_their_skips_said(tmp_path, slim_sd, capsys):
    from rtsearch.export import cli

    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    weights = tmp_path / "never-read.pth"  # refused before the weights are opened
    args = [
        "vgg16",
        "--weights",
        str(weights),
        "--int8",
        "--calib",
        str(calib),
        "--out",
        str(tmp_path / "v.onnx"),
    ]
    assert cli.main(args) == 2
    assert capsys.readouterr().err == (
        f"export_onnx: error: {calib}: no images to calibrate int8 on "
        "(1 image file, none decodable)\n"
    )
    for i, image in enumerate(photos()):
        Image.fromarray(image).save(calib / f"{i}.jpg")
    write_torch_pth(weights, slim_sd)
    assert cli.main(args) == 0
    assert (
        f"calibrating int8 on 3 images ({calib}; 1 file not decodable, skipped)"
        in capsys.readouterr().err
    )


def test_a_ctrl_c_turned_into_an_import_error_is_an_interruption(monkeypatch, capsys):
    """onnxruntime's import turns a Ctrl-C that lands inside it into ImportError
    ("initialization failed"): 33 lines of traceback instead of `interrupted`."""
    from rtsearch import cli as main_cli
    from rtsearch.export import cli

    def import_interrupted(_args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(cli, "run", import_interrupted)
    assert cli.main(["efficientnet-lite0"]) == 130
    assert capsys.readouterr().err == "export_onnx: interrupted\n"
    monkeypatch.setattr(main_cli, "cmd_models", import_interrupted)
    assert main_cli.main(["models"]) == 130
    assert capsys.readouterr().err == "rtsearch: interrupted\n"

    def import_broken(_args):
        raise ImportError("libcudart.so.12: cannot open shared object file")

    monkeypatch.setattr(cli, "run", import_broken)
    with pytest.raises(ImportError):  # a real import problem keeps its traceback
        cli.main(["efficientnet-lite0"])


def test_a_first_use_export_onto_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    import rtsearch.export as export_pkg
    from rtsearch import models

    def no_room(out, int8=False, log=print):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(models, "search_dirs", lambda: [tmp_path])
    monkeypatch.setattr(export_pkg, "export_efficientnet_lite0", no_room)
    with pytest.raises(RtsearchError) as refused:
        models.resolve_model("efficientnet-lite0")
    assert str(refused.value) == (
        f"{tmp_path / 'efficientnet-lite0.onnx'}: cannot write the efficientnet-lite0 model "
        "(No space left on device); set $RTSEARCH_MODELS to a folder with room"
    )


def write_keras3_weights(path: Path, layers: dict, named: bool = True) -> Path:
    """Weights as Keras 3's save_weights writes them: each layer's group named after its
    class (layers/conv2d_3), its own name (block2_conv2) an attribute of its vars (not in
    the versions before, ``named``)."""
    kinds: dict[str, int] = {}
    with h5py.File(path, "w") as f:
        for name, (kernel, bias) in layers.items():
            kind = "conv2d" if name.startswith("block") else "dense"
            kinds[kind] = kinds.get(kind, -1) + 1
            group = f"{kind}_{kinds[kind]}" if kinds[kind] else kind
            f[f"layers/{group}/vars/0"] = kernel
            f[f"layers/{group}/vars/1"] = bias
            if named:
                f[f"layers/{group}/vars"].attrs["name"] = name
        f.create_group("layers/flatten/vars").attrs["name"] = "flatten"
        f.create_group("vars").attrs["name"] = "vgg16"
    return path


def test_keras_3_weights_files_convert_and_a_kernel_the_wrong_way_is_said(tmp_path, slim_sd):
    """Keras 3's `.weights.h5` (layers/conv2d_3/vars/0, 1; the layer's own name an attribute)
    and its `.keras` archive (a zip holding model.weights.h5) were "no Keras layer
    'block1_conv1' (is this VGG16?)" and "not a PyTorch weights file"; a kernel stored
    (out, in, 3, 3) was named by its internal transpose, "conv 0 has shape (3, 3, 8, 3)"."""
    layers = keras_layers(slim_sd)
    keras3 = write_keras3_weights(tmp_path / "vgg16.weights.h5", layers)
    archive = tmp_path / "vgg16.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{}")
        zf.write(keras3, "model.weights.h5")
    with h5py.File(tmp_path / "old3.weights.h5", "w") as f:  # groups by the layers' names
        for name, (kernel, bias) in layers.items():
            f[f"layers/{name}/vars/0"] = kernel
            f[f"layers/{name}/vars/1"] = bias
    images = photos()
    two = export_vgg16(write_keras_h5(tmp_path / "k2.h5", layers), tmp_path / "k2.onnx", log=print)
    want = run_features(two, images)[0]
    unnamed = write_keras3_weights(tmp_path / "unnamed.weights.h5", layers, named=False)
    for weights in (keras3, archive, tmp_path / "old3.weights.h5", unnamed):
        got = run_features(export_vgg16(weights, tmp_path / "k3.onnx", log=print), images)[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=weights.name)
    turned = dict(
        layers,
        block1_conv1=(layers["block1_conv1"][0].transpose(3, 2, 0, 1), layers["block1_conv1"][1]),
    )
    weights = write_keras_h5(tmp_path / "turned.h5", turned)
    with pytest.raises(RtsearchError) as refused:
        export_vgg16(weights, tmp_path / "t.onnx", log=print)
    assert str(refused.value) == (
        f"{weights}: Keras layer 'block1_conv1' has a kernel of shape (4, 3, 3, 3); Keras "
        "stores 3x3 convolutions as (3, 3, in, out)"
    )


def test_models_without_files_names_every_folder_a_name_is_looked_for_in(
    tmp_path, monkeypatch, capsys
):
    """It named only the folders that exist (`models/`), not `$RTSEARCH_MODELS`'s or the
    user data folder, where names are looked for too."""
    from rtsearch import models
    from rtsearch.cli import main

    folders = [tmp_path / "mine", tmp_path / "repo" / "models", tmp_path / "data" / "models"]
    folders[0].mkdir()
    monkeypatch.setattr(models, "search_dirs", lambda: folders)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"no model files in {folders[0]}, {folders[1]}, {folders[2]}; ")


def test_the_tool_runs_the_checkout_it_is_in(tmp_path):
    """`python OTHER_CHECKOUT/tools/export_onnx.py` imported the installed rtsearch (another
    checkout's code, its models folder the default --out)."""
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    shutil.copy(TOOL, checkout / "tools" / "export_onnx.py")
    (checkout / "rtsearch" / "export").mkdir(parents=True)
    (checkout / "rtsearch" / "__init__.py").write_text("")
    (checkout / "rtsearch" / "export" / "__init__.py").write_text("")
    (checkout / "rtsearch" / "export" / "cli.py").write_text(
        "def main():\n    print('this checkout')\n    return 0\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, str(checkout / "tools" / "export_onnx.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout == "this checkout\n", run.stderr


def test_models_folders_named_twice_or_not_there(tmp_path, monkeypatch):
    """RTSEARCH_MODELS naming a folder twice listed each of its files twice; naming one
    not there (a typo) made it, and the first use exported an 18 MB model into it."""
    from rtsearch import models

    shared, typo = tmp_path / "m", tmp_path / "typo_models"
    shared.mkdir()
    write_tiny_model(shared / "tiny.onnx")
    monkeypatch.setenv("RTSEARCH_MODELS", os.pathsep.join([str(typo), str(shared), str(shared)]))
    assert models.model_files()["tiny.onnx"] == [shared / "tiny.onnx"]
    assert models.search_dirs().count(shared) == 1
    assert models.writable_models_dir() == shared and not typo.exists()
    assert models.writable_models_dir(make_named=True) == typo and typo.is_dir()  # the tool's


def test_each_set_of_a_checkpoint_is_a_model_of_its_own(tmp_path, slim_sd, capsys):
    """The identity was the file's hash alone: the 'ema.' set exported over the 'model.'
    set's file gave the same identity, and an index of one was searched with the other
    without a word."""
    from rtsearch.export import cli

    ema = {f"ema.{k}": v * np.float32(0.9) for k, v in slim_sd.items()}
    both = write_torch_pth(
        tmp_path / "ckpt.pth", {**ema, **{f"model.{k}": v for k, v in slim_sd.items()}}
    )
    out = tmp_path / "v.onnx"
    args = ["vgg16", "--weights", str(both), "--out", str(out), "--weights-prefix"]
    assert cli.main([*args, "model"]) == 0
    first = read_model_info(out)
    capsys.readouterr()
    assert cli.main([*args, "ema."]) == 0
    second = read_model_info(out)
    assert first.identity != second.identity and "'ema.'" in second.source
    assert "indexes made with the old file need it back" in capsys.readouterr().err
    assert cli.main([*args, "model."]) == 0 and read_model_info(out).identity == first.identity
    # a file of one set keeps the file's hash (models exported before keep their indexes)
    single = write_torch_pth(tmp_path / "one.pth", slim_sd)
    plain = export_vgg16(single, tmp_path / "p.onnx", log=print)
    assert read_model_info(plain).weights_sha256 == sha256_file(single)


def test_a_forced_int8_export_of_useless_features_is_not_written(tmp_path, slim_sd, capsys):
    """One input channel a thousand times the others (fp32 exact, the next conv scaled
    down): int8 activations quantised every other channel to 0, and --force wrote a model
    whose features were all zero (every picture at distance 0, its cosine 'not measured')."""
    from rtsearch.export import cli

    skewed = {k: v.copy() for k, v in slim_sd.items()}
    skewed["features.0.weight"][0] *= 3000
    skewed["features.0.bias"][0] = 30.0
    skewed["features.2.weight"][:, 0] /= 3000
    weights = write_torch_pth(tmp_path / "skew.pth", skewed)
    assert cli.main(["vgg16", "--weights", str(weights), "--out", str(tmp_path / "f.onnx")]) == 0
    out = tmp_path / "q.onnx"
    capsys.readouterr()
    assert (
        cli.main(["vgg16", "--weights", str(weights), "--int8", "--force", "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert f"export_onnx: error: {out}: not written: the model gives " in err
    assert "(its int8 quantisation collapsed them, while the fp32 model's features pass" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["f.onnx", "skew.pth"]


def test_names_that_find_another_model_are_refused_before_the_work(tmp_path, slim_sd, capsys):
    """A VGG16 export named efficientnet-lite0.onnx became the default model of every
    analyze without --model; an fp32 file under the int8 name was taken for the twin."""
    from rtsearch.export import cli

    weights = write_torch_pth(tmp_path / "w.pth", slim_sd)
    cases = [
        (
            [
                "vgg16",
                "--weights",
                str(weights),
                "--out",
                str(tmp_path / "efficientnet-lite0.onnx"),
            ],
            "efficientnet-lite0.onnx: the name rtsearch finds efficientnet-lite0 by; name this "
            "vgg16 file otherwise (e.g. vgg16-fc7.onnx)",
        ),
        (
            ["vgg16", "--weights", str(weights), "--out", str(tmp_path / "vgg16-fc7-int8.onnx")],
            "vgg16-fc7-int8.onnx: the name of vgg16's int8 file, and this export is fp32: add "
            "--int8, or name it vgg16-fc7.onnx",
        ),
        (
            ["efficientnet-lite0", "--int8", "--out", str(tmp_path / "efficientnet-lite0.onnx")],
            "the name of efficientnet-lite0's fp32 file, and this export is int8: drop --int8",
        ),
        (["efficientnet-lite0", "--out", str(tmp_path / ".onnx")], "name the file before .onnx"),
        # each name an index looks a model up by, not only the default ones
        (
            ["vgg16", "--weights", str(weights), "--out", str(tmp_path / "vgg16-int8.onnx")],
            "vgg16-int8.onnx: the name of vgg16's int8 file, and this export is fp32",
        ),
        (
            ["efficientnet-lite0", "--out", str(tmp_path / "vgg16.onnx")],
            "vgg16.onnx: the name rtsearch finds vgg16 by; name this efficientnet-lite0 file",
        ),
    ]
    for args, problem in cases:
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("export_onnx: error: ") and problem in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]
    # --debug after the model's name, as `rtsearch models --debug` takes it
    with pytest.raises(RtsearchError, match=re.escape("name the file before .onnx")):
        cli.main(["efficientnet-lite0", "--debug", "--out", str(tmp_path / ".onnx")])
    with pytest.raises(RtsearchError, match=re.escape("name the file before .onnx")):
        cli.main(["--debug", "efficientnet-lite0", "--out", str(tmp_path / ".onnx")])


def test_damaged_weights_and_models_are_said_as_damaged(tmp_path, slim_sd, monkeypatch):
    """A bad CRC was 'not a PyTorch weights file'; a cut legacy file 'storage N is
    truncated', then 'the data of tensor storage 94064136498544 ends early'; a cut Keras
    file HDF5's 'sblock->base_addr' line; a cut model
    onnxruntime's '[ONNXRuntimeError] : 7 : INVALID_PROTOBUF'; VGG19 by .pth a bare count."""
    from rtsearch.extractor import Extractor

    zipped = write_torch_pth(tmp_path / "crc.pth", slim_sd).read_bytes()
    at = zipped.index(b"archive/data/0") + 200  # inside a tensor's bytes (stored, no deflate)
    crc = tmp_path / "crc.pth"
    crc.write_bytes(zipped[:at] + bytes([zipped[at] ^ 0xFF]) + zipped[at + 1 :])
    legacy = write_torch_pth(tmp_path / "old.pth", slim_sd, legacy=True).read_bytes()
    cut_legacy = tmp_path / "old.pth"
    cut_legacy.write_bytes(legacy[: len(legacy) * 9 // 10])
    stub = tmp_path / "stub.pth"  # cut inside its pickles
    stub.write_bytes(legacy[:200])
    h5 = write_keras_h5(tmp_path / "k.h5", keras_layers(slim_sd)).read_bytes()
    cut_h5 = tmp_path / "k.h5"
    cut_h5.write_bytes(h5[:3000])
    deeper = dict(slim_sd)
    for i in (40, 41, 42):  # three more convs of the last block's width: VGG19's 16
        deeper[f"features.{i}.weight"] = slim_sd["features.28.weight"]
        deeper[f"features.{i}.bias"] = slim_sd["features.28.bias"]
    vgg19 = write_torch_pth(tmp_path / "19.pth", deeper)
    cases = [
        (crc, f"{crc}: a damaged PyTorch weights file (Bad CRC-32"),
        (cut_legacy, f"{cut_legacy}: truncated or damaged (a tensor's data ends early: "),
        (stub, f"{stub}: truncated or damaged ("),
        (cut_h5, f"{cut_h5}: truncated Keras weights file (3000 of {len(h5)} bytes; "),
        (vgg19, f"{vgg19}: 16 conv layers, VGG16 has 13 (is this VGG19?)"),
    ]
    for weights, problem in cases:
        with pytest.raises(RtsearchError) as info:
            export_vgg16(weights, tmp_path / "out.onnx", log=print)
        assert str(info.value).startswith(problem) and "\n" not in str(info.value), info.value
    model = export_vgg16(
        write_torch_pth(tmp_path / "w.pth", slim_sd), tmp_path / "m.onnx", log=print
    )
    model.write_bytes(model.read_bytes()[:5000])
    with pytest.raises(RtsearchError) as info:
        Extractor(model)
    assert str(info.value) == (
        f"{model}: a damaged or truncated model file (it does not parse as ONNX); export it again"
    )


def test_models_says_a_pair_by_name_that_are_no_twins(tmp_path, monkeypatch, capsys):
    """tiny.onnx and tiny-int8.onnx of other weights are taken for one model's files by
    name; the export said so, `rtsearch models` did not."""
    from rtsearch.cli import main

    folder = tmp_path / "m"
    monkeypatch.setenv("RTSEARCH_MODELS", str(folder))
    write_tiny_model(folder / "tiny.onnx", seed=1)
    write_tiny_model(folder / "tiny-int8.onnx", seed=2, props={"variant": '"int8"'})
    write_tiny_model(folder / "solo.onnx", seed=3)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "not the twin of tiny-int8.onnx beside it (other weights)" in out
    assert "not the twin of tiny.onnx beside it (other weights)" in out
    assert main(["models", "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny.onnx"]["not_twin_of"] == str(folder / "tiny-int8.onnx")
    assert "not_twin_of" not in rows["solo.onnx"]
    write_tiny_model(folder / "tiny-int8.onnx", seed=1, props={"variant": '"int8"'})
    assert main(["models"]) == 0 and "not the twin" not in capsys.readouterr().out


def test_an_export_onto_a_read_only_mount_is_said_so_not_full(tmp_path, monkeypatch):
    """A read-only file system says 0 bytes free: an export there said "not enough room"."""
    import errno
    import shutil
    import tempfile

    from rtsearch.export.checks import check_room

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(0, 0, 0))
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    out = tmp_path / "m.onnx"
    with pytest.raises(RtsearchError) as refused:
        check_room(out, 1000, "a model")
    assert str(refused.value) == f"{out}: cannot write the model (Read-only file system)"
