"""Run CareFile as a user would — the ``carefile`` CLI, then gunicorn — for live end-to-end tests.

    from tests.e2e.live import LiveServer

    srv = LiveServer.prepare(tmp_dir, {"CAREFILE_MAX_SUBMISSION_BYTES": "5000000"})
    srv.cli("init")
    srv.cli("user", "add", "alice", "--role", "collector", "--password", "secret-pass")
    srv.cli("form", "publish", "visit.md")
    srv.start()              # gunicorn -w 2 on a free loopback port; waits for /healthz
    ... requests against srv.url ...
    app = srv.app()          # an in-process Flask app on the same database and blob store
    srv.stop()               # SIGQUIT to the whole process group, SIGKILL after a grace period

Each command runs in a subprocess with a clean environment: the caller's variables minus every
``CAREFILE_*`` one, plus ``CAREFILE_DATA_DIR``, ``CAREFILE_ODK_VALIDATE=off``,
``CAREFILE_XLSFORMS_DIR`` (an empty folder, so no shipped forms are published),
``CAREFILE_PUBLIC_URL`` and the extra settings given to :meth:`LiveServer.prepare`.

This module deliberately does not import pytest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CAREFILE = BIN / "carefile"
GUNICORN = BIN / "gunicorn"


class LiveServerError(RuntimeError):
    """The server (or a CLI command) failed; the message carries its output."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    root: Path
    env: dict[str, str]
    port: int
    workers: int = 2
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path = field(default_factory=Path)
    startup_seconds: float = 0.0
    _apps: list[Any] = field(default_factory=list, repr=False)

    # -- set-up --------------------------------------------------------------------------------

    @classmethod
    def prepare(cls, root: str | os.PathLike[str], settings: dict[str, str] | None = None) -> LiveServer:
        """A server configuration under ``root`` (data folder, empty form folder); not started."""
        root = Path(root).resolve()
        data = root / "data"
        forms = root / "xlsforms-empty"
        data.mkdir(parents=True, exist_ok=True)
        forms.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREFILE_")}
        env.update({
            "CAREFILE_DATA_DIR": str(data),
            "CAREFILE_ODK_VALIDATE": "off",
            "CAREFILE_XLSFORMS_DIR": str(forms),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(settings or {})
        server = cls(root=root, env=env, port=0, log_path=root / "server.log")
        server._set_port(free_port())
        return server

    def _set_port(self, port: int) -> None:
        self.port = port
        self.env["CAREFILE_PUBLIC_URL"] = self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> dict[str, str]:
        """The CAREFILE_* settings, without the prefix (usable as create_app overrides)."""
        return {k[len("CAREFILE_"):]: v for k, v in self.env.items() if k.startswith("CAREFILE_")}

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``carefile ARGS`` with the server's environment (cwd: the repository)."""
        proc = subprocess.run([str(CAREFILE), *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LiveServerError(f"carefile {' '.join(args)} exited {proc.returncode}:\n"
                                  f"{proc.stdout}\n{proc.stderr}")
        return proc

    def cli_parallel(self, *commands: list[str], timeout: float = 60) -> list[subprocess.CompletedProcess[str]]:
        """Run several ``carefile`` commands at once (each must succeed); results in order."""
        procs = [(args, subprocess.Popen([str(CAREFILE), *args], cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)) for args in commands]
        results = []
        for args, proc in procs:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            results.append(subprocess.CompletedProcess([str(CAREFILE), *args], proc.returncode, out, err))
        for res in results:
            if res.returncode != 0:
                raise LiveServerError(f"{' '.join(res.args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return results

    # -- running -------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0, attempts: int = 3) -> LiveServer:
        """Start gunicorn (own process group) and wait until /healthz answers 200."""
        last = ""
        for attempt in range(attempts):
            if attempt:
                self._set_port(free_port())  # someone took the port in between
            self._launch()
            try:
                self._wait_ready(timeout)
                return self
            except LiveServerError as exc:
                last = str(exc)
                self.stop(grace=2)
                if "Address already in use" not in last:
                    raise
        raise LiveServerError(f"gunicorn failed to start {attempts} times; last:\n{last}")

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(GUNICORN), "-w", str(self.workers), "--threads", "4", "-b", f"127.0.0.1:{self.port}",
                 "--timeout", "60", "--graceful-timeout", "5", "--no-control-socket", "wsgi:app"],
                cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends master and workers
            )

    def _wait_ready(self, timeout: float) -> None:
        started = time.monotonic()
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise LiveServerError(f"gunicorn exited with {code}:\n{self.log()[-4000:]}")
            if time.monotonic() - started > timeout:
                raise LiveServerError(f"no answer from {self.url}/healthz within {timeout:.0f} s:\n"
                                      f"{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        self.startup_seconds = time.monotonic() - started
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """Stop gunicorn's whole process group (SIGQUIT = quick shutdown, then SIGKILL); safe twice."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGQUIT)  # gunicorn: quick shutdown
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        while self._apps:
            app = self._apps.pop()
            app.extensions["carefile"].db.dispose()

    # -- looking inside ------------------------------------------------------------------------

    def app(self) -> Any:
        """An in-process Flask app with this server's settings (same database and blob store).

        Its database engine is disposed by stop().
        """
        from app import create_app

        app = create_app(self.settings)
        self._apps.append(app)
        return app

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
