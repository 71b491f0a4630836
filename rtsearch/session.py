"""A loaded index ready to answer queries: index + model + searcher + where the images are.

This is what the `query` command and the viewer's worker hold; it does no I/O per query
beyond the model run, and ``query_*`` may be called from one worker thread at a time.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtsearch import bigstore, store
from rtsearch import projection as proj
from rtsearch.borders import Box, trimmed_views
from rtsearch.decode import RGBImage, load_rgb
from rtsearch.errors import RtsearchError, count, require_folder, warn
from rtsearch.extractor import Extractor
from rtsearch.models import find_model_for, resolve_model
from rtsearch.moves import same_stat
from rtsearch.scan import file_size
from rtsearch.search import Searcher
from rtsearch.store import Index
from rtsearch.verify import MAX_SIDE as VERIFY_SIDE
from rtsearch.verify import Keypoints, Verifier

# rows of a file's size looked at for the file itself, written as no place under the base
# tells (copies and hard links share sizes; a folder of same-size BMPs, more)
SAME_SIZE_LOOKS = 64


@dataclass(frozen=True)
class Result:
    """One neighbour: its row in the index, stored relative path, absolute file, distance."""

    row: int
    path: str
    file: Path
    distance: float
    inliers: int | None = None  # set when geometric verification looked at this result


def replaced(results: list[Result], sizes: npt.NDArray[np.int64]) -> list[Result]:
    """Of ``results``, those whose files are there and not of the size indexed (``sizes``,
    the index's): replaced by other pictures under their names, or another folder's."""
    return [r for r in results if file_size(r.file) not in (-1, int(sizes[r.row]))]


def _plain_absolute(folder: Path) -> Path:
    """``folder`` made absolute, without its ``..`` where they name the same folder (given
    as ``--base-dir ../photos``, results read ``/home/me/work/../photos/...``; through a
    link, ``..`` leads elsewhere than where taking the name out would)."""
    whole = Path(folder).absolute()
    tidy = Path(os.path.normpath(whole))
    try:
        return tidy if tidy != whole and os.path.samefile(tidy, whole) else whole
    except OSError:
        return whole


class SearchSession:
    def __init__(
        self,
        index: Index,
        extractor: Extractor,
        base_dir: Path,
        method: str = "auto",
        source: Path | None = None,
        *,
        prefilter: bool = True,
        build_ann: bool = True,
    ) -> None:
        """``prefilter``: let exact search build its int8 first pass (~0.25 s at 145k rows,
        repaid after a few hundred queries; a one-shot query does better without it);
        ``build_ann``: likewise for the ANN structure of a large index (20 s at 1M rows):
        without it one is used only when stored beside the index."""
        store.check_compatible(index, extractor.info, str(source or "index"))
        if index.projected is None or index.projection is None:
            raise RtsearchError(f"{source or 'index'}: has no projected vectors")
        self.index = index
        self.extractor = extractor
        self.base_dir = _plain_absolute(base_dir)  # result files stay right after a chdir
        self.source = source
        self.searcher = Searcher(
            index.projected, method, source, prefilter=prefilter, build_ann=build_ann,
            warn=warn,
        )  # fmt: skip
        self._verifier: Verifier | None = None

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier()
        return self._verifier

    @classmethod
    def open(
        cls,
        index_path: Path,
        *,
        base_dir: Path | None = None,
        model: str | None = None,
        threads: int = 0,
        prefer_int8: bool = False,
        fp32: bool = False,
        features: bool = False,
        prefilter: bool = True,
        build_ann: bool = True,
        images: bool = True,
        index: Index | None = None,
    ) -> SearchSession:
        """The index's model is found by its identity: the file that made its rows, unless
        ``prefer_int8`` (a faithful int8 twin first, for speed) or ``fp32`` (the fp32 file
        first). ``images=False``: the images are not needed (paths are all that is wanted), so a
        stored folder that is gone (an unplugged drive) is kept as it was, not refused.
        ``index``: the file's index, loaded already (not read again)."""
        # Large indexes are memory-mapped, not read: their vectors are never copied twice.
        if index is None:
            index = bigstore.load(index_path, features=features)
        if images or base_dir is not None or not index.base_dir:
            base = resolve_base_dir(index, index_path, base_dir)
        else:
            base = Path(index.base_dir)
        if model:
            model_path = resolve_model(model)
        else:
            m = index.model
            model_path = find_model_for(
                m.name, m.feature_layer, m.identity, prefer_int8=prefer_int8, index=index_path,
                first="fp32" if fp32 else "" if prefer_int8 else m.variant, hint=m.file,
            )  # fmt: skip
        extractor = Extractor(model_path, threads=threads)
        return cls(
            index, extractor, base, source=Path(index_path), prefilter=prefilter,
            build_ann=build_ann,
        )  # fmt: skip

    def features_of(self, images: list[RGBImage]) -> npt.NDArray[np.float32]:
        return self.extractor(images)

    def project(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        assert self.index.projection is not None
        return self.index.projection(features)

    def query_vector(
        self, vector, k: int, exclude: int | None = None, first: int | None = None
    ) -> list[Result]:
        """``first``: a row ranked before the others at its distance (Searcher.query)."""
        hits = self.searcher.query(vector, k, exclude, first=first)
        return [
            Result(int(i), self.index.paths[i], self.file_of(int(i)), float(d))
            for i, d in zip(hits.indices, hits.distances, strict=True)
        ]

    def query_image(
        self,
        image: RGBImage,
        k: int,
        exclude: int | None = None,
        *,
        verify: bool = False,
        detail: RGBImage | list[Keypoints] | None = None,
        first: int | None = None,
        vector: npt.NDArray[np.float32] | None = None,
        others: list[RGBImage] | None = None,
    ) -> list[Result]:
        """Nearest ``k`` to ``image``; with ``verify`` the top candidates are re-ranked by
        geometric verification (rtsearch/verify.py), which puts the source of a copy first.
        ``detail``: a larger decode of the same picture for the keypoints (default: image),
        or its keypoints (Verifier.views);
        ``first``: a row ranked before the others as near (the file's own row among its
        identical copies); ``vector``: the picture's own in the index (stored_vector:
        searched with it, no model run); ``others``: more pictures of it
        searched too (the whole of a picture trimmed, each layer's), each result at its
        nearest distance."""
        others = others or []
        if vector is not None:
            vectors = vector[None]
        else:
            vectors = self.project(self.features_of([image, *others]))
        n = max(k, self.verifier.candidates) if verify else k
        wide = nearer_of([self.query_vector(v, n, exclude, first) for v in vectors], n)
        if not verify:
            return wide
        return self.verifier.rerank(image if detail is None else detail, wide)[:k]

    def query_file(
        self,
        path: Path,
        k: int,
        *,
        verify: bool = False,
        trim: bool = False,
        trimmed: Callable[[Box, RGBImage], None] | None = None,
    ) -> list[Result]:
        """The nearest to the picture in ``path``; ``trim``: its plain borders off first
        (a screenshot of a picture on a page), as the viewer trims live pictures, the box
        kept and the whole picture told to ``trimmed``."""
        others: list[RGBImage] = []
        if trim:  # whole, so that the part kept is not enlarged from a reduced decode
            whole = load_rgb(path)
            # trimmed: the whole picture, and what each layer trimmed left, searched too (a
            # logo with its own white margins, trimmed to its middle, missed its file)
            box, others = trimmed_views(whole)
            top, bottom, left, right = box
            image = whole[top:bottom, left:right]
            if trimmed is not None:
                trimmed(box, whole)
        else:  # decoded exactly as analyze decodes, so the indexed file itself is at ~0
            image = load_rgb(path, min_size=self.extractor.info.input_size)
        # trimmed, the picture has all its pixels: verified as searched, and with a margin
        # of its border (a small logo trimmed from its page gave its own file 0 inliers)
        detail = self.verifier.views(whole, box) if verify and trim and others else None
        if verify and not trim and max(image.shape[:2]) < VERIFY_SIDE:
            detail = load_rgb(path, min_size=(VERIFY_SIDE, VERIFY_SIDE))
        # A file of the index comes first among its identical copies (a model run's rounding
        # differs from another's by ~1e-7); as analysed, it is searched as its row.
        row = self.row_at(path)
        own = self.stored_vector(row, path) if row is not None and not trim else None
        return self.query_image(
            image, k, verify=verify, detail=detail, first=row, vector=own, others=others
        )

    def file_of(self, row: int) -> Path:
        """The file of the index's row ``row``, under the base folder."""
        return self.base_dir / self.index.paths[row]

    def row_at(self, path: Path) -> int | None:
        """The row of the file at ``path`` (its place under the base folder, however it is
        written: ``..``, a link to it); None where it has none."""
        places = []
        for resolve in (os.path.abspath, os.path.realpath):
            try:
                places.append(Path(resolve(path)).relative_to(resolve(self.base_dir)).as_posix())
            except ValueError:
                continue
        rows = (self.index.row_of(rel) for rel in dict.fromkeys(places))  # (each place once)
        found = next((row for row in rows if row is not None), None)
        if found is None and (rel := self._under_base(path)) is not None:
            found = self.index.row_of(rel)
        return self._same_file(path) if found is None else found

    def _same_file(self, path: Path) -> int | None:
        """The row whose file is the very file at ``path``, written in a way no place under
        the base tells: the real path of a file in a folder linked from outside the base,
        a name in another letter case on a FAT or exFAT disk. Only rows of its size are
        looked at (one comparison over the sizes, then a stat or two)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        sizes = np.asarray(self.index.sizes)
        for row in np.flatnonzero(sizes == st.st_size)[:SAME_SIZE_LOOKS]:
            try:
                other = os.stat(self.file_of(int(row)))
            except OSError:
                continue
            if os.path.samestat(other, st):
                return int(row)
        return None

    def _under_base(self, path: Path) -> str | None:
        """``path``'s place under the base folder, where neither its absolute nor its real
        path lies under the base's: reached through a link to the base while the folder it
        is in is a link too (its real path leaves the base), or written in another letter
        case on a FAT or exFAT disk. A file of the index so written was not its row, and an
        identical copy ranked before it."""
        try:
            base = os.stat(self.base_dir)
        except OSError:
            return None
        absolute = Path(os.path.abspath(path))
        for parent in absolute.parents:
            try:
                st = os.stat(parent)
            except OSError:
                continue
            if os.path.samestat(st, base):
                return absolute.relative_to(parent).as_posix()
        return None

    def stored_vector(self, row: int, path: Path) -> npt.NDArray[np.float32] | None:
        """Row ``row``'s vector, where ``path`` is its file (however written: row_at) as it
        was analysed (size and time): the picture's own vector, no model run (`query`'s and
        the viewer's; the viewer ran the live model on a collection's picture, and its
        results were not `query`'s); else None."""
        if not 0 <= row < len(self.index.paths) or self.row_at(path) != row:
            return None
        if self.index.projected is None or not self._unchanged(row, path):
            return None
        return np.asarray(self.index.projected[row], np.float32)

    def _unchanged(self, row: int, path: Path) -> bool:
        """Whether the file at ``path`` is as row ``row`` was made from (size and time)."""
        try:
            st = Path(path).stat()
        except OSError:
            return False
        return same_stat(self.index.sizes[row], self.index.mtimes[row], st.st_size, st.st_mtime)

    def with_features(self) -> Index:
        """This session's index with its stored features, read from its file when they were
        not loaded (the viewer loads none); as it is when its file has none."""
        index, source = self.index, self.source
        if index.features is not None or not self.reprojectable:
            return index
        assert source is not None  # (reprojectable: the file has them)
        full = store.load(source, features=True)
        if list(full.paths) != list(index.paths):  # the file changed since: not these rows
            return index
        return dataclasses.replace(index, features=full.features)

    @functools.cached_property
    def reprojectable(self) -> bool:
        """Whether ``reprojected`` can work: the features are here or in the index file."""
        index, source = self.index, self.source
        return index.features is not None or (source is not None and store.has_features(source))

    def reprojected(self, dims: int) -> SearchSession:
        """A new session over the same features projected to ``dims`` (needs stored features)."""
        index = self.with_features()
        if index.features is None:
            raise RtsearchError(
                "this index was saved without features; re-analyze with --keep-features "
                "to change dimensionality"
            )
        old = index.projection
        assert old is not None
        # an index of every feature ("none") is reduced by the default projection: "none"
        # keeps them all whatever the dims (Apply dims said it re-projected, and did not)
        kind = old.kind if old.kind != "none" or dims >= old.in_dims else proj.DEFAULT_KIND
        p = proj.fit(index.features, dims, kind, l2=old.l2_normalize, seed=old.seed)
        new = Index(
            paths=index.paths,
            model=index.model,
            sizes=index.sizes,
            mtimes=index.mtimes,
            projected=p(index.features),
            projection=p,
            features=index.features,
            base_dir=index.base_dir,
            created=index.created,
            exclude=index.exclude,
        )
        return SearchSession(
            new,
            self.extractor,
            self.base_dir,
            self.searcher.method if self.searcher.method != "kdtree" else "auto",
            self.source,
        )


SAMPLE = 20  # indexed paths looked for in a folder given as the images' new home


def same_collection(old: SearchSession, new: SearchSession) -> bool:
    """Whether ``new`` shows ``old``'s collection again: its index file (re-read, updated
    by --watch, loaded from a moved folder) or its folder (re-projected, another copy)."""
    if old.source is not None and new.source is not None and same_path(old.source, new.source):
        return True
    return same_path(old.base_dir, new.base_dir)


def same_path(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # (gone: an index's folder unplugged)
        return os.path.abspath(a) == os.path.abspath(b)


def _sample(index: Index) -> list[int]:
    """SAMPLE rows spread over the whole index (a small one: every row)."""
    n = len(index.paths)
    m = min(n, SAMPLE)
    return sorted({round(i * (n - 1) / max(1, m - 1)) for i in range(m)})


def check_base_dir(index: Index, index_path: Path, base_dir: Path) -> None:
    """Refuse a folder that holds none of SAMPLE indexed images spread over the index: a
    wrong folder would show no picture and fail every result."""
    rows = _sample(index)
    if rows and not any(os.path.isfile(base_dir / index.paths[r]) for r in rows):
        own = own_folder_note(index, base_dir, [index.paths[r] for r in rows])
        looked = (  # (all of a small index: "none of 16 images of c2.dat (16 images)")
            f"the {count(len(rows), 'image')} of {index_path}"
            if len(rows) == len(index.paths)
            else f"{count(len(rows), 'image')} of {index_path} "
            f"({count(len(index.paths), 'image')}) looked for"
        )
        raise WrongFolder(f"{base_dir}: holds none of {looked}, e.g. {index.paths[rows[0]]}", own)


def moved_with_index(index: Index, index_path: Path) -> Path | None:
    """Where the images' folder went with the index file, the folder it names being gone
    (both moved together: a project folder renamed, a drive mounted at another place): the
    folder of that name beside the index, or the index's own folder, where it holds most
    of SAMPLE indexed images spread over the index; else None."""
    if not index.base_dir or Path(index.base_dir).is_dir():
        return None
    named, here = Path(index.base_dir), Path(os.path.abspath(index_path)).parent
    rows = _sample(index)
    for folder in dict.fromkeys([here / named.name, here]):
        if rows and folder.is_dir() and 2 * _held(index, folder, rows) >= len(rows):
            return folder
    return None


def _held(index: Index, folder: Path, rows: list[int]) -> int:
    """How many of the pictures of ``rows`` ``folder`` holds (one in a subfolder this user
    may not enter is not counted: Path.is_file raised PermissionError)."""
    return sum(os.path.isfile(folder / index.paths[r]) for r in rows)


def scarce_note(index: Index, index_path: Path, base_dir: Path) -> str:
    """What to say of a folder taken as the images' home that lacks some of those looked
    for (a folder of some of them: the rest show as grey tiles), or "". (Said only under
    half: a folder of 30 of 50 was taken without a word, grey tiles unexplained.)"""
    rows = _sample(index)
    found = _held(index, base_dir, rows)
    if found == len(rows):
        return ""
    return (
        f"{base_dir} holds only {found} of {count(len(rows), 'image')} of {index_path} looked "
        "for: the others show as grey tiles"
    )


def nearer_of(lists: list[list[Result]], n: int) -> list[Result]:
    """The ``n`` nearest of several queries' results, each row once at its nearest
    distance (ties: in the order of ``lists``); one list as it is (its order of near ties:
    the searcher's, by row among copies a rounding apart)."""
    if len(lists) == 1:
        return lists[0][:n]
    best: dict[int, Result] = {}
    for r in (r for results in lists for r in results):
        if r.row not in best or r.distance < best[r.row].distance:
            best[r.row] = r
    return sorted(best.values(), key=lambda r: r.distance)[:n]


def own_folder_note(index: Index, base_dir: Path, paths: list[str]) -> str:
    """Of stored ``paths`` not in ``base_dir`` (a folder given, not the index's own): where
    the index's own folder still holds some of them, that (the index is not out of date:
    another folder was given), else ""."""
    own = Path(index.base_dir) if index.base_dir else None
    if own is None or not own.is_dir() or same_path(own, base_dir):
        return ""
    held = sum(os.path.isfile(own / p) for p in paths)
    if not held:
        return ""
    them = "it" if len(paths) == 1 else "them" if held == len(paths) else f"{held} of them"
    return f"the index's own folder {own} holds {them}"


class WrongFolder(RtsearchError):
    """A folder given as the images' new home that does not hold them: ``why``, and on a
    command line how to give another (the viewer asks for it: ``ask``)."""

    def __init__(self, why: str, own: str = "") -> None:
        # (where the index's own folder holds them: that, and the way to take it)
        way = (
            f"{own}: leave out --base-dir" if own else "give --base-dir the folder they are in now"
        )
        super().__init__(f"{why}; {way}")
        self.why = why

    @property
    def ask(self) -> str:
        return f"{self.why}; choose the folder they are in now"


class FolderGone(RtsearchError):
    """The folder an index's images were analysed in (``named``) is not there now, and none
    was given; ``moved``: where they went with the index file (moved_with_index), if
    they did."""

    def __init__(self, message: str, named: str = "", moved: Path | None = None) -> None:
        super().__init__(message)
        self.named = named
        self.moved = moved


def resolve_base_dir(index: Index, index_path: Path, base_dir: Path | None) -> Path:
    """The folder the stored relative paths are under: given, else as analysed."""
    if base_dir is not None:
        try:
            base_dir = require_folder(base_dir)
        except RtsearchError as exc:  # (said "nowhere: folder not found": which folder?)
            raise RtsearchError(f"--base-dir {exc}") from None
        check_base_dir(index, index_path, base_dir)
        return base_dir
    if index.base_dir and Path(index.base_dir).is_dir():
        return Path(index.base_dir)
    named = index.base_dir or "(unknown)"
    raise FolderGone(
        f"{index_path}: the images' folder {named} is gone; pass --base-dir",
        index.base_dir,
        moved_with_index(index, index_path),
    )
