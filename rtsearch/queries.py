"""The `query` command: the indexed pictures nearest to one picture, to several, or to every
picture in a folder, printed as ranked lines or as JSON.

One picture is answered as it always was: its problems are errors. Several (or a folder)
are answered in turn by one loaded model and index, each as soon as it is done; a picture
that cannot be searched is one warning line, the others are still answered, and the run
ends with an error counting them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rtsearch import terminal
from rtsearch.argtypes import positive_int
from rtsearch.errors import RtsearchError, command, count, first_line, printable, size_text
from rtsearch.scan import RAW_EXTENSIONS, is_gone

if TYPE_CHECKING:
    from rtsearch.borders import Box
    from rtsearch.cli import ProgressBar
    from rtsearch.decode import RGBImage
    from rtsearch.session import FolderGone, Result, SearchSession

INDEX_SUFFIX = ".dat"
STDIN = Path("-")  # the picture piped in: `curl -s URL | rtsearch query INDEX -`
STDIN_NAME = "standard input"
NAMED_IN_MESSAGES = 3  # pictures a suggested command spells out before "..."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rtsearch.cli import add_model_argument

    # INDEX IMAGE, as info/update/view take their index first; IMAGE --index INDEX as before
    # (strings: the answers name each picture as it was typed, `./a.jpg` too)
    p.add_argument("index_file", nargs="?", metavar="INDEX", help="the index file "
                   "(.dat) to search")  # fmt: skip
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="the picture to search for (any image file; - reads it from standard input); "
        "several, or a folder (its pictures, as analyze finds them), are each answered in "
        "turn",
    )
    p.add_argument("--index", type=Path, default=None, help="the index file, given after IMAGE")
    p.add_argument(
        "--base-dir",
        type=Path,
        default=None,
        help="where the indexed images live now (default: as analysed)",
    )
    p.add_argument("-k", type=positive_int, default=10, help="number of results")
    add_model_argument(p, default=None, help_default="the index's model")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="rank by vector distance only; by default the first 50 candidates are re-ranked "
        "by local feature agreement (ORB + RANSAC), which puts the source of a copy first",
    )
    p.add_argument(
        "--trim",
        action="store_true",
        help="trim the picture's plain borders first (a screenshot of a picture on a page, a "
        "video frame's black bars), as the viewer does to live pictures; a note on stderr "
        "says which part was searched",
    )
    shapes = p.add_mutually_exclusive_group()
    shapes.add_argument(
        "--json",
        action="store_true",
        help="print [{path, file, distance, inliers}, ...] (file: absolute; inliers: null "
        "with --no-verify, past the candidates verified and for a file that cannot be read); "
        "for several pictures or a folder, [{query, results, error, "
        "searched}, ...], one per picture",
    )
    shapes.add_argument(
        "--jsonl",
        action="store_true",
        help="print one {query, results, error, searched} object per line for each picture as "
        "it is answered, however many are given (the same shape for one and for a folder)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar over several pictures")
    p.epilog = (
        "exit status: 0 every picture searched; 1 an error (said on stderr, one line), or "
        "some of several pictures could not be searched (each said, the others answered); "
        "2 an option or value the parser refused (usage: ...); 130 or 143 interrupted "
        "(Ctrl-C, SIGTERM: what was answered is printed)"
    )


@dataclass(frozen=True)
class Searched:
    """The part of a picture searched after its plain borders were trimmed: ``x, y`` its
    corner, ``width, height`` its size, of the whole ``of_width`` x ``of_height``."""

    x: int
    y: int
    width: int
    height: int
    of_width: int
    of_height: int
    plain: bool = False  # of one colour all over (borders.is_plain)

    @classmethod
    def of(cls, box: Box, shape: tuple[int, ...]) -> Searched:
        top, bottom, left, right = box
        return cls(left, top, right - left, bottom - top, shape[1], shape[0])

    @property
    def whole(self) -> bool:
        return (self.width, self.height) == (self.of_width, self.of_height)

    def text(self) -> str:
        if self.plain:  # (the viewer does not search such a live picture)
            return "plain all over (one colour): searched whole; its neighbours say little"
        if self.whole:
            return "no plain borders to trim; searched whole"
        return (
            f"searched its {self.width}x{self.height} at {self.x},{self.y} of "
            f"{self.of_width}x{self.of_height} (plain borders trimmed), and the whole too, "
            "each result at its nearer distance"
        )

    def json(self) -> dict:
        return {
            "x": self.x, "y": self.y, "width": self.width, "height": self.height,
            "of_width": self.of_width, "of_height": self.of_height, "plain": self.plain,
            # trimmed: the whole picture was searched too (session.query_file)
            "also_whole": not self.whole,
        }  # fmt: skip


@dataclass
class Answer:
    """One picture's answer: its results, or why it could not be searched."""

    image: Path
    results: list[Result]
    error: str | None = None
    searched: Searched | None = None  # with --trim
    said: bool = False  # its error already warned about (by the folder's scan)
    named: str = ""  # the picture as it was typed (`./a.jpg`), or under a folder as typed

    @property
    def name(self) -> str:
        """The picture as the answer names it: as typed, where it was."""
        return self.named or str(self.image)


def targets(
    index_file: Path | None, index: Path | None, images: list[Path]
) -> tuple[Path, list[Path]]:
    """The index `query` searches and the pictures it searches for: the index is its first
    argument or ``--index``, not both, not none; with ``--index`` every argument that does
    not look like an index is a picture."""
    from rtsearch.cli import last_shown, one_index

    if index is not None and index_file is not None and index_file.suffix.lower() != INDEX_SUFFIX:
        images, index_file = [index_file, *images], None
    chosen = one_index(index_file, index)
    named = next((i for i in images if i.suffix.lower() == INDEX_SUFFIX), None)
    if index is None and named is None and index_file is not None and _picture_like(index_file):
        images, chosen = [index_file, *images], None  # `query a.jpg b.jpg`: no index
    if chosen is None:
        if len(images) == 1 and images[0].suffix.lower() == INDEX_SUFFIX:
            raise RtsearchError(
                f"no picture given to search for: {command('rtsearch', 'query', images[0])} IMAGE"
            )
        chosen = last_shown(f"rtsearch query INDEX {_spelled(images)}")
    if chosen.suffix.lower() != INDEX_SUFFIX and named is not None:
        rest = [chosen, *(i for i in images if i != named)]
        raise RtsearchError(
            f"{named} looks like the index and {chosen} like the picture: "
            f"{command('rtsearch', 'query', named)} {_spelled(rest)}"
        )
    return chosen, images


def _picture_like(path: Path) -> bool:
    from rtsearch.decode import is_image_file

    return is_image_file(path) or os.path.isdir(path)


def _spelled(images: list[Path]) -> str:
    """The pictures as a command line takes them, the first few and "..." for the rest."""
    shown = command(*images[:NAMED_IN_MESSAGES])
    return shown + (" ..." if len(images) > NAMED_IN_MESSAGES else "")


def run(args: argparse.Namespace) -> int:
    from rtsearch.cli import print_line
    from rtsearch.session import FolderGone, SearchSession

    typed = [s for s in (args.index_file, *args.images) if s is not None]
    named = {Path(s): s for s in typed}  # each picture as typed: the answers name it so
    index_file = None if args.index_file is None else Path(args.index_file)
    args.index, given = targets(index_file, args.index, [Path(s) for s in args.images])
    # per picture: building the exact scan's int8 first pass would cost more than it saves
    open_index = functools.partial(
        SearchSession.open, args.index, model=args.model, prefilter=False, build_ann=False,
        images=args.verify,  # without verification the paths are the answer: no folder
    )  # fmt: skip
    try:
        session = open_index(base_dir=args.base_dir)
    except FolderGone as exc:  # (an unplugged drive: the paths alone answer)
        found = _from_where_shown(args.index, exc, open_index)
        if found is None:
            if not args.verify:
                raise
            raise RtsearchError(f"{exc}, or --no-verify to rank by vector alone") from None
        session = found
    if not session.base_dir.is_dir():
        print_line(f"note: the images' folder {session.base_dir} is gone; paths as indexed")
    made, used = session.index.model.variant, session.extractor.info.variant
    if args.model is None and made and used != made:  # (its distances were off, unsaid)
        print_line(
            f"note: {args.index}: its rows were made with the {made} file of "
            f"{session.index.model.name}, and no {made} file of its weights was found; queried "
            f"with its {used} file (an indexed picture comes back near 0, not at 0)"
        )
    single = len(given) == 1 and not os.path.isdir(given[0]) and not args.jsonl
    if single:  # after the index: its problems are reported first
        answers = [_answer(session, given[0], args, say_trim=True)]
    else:
        pictures = _pictures(given, session, named)
        if len(pictures) == 1 and isinstance(pictures[0], Answer):  # one folder, empty
            raise RtsearchError(str(pictures[0].error))
        answers, nearest = [], {}
        try:
            _answer_all(session, pictures, args, answers, nearest, named)
        except KeyboardInterrupt:  # (SIGTERM too) what was answered is not lost
            if args.json:
                print(json.dumps([_as_json(a, args.k) for a in answers]))
            print_line(
                f"note: {len(answers)} of {count(len(pictures), 'picture')} answered before "
                "the interruption"
            )
            raise
    considered = answers[0].results if single else list(nearest.values())
    if session.base_dir.is_dir():
        _note_missing(considered, args.index, session)
        _note_changed(considered, session.index.sizes, args.index, session.base_dir)
        _note_unreadable(considered, session.verifier.unreadable)
    if single:
        _print_one(answers[0].results[: args.k], args.json, args.verify)
        return 0
    if args.json:
        print(json.dumps([_as_json(a, args.k) for a in answers]))
    failed = sum(a.error is not None for a in answers)
    if failed:
        raise RtsearchError(
            f"{failed} of {count(len(answers), 'picture')} could not be searched (said above)"
        )
    return 0


def _from_where_shown(
    index: Path, gone: FolderGone, open_index: Callable[..., SearchSession]
) -> SearchSession | None:
    """``index`` opened (``open_index``) from the folder the viewer showed its images from,
    where the folder it names is ``gone`` (located in the viewer: the file still names the
    old one), else from the one they moved to with the index file; None where neither is,
    or they are not there now."""
    from rtsearch.cli import print_line
    from rtsearch.session import WrongFolder
    from rtsearch.viewer.memory import found_in

    folder, where = found_in(index, gone.named), "where the viewer showed them from"
    if folder is None:
        folder, where = gone.moved, "beside the index: moved with it"
    if folder is None:
        return None
    try:
        session = open_index(base_dir=folder)
    except WrongFolder:
        return None
    print_line(
        f"note: the images' folder {gone.named} is gone; searched in {folder}, {where} "
        f"({command('rtsearch', 'update', index, folder)} records it in the index)"
    )
    return session


def _pictures(
    given: list[Path], session: SearchSession, named: dict[Path, str]
) -> list[Path | Answer]:
    """The pictures to search for: files as given, folders by what analyze's scan finds in
    them (in the index's own folder, what its --exclude patterns leave out is left out,
    said in a note), those named like pictures that it cannot take (a FIFO, a broken link)
    as failed answers of their own; a folder holding none is its own failed answer. Each
    found in a folder is ``named`` under the folder as it was typed."""
    from rtsearch.cli import print_line
    from rtsearch.decode import is_image_file
    from rtsearch.exclusions import Exclusions, quoted
    from rtsearch.scan import raw_files, scan

    pictures: list[Path | Answer] = []
    exclusions = Exclusions.of(session.index.exclude)
    for path in given:
        if not os.path.isdir(path):  # (one in a folder it may not enter: said as it is searched)
            pictures.append(path)
            continue
        before = len(pictures)
        # (a name that is not UTF-8 is searched, as it is given as a file: none is stored)
        found = scan(path, warn=lambda m: print_line(f"warning: {m}"), any_name=True)
        inside = _under_base(path, session.base_dir) if exclusions else None
        kept = [r for r in found.paths if inside is None or not exclusions.hides(inside + r)]
        left = f"the index leaves out (--exclude {' '.join(map(quoted, session.index.exclude))})"
        if found.paths and not kept:
            pictures.append(Answer(path, [], f"{path}: holds only pictures {left}; give them "
                                   "as files to search them"))  # fmt: skip
            continue
        if len(kept) < len(found.paths):  # (analyze finds them so in the index's folder)
            n = count(len(found.paths) - len(kept), "picture")
            print_line(f"note: {path}: {n} {left} not searched")
        if found.raw:  # (passed over without a word, as analyze did once)
            raw = f"{raw_files(found.raw)} passed over: rtsearch does not read RAW files"
            if not found.paths:
                pictures.append(Answer(path, [], f"{path}: holds only {raw}"))
                continue
            print_line(f"note: {path}: {raw}")
        entries: list[tuple[str, Path | Answer]] = [(str(rel), path / rel) for rel in kept]
        folder = named.get(path, str(path))  # as typed: `./photos/` names `./photos/a.jpg`
        for rel in [*kept, *(rel for rel, _ in found.skipped)]:  # (one typed keeps its name)
            named.setdefault(path / rel, os.path.join(folder, rel))
        for rel, reason in found.skipped:  # (a folder it could not list: not a picture)
            where = path / rel
            if is_image_file(where):
                entries.append((str(rel), Answer(where, [], f"{where}: {reason}", said=True)))
        # in the folder's order, those that cannot be searched too (they came last)
        pictures.extend(item for _, item in sorted(entries, key=lambda e: e[0]))
        if len(pictures) == before:
            pictures.append(Answer(path, [], f"{path}: no pictures in this folder"))
    return pictures


def _under_base(folder: Path, base_dir: Path) -> str | None:
    """``folder``'s place under the index's folder, as a prefix of its paths ("" for the
    folder itself, "2019/" for one in it); None where it lies elsewhere."""
    try:
        rel = folder.resolve().relative_to(base_dir.resolve()).as_posix()
    except (ValueError, OSError):
        return None
    return "" if rel == "." else rel + "/"


def _answer_all(
    session: SearchSession,
    pictures: list[Path | Answer],
    args: argparse.Namespace,
    answers: list[Answer],
    nearest: dict[int, Result],
    named: dict[Path, str],
) -> None:
    """Each picture answered in turn, printed as it is (text and --jsonl) and added to
    ``answers`` with the results shown (the candidates verified besides go to ``nearest``,
    by row, for the notes: a folder of 100,000 pictures held 5 million results): a problem
    with one is a warning, and the others go on. Warnings of a codec this installation
    lacks are said once and counted (a folder of HEICs without pillow-heif: two lines)."""
    from rtsearch.analyze import Progress
    from rtsearch.cli import ProgressBar, print_line
    from rtsearch.extraction import Collapsed

    # on a terminal only: a log of a short batch gained progress lines it did not need
    shown = not args.quiet and len(pictures) > 1 and sys.stderr.isatty()
    bar = ProgressBar() if shown else None
    warn = Collapsed(lambda m: print_line(f"warning: {m}", bar))
    began, failed, first = time.monotonic(), 0, True
    try:
        for done, picture in enumerate(pictures, 1):
            if isinstance(picture, Answer):
                answer = picture
            else:
                try:
                    answer = _answer(session, picture, args, say_trim=False)
                except RtsearchError as exc:
                    answer = Answer(picture, [], str(exc))
            answer.named = named.get(answer.image, "")
            if answer.error is not None:
                failed += 1
                if not answer.said:
                    warn(answer.error)
            _print_as_answered(answer, args, bar, first=first)
            first = first and answer.error is not None
            nearest.update((r.row, r) for r in answer.results)
            answer.results = answer.results[: args.k]
            answers.append(answer)
            if bar is not None:
                bar(Progress.since(began, done, len(pictures), failed, done - failed))
    finally:
        warn.close()
        if bar is not None:
            bar.close()


def _answer(
    session: SearchSession,
    image: Path,
    args: argparse.Namespace,
    *,
    say_trim: bool,
    named: str | None = None,
) -> Answer:
    """``image`` searched for; its problems raised as one-line errors naming it, its
    trim's note naming it so or as ``named``."""
    from rtsearch.cli import missing_reason, print_line
    from rtsearch.sources import is_video_file

    if image == STDIN:
        return _answer_piped(session, args, say_trim=say_trim)
    try:
        if image.is_dir():
            raise RtsearchError(f"{image}: is a folder, not an image file")
        if image.suffix.lower() == INDEX_SUFFIX:
            raise RtsearchError(f"{image}: looks like an index file, not a picture")
        if not image.exists():
            raise RtsearchError(f"{image}: {missing_reason(image)}")
        pipe = image.is_fifo()  # named: `<(curl -s URL)`, /dev/stdin of a pipe (refused)
        if not pipe and not image.is_file():  # a device
            raise RtsearchError(f"{image}: not a regular file")
    except OSError as exc:  # in a folder it may not enter: as analyze's scan says it
        raise RtsearchError(f"{image}: cannot stat ({exc.strerror})") from None
    if pipe:
        try:
            with open(image, "rb") as stream:
                answer = _answer_piped(session, args, say_trim=say_trim, stream=stream,
                                       name=str(image))  # fmt: skip
        except OSError as exc:
            raise RtsearchError(f"{image}: cannot read ({exc.strerror})") from None
        answer.image = image
        return answer
    if is_video_file(image):  # (it said "not an image file (unknown format)")
        play = command("rtsearch", "view", args.index, "--source", f"video:{image}")
        raise RtsearchError(f"{image}: a video: query takes pictures; the viewer plays it: {play}")
    if image.suffix.lower() in RAW_EXTENSIONS:  # (as analyze says it, not "unknown format")
        raise RtsearchError(
            f"{image}: a RAW camera file: rtsearch does not read RAW files (search its JPEG, "
            "or one exported from it)"
        )
    answer = Answer(image, [])

    def trimmed(box: Box, whole: RGBImage) -> None:
        from rtsearch.borders import is_plain

        answer.searched = Searched.of(box, whole.shape)
        if answer.searched.whole and is_plain(whole):
            answer.searched = replace(answer.searched, plain=True)
        if say_trim:
            print_line(f"note: {named or image}: {answer.searched.text()}")

    # verification looks at more candidates than it shows: get them all, to check them
    wide = max(args.k, session.verifier.candidates) if args.verify else args.k
    answer.results = session.query_file(
        image, wide, verify=args.verify, trim=args.trim, trimmed=trimmed
    )
    return answer


def _answer_piped(
    session: SearchSession,
    args: argparse.Namespace,
    *,
    say_trim: bool,
    stream: BinaryIO | None = None,
    name: str = STDIN_NAME,
) -> Answer:
    """The picture on standard input (or ``stream``, a pipe named ``name``) searched for:
    kept in a temporary file while it is (decoding, verification and the trim read a
    file), its problems named as the input's."""
    import tempfile

    from rtsearch.sniff import HEAD_BYTES, video_kind

    if stream is None:
        if sys.stdin is None:
            raise RtsearchError(f"{STDIN_NAME} is closed: pipe a picture in (... | rtsearch "
                                "query INDEX -)")  # fmt: skip
        if sys.stdin.isatty():
            raise RtsearchError(f"{STDIN_NAME} is a terminal: pipe a picture in (... | "
                                "rtsearch query INDEX -)")  # fmt: skip
        stream = sys.stdin.buffer
    data = stream.read(MAX_PIPED + 1)
    if not data:
        raise RtsearchError(f"{name}: empty (nothing was piped in, or it was read before)")
    if len(data) > MAX_PIPED:  # (`< /dev/zero` read until memory ran out)
        raise RtsearchError(f"{name}: more than {size_text(MAX_PIPED)}: not a picture")
    kind = video_kind(data[:HEAD_BYTES])
    if kind:  # (it said "not an image file (unknown format)")
        play = command("rtsearch", "view", args.index, "--source", "video:FILE")
        raise RtsearchError(
            f"{name}: {kind} video: query takes pictures; the viewer plays a video file: {play}"
        )
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="rtsearch-stdin-"))
        (folder / "picture").write_bytes(data)
    except OSError as exc:  # no temporary folder to write to, or no room in it
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise RtsearchError(
            f"{name}: cannot keep the picture in a temporary file "
            f"({exc.strerror or first_line(exc)}); set TMPDIR to a folder with room"
        ) from None
    piped = folder / "picture"
    try:
        # (the trim's note named the temporary file)
        answer = _answer(session, piped, args, say_trim=say_trim, named=name)
    except RtsearchError as exc:
        raise RtsearchError(str(exc).replace(str(piped), name)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    answer.image = STDIN
    return answer


MAX_PIPED = 1 << 29  # a picture piped in: 512 MiB (a 100-megapixel PNG is about 300 MB)


def _print_one(results: list[Result], as_json: bool, verified: bool) -> None:
    if as_json:
        print(json.dumps([_result_json(r) for r in results]))
        return
    for line in _ranked(results, verified):
        print(line)


def _print_as_answered(
    answer: Answer, args: argparse.Namespace, bar: ProgressBar | None, *, first: bool
) -> None:
    """One picture's answer among several, printed as soon as it is known: a --jsonl line,
    or its name and ranked lines after a blank one (nothing for a failed one: its warning
    said it)."""
    if args.jsonl:
        _write(json.dumps(_as_json(answer, args.k)) + "\n", bar)
    elif not args.json and answer.error is None:
        head = printable(answer.name)
        if answer.searched is not None:
            head += f": {answer.searched.text()}"
        lines = [head, *_ranked(answer.results[: args.k], args.verify), ""]
        _write(("" if first else "\n") + "\n".join(lines), bar)


def _write(text: str, bar: ProgressBar | None) -> None:
    """``text`` on stdout, below the progress line when both go to one terminal."""
    if bar is not None and bar.tty and bar.shown and terminal.in_foreground():
        sys.stderr.write(terminal.clear())
        sys.stderr.flush()
        bar.last = 0.0  # drawn again at once, under the text
    sys.stdout.write(text)
    sys.stdout.flush()


def _ranked(results: list[Result], verified: bool) -> list[str]:
    """Rank, distance, inliers (``verified``: verification was asked for), then the path,
    so that every column lines up; past the candidates verified (-k above them), and for
    files that could not be read, the inliers read "-" (with every result unreadable, the
    column went, though the note said "-")."""
    verified = verified or any(r.inliers is not None for r in results)
    lines = []
    for rank, r in enumerate(results, 1):
        mark = f"  {'-' if r.inliers is None else r.inliers:>4} inliers" if verified else ""
        lines.append(f"{rank:3d}  {r.distance:10.4f}{mark}  {printable(r.path)}")
    return lines


def _result_json(r: Result) -> dict:
    return {"path": r.path, "file": str(r.file), "distance": r.distance, "inliers": r.inliers}


def _as_json(answer: Answer, k: int) -> dict:
    return {
        "query": answer.name,
        "results": [_result_json(r) for r in answer.results[:k]],
        "error": answer.error,
        "searched": None if answer.searched is None else answer.searched.json(),
    }


def _note_missing(results: list[Result], index: Path, session: SearchSession) -> None:
    """Say when indexed files among the nearest are gone (the index is older than the
    folder): a missing file cannot be verified and drops out of the ranks, unsaid."""
    from rtsearch.cli import print_line
    from rtsearch.session import own_folder_note

    base_dir = session.base_dir
    rows = {r.row: r for r in results}
    missing = [r.path for r in rows.values() if is_gone(r.file)]
    if not missing:
        return
    n = len(missing)
    verb = "is" if n == 1 else "are"
    said = f"note: {n} of the {count(len(rows), 'nearest indexed image')} {verb} "
    elsewhere = own_folder_note(session.index, base_dir, missing)
    if elsewhere:  # (--base-dir names another folder: the index is not out of date)
        print_line(f"{said}not in {base_dir}: {elsewhere}")
        return
    print_line(
        f"{said}no longer in {base_dir} (deleted or moved since the index was made); "
        f"{command('rtsearch', 'update', index, base_dir)} brings it up to date"
    )


def _note_unreadable(results: list[Result], unreadable: dict[Path, str]) -> None:
    """Say when indexed files among the nearest are there but could not be read to verify
    them (a HEIC without pillow-heif, a file damaged since): their inliers are "-" (null),
    and a true source among them cannot be moved ahead."""
    from rtsearch.cli import print_line

    files = {r.file for r in results if r.file in unreadable and not is_gone(r.file)}
    if files:
        first = unreadable[min(files)]
        print_line(
            f"note: {count(len(files), 'nearest indexed image')} could not be read to verify "
            f'{"it" if len(files) == 1 else "them"} (inliers "-"; first: {first})'
        )


def _note_changed(results: list[Result], sizes, index: Path, base_dir: Path) -> None:
    """Say when indexed files among the nearest are not the ones indexed (another size):
    the folder changed since, or --base-dir names another folder whose files share the
    names. Their distances are the indexed pictures', their inliers the files' now there."""
    from rtsearch.cli import print_line
    from rtsearch.session import replaced

    rows = {r.row: r for r in results}
    changed = len(replaced(list(rows.values()), sizes))  # (one gone: _note_missing says so)
    if changed:
        print_line(
            f"note: {changed} of the {count(len(rows), 'nearest indexed image')} in "
            f"{base_dir} {'is' if changed == 1 else 'are'} not the file indexed (another "
            f"size): changed since, or another folder; "
            f"{command('rtsearch', 'update', index, base_dir)} brings the index up to date with it"
        )
