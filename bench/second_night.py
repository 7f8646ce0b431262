"""First night against second night: what one more day of events costs on a warehouse that holds the rest.

    .venv/bin/python bench/second_night.py --raw data/sample --end-date 2026-03-31 [--workdir DIR]
        [--set key=value ...] [--out-json FILE]

Night 1 runs the nightly for the day before ``--end-date`` on a fresh warehouse (every event of the
sample up to that day: the first load, with the first offline evaluation); night 2 runs ``--end-date``
on the same warehouse (one more day of events: the incremental matrix, the served-list check, warm
starts, no offline evaluation unless due). Night 2 reads that day's drop, as a scheduled nightly
does (``--raw .../{run_date}``): the catalog, the profiles and the events dated ``--end-date``
(:func:`day_drop`); ``--same-raw`` gives it the whole sample folder instead (every event again, all
but one day's skipped as already ingested). Each night is its own ``jobs/nightly.py`` process, timed
with its CPU seconds (children included) and its stage times from the run log. Prints a table and
``second_night_time_vs_first``; ``--out-json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and every process under it (the driver JVM, Python workers, DDP ranks)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # ended between the listing and the read
            pass
    return total


def night(
    raw: str,
    warehouse: Path,
    day: dt.date,
    sets: list[str],
    stages: str | None = None,
    log: Path | None = None,
) -> dict[str, object]:
    """One ``jobs/nightly.py`` run: wall seconds, CPU seconds and peak resident memory of its process
    tree (sampled every 0.5 s), stage seconds. ``stages`` runs a subset; ``log`` keeps its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, str(ROOT / "jobs" / "nightly.py"), "--raw", raw, "--warehouse", str(warehouse),
           "--run-date", day.isoformat()] + [a for s in sets for a in ("--set", s)]  # fmt: skip
    if stages:
        cmd += ["--stages", stages]
    start = time.perf_counter()
    peak = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                peak = max(peak, tree_rss(watched))
            except psutil.Error:
                pass
            time.sleep(0.5)
        err.seek(0)
        stderr = err.read()
    if log is not None:
        log.write_text(stderr)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"night {day} failed with exit code {child.returncode}")
    stages = {}
    for line in stderr.splitlines():
        if "stage " in line and ": done in " in line:
            name = line.split("stage ", 1)[1].split(":", 1)[0]
            stages[name] = float(line.split(": done in ", 1)[1].split(" s", 1)[0])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "date": day.isoformat(),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": round(peak / 2**20),
        "stages": stages,
    }


def day_drop(raw: str | Path, day: dt.date, out: Path) -> Path:
    """``out``: the catalog and profile files of ``raw`` and its events dated ``day`` (UTC), one JSON
    lines file: the input a scheduled nightly gets for ``day``. ``raw`` holds JSON lines events (a file
    or a folder of part files) with ISO-8601 ``ts``, as ``jobs/generate_sample.py`` writes them."""
    src = Path(raw)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for path in src.iterdir():
        if not path.name.startswith("events") and not path.name.startswith((".", "_")):
            (shutil.copytree if path.is_dir() else shutil.copy)(path, out / path.name)
    events = sorted(src.glob("events*"))
    files = [f for e in events for f in (sorted(e.glob("*.json*")) if e.is_dir() else [e])]
    prefix = f'"ts":"{day.isoformat()}T'.encode()
    kept = 0
    with open(out / "events.jsonl", "wb") as dst:  # bytes: a sample's bad records stay as they are
        for name in files:
            with open(name, "rb") as fh:
                for line in fh:
                    if prefix in line.replace(b'": "', b'":"'):
                        dst.write(line)
                        kept += 1
    if kept == 0:
        raise SystemExit(f"day_drop: no event dated {day} in {raw}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", required=True)
    parser.add_argument("--end-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--workdir", default="/tmp/vidrec-second-night")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--same-raw", action="store_true", help="night 2 reads the whole --raw folder too")
    parser.add_argument("--out-json")
    args = parser.parse_args(argv)
    warehouse = Path(args.workdir) / "warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)
    logs = Path(args.workdir)
    raw2 = args.raw if args.same_raw else str(day_drop(args.raw, args.end_date, logs / "drop"))
    first = night(
        args.raw, warehouse, args.end_date - dt.timedelta(days=1), args.set, log=logs / "night1.log"
    )
    second = night(raw2, warehouse, args.end_date, args.set, log=logs / "night2.log")
    ratio = second["wall_s"] / first["wall_s"]
    names = sorted(set(first["stages"]) | set(second["stages"]))  # type: ignore[arg-type]
    print(f"{'':<12}{'first night':>14}{'second night':>14}")
    for key in ("wall_s", "cpu_s", "peak_rss_mib"):
        print(f"{key:<12}{first[key]:>14}{second[key]:>14}")
    for name in names:
        a = first["stages"].get(name, float("nan"))  # type: ignore[union-attr]
        b = second["stages"].get(name, float("nan"))  # type: ignore[union-attr]
        print(f"  {name:<10}{a:>14}{b:>14}")
    print(f"second_night_time_vs_first = {ratio:.3f}")
    if args.out_json:
        Path(args.out_json).write_text(
            json.dumps(
                {
                    "first": first,
                    "second": second,
                    "second_night_raw": "whole folder" if args.same_raw else "the day's drop",
                    "second_night_time_vs_first": ratio,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
