#!/usr/bin/env python3
"""Ingest benchmark: OpenRosa submissions through the real HTTP stack (gunicorn, 2 workers).

See bench/ingest/README.md. In short:

    .venv/bin/python bench/ingest/run.py                       # both backends, with and without photo
    .venv/bin/python bench/ingest/run.py --backend sqlite --n 500 --photo no

For each backend it creates a throw-away DATA_DIR (and, for PostgreSQL, a throw-away server),
runs `carefile init`, adds a collector and its token, publishes a generated ~60-field XLSForm,
starts `gunicorn -w 2 wsgi:app` on 127.0.0.1, and then:

  * token URL, no photo:     N submissions, C concurrent clients
  * token URL, 300 KB photo: N submissions, C concurrent clients
  * Digest, no photo:        N submissions, C concurrent clients (shows the cost of Digest)
  * one 50 MB attachment:    worker VmRSS sampled every 50 ms during the upload

Every request is bounded, only loopback is used, and everything it starts is stopped at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tests.support.pgserver import PgServer

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
FORM_ID = "bench_ingest"
FORM_VERSION = "1"
USER, PASSWORD, REALM = "bench", "bench-password-1", "CareFile"
PHOTO_BYTES = 300 * 1024
BIG_BYTES = 50 * 1024 * 1024

# --------------------------------------------------------------------------------------------
# The form: 60 questions (12 text, 10 integer, 8 decimal, 8 select_one, 6 select_multiple,
# 6 date, 4 geopoint, a repeat of 3 fields, 1 image, 2 more text after the repeat).

TEXT = [f"t{i:02d}" for i in range(12)]
INTS = [f"n{i:02d}" for i in range(10)]
DECS = [f"d{i:02d}" for i in range(8)]
ONES = [f"s{i:02d}" for i in range(8)]
MULTI = [f"m{i:02d}" for i in range(6)]
DATES = [f"dt{i:02d}" for i in range(6)]
GEOS = [f"g{i:02d}" for i in range(4)]
REP = ("member_name", "member_age", "member_role")
TAIL = ["notes", "closing"]
CHOICES = ["a", "b", "c", "d", "e"]


def form_md() -> str:
    rows = []
    rows += [f"| | text | {n} | Text {n} |" for n in TEXT]
    rows += [f"| | integer | {n} | Integer {n} |" for n in INTS]
    rows += [f"| | decimal | {n} | Decimal {n} |" for n in DECS]
    rows += [f"| | select_one opts | {n} | One {n} |" for n in ONES]
    rows += [f"| | select_multiple opts | {n} | Many {n} |" for n in MULTI]
    rows += [f"| | date | {n} | Date {n} |" for n in DATES]
    rows += [f"| | geopoint | {n} | Point {n} |" for n in GEOS]
    rows += ["| | begin repeat | members | Members |",
             "| | text | member_name | Name |",
             "| | integer | member_age | Age |",
             "| | select_one opts | member_role | Role |",
             "| | end repeat | | |"]
    rows += ["| | image | photo | Photo |"]
    rows += [f"| | text | {n} | Text {n} |" for n in TAIL]
    choices = "\n".join(f"| | opts | {c} | Option {c} |" for c in CHOICES)
    return ("| settings |\n| | form_id | version | form_title |\n"
            f"| | {FORM_ID} | {FORM_VERSION} | Ingest benchmark |\n\n"
            "| survey |\n| | type | name | label |\n" + "\n".join(rows) + "\n\n"
            "| choices |\n| | list_name | name | label |\n" + choices + "\n")


def submission_xml(instance_id: str, photo: str | None, seed: int) -> bytes:
    r = random.Random(seed)
    parts = [f'<?xml version="1.0"?><data xmlns:jr="http://openrosa.org/javarosa" '
             f'xmlns:orx="http://openrosa.org/xforms" id="{FORM_ID}" version="{FORM_VERSION}">']
    parts += [f"<{n}>Answer {n} {r.randrange(10**6)} with some words</{n}>" for n in TEXT]
    parts += [f"<{n}>{r.randrange(-1000, 100000)}</{n}>" for n in INTS]
    parts += [f"<{n}>{r.uniform(-500, 500):.4f}</{n}>" for n in DECS]
    parts += [f"<{n}>{r.choice(CHOICES)}</{n}>" for n in ONES]
    parts += [f"<{n}>{' '.join(r.sample(CHOICES, 2))}</{n}>" for n in MULTI]
    parts += [f"<{n}>20{r.randrange(10, 26)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}</{n}>" for n in DATES]
    parts += [f"<{n}>{r.uniform(-80, 80):.6f} {r.uniform(-170, 170):.6f} {r.uniform(0, 4000):.1f} 5</{n}>"
              for n in GEOS]
    for k in range(3):
        parts.append(f"<members><member_name>Member {k} {r.randrange(1000)}</member_name>"
                     f"<member_age>{r.randrange(90)}</member_age><member_role>{r.choice(CHOICES)}</member_role>"
                     "</members>")
    parts.append(f"<photo>{photo or ''}</photo>")
    parts += [f"<{n}>Closing text {n}</{n}>" for n in TAIL]
    parts.append(f"<meta><instanceID>{instance_id}</instanceID></meta></data>")
    return "".join(parts).encode()


BOUNDARY = "----carefilebench7d1f0c"


def multipart(xml: bytes, photo: tuple[str, list[bytes]] | None) -> list[bytes]:
    """The body as Collect sends it, as a list of byte chunks (the photo payload is shared)."""
    out = [(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"xml_submission_file\"; "
            f"filename=\"submission.xml\"\r\nContent-Type: text/xml\r\n\r\n").encode(), xml, b"\r\n"]
    if photo is not None:
        name, chunks = photo
        out.append((f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                    "Content-Type: image/jpeg\r\n\r\n").encode())
        out += chunks
        out.append(b"\r\n")
    out.append(f"--{BOUNDARY}--\r\n".encode())
    return out


# --------------------------------------------------------------------------------------------
# Load generator: P processes x T threads, one keep-alive-capable http.client connection per
# thread (gunicorn's sync worker closes after each response; we reconnect only when it does).

@dataclass
class Job:
    host: str
    port: int
    path: str                 # submission path (token URL or /v1/projects/1/submission)
    digest: bool
    photo: bool
    run_id: str
    indices: list[list[int]]  # per thread in this process
    timeout: float = 60.0
    kind: str = "plain"       # plain | register | visit (--kinds)
    children_from: int = 0    # visit: submission i visits the child registered by submission i - children_from


class DigestState:
    """Client side of RFC 2617 Digest with qop=auth, one nonce per connection, nc counting up."""

    def __init__(self) -> None:
        self.nonce: str | None = None
        self.opaque = ""
        self.nc = 0
        self.ha1 = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()

    def take_challenge(self, header: str) -> None:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.split(" ", 1)[1]))
        self.nonce, self.opaque, self.nc = params["nonce"], params.get("opaque", ""), 0

    def header(self, method: str, uri: str) -> str:
        assert self.nonce is not None
        self.nc += 1
        nc = f"{self.nc:08x}"
        cnonce = os.urandom(8).hex()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        resp = hashlib.md5(f"{self.ha1}:{self.nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        return (f'Digest username="{USER}", realm="{REALM}", nonce="{self.nonce}", uri="{uri}", '
                f'qop=auth, nc={nc}, cnonce="{cnonce}", response="{resp}", opaque="{self.opaque}", '
                'algorithm=MD5')


def _client_thread(job: Job, indices: list[int], bodies: list[tuple[list[bytes], int]], start: float,
                   out: list[tuple[float, float, int, int]]) -> None:
    conn: http.client.HTTPConnection | None = None
    dg = DigestState() if job.digest else None
    base_headers = {"X-OpenRosa-Version": "1.0", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    "User-Agent": "carefile-bench/1 org.odk.collect.android/v2024.2.0"}
    while time.monotonic() < start:
        time.sleep(0.0005)
    for chunks, length in bodies:
        t0 = time.monotonic()
        status, challenges = 0, 0
        while True:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(job.host, job.port, timeout=job.timeout)
                headers = dict(base_headers, **{"Content-Length": str(length)})
                if dg is not None and dg.nonce is not None:
                    headers["Authorization"] = dg.header("POST", job.path)
                conn.request("POST", job.path, body=iter(chunks), headers=headers, encode_chunked=False)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
                if status == 401 and dg is not None and challenges < 3:
                    challenges += 1
                    www = [v for k, v in resp.getheaders() if k.lower() == "www-authenticate"
                           and v.startswith("Digest")]
                    dg.take_challenge(www[0])
                    continue
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                status = -1
            break
        out.append((t0, time.monotonic(), status, challenges))
    if conn is not None:
        conn.close()


def child_uuid(run_id: str, i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/child/{i}"))


def body_xml(job: Job, iid: str, i: int) -> bytes:
    """The submission of index i: the 60-question form, or a registration of a child / a visit updating it (the
    entity forms of tests/support/entity_forms.py, as bench/ingest/cpu_profile.py sends them)."""
    if job.kind == "plain":
        return submission_xml(iid, "photo.jpg" if job.photo else None, i)
    from tests.support.entity_forms import register_xml, update_xml

    if job.kind == "register":
        return register_xml(iid, child_uuid(job.run_id, i), f"Child {i}", "540102002201")
    return update_xml(iid, child_uuid(job.run_id, i - job.children_from), base=1, status="watch",
                      note=f"visit of child {i - job.children_from}")


def _client_process(job: Job, start: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    shared_photo = os.urandom(PHOTO_BYTES - 32) if job.photo else b""
    threads, outs = [], []
    for indices in job.indices:
        bodies = []
        for i in indices:
            iid = f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{job.run_id}/{i}')}"
            photo = ("photo.jpg", [hashlib.sha256(iid.encode()).digest(), shared_photo]) if job.photo else None
            chunks = multipart(body_xml(job, iid, i), photo)
            bodies.append((chunks, sum(len(c) for c in chunks)))
        out: list[tuple[float, float, int, int]] = []
        outs.append(out)
        threads.append(threading.Thread(target=_client_thread, args=(job, indices, bodies, start, out)))
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    for t in threads:
        t.join()
    queue.put(([r for o in outs for r in o], time.process_time() - cpu0))


@dataclass
class LoadResult:
    name: str
    backend: str
    auth: str
    photo: bool
    n: int
    concurrency: int
    seconds: float
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    statuses: dict[str, int]
    digest_challenges: int = 0
    peak_rss_mb: list[float] = field(default_factory=list)
    rows_in_db: int | None = None
    server_errors: int = 0
    worker_cpu_ms_per_sub: float = 0.0
    worker_read_syscalls_per_sub: float = 0.0  # /proc/PID/io syscr: SQLite's page reads past its cache, the body
    client_cpu_ms_per_sub: float = 0.0
    machine_idle_pct: float = 0.0
    db_server_cpu_ms_per_sub: float = 0.0
    background_busy_pct: float = 0.0
    new_db_connections: int | None = None  # PostgreSQL sessions opened during the run (pg_stat_database)
    other_load_pct: float = 0.0  # CPU used by processes that are not part of the benchmark, during the run


def run_load(host: str, port: int, path: str, *, digest: bool, photo: bool, n: int, concurrency: int,
             procs: int, run_id: str, first_index: int = 0, at_start: Callable[[], None] | None = None,
             kind: str = "plain", children_from: int = 0) -> tuple[float, list[tuple[float, float, int, int]], float]:
    """Send n submissions; at_start runs when the clients start sending (after building their bodies)."""
    procs = max(1, min(procs, concurrency))
    per_thread: list[list[int]] = [list(range(first_index + t, first_index + n, concurrency))
                                   for t in range(concurrency)]
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    prep = 1.0 + n * (0.002 if photo else 0.0008) / procs  # time to build the bodies before the start
    start = time.monotonic() + prep
    ps = []
    for p in range(procs):
        job = Job(host, port, path, digest, photo, run_id, per_thread[p::procs], kind=kind,
                  children_from=children_from)
        proc = ctx.Process(target=_client_process, args=(job, start, queue), daemon=True)
        proc.start()
        ps.append(proc)
    if at_start is not None:
        threading.Timer(max(0.0, start - time.monotonic()), at_start).start()
    rows: list[tuple[float, float, int, int]] = []
    client_cpu = 0.0
    for _ in ps:
        got, cpu = queue.get(timeout=1800)
        rows += got
        client_cpu += cpu
    for proc in ps:
        proc.join(timeout=30)
    if min(r[0] for r in rows) < start - 0.01:
        print("  warning: a client started late, the load generator is too slow to prepare", file=sys.stderr)
    wall = max(r[1] for r in rows) - min(r[0] for r in rows)
    return wall, rows, client_cpu


def summarize(name: str, backend: str, auth: str, photo: bool, n: int, concurrency: int, wall: float,
              rows: list[tuple[float, float, int, int]]) -> LoadResult:
    lat = sorted((e - s) * 1000 for s, e, _, _ in rows)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

    statuses: dict[str, int] = {}
    for _, _, st, _ in rows:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    ok = statuses.get("201", 0)
    return LoadResult(name, backend, auth, photo, n, concurrency, round(wall, 3), round(ok / wall, 1),
                      round(pct(50), 1), round(pct(95), 1), round(pct(99), 1), round(lat[-1], 1),
                      len(rows) - ok, statuses, sum(r[3] for r in rows))


# --------------------------------------------------------------------------------------------
# Server side: set-up with the real CLI, gunicorn, worker RSS.

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def restart_durable(pg: PgServer) -> None:
    """tests/support starts PostgreSQL with fsync=off (fine for tests); restart it durable, as in production."""
    pgctl = [*pg.runas, str(pg.bindir / "pg_ctl"), "-D", str(pg.root / "data")]
    subprocess.run([*pgctl, "-m", "fast", "-w", "stop"], check=True, capture_output=True)
    subprocess.run([*pgctl, "-l", str(pg.root / "log"), "-w", "-o",
                    f"-p {pg.port} -k {pg.root / 'sock'} -c listen_addresses=127.0.0.1 "
                    "-c max_connections=200", "start"], check=True, capture_output=True)


def carefile(env: dict[str, str], *args: str) -> str:
    res = subprocess.run([str(VENV_BIN / "carefile"), *args], env=env, capture_output=True, text=True,
                         timeout=300, cwd=env["PYTHONPATH"])
    if res.returncode != 0:
        raise RuntimeError(f"carefile {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def worker_pids(master: int) -> list[int]:
    try:
        kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return sorted(int(k) for k in kids)


def proc_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu(pid: int) -> float:
    """user+system CPU seconds of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_split(pids: list[int]) -> tuple[float, float, int]:
    """user CPU s, system CPU s and context switches (voluntary + involuntary) of processes, summed."""
    user = system = switches = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if "ctxt_switches" in line:
                    switches += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick, switches


def pg_pids(pg: object) -> list[int]:
    """The PostgreSQL server's processes (postmaster and its children)."""
    if pg is None:
        return []
    try:
        master = int((pg.root / "data" / "postmaster.pid").read_text().split()[0])  # type: ignore[attr-defined]
    except (OSError, ValueError, IndexError):
        return []
    return [master, *worker_pids(master)]


def proc_io(pid: int, key: str) -> int:
    """A counter of /proc/PID/io (syscr: read system calls), 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pg_cpu(pg: object) -> float:
    """CPU seconds used so far by the PostgreSQL server processes (postmaster and its children)."""
    return sum(proc_cpu(p) for p in pg_pids(pg))


def pg_sessions(pg: object) -> int | None:
    """Sessions ever opened to the benchmark database (pg_stat_database.sessions, PostgreSQL ≥ 14)."""
    if pg is None:
        return None
    import psycopg

    time.sleep(1.2)  # backends report their statistics about once a second
    conn = _STATS_CONN.get(id(pg))
    if conn is None:  # one connection for every reading, so the readings add no sessions themselves
        conn = _STATS_CONN[id(pg)] = psycopg.connect(
            f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres", autocommit=True)  # type: ignore[attr-defined]
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = 'carefile_bench'").fetchone()
    return int(row[0]) if row else None


_STATS_CONN: dict[int, object] = {}


def machine_idle() -> float:
    """Idle CPU seconds of the whole machine (all cores) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float) -> float:
    """Wait (up to `limit` s) until other processes use < 10% of the machine; return that use in %."""
    deadline = time.monotonic() + limit
    while True:
        i0, t0 = machine_idle(), time.monotonic()
        time.sleep(1.0)
        busy = 100 - 100 * (machine_idle() - i0) / ((time.monotonic() - t0) * (os.cpu_count() or 1))
        if busy < 10 or time.monotonic() > deadline:
            if busy >= 10:
                print(f"  note: the machine is {busy:.0f}% busy with other work before this run", flush=True)
            return round(max(busy, 0.0), 1)


def reset_peak(pids: list[int]) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


class Server:
    def __init__(self, env: dict[str, str], port: int, workers: int | None, threads: int | None, log: Path,
                 serve: bool = False) -> None:
        self.env, self.port, self.log = env, port, log
        if serve:  # `carefile serve` with its own defaults unless --workers/--threads are given
            cmd = [str(VENV_BIN / "carefile"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--workers", str(workers)] if workers else []
            cmd += ["--threads", str(threads)] if threads else []
        else:
            cmd = [str(VENV_BIN / "gunicorn"), "-w", str(workers or 2), "-b", f"127.0.0.1:{port}",
                   "--timeout", "120", "--log-level", "warning"]
            if threads and threads > 1:
                cmd += ["--threads", str(threads)]
            cmd.append("wsgi:app")
        self.logf = log.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=env["PYTHONPATH"], stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log.read_text()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200 and len(self.workers()) >= (workers or 1):
                    c.close()
                    return
                c.close()
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not come up")

    def workers(self) -> list[int]:
        return worker_pids(self.proc.pid)

    def server_errors(self) -> int:
        text = self.log.read_text(errors="replace")
        return text.count("Traceback") + text.count("[ERROR]") + text.count("WORKER TIMEOUT")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.logf.close()


def count_rows(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM submission")).scalar_one())
    finally:
        eng.dispose()


def big_upload(host: str, port: int, path: str, server: Server, run_id: str, size: int) -> dict[str, object]:
    """One submission with a `size`-byte photo; worker VmRSS sampled every 50 ms."""
    pids = server.workers()
    before = {p: proc_kb(p, "VmRSS") for p in pids}
    peak = dict(before)
    samples = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal samples
        while not done.is_set():
            for p in pids:
                peak[p] = max(peak[p], proc_kb(p, "VmRSS"))
            samples += 1
            time.sleep(0.05)

    iid = f"uuid:{uuid.uuid5(uuid.NAMESPACE_URL, run_id + '/big')}"
    payload = os.urandom(size)
    chunks = multipart(submission_xml(iid, "photo.jpg", 7), ("photo.jpg", [payload]))
    body = b"".join(chunks)
    del chunks, payload
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=300)
    conn.request("POST", path, body=body, headers={
        "X-OpenRosa-Version": "1.0", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    resp = conn.getresponse()
    resp.read()
    secs = time.monotonic() - t0
    conn.close()
    time.sleep(0.3)
    done.set()
    t.join()
    growth = {p: (peak[p] - before[p]) / 1024 for p in pids}
    return {"status": resp.status, "seconds": round(secs, 2), "samples": samples,
            "rss_before_mb": [round(before[p] / 1024, 1) for p in pids],
            "max_growth_mb": round(max(growth.values()), 1),
            "growth_per_worker_mb": [round(growth[p], 1) for p in pids]}


# --------------------------------------------------------------------------------------------

def bench_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    pg = None
    data = tmp / backend
    forms_dir = data / "xlsforms"
    forms_dir.mkdir(parents=True)
    (forms_dir / "bench_ingest.md").write_text(form_md())
    entity_kinds = [k for k in args.kinds if k != "plain"]
    if entity_kinds:
        sys.path.insert(0, str(ROOT))
        from tests.support.entity_forms import REGISTER_MD, UPDATE_MD

        (forms_dir / "register.md").write_text(REGISTER_MD)
        (forms_dir / "followup.md").write_text(UPDATE_MD)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREFILE_")}
    env.update({"CAREFILE_DATA_DIR": str(data / "data"), "CAREFILE_XLSFORMS_DIR": str(forms_dir),
                "CAREFILE_ODK_VALIDATE": args.validate, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(Path(args.app_dir).resolve())})
    server: Server | None = None
    results: dict[str, object] = {"backend": backend, "runs": []}
    try:
        if backend == "postgresql":
            sys.path.insert(0, str(ROOT))
            from tests.support.pgserver import start_postgres

            pg = start_postgres()
            if args.pg_fsync == "on":
                restart_durable(pg)
            import psycopg

            with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres",
                                 autocommit=True) as c:
                c.execute("CREATE DATABASE carefile_bench")
            with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres") as c:
                settings = {k: c.execute(f"SHOW {k}").fetchone()[0]  # type: ignore[index]
                            for k in ("fsync", "synchronous_commit", "full_page_writes", "server_version")}
            print(f"PostgreSQL: {settings}")
            results["postgresql_settings"] = settings
            env["CAREFILE_DATABASE_URL"] = pg.url("carefile_bench")
            db_url = env["CAREFILE_DATABASE_URL"]
        else:
            db_url = f"sqlite:///{data / 'data' / 'carefile.db'}"
        print(carefile(env, "init").strip())
        # The entity forms' children live in 540102002201: a collector of 5401 registers and visits them (not held).
        carefile(env, "user", "add", USER, "--role", "collector", "--password", PASSWORD,
                 *(["--region", "5401"] if entity_kinds else []))
        out = carefile(env, "user", "token", USER, "--public-url", f"http://127.0.0.1:{port}")
        token_url = next(line.strip() for line in out.splitlines() if line.startswith("http"))
        token_path = urlsplit(token_url).path.rstrip("/") + "/submission"
        digest_path = "/v1/projects/1/submission"
        server = Server(env, port, args.workers, args.threads, data / "gunicorn.log", serve=args.serve)
        time.sleep(1.0)  # carefile serve: every worker up
        host = "127.0.0.1"
        run_id = uuid.uuid4().hex
        index = 0
        # Warm-up: every worker imports lazily, parses the form schema, opens DB connections.
        for photo in (False, True):
            w = max(args.concurrency * 4, 64)
            wall, rows, _ = run_load(host, port, token_path, digest=False, photo=photo, n=w,
                                  concurrency=args.concurrency, procs=args.client_procs, run_id=run_id,
                                  first_index=index)
            index += w
            bad = [r for r in rows if r[2] != 201]
            if bad:
                raise RuntimeError(f"warm-up failed: statuses {sorted({r[2] for r in bad})}; see {server.log}")
        expected_rows = index
        if args.prefill:  # the tables as after args.prefill earlier submissions (bench/ingest/growth.py)
            sys.path.insert(0, str(ROOT))
            from bench.ingest.growth import fill_postgres, fill_sqlite

            t0 = time.monotonic()
            if pg is not None:
                dsn = f"host=127.0.0.1 port={pg.port} user=postgres dbname=carefile_bench"
                fill_postgres(dsn, None, args.prefill, 0, run_id)
            else:
                fill_sqlite(str(data / "data" / "carefile.db"), None, args.prefill, 0, run_id)
            expected_rows += args.prefill
            os.sync()  # the fill's dirty pages written back now, not by the kernel during the measured runs
            print(f"  stored {args.prefill} more submissions in {time.monotonic() - t0:.0f} s", flush=True)
        scenarios = []
        if "plain" in args.kinds:
            for photo in args.photos:
                scenarios.append(("token", photo, "plain"))
            if args.digest:
                scenarios.append(("digest", False, "plain"))
        for kind in entity_kinds:  # a visit run visits the children of the registration run right before it
            scenarios.append(("token", False, kind))
        # --rounds: the scenarios again and again, alternated, so a change of the machine's speed during the run
        # falls on every kind alike; the ratios of each round, and their medians, are printed at the end
        scenarios = scenarios * args.rounds
        per_round: list[dict[str, tuple[float, float]]] = []
        registered_at = None
        for auth, photo, kind in scenarios:
            pids = server.workers()
            busy = wait_quiet(args.quiet_wait)
            spies = []
            if args.pyspy:
                for p in pids:
                    out = Path(args.pyspy) / f"{backend}-{auth}-{'photo' if photo else 'nophoto'}-{p}.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    spies.append(subprocess.Popen([str(VENV_BIN / "py-spy"), "record", "-p", str(p), "-f", "raw",
                                                   "-r", "200", "--nonblocking",
                                                   *(["--idle"] if args.pyspy_idle else []), "-o", str(out)],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(1.0)
            reset_peak(pids)
            errs_before = server.server_errors()
            cpu_before = {p: proc_cpu(p) for p in pids}
            io_before = {p: proc_io(p, "syscr") for p in pids}
            pg_before = pg_cpu(pg)
            split_before = (proc_split(pids), proc_split(pg_pids(pg))) if args.split else None
            sessions_before = pg_sessions(pg)
            # Idle CPU from the moment the clients start sending (not while they build their bodies) to the last
            # answer: the machine's spare capacity during the run itself.
            idle_at_start: list[float] = []
            wall, rows, client_cpu = run_load(host, port, digest_path if auth == "digest" else token_path,
                                  digest=auth == "digest", photo=photo, n=args.n, concurrency=args.concurrency,
                                  procs=args.client_procs, run_id=run_id, first_index=index,
                                  at_start=lambda got=idle_at_start: got.append(machine_idle()),
                                  kind=kind, children_from=index - (registered_at or 0))
            if kind == "register":
                registered_at = index
            idle_after = machine_idle()
            idle_before = idle_at_start[0] if idle_at_start else idle_after
            index += args.n
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            name = (f"{backend} {'photo 300 KB' if photo else 'no photo'} ({auth})" if kind == "plain" else
                    f"{backend} {'registration (entity create)' if kind == 'register' else 'visit (entity update)'}")
            res = summarize(name, backend, auth, photo, args.n, args.concurrency, wall, rows)
            res.background_busy_pct = busy
            res.peak_rss_mb = [round(proc_kb(p, "VmHWM") / 1024, 1) for p in pids]
            ok = max(1, res.statuses.get("201", 0))
            res.worker_cpu_ms_per_sub = round(sum(proc_cpu(p) - cpu_before[p] for p in pids) * 1000 / ok, 2)
            res.worker_read_syscalls_per_sub = round(sum(proc_io(p, "syscr") - io_before[p] for p in pids) / ok, 1)
            res.client_cpu_ms_per_sub = round(client_cpu * 1000 / ok, 2)
            res.db_server_cpu_ms_per_sub = round((pg_cpu(pg) - pg_before) * 1000 / ok, 2)
            res.machine_idle_pct = round(100 * (idle_after - idle_before) / (wall * (os.cpu_count() or 1)), 1)
            ours = (res.worker_cpu_ms_per_sub + res.client_cpu_ms_per_sub + res.db_server_cpu_ms_per_sub) * ok / 1000
            res.other_load_pct = round(max(0.0, 100 - res.machine_idle_pct
                                           - 100 * ours / (wall * (os.cpu_count() or 1))), 1)
            sessions_after = pg_sessions(pg)
            if sessions_before is not None and sessions_after is not None:
                res.new_db_connections = sessions_after - sessions_before
            expected_rows += res.statuses.get("201", 0)
            res.rows_in_db = count_rows(db_url)
            res.server_errors = server.server_errors() - errs_before
            print(f"  {name:40} {res.per_second:7.1f}/s  p50 {res.p50_ms:6.1f} ms  p95 {res.p95_ms:6.1f} ms  "
                  f"errors {res.errors}  peak RSS {res.peak_rss_mb} MB  rows {res.rows_in_db}/{expected_rows}  "
                  f"CPU ms/sub: workers {res.worker_cpu_ms_per_sub}, clients {res.client_cpu_ms_per_sub}"
                  f" (worker read syscalls/sub {res.worker_read_syscalls_per_sub})"
                  + (f", postgres {res.db_server_cpu_ms_per_sub}; new DB connections {res.new_db_connections}"
                     if pg is not None else "") + "; "
                  f"idle {res.machine_idle_pct}%; other load {res.other_load_pct}% (before: {res.background_busy_pct}%)"
                  + (f"  digest challenges {res.digest_challenges}" if auth == "digest" else ""), flush=True)
            if split_before is not None:
                (wu, ws, wc), (pu, ps, pc) = (proc_split(pids), proc_split(pg_pids(pg)))
                (wu0, ws0, wc0), (pu0, ps0, pc0) = split_before
                print(f"    per submission: workers user {1000 * (wu - wu0) / ok:.2f} ms, system "
                      f"{1000 * (ws - ws0) / ok:.2f} ms, {(wc - wc0) / ok:.1f} context switches; postgres user "
                      f"{1000 * (pu - pu0) / ok:.2f} ms, system {1000 * (ps - ps0) / ok:.2f} ms, "
                      f"{(pc - pc0) / ok:.1f} context switches", flush=True)
            results["runs"].append(asdict(res))  # type: ignore[attr-defined]
            if kind == "plain" and not photo and auth == "token" or not per_round:
                per_round.append({})
            per_round[-1][kind] = (res.worker_cpu_ms_per_sub + res.db_server_cpu_ms_per_sub, res.per_second)
        if args.rounds > 1 and entity_kinds and "plain" in args.kinds:
            results["entity_ratios"] = entity_ratios(per_round, entity_kinds)
        if args.big_mb > 0:
            bigs = []
            for k in range(args.big_repeat):
                bigs.append(big_upload(host, port, token_path, server, f"{run_id}/{k}", args.big_mb * 1024 * 1024))
            results["big"] = {"size_mb": args.big_mb, "uploads": bigs,
                              "max_growth_mb": max(float(b["max_growth_mb"]) for b in bigs)}  # type: ignore[arg-type]
            print(f"  {backend} {args.big_mb} MB attachment: status {[b['status'] for b in bigs]}, "
                  f"RSS growth {[b['max_growth_mb'] for b in bigs]} MB, {[b['seconds'] for b in bigs]} s",
                  flush=True)
        results["final_peak_rss_mb"] = [round(proc_kb(p, "VmHWM") / 1024, 1) for p in server.workers()]
        results["server_errors_total"] = server.server_errors()
        return results
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.stop()


def entity_ratios(per_round: list[dict[str, tuple[float, float]]], kinds: list[str]) -> dict[str, object]:
    """Each round's cost of an entity submission as a multiple of the plain one's in the same round — CPU (workers
    and database server) per submission, and the plain rate over the kind's — printed, with their medians."""
    out: dict[str, object] = {}
    for kind in kinds:
        rounds = [r for r in per_round if "plain" in r and kind in r]
        cpu = [r[kind][0] / r["plain"][0] for r in rounds if r["plain"][0]]
        rate = [r["plain"][1] / r[kind][1] for r in rounds if r[kind][1]]
        out[kind] = {"cpu": cpu, "rate": rate}
        if cpu and rate:
            print(f"  {kind} ÷ plain, by round: CPU {', '.join(f'{x:.2f}' for x in cpu)} (median "
                  f"{statistics.median(cpu):.2f}); rate {', '.join(f'{x:.2f}' for x in rate)} (median "
                  f"{statistics.median(rate):.2f})", flush=True)
    return out


def machine() -> dict[str, object]:
    mem_kb = proc_kb_file("/proc/meminfo", "MemTotal")
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def proc_kb_file(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--n", type=int, default=2000, help="submissions per measured run (default 2000)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--photo", choices=["no", "yes", "both"], default="both",
                   help="submissions without photo, with one 300 KB photo, or both runs (default)")
    p.add_argument("--no-digest", dest="digest", action="store_false", help="skip the Digest run")
    p.add_argument("--big-mb", type=int, default=50, help="size of the single large attachment (0: skip)")
    p.add_argument("--big-repeat", type=int, default=3, help="how many times to send it (default 3)")
    p.add_argument("--workers", type=int, default=None, help="gunicorn workers (default 2; with --serve: its default)")
    p.add_argument("--threads", type=int, default=None,
                   help="gunicorn threads per worker (default 1: sync; with --serve: its default)")
    p.add_argument("--serve", action="store_true", help="run the server with `carefile serve` (its defaults)")
    p.add_argument("--client-procs", type=int, default=4, help="load-generator processes (default 4)")
    p.add_argument("--pg-fsync", choices=["on", "off"], default="on",
                   help="PostgreSQL fsync (default on: durable, like production)")
    p.add_argument("--validate", default="off", help="CAREFILE_ODK_VALIDATE while publishing (default off)")
    p.add_argument("--quiet-wait", type=float, default=60,
                   help="wait up to this many seconds for other load on the machine to stop (default 60)")
    p.add_argument("--app-dir", default=str(ROOT),
                   help="run the server from this copy of the code (A/B comparisons; default: this checkout)")
    p.add_argument("--pyspy", help="record py-spy raw profiles of the workers into this folder (samples of threads "
                   "on the CPU only; bench/ingest/spy_summary.py splits them by layer)")
    p.add_argument("--split", action="store_true",
                   help="also print user and system CPU and context switches per submission, workers and server")
    p.add_argument("--pyspy-idle", action="store_true", help="with --pyspy: also record threads that wait")
    p.add_argument("--prefill", type=int, default=0,
                   help="before the measured runs, store this many copies of a warm-up submission with bulk SQL "
                        "(bench/ingest/growth.py): the cost of a submission with that many already stored")
    p.add_argument("--kinds", default="plain",
                   help="comma-separated runs: plain (the 60-question form, the runs above), register (a child's "
                        "registration: entity create), visit (a visit updating each child the register run made: "
                        "entity update; needs register before it). Default: plain")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the kinds this many times over, alternated (--n submissions each time), and print "
                        "each round's entity ÷ plain ratios and their medians. Default: 1")
    p.add_argument("--json", help="also write the results as JSON to this file")
    args = p.parse_args()
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not set(args.kinds) <= {"plain", "register", "visit"} or (
            "visit" in args.kinds and ("register" not in args.kinds
                                       or args.kinds.index("visit") < args.kinds.index("register"))):
        p.error("--kinds: plain, register, visit (visit after register)")
    if not 1 <= args.n <= 100_000 or not 1 <= args.concurrency <= 256 or not 0 <= args.big_mb <= 500 \
            or not 1 <= args.rounds <= 100:
        p.error("--n 1..100000, --concurrency 1..256, --big-mb 0..500, --rounds 1..100")
    args.photos = {"no": [False], "yes": [True], "both": [False, True]}[args.photo]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    info = machine()
    print(f"machine: {info}")
    print(("carefile serve" + (f" --workers {args.workers}" if args.workers else "")
           + (f" --threads {args.threads}" if args.threads else "") if args.serve else
           f"gunicorn -w {args.workers or 2}" + (f" --threads {args.threads}" if (args.threads or 1) > 1 else ""))
          + f"; {args.concurrency} clients in {args.client_procs} processes; n={args.n}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="carefile-bench-"))
    all_results = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "photos"},
                   "backends": []}
    try:
        for b in backends:
            print(f"== {b}", flush=True)
            all_results["backends"].append(bench_backend(b, args, tmp))  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=2))
    bad = 0
    for b in all_results["backends"]:  # type: ignore[attr-defined]
        for r in b["runs"]:
            bad += r["errors"] + r["server_errors"]
        for u in b.get("big", {}).get("uploads", []):
            bad += u["status"] != 201
    print("errors: none" if not bad else f"errors: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
