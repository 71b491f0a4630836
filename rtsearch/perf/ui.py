"""Stage 4: UI frame time while the live loop runs, from the viewer itself.

Contract with the viewer (`rtsearch view`): when its --help offers ``--quit-after-frames N``
and ``--frame-stats FILE``, it runs N frames and then writes FILE as JSON with at least
``p50_ms`` and ``p99_ms`` (frame-to-frame times while its worker queries). Without those
options the figure is reported as null with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

NEEDED = ("--quit-after-frames", "--frame-stats")


def viewer_help() -> str | None:
    cmd = [sys.executable, "-m", "rtsearch", "view", "--help"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout if done.returncode == 0 else None


def bench_ui(
    index: Path, model: Path, video: Path, work: Path, frames: int, timeout_s: float
) -> dict:
    """p50/p99 frame ms of the viewer on ``index`` with ``model`` and the video source, or
    the reason there are none."""
    text = viewer_help()
    if text is None:
        return {"p50_ms": None, "p99_ms": None, "note": "`rtsearch view` is not available"}
    missing = [o for o in NEEDED if o not in text]
    if missing:
        note = f"`rtsearch view` lacks {', '.join(missing)}: no frame-time statistics"
        return {"p50_ms": None, "p99_ms": None, "note": note}
    stats = work / "frames.json"
    cmd = [sys.executable, "-m", "rtsearch", "view", str(index), "--model", str(model)]
    cmd += ["--source", f"video:{video}"]
    cmd += ["-k", "20", "--quit-after-frames", str(frames), "--frame-stats", str(stats)]
    if "--no-last" in text:  # the user's index for plain `rtsearch` stays theirs
        cmd.append("--no-last")
    if "--ui-scale" in text:  # the figures of one size of window, on a HiDPI desktop too
        cmd += ["--ui-scale", "1"]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1440x900x24", *cmd]
    try:
        done = run_group(cmd, timeout_s)
    except subprocess.TimeoutExpired:
        return {"p50_ms": None, "p99_ms": None, "note": f"viewer ran past {timeout_s:.0f} s"}
    if done.returncode != 0 or not stats.is_file():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"p50_ms": None, "p99_ms": None, "note": f"viewer failed: {tail}"}
    figures = json.loads(stats.read_text())
    for what_it_showed in ("index", "message", "font"):  # the bench's own temporary index
        figures.pop(what_it_showed, None)
    return {"p50_ms": figures.get("p50_ms"), "p99_ms": figures.get("p99_ms"), **figures}


def run_group(cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """``cmd`` in a process group of its own that ends with it: on a timeout or a Ctrl-C
    the whole group is stopped (SIGTERM, then SIGKILL after 5 s), not only ``cmd``.
    `xvfb-run` killed alone left its Xvfb and the viewer running."""
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout_s)
        except BaseException:
            stop_group(child)
            raise
    return subprocess.CompletedProcess(cmd, child.returncode, out, err)


def stop_group(child: subprocess.Popen, grace_s: float = 5.0) -> None:
    for sig in (signal.SIGTERM, getattr(signal, "SIGKILL", signal.SIGTERM)):
        with contextlib.suppress(ProcessLookupError):
            if hasattr(os, "killpg"):
                os.killpg(child.pid, sig)
            else:  # Windows: no process groups to signal; the child itself
                child.terminate()
        try:
            child.communicate(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
