"""Fill XForms with ODK's own form engine, headlessly, for end-to-end tests.

Wraps ``tests/e2e/engine/fill.mjs`` (a small node program around
``@getodk/xforms-engine``, the engine behind ODK Web Forms, running on jsdom).

    from tests.e2e import engine
    sub = engine.fill(form_xml, [
        {"ref": "/data/name", "value": "Tashi"},
        {"ref": "/data/members", "repeat_count": 2},
        {"ref": "/data/members[2]/age", "value": "7"},
        {"ref": "/data/colours", "values": ["red", "blue"]},
        {"ref": "/data/photo", "file": b"\\xff\\xd8...", "name": "a.jpg", "type": "image/jpeg"},
    ], attachments={"children.csv": b"name,label\\n..."})
    sub.xml, sub.files, sub.instance_id

Answers are applied in order. Refs are the ones the engine reports (repeat
instances 1-based: ``/data/members[2]/age``); ``list_refs(form_xml)`` shows them.
In ``fill`` an answer's ``"file"`` may be bytes (written to a temp file) or a path.

This module deliberately does not import pytest.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent / "engine"
FILL_SCRIPT = ENGINE_DIR / "fill.mjs"
_ENGINE_MARKER = ENGINE_DIR / "node_modules" / "@getodk" / "xforms-engine" / "package.json"
_MIN_NODE = (20, 19)


class EngineError(RuntimeError):
    """The engine could not fill the form (bad ref/value, pending, load failure...)."""

    def __init__(self, message: str, *, returncode: int | None = None, summary: dict | None = None):
        super().__init__(message)
        self.returncode = returncode
        self.summary = summary


class EngineUnavailable(EngineError):
    """node/npm missing or the engine package could not be installed."""


@dataclass
class FilledSubmission:
    xml: bytes
    files: dict[str, bytes] = field(default_factory=dict)
    instance_id: str = ""
    status: str = "ready"
    violations: list[dict] = field(default_factory=list)


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise EngineUnavailable("node is not installed (need Node.js >= 20.19 to run the ODK form engine)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major, minor = (int(x) for x in out.lstrip("v").split(".")[:2])
    except ValueError:
        raise EngineUnavailable(f"cannot tell the node version from {out!r}") from None
    if (major, minor) < _MIN_NODE:
        raise EngineUnavailable(f"node {out} is too old; the ODK form engine needs >= 20.19")
    return node


_installed = False


def ensure_installed() -> None:
    """Run ``npm ci`` in tests/e2e/engine once, if its node_modules is missing."""
    global _installed
    if _installed:
        return
    _node()
    if not _ENGINE_MARKER.exists():
        npm = shutil.which("npm")
        if not npm:
            raise EngineUnavailable("npm is not installed; cannot install the ODK form engine (npm ci in tests/e2e/engine)")
        # A lock file so parallel test workers do not run npm ci at once.
        with open(Path(tempfile.gettempdir()) / "carefile-e2e-engine-install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not _ENGINE_MARKER.exists():
                    proc = subprocess.run(
                        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                        cwd=ENGINE_DIR,
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=False,
                    )
                    if proc.returncode != 0 or not _ENGINE_MARKER.exists():
                        raise EngineUnavailable(
                            f"npm ci in {ENGINE_DIR} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                        )
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    _installed = True


class _Filler:
    """One long-lived ``node fill.mjs --serve`` for all jobs of the test process (loading node, jsdom
    and the engine costs ~2 s per process). It answers each job with what a separate ``node fill.mjs
    job.json`` would have exited with and printed. CAREFILE_ENGINE_ONESHOT=1: one process per job."""

    MARK = "\x1eFILL-RESULT "

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.lines = queue.Queue()
            self.proc = subprocess.Popen([_node(), str(FILL_SCRIPT), "--serve"], cwd=ENGINE_DIR, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        return self.proc

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # the process ended

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def run(self, job_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        with self.lock:
            proc = self._start()
            assert proc.stdin is not None
            proc.stdin.write(f"{job_path}\n")
            proc.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    self.stop()
                    raise subprocess.TimeoutExpired([str(FILL_SCRIPT), str(job_path)], timeout) from None
                if line is None:
                    self.stop()
                    return subprocess.CompletedProcess([str(FILL_SCRIPT), str(job_path)], 1, "",
                                                       "fill.mjs --serve ended unexpectedly")
                if line.startswith(self.MARK):  # anything else is the engine talking on stdout: ignored
                    result = json.loads(line[len(self.MARK):])
                    return subprocess.CompletedProcess([str(FILL_SCRIPT), str(job_path)], result["code"],
                                                       result["stdout"], result["stderr"])


_filler = _Filler()
atexit.register(_filler.stop)


def run_job(job: dict, *, cwd: str | os.PathLike | None = None, timeout: float = 120) -> dict:
    """Run fill.mjs on a job dict (paths as in the job format); return its stdout JSON.

    Raises EngineError on a non-zero exit.
    """
    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="carefile-job-") as tmp:
        job_path = Path(cwd or tmp) / "job.json"
        job_path.write_text(json.dumps(job))
        if os.environ.get("CAREFILE_ENGINE_ONESHOT"):
            proc = subprocess.run(
                [_node(), str(FILL_SCRIPT), str(job_path)],
                cwd=ENGINE_DIR,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        else:
            proc = _filler.run(job_path.resolve(), timeout)
    summary = None
    if proc.stdout.strip():
        try:
            summary = json.loads(proc.stdout)
        except json.JSONDecodeError:
            summary = None
    if proc.returncode != 0:
        msg = proc.stderr.strip() or proc.stdout.strip() or "no output"
        raise EngineError(f"ODK form engine failed (exit {proc.returncode}): {msg}", returncode=proc.returncode, summary=summary)
    if summary is None:
        raise EngineError(f"ODK form engine printed no JSON summary: {proc.stdout!r} {proc.stderr!r}")
    return summary


def _materialize(tmp: Path, form_xml: bytes, answers: list[dict], attachments: dict[str, bytes]) -> tuple[Path, list[dict], dict[str, str]]:
    form_path = tmp / "form.xml"
    form_path.write_bytes(form_xml if isinstance(form_xml, bytes) else form_xml.encode("utf-8"))
    media = tmp / "media"
    media.mkdir()
    att_paths = {}
    for name, data in (attachments or {}).items():
        p = media / Path(name).name
        p.write_bytes(data)
        att_paths[name] = str(p)
    uploads = tmp / "uploads"
    uploads.mkdir()
    job_answers = []
    for i, ans in enumerate(answers):
        ans = dict(ans)
        if isinstance(ans.get("file"), (bytes, bytearray)):
            name = ans.get("name") or f"file{i}.bin"
            d = uploads / str(i)
            d.mkdir()
            p = d / Path(name).name
            p.write_bytes(bytes(ans["file"]))
            ans["file"] = str(p)
            ans.setdefault("name", Path(name).name)
        elif isinstance(ans.get("file"), os.PathLike):
            ans["file"] = os.fspath(ans["file"])
        job_answers.append(ans)
    return form_path, job_answers, att_paths


def fill(
    form_xml: bytes,
    answers: list[dict],
    attachments: dict[str, bytes] | None = None,
    allow_pending: bool = False,
) -> FilledSubmission:
    """Fill ``form_xml`` like ODK Collect would and return the submission.

    ``attachments`` are the form's media files by file name (e.g. the CSV behind
    ``select_one_from_file children.csv`` / an entity list). With
    ``allow_pending=False`` a submission with required/constraint violations
    raises EngineError.
    """
    with tempfile.TemporaryDirectory(prefix="carefile-fill-") as tmpdir:
        tmp = Path(tmpdir)
        form_path, job_answers, att_paths = _materialize(tmp, form_xml, answers, attachments or {})
        out = tmp / "out"
        summary = run_job(
            {
                "form": str(form_path),
                "attachments": att_paths,
                "answers": job_answers,
                "out": str(out),
                "allow_pending": allow_pending,
            },
            cwd=tmp,
        )
        return FilledSubmission(
            xml=(out / "submission.xml").read_bytes(),
            files={name: (out / name).read_bytes() for name in summary["files"]},
            instance_id=summary.get("instanceID") or "",
            status=summary["status"],
            violations=summary.get("violations") or [],
        )


def list_refs(form_xml: bytes, answers: list[dict] | None = None, attachments: dict[str, bytes] | None = None) -> list[dict]:
    """The form's nodes as the engine sees them (after applying ``answers``)."""
    with tempfile.TemporaryDirectory(prefix="carefile-refs-") as tmpdir:
        tmp = Path(tmpdir)
        form_path, job_answers, att_paths = _materialize(tmp, form_xml, answers or [], attachments or {})
        summary = run_job(
            {"form": str(form_path), "attachments": att_paths, "answers": job_answers, "list_refs": True},
            cwd=tmp,
        )
        return summary["refs"]
