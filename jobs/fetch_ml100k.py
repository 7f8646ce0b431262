"""Fetch MovieLens-100k (RecBole atomic files) from the RecBole wheel on PyPI.

Usage::

    python jobs/fetch_ml100k.py --out data/ml-100k-src

``pip download``\\s the pinned RecBole wheel (no dependencies, no install) into a temporary folder and
extracts only ``ml-100k.inter``, ``ml-100k.item`` and ``ml-100k.user`` from it: RecBole is not a
dependency of vidrec, and the data (under the git-ignored ``data/``) is never committed.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger("vidrec.jobs.fetch_ml100k")

RECBOLE_VERSION = "1.2.1"
#: Folder of the example dataset inside the wheel.
WHEEL_DATA_DIR = "recbole/dataset_example/ml-100k"
FILES: tuple[str, ...] = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


def download_wheel(version: str, dest: Path) -> Path:
    """``pip download`` the RecBole wheel of ``version`` (no dependencies) into ``dest``.

    Raises
    ------
    RuntimeError
        When pip fails or no wheel appears.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"recbole=={version}",
        "-d",
        str(dest),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip download recbole=={version} failed:\n{done.stderr.strip()}")
    wheels = sorted(dest.glob("recbole-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download recbole=={version} left no wheel in {dest}")
    return wheels[0]


def extract(wheel: Path, out: Path) -> list[Path]:
    """Extract :data:`FILES` from ``wheel`` into ``out``; return the paths written.

    Raises
    ------
    RuntimeError
        When the wheel lacks one of the files.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name in FILES:
            member = f"{WHEEL_DATA_DIR}/{name}"
            if member not in names:
                raise RuntimeError(f"{wheel.name} has no {member}")
            target = out / name
            target.write_bytes(zf.read(member))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Download and extract; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the ml-100k.{inter,item,user} files")
    parser.add_argument("--recbole-version", default=RECBOLE_VERSION)
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="recbole-") as tmp:
            wheel = download_wheel(args.recbole_version, Path(tmp))
            paths = extract(wheel, Path(args.out))
    except (OSError, RuntimeError, zipfile.BadZipFile) as exc:
        log.error("fetch failed: %s", exc)
        return 1
    for path in paths:
        log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
