"""Commands run where the process's surroundings are awkward: a locale whose encoding is
not UTF-8, standard streams closed or full, a folder that cannot be searched, the current
folder deleted. Found by a user's trial of the shell (a helper, 2026-12-02 night)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import DROP_DAC, make_gallery, make_image

from rtsearch import store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shells' ways")


def run(*args, cwd: Path | None = None, env: dict | None = None, prefix=(), **kwargs):
    cmd = [*prefix, sys.executable, "-m", "rtsearch", *map(str, args)]
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=environ,
                          timeout=300, **kwargs)  # fmt: skip


@pytest.fixture
def folder(tmp_path) -> Path:
    pics = tmp_path / "pics"
    make_gallery(pics, 6)
    for i in range(3):
        make_image(40 + i).save(pics / f"café_{i}.jpg")
    return pics


def test_a_locale_that_is_not_utf8_reads_names_as_the_utf8_they_are(tmp_path, folder, tiny_model):
    """LC_ALL=C with PYTHONUTF8=0 (or a Latin-1 locale): analyze skipped café.jpg as "not
    UTF-8", update removed its row, and query ended in a UnicodeEncodeError traceback."""
    index = tmp_path / "i.dat"
    c = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LANG": "C"}
    done = run("analyze", folder, "-o", index, "--model", tiny_model, "--quiet", env=c)
    assert done.returncode == 0 and "not UTF-8" not in done.stderr, done.stderr
    assert sum(p.startswith("café_") for p in store.load(index).paths) == 3
    again = run("update", index, folder, "--model", tiny_model, env=c)
    assert again.returncode == 0 and "0 removed" in again.stdout, again.stdout + again.stderr
    asked = run("query", index, folder / "café_1.jpg", "-k", "1", "--model", tiny_model, env=c)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.rstrip().endswith("caf\\xe9_1.jpg")  # the locale's ASCII, escaped
    assert store.load(index).count == 9


def test_a_closed_or_full_standard_error_does_not_stop_the_work(tmp_path, folder, tiny_model):
    """`2>&-` stopped analyze at once without a word (its progress bar asked a closed stream
    whether it was a terminal); `2>/dev/full` (a full disk under `2>>log`) stopped it at the
    first progress line, nothing saved; a query batch's notes went into its JSON."""
    index = tmp_path / "i.dat"
    closed = run("analyze", folder, "-o", index, "--model", tiny_model,
                 prefix=("sh", "-c", 'exec "$@" 2>&-', "sh"))  # fmt: skip
    assert closed.returncode == 0 and "9 images" in closed.stdout and index.exists()
    full = run("analyze", folder, "-o", tmp_path / "f.dat", "--model", tiny_model,
               prefix=("sh", "-c", 'exec "$@" 2>/dev/full', "sh"))  # fmt: skip
    assert full.returncode == 0 and (tmp_path / "f.dat").exists(), full.stdout
    pics = [folder / "café_0.jpg", folder / "café_1.jpg"]
    asked = run("query", index, *pics, "--json", "--no-verify", "--trim", "--model", tiny_model,
                prefix=("sh", "-c", 'exec "$@" 2>&-', "sh"))  # fmt: skip
    assert asked.returncode == 0 and asked.stdout.startswith("["), asked.stdout[:200]


def test_a_closed_standard_output_is_an_error_not_a_silent_success(tmp_path, folder, tiny_model):
    """`>&-`: info, models and analyze wrote nothing and exited 0 (as if it had worked); a
    query batch ended in a traceback."""
    index = tmp_path / "i.dat"
    assert run("analyze", folder, "-o", index, "--model", tiny_model, "--quiet").returncode == 0
    close = ("sh", "-c", 'exec "$@" >&-', "sh")
    for args in (["info", index], ["query", index, folder, "--model", tiny_model, "--jsonl"]):
        said = run(*args, prefix=close)
        assert (said.returncode, said.stderr.splitlines()[-1]) == (
            1, "rtsearch: error: standard output: cannot write (closed)"
        ), said.stderr  # fmt: skip


def test_system_errors_are_one_line_naming_the_file(tmp_path, folder, tiny_model):
    """A folder the user cannot search (another user's home), the current folder deleted
    under a relative path: PermissionError and FileNotFoundError tracebacks."""
    index = tmp_path / "i.dat"
    assert run("analyze", folder, "-o", index, "--model", tiny_model, "--quiet").returncode == 0
    gone = tmp_path / "gone"
    for name in ("i.dat", "../i.dat"):  # (the second was "malformed index", from the probe)
        gone.mkdir()
        script = f'cd "{gone}" && rmdir "{gone}" && exec "$@"'
        said = run("info", name, prefix=("sh", "-c", script, "sh"))
        assert (said.returncode, said.stderr) == (1, (
            "rtsearch: error: the current folder is gone (deleted or moved: No such file or "
            "directory); cd into another, or give full paths\n"
        )), said.stderr  # fmt: skip
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: every folder can be searched")
    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(index, private / "i.dat")
    private.chmod(0o600)  # listed, not searched
    try:
        prefix = DROP_DAC if os.geteuid() == 0 else ()
        for args in (["info", private / "i.dat"], ["query", index, private / "x.jpg"]):
            said = run(*args, "--model", tiny_model, prefix=prefix) if args[0] == "query" else (
                run(*args, prefix=prefix))  # fmt: skip
            assert said.returncode == 1 and said.stderr.startswith(
                f"rtsearch: error: {private}/"
            ), said.stderr
            # (the picture as analyze's scan says one it cannot look at)
            end = (
                ": cannot stat (Permission denied)\n"
                if args[0] == "query"
                else ": Permission denied\n"
            )
            assert said.stderr.endswith(end) and "Traceback" not in said.stderr
    finally:
        private.chmod(0o700)


def test_a_file_size_limit_is_said_before_hdf5_writes(tmp_path, folder, tiny_model):
    """`ulimit -f`: HDF5 failed mid-write of a checkpoint part ("File too large"),
    tracebacks and "Exception ignored" lines, then a segfault at exit (139)."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 1024, resource.RLIM_INFINITY))

    index = tmp_path / "i.dat"
    said = run("analyze", folder, "-o", index, "--model", tiny_model, "--quiet",
               "--keep-features", preexec_fn=limit)  # fmt: skip
    last = said.stderr.splitlines()[-1]
    assert said.returncode == 1 and last.startswith(
        f"rtsearch: error: {index}: cannot write index (File too large: it needs about "
    ), said.stderr
    assert last.endswith("past this process's limit of 20 KiB a file; ulimit -f)")
    assert "Traceback" not in said.stderr and not index.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp file


def test_running_out_of_file_descriptors_stops_the_run_and_keeps_its_work(
    tmp_path, tiny_model, monkeypatch
):
    """`ulimit -n 8`: 93 of 150 pictures were skipped as undecodable ("Too many open
    files") and the index written without them, exit 0."""
    import errno

    from rtsearch import decode
    from rtsearch.analyze import Settings, analyze
    from rtsearch.errors import RtsearchError
    from rtsearch.extractor import Extractor

    folder = tmp_path / "pics"
    make_gallery(folder, 40)
    real, opened = decode._open_regular, []

    def few(path):
        opened.append(path)
        if len(opened) > 20:
            raise OSError(errno.EMFILE, "Too many open files")
        return real(path)

    monkeypatch.setattr(decode, "_open_regular", few)
    out = tmp_path / "i.dat"
    settings = Settings(dims=8, batch=4)
    with pytest.raises(RtsearchError) as stopped:
        analyze(folder, out, Extractor(tiny_model, threads=1), settings)
    said = str(stopped.value)
    assert said.startswith("stopped: too many open files (this process may have "), said
    assert f"{out}.ckpt keeps the " in said and not out.exists()
    monkeypatch.undo()
    report = analyze(folder, out, Extractor(tiny_model, threads=1), settings)
    assert report.reused >= 16 and not report.skipped and store.load(out).count == 40


def test_a_home_without_a_cache_folder_prints_nothing_extra(tmp_path, folder, tiny_model):
    """onnxruntime's telemetry kept a device ID under the user's cache folder; where it
    could not (a read-only or missing home, XDG_CACHE_HOME naming a file) it printed a
    coloured warning on every command that loads a model."""
    index = tmp_path / "i.dat"
    assert run("analyze", folder, "-o", index, "--model", tiny_model, "--quiet").returncode == 0
    cache = tmp_path / "not-a-folder"
    cache.write_text("")
    env = {"XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path / "gone")}
    said = run("query", index, folder / "café_1.jpg", "-k", "1", "--model", tiny_model, env=env)
    assert (said.returncode, said.stderr) == (0, ""), said.stderr


def test_the_progress_line_fits_a_narrow_terminal_and_a_dumb_one(monkeypatch):
    """In a 40-column terminal each redraw of the 75-character bar wrapped and left a line
    behind; TERM=dumb was sent escape codes."""
    import io

    from rtsearch import terminal
    from rtsearch.analyze import Progress
    from rtsearch.cli import ProgressBar, print_line

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            return 2

    for columns, term in ((40, "xterm"), (20, "xterm"), (120, "xterm"), (40, "dumb")):
        size = os.terminal_size((columns, 24))
        monkeypatch.setattr(os, "get_terminal_size", lambda fd, size=size: size)
        monkeypatch.setenv("TERM", term)
        screen = Terminal()
        monkeypatch.setattr(sys, "stderr", screen)
        bar = ProgressBar()
        bar(Progress(2, 10, 0, 0.0))  # in the work's first second: no rate yet
        bar.last = 0.0
        for done in (5, 10):
            bar(Progress(done, 10, 0, 2.0))
            bar.last = 0.0
        print_line("warning: x.jpg: empty file", bar)
        drawn = [d for d in screen.getvalue().split("\r") if d]
        shown = [d.replace("\x1b[K", "").rstrip() for d in drawn]
        first, shown = shown[0], shown[1:]
        if columns >= 40:  # (it read "0.0 img/s")
            assert "2/10 - img/s ETA ?" in first, first
        assert all(len(d) <= columns - 1 for d in shown[:2]), (columns, drawn)
        assert ("\x1b" in screen.getvalue()) == (term != "dumb"), screen.getvalue()
        if columns == 120:
            assert shown[1].startswith("[####") and "10/10" in shown[1]
        if columns == 40:
            assert shown[1].startswith("10/10 ") and "skipped 0" in shown[1]  # the bar went
        if columns == 20:  # whole figures: it ended "ETA 0", read as an ETA of 0
            assert shown[1] == "10/10 2.0 img/s", shown
        assert screen.getvalue().endswith("warning: x.jpg: empty file\n")
        assert terminal.width() == columns


def test_threads_follow_the_cores_this_process_may_use_and_have_a_limit(monkeypatch, capsys):
    """`--threads 0` counted the machine's cores, not those `taskset` or a container leaves
    (two streams shared one core under `taskset -c 0`); `--threads 20000` was taken."""
    from rtsearch import cli, extractor

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert extractor.cores() == 1
    with pytest.raises(SystemExit):
        cli.main(["analyze", "x", "-o", "y.dat", "--threads", "20000"])
    said = "argument --threads: must be 0-1024 (0: every core), got 20000"
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(("encoding", "again"), [("ascii", True), ("utf-8", False),
                                                 ("iso8859-1", False)])  # fmt: skip
def test_only_a_locale_that_reads_no_name_but_ascii_runs_again_in_utf8(
    monkeypatch, encoding, again
):
    """A Latin-1 locale's own names (café.jpg written in Latin-1) were refused once the
    command ran again in UTF-8 mode, and update dropped their rows: that locale is left to
    decode them; the C locale, which decodes none, is not."""
    from rtsearch import startup

    ran = []
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: encoding)
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "rtsearch", "info", "x"])
    monkeypatch.delenv("PYTHONUTF8", raising=False)
    monkeypatch.setattr(os, "execve", lambda exe, argv, env: ran.append(env["PYTHONUTF8"]))
    startup.names_as_utf8()
    assert ran == (["1"] if again else [])


def test_no_memory_to_start_with_is_one_line(monkeypatch, capsys):
    """Under `ulimit -v` of about 500 MB the imports that build the command line ran out of
    memory: a MemoryError traceback through importlib, before any command started."""
    from rtsearch import cli

    def no_memory():
        raise MemoryError

    monkeypatch.setattr(cli, "build_parser", no_memory)
    assert cli.main(["models"]) == 1
    assert capsys.readouterr().err == (
        "rtsearch: error: out of memory; check this process's limit (ulimit -v)\n"
    )
