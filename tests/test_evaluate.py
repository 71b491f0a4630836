"""`rtsearch eval`: labelled generated images, the tiny model, the JSON contract and metrics
that behave as retrieval metrics must (bounds, exact search agreeing with itself)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from rtsearch import copies, evaluate
from rtsearch.analyze import Settings
from rtsearch.errors import RtsearchError
from rtsearch.extractor import Extractor
from rtsearch.models import read_model_info
from rtsearch.rerank import rerank

KEYS = {"projection", "dims", "p_at_10", "map_at_100", "copy_recall_at_1"}
KEYS |= {"copy_recall_at_10", "agreement_at_20", "query_ms"}
RATES = KEYS - {"projection", "dims", "query_ms"}


def class_image(label: int, seed: int) -> Image.Image:
    """A class is a background palette plus a shape type; members differ in layout."""
    rng = np.random.default_rng(seed)
    palette = np.random.default_rng(100 + label).integers(0, 256, (2, 3))
    w, h = 96, 72
    t = np.linspace(0, 1, w)[None, :, None]
    bg = (palette[0] * (1 - t) + palette[1] * t).repeat(h, axis=0).astype(np.uint8)
    img = Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
        box = [x0, y0, x0 + int(rng.integers(12, 30)), y0 + int(rng.integers(12, 30))]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if label % 2 else draw.rectangle)(box, fill=fill)
    return img


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("labelled")
    for label in range(4):
        for i in range(12):
            path = root / f"class{label}" / f"img{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            class_image(label, 1000 * label + i).save(path)
    return root


@pytest.fixture(scope="module")
def result(labelled, tiny_model) -> dict:
    data = evaluate.load_data(labelled, Extractor(tiny_model), n_copies=20, seed=0, log=_quiet)
    configs = evaluate.plan(["random", "pca", "none"], [8, 32, 256], [True, False], 128, 40, 2)
    return evaluate.evaluate(data, configs, seed=0)


def _quiet(_message: str) -> None:
    pass


def test_json_contract(result):
    assert result["rows"]
    for row in [*result["rows"], result["default"], result["full"]]:
        assert row.keys() >= KEYS
        for key in RATES:
            assert 0.0 <= row[key] <= 1.0, (key, row)
        assert row["query_ms"] >= 0.0
    assert result["full"]["projection"] == "none" and result["full"]["dims"] == 128
    defaults = Settings()
    assert result["default"]["projection"] == defaults.projection
    assert result["default"]["dims"] == defaults.dims


def test_dims_beyond_the_features_are_left_out(result):
    assert {r["dims"] for r in result["rows"] if r["projection"] != "none"} == {8, 32}


def test_exact_search_agrees_with_itself(result):
    full = [r for r in result["rows"] if r["projection"] == "none" and r["l2"]]
    plain = next(r for r in full if not r["rerank"] and not r["qe"])
    assert plain["agreement_at_20"] == pytest.approx(1.0)
    assert result["full"]["agreement_at_20"] == pytest.approx(1.0)


def test_more_dims_agree_more_with_full_search(result):
    def agreement(kind: str, dims: int) -> float:
        return next(
            r["agreement_at_20"]
            for r in result["rows"]
            if (r["projection"], r["dims"], r["l2"], r["rerank"], r["qe"]) == (kind, dims, 1, 0, 0)
        )

    assert agreement("pca", 32) > agreement("pca", 8)
    assert agreement("random", 32) > agreement("random", 8)


def test_generated_classes_and_copies_are_found(result):
    full = result["full"]
    chance = 1 / 4
    assert full["p_at_10"] > 2 * chance  # classes are retrievable, far above chance
    assert full["copy_recall_at_10"] >= 0.5  # copies of a 48-image set are found


def test_reranking_recovers_full_feature_agreement(result):
    rows = result["rows"]
    base = next(
        r
        for r in rows
        if (r["projection"], r["dims"], r["rerank"], r["qe"], r["l2"]) == ("random", 8, 0, 0, True)
    )
    reranked = next(
        r
        for r in rows
        if (r["projection"], r["dims"], r["rerank"], r["l2"]) == ("random", 8, 40, True)
    )
    assert reranked["agreement_at_20"] > base["agreement_at_20"]


def test_metrics_on_hand_made_rankings():
    labels = np.array([0, 0, 1, 1])
    perfect = np.array([[1, 2, 3], [0, 3, 2], [3, 0, 1], [2, 1, 0]])
    worst = np.array([[2, 3, 1], [2, 3, 0], [0, 1, 3], [0, 1, 2]])
    assert evaluate.precision_at(perfect, labels, 1) == 1.0
    assert evaluate.map_at(perfect, labels, 3) == 1.0
    assert evaluate.precision_at(worst, labels, 1) == 0.0
    assert evaluate.map_at(worst, labels, 3) == pytest.approx(1 / 3)
    assert evaluate.recall_at(perfect[:2], np.array([1, 3]), 1) == 0.5
    assert evaluate.agreement_at(perfect, worst, 2) == pytest.approx(0.5)


def test_an_image_alone_in_its_label_is_not_queried():
    """Two single-image labels beside a pair: P@10 counted their queries as 0 (nothing to
    find) while mAP left them out, so the two disagreed on which images were queried."""
    labels = np.array([0, 0, 1, 2])
    ranked = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    assert evaluate.queryable(labels).tolist() == [True, True, False, False]
    assert evaluate.precision_at(ranked, labels, 1) == 1.0
    assert evaluate.map_at(ranked, labels, 3) == 1.0


def test_rank_excludes_the_query_itself():
    vectors = np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32)
    ranked = evaluate.rank(vectors, vectors, 5, exclude_self=True)
    assert not (ranked == np.arange(30)[:, None]).any()
    assert (evaluate.rank(vectors, vectors, 1, exclude_self=False)[:, 0] == np.arange(30)).all()


def test_copies_change_the_image_but_keep_it_recognisable():
    image = np.asarray(class_image(1, 7).resize((320, 240)))
    made = copies.make_copy(image, np.random.default_rng(3))
    assert made.dtype == np.uint8 and made.ndim == 3
    assert made.shape[0] < image.shape[0] * 1.5 * 0.86 + 2
    cropped = copies.crop(image, 0.75)
    assert cropped.shape[:2] == (180, 240)
    assert np.array_equal(copies.brighten(image, 1.0), image)
    assert not np.array_equal(copies.caption(image, "LOL"), image)


def test_folder_without_labels_is_refused(tmp_path, tiny_model):
    class_image(0, 0).save(tmp_path / "a.png")
    with pytest.raises(RtsearchError, match="sub-folders"):
        evaluate.load_data(tmp_path, Extractor(tiny_model), n_copies=1, seed=0, log=_quiet)


def test_cli_json(labelled, tiny_model):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtsearch",
            "eval",
            str(labelled),
            "--model",
            str(tiny_model),
            "--dims",
            "8,16",
            "--projection",
            "rp,none",
            "--copies",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert {(r["projection"], r["dims"]) for r in doc["rows"]} == {
        ("random", 8),
        ("random", 16),
        ("none", 128),
    }
    assert doc["default"].keys() >= KEYS and doc["full"].keys() >= KEYS
    # which model file measured it: fp32 and int8 runs could not be told apart
    assert (doc["model"], doc["model_variant"]) == ("tiny", "fp32")
    assert doc["model_identity"] == read_model_info(tiny_model).identity
    # the extraction's progress on stderr, as analyze's (20k images: minutes without a word)
    n = len([f for f in labelled.rglob("*") if f.is_file()])
    last = out.stderr.splitlines()[-1]
    assert re.fullmatch(rf"\[#{{30}}\] {n}/{n} [0-9.]+ img/s ETA 00:00:00 skipped 0", last)


def test_cli_rejects_unknown_projection(labelled, tiny_model):
    out = subprocess.run(
        [sys.executable, "-m", "rtsearch", "eval", str(labelled), "--projection", "lsh"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "unknown projection lsh" in out.stderr


def test_rerank_orders_candidates_by_full_distance():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((50, 16)).astype(np.float32)
    query = features[7] + 0.01
    candidates = np.array([3, 7, 40, 12])
    rows, dist = rerank(features, query, candidates)
    assert rows[0] == 7 and sorted(rows.tolist()) == sorted(candidates.tolist())
    assert (np.diff(dist) >= 0).all()
    batch, _ = rerank(features, np.stack([query, features[40]]), np.stack([candidates] * 2))
    assert batch.shape == (2, 4) and batch[1, 0] == 40


def test_cli_says_what_it_cannot_measure(labelled, tiny_model):
    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "rtsearch", "eval", str(labelled), "--model", str(tiny_model)]
        return subprocess.run([*cmd, *args], capture_output=True, text=True)

    out = run("--dims", "8,500", "--projection", "rp", "--copies", "0", "--json")
    assert out.returncode == 0
    assert "eval: dims 500 left out: the model gives 128-d features" in out.stderr
    doc = json.loads(out.stdout)
    assert {r["dims"] for r in doc["rows"]} == {8}
    assert doc["rows"][0]["copy_recall_at_1"] is None  # no copies: not measured, not 0
    table = run("--dims", "8", "--projection", "rp", "--copies", "0")
    assert table.returncode == 0 and "| random | 8 | on | - |" in table.stdout
    for bad in (["--rerank", "-1"], ["--copies", "-2"], ["--seed", "-1"]):
        assert run(*bad).returncode == 2, bad


def test_files_it_cannot_read_are_said_on_stderr_and_counted(labelled, tiny_model, tmp_path):
    """Both in the table and in --json: the warnings go to stderr (not into the table on
    stdout, nor nowhere), and the result counts and names the files skipped."""
    import shutil

    folder = tmp_path / "labelled"
    shutil.copytree(labelled, folder)
    (folder / "class0" / "broken.jpg").write_bytes(b"not a picture")
    (folder / "class1" / "empty.png").write_bytes(b"")
    (folder / "unread").mkdir()  # a label none of whose files can be read: no label
    (folder / "unread" / "text.png").write_text("not a picture either")
    (folder / "class2" / "gone.png").symlink_to(folder / "nowhere.png")  # the scan's own
    cmd = [sys.executable, "-m", "rtsearch", "eval", str(folder), "--model", str(tiny_model)]
    cmd += ["--dims", "8", "--projection", "rp", "--copies", "0"]
    for json_out in (True, False):
        out = subprocess.run(cmd + ["--json"] * json_out, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        warned = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warned) == 4 and "warning:" not in out.stdout, out
        assert f"{folder}/class0/broken.jpg: " in out.stderr
        assert f"{folder}/class1/empty.png: " in out.stderr
        if json_out:
            doc = json.loads(out.stdout)
            assert doc["images"] == 48 and doc["skipped"] == 4
            # each names its file (the scan's came without: "broken symlink")
            assert f"{folder / 'class2' / 'gone.png'}: broken symlink" in doc["skipped_files"]
            assert "unread" not in doc["labels"] and len(doc["labels"]) == 4
            assert sorted(doc["skipped_files"]) == sorted(
                w.removeprefix("warning: ") for w in warned
            )
        else:
            assert (
                "48 images, 4 labels, 0 copies; model tiny (128-d); 4 files skipped" in out.stdout
            )


def _eval(folder: Path, model: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rtsearch", "eval", str(folder), "--model", str(model)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True)


def test_labels_without_two_readable_images_are_refused(tmp_path, tiny_model):
    """A label whose files are all unreadable still counted as a label, and a set of one
    usable label scored a perfect 1.000; labels of one image each scored 0."""
    one_usable = tmp_path / "one"
    for i in range(4):
        (one_usable / "a").mkdir(parents=True, exist_ok=True)
        class_image(0, i).save(one_usable / "a" / f"{i}.png")
    (one_usable / "b").mkdir()
    for i in range(3):
        (one_usable / "b" / f"{i}.png").write_bytes(b"not an image")
    singles = tmp_path / "singles"
    for label in ("a", "b"):
        (singles / label).mkdir(parents=True)
        class_image(ord(label), 0).save(singles / label / "x.png")
    for folder, said in (
        (one_usable, "1 of 2 has them (a), too few in b (0); 3 files could not be read"),
        (singles, "0 of 2 have them, too few in a (1), b (1)"),
    ):
        out = _eval(folder, tiny_model, "--dims", "8", "--projection", "rp", "--copies", "2")
        assert out.returncode == 1 and "P@10" not in out.stdout, out
        # labels too small by their names alone are refused before the extraction
        # (said on stderr: `eval DIR > table.md` kept it in the table's file)
        assert ("extracting features" in out.stderr) == (folder == one_usable), out.stderr
        assert "extracting features" not in out.stdout
        line = out.stderr.strip().splitlines()[-1]
        assert line == (
            f"rtsearch: error: {folder}: needs at least 2 labels (sub-folders) with 2 or more "
            f"readable images each; {said}"
        )


def test_dims_that_cannot_be_measured_are_refused_before_the_work(labelled, tiny_model):
    for dims, said in (
        ("1", "1: dims must be between 2 and 1500\n"),
        ("8,1600", "1600: dims must be between 2 and 1500 (the none projection measures every "
         "feature)"),
    ):  # fmt: skip
        out = _eval(labelled, tiny_model, "--dims", dims)
        assert out.returncode == 2 and said in out.stderr and "extracting" not in out.stdout
    out = _eval(labelled, tiny_model, "--dims", "500", "--projection", "rp")
    assert out.returncode == 1 and "extracting" not in out.stdout
    assert (
        "--dims 500: larger than the model's 128 features; pass --dims 128 or fewer" in out.stderr
    )


def test_values_given_twice_are_measured_once_and_the_default_row_is_analyzes(labelled, tmp_path):
    """A model of 64 features: analyze refuses its default 100 dims, so there is no
    'analyze default' row (it showed pca 64)."""
    from fakes import write_tiny_model

    narrow = write_tiny_model(tmp_path / "narrow.onnx", dims=64)
    args = ("--dims", "8,8,16", "--projection", "rp,random,none,none", "--copies", "0")
    doc = json.loads(_eval(labelled, narrow, *args, "--json").stdout)
    rows = [(r["projection"], r["dims"]) for r in doc["rows"]]
    assert rows == [("random", 8), ("random", 16), ("none", 64)]
    assert doc["default"] is None and doc["queried"] == doc["images"] == 48
    table = _eval(labelled, narrow, *args).stdout
    assert "analyze default" not in table and "| none (full, exact) | 64 |" in table


def test_a_model_of_more_features_than_dims_allow_is_measured_unreduced(labelled, tmp_path):
    """The default projections include none, which keeps every feature: a 1600-d model
    (VGG16 fc7 has 4096) was refused with "--dims 1600: must be between 2 and 1500"."""
    from fakes import write_tiny_model

    wide = write_tiny_model(tmp_path / "wide.onnx", dims=1600)
    out = _eval(labelled, wide, "--dims", "8", "--projection", "rp,none", "--copies", "0", "--json")
    assert out.returncode == 0, out.stderr
    rows = [(r["projection"], r["dims"]) for r in json.loads(out.stdout)["rows"]]
    assert rows == [("random", 8), ("none", 1600)]


def test_a_duplicate_of_the_original_found_first_counts_for_its_copy():
    """A folder holding a byte-identical duplicate of an image: its copies found the
    duplicate at rank 1 as often as the original (a tie), and each such time counted as a
    miss (copy R@1 0.417 with duplicates, 0.917 without them)."""
    rng = np.random.default_rng(0)
    originals = rng.standard_normal((12, 16)).astype(np.float32)
    features = np.concatenate([originals, originals[:6]])  # rows 12-17 duplicate rows 0-5
    copy_of = np.arange(12)
    data = evaluate.Data(
        features=features,
        labels=np.array([i % 3 for i in range(18)]),
        label_names=["a", "b", "c"],
        copy_features=originals + 0.01 * rng.standard_normal((12, 16)).astype(np.float32),
        copy_of=copy_of,
    )
    assert [t.tolist() for t in evaluate.twins(features, copy_of[:2])] == [[0, 12], [1, 13]]
    full = evaluate.evaluate(data, [], seed=0)["full"]
    assert full["copy_recall_at_1"] == 1.0
    ranked = np.array([[12, 0], [1, 13], [5, 2]])
    truth = evaluate.twins(features, np.array([0, 1, 2]))
    assert evaluate.recall_at(ranked, truth, 1) == pytest.approx(2 / 3)


def test_the_best_p_at_10_is_said_where_labels_are_small(labelled, tiny_model, tmp_path):
    """Labels of 6 images: a perfect ranking scored P@10 0.500 with nothing said."""
    labels = np.array([0] * 6 + [1] * 6 + [2] * 12)
    assert evaluate.best_precision_at(labels, 10) == pytest.approx((12 * 0.5 + 12 * 1.0) / 24)
    small = tmp_path / "small"
    for label in range(2):
        for i in range(6):
            path = small / f"c{label}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            class_image(label, 50 * label + i).save(path)
    out = _eval(small, tiny_model, "--dims", "8", "--projection", "rp", "--copies", "2")
    assert out.returncode == 0, out.stderr
    assert (
        "P@10 is at most 0.500 here, even ranked perfectly: labels of fewer than 11 images"
        in out.stdout
    )
    assert "agree@20 is 1.000 for any ranking here: 21 images or fewer" in out.stdout
    doc = json.loads(_eval(small, tiny_model, "--dims", "8", "--copies", "0", "--json").stdout)
    assert doc["p_at_10_best"] == 0.5
    out = _eval(labelled, tiny_model, "--dims", "8", "--projection", "rp", "--copies", "2")
    assert "at most" not in out.stdout and "agree@20 is" not in out.stdout


def test_extraction_runs_as_analyzes_and_a_seed_makes_the_same_copies(labelled, tiny_model):
    """eval extracts through analyze's loop (one stream per core, decoded in the streams
    or on a pool): the same features and copies as one stream, file by file, in order."""
    one = evaluate.load_data(labelled, Extractor(tiny_model), n_copies=10, seed=3, log=_quiet)
    many = Extractor(tiny_model, streams=2)
    assert many.streams == 2
    again = evaluate.load_data(labelled, many, n_copies=10, seed=3, log=_quiet)
    assert len(one.labels) == len(again.labels) == 48
    assert np.array_equal(one.labels, again.labels)
    np.testing.assert_allclose(one.features, again.features, rtol=1e-4, atol=1e-5)
    assert np.array_equal(one.copy_of, again.copy_of) and len(one.copy_of) == 10
    np.testing.assert_allclose(one.copy_features, again.copy_features, rtol=1e-4, atol=1e-5)


def test_the_scoring_says_where_it_is_once_it_takes_a_while(labelled, tiny_model, monkeypatch):
    """At 20k images the scoring took minutes without a word after the progress bar; each
    setting is now said before it is measured (on stderr, stdout stays the table/JSON)."""
    data = evaluate.load_data(labelled, Extractor(tiny_model), n_copies=4, seed=0, log=_quiet)
    configs = evaluate.plan(["random", "pca"], [8], [True], 128, 0, 0)
    heard: list[tuple[int, int, str]] = []
    result = evaluate.evaluate(
        data, configs, seed=0, scoring=lambda i, n, c: heard.append((i, n, c.projection))
    )
    # the full features first (the reference), then each row, analyze's default among them
    assert heard[0][:2] == (0, 4) and {h[1] for h in heard} == {4}
    assert [h[2] for h in heard[1:]] == ["none", "random", "pca", "pca"]
    assert [r["projection"] for r in result["rows"]] == ["random", "pca"]
    lines: list[str] = []
    monkeypatch.setattr(evaluate.sys, "stderr", _Lines(lines))
    line = evaluate.ScoringLine()
    line(0, 3, configs[0])  # quiet for its first seconds: a small folder says nothing
    line.began -= evaluate.ScoringLine.AFTER_S
    for i, cfg in enumerate(configs):
        line(i + 1, 3, cfg)
        line.last = 0.0
    line.close()
    assert lines == ["eval: scoring 2 of 3: random 8 dims\n", "eval: scoring 3 of 3: pca 8 dims\n"]


class _Lines:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> None:
        self.into.append(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_raw_camera_files_are_said_not_passed_over_in_silence(labelled, tiny_model, tmp_path):
    import shutil

    folder = tmp_path / "labelled"
    shutil.copytree(labelled, folder)
    for name in ("IMG_0001.CR2", "DSC_0002.nef"):
        (folder / "class0" / name).write_bytes(b"II*\0\x10\0\0\0CR" + bytes(200))
    out = _eval(folder, tiny_model, "--dims", "8", "--projection", "random", "--copies", "0")
    assert out.returncode == 0, out.stderr
    assert (
        f"warning: {folder}: 2 RAW camera files (.CR2, .NEF, .ARW, .DNG ...) passed over: "
        "rtsearch does not read RAW files\n"
    ) in out.stderr


def test_pca_rows_past_what_the_images_span_are_said(tmp_path, tiny_model):
    """pca 256 on 96 images gave the figures of pca 100 (both the 95 dimensions they
    span) without a word; analyze says it. --json says it too, and when agree@20 is 1 for
    any ranking (the table said that alone)."""
    folder = tmp_path / "lab"
    for label in range(2):
        (folder / f"c{label}").mkdir(parents=True)
        for i in range(4):
            class_image(label, i).save(folder / f"c{label}" / f"{i}.png")
    args = ("--dims", "4,16,32", "--projection", "pca,rp", "--copies", "2")
    table = _eval(folder, tiny_model, *args)
    assert table.returncode == 0, table.stderr
    assert (
        "\npca at 16, 32 dims: 8 images span at most 7 dimensions; the others carry nothing\n"
        in (table.stdout)
    )
    said = _eval(folder, tiny_model, *args, "--json")
    result = json.loads(said.stdout)
    assert result["pca_span"] == 7 and result["agree_20_trivial"] is True
