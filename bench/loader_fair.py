"""The loader against a fair plain-pyarrow baseline, both shuffled and not, interleaved repeats.

    PYTHONPATH=src .venv/bin/python bench/loader_fair.py [--rows 2000000] [--repeats 5] [--batches 64,1024]

The fair baseline (``fair_pyarrow``): ``pq.read_table`` per file, ``torch.from_numpy`` once per column,
then slices of ``batch`` rows; shuffled, it permutes the files' order and each file's rows with one
index per file (a per-row-group permutation, as the loaders do). Each loader of
``vidrec.models.deep.loader.iter_batches`` (``pyarrow``, ``petastorm``) and the baseline read every row
per run; the runs are interleaved (A B C, A B C, ...) so that load drifts hit all alike; the report has
median, min and max seconds and rows/s of each, and each loader's median rate over the baseline's.
``bench/run.py`` calls :func:`compare` on the shards the project's writer wrote; run alone, this writes
random ``(user_idx, item_idx, label)`` rows in 131,072-row files as the shard writer lays them out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

COLS = ["user_idx", "item_idx", "label"]


def fair_pyarrow(path: str, cols: Sequence[str], batch: int, shuffle: bool, seed: int = 0) -> int:
    """Rows read by the fair baseline (see the module docstring)."""
    files = sorted(Path(path).glob("*.parquet"))
    rng = np.random.default_rng(seed) if shuffle else None
    if rng is not None:
        files = [files[i] for i in rng.permutation(len(files))]
    n = 0
    for f in files:
        table = pq.read_table(f, columns=list(cols))
        tensors = {c: torch.from_numpy(np.array(table.column(c).to_numpy())) for c in cols}
        if rng is not None:
            perm = torch.from_numpy(rng.permutation(table.num_rows))
            tensors = {c: t.index_select(0, perm) for c, t in tensors.items()}
        for s in range(0, table.num_rows, batch):
            part = {c: t[s : s + batch] for c, t in tensors.items()}
            n += len(part[cols[0]])
    return n


def stats(times: list[float], rows: int) -> dict[str, Any]:
    """Median, min and max seconds of ``times`` and the rows/s at the median."""
    med = statistics.median(times)
    return {
        "seconds": round(med, 3),
        "min": round(min(times), 3),
        "max": round(max(times), 3),
        "runs": [round(t, 3) for t in times],
        "rows_per_s": round(rows / med) if med > 0 else None,
    }


def compare(
    path: str,
    rows: int,
    batches: Sequence[int],
    repeats: int,
    cols: Sequence[str] = COLS,
    readers: Sequence[str] = ("pyarrow", "petastorm"),
) -> dict[str, Any]:
    """Every reader and the fair baseline at each batch size, shuffled and not, interleaved.

    Returns ``{"batch=<b>,shuffle=<s>": {<side>: stats, "<reader>_vs_fair": ratio}}`` plus ``load``.
    """
    from vidrec.models.deep.loader import iter_batches

    def reader_fn(name: str, batch: int, shuffle: bool) -> Callable[[], int]:
        def run() -> int:
            got = iter_batches(path, 0, 1, batch, 0, list(cols), seed=7, shuffle=shuffle, reader=name)
            return sum(len(b[cols[0]]) for b in got)

        return run

    out: dict[str, Any] = {
        "run": time.strftime("%Y-%m-%d %H:%M"),
        "cores": os.cpu_count(),
        "rows": rows,
        "repeats": repeats,
        "load_average_before": list(os.getloadavg()),
    }
    for batch in batches:
        for shuffle in (False, True):
            sides: dict[str, Callable[[], int]] = {
                "fair_pyarrow": lambda b=batch, s=shuffle: fair_pyarrow(path, cols, b, s),
                **{r: reader_fn(r, batch, shuffle) for r in readers},
            }
            times: dict[str, list[float]] = {k: [] for k in sides}
            for name, fn in sides.items():  # warm-up: page cache, imports
                if fn() != rows:
                    raise RuntimeError(f"loader bench: {name} did not read {rows} rows")
            for _ in range(repeats):
                for name, fn in sides.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            case: dict[str, Any] = {k: stats(v, rows) for k, v in times.items()}
            fair = case["fair_pyarrow"]["seconds"]
            for r in readers:
                case[f"{r}_vs_fair"] = round(fair / case[r]["seconds"], 2)
            out[f"batch={batch},shuffle={shuffle}"] = case
    out["load_average_after"] = list(os.getloadavg())
    return out


def write_random_shards(path: str, rows: int, rows_per_group: int = 131_072, seed: int = 0) -> None:
    """Random ``COLS`` rows as the shard writer lays them out: one file (one row group) per group."""
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "user_idx": rng.integers(0, 140_000, rows, dtype=np.int32),
            "item_idx": rng.integers(0, 27_000, rows, dtype=np.int32),
            "label": rng.random(rows, dtype=np.float32),
        }
    )
    for f in range(-(-rows // rows_per_group)):
        part = table.slice(f * rows_per_group, rows_per_group)
        pq.write_table(part, f"{path}/part-{f:05d}.parquet", compression="snappy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="64,1024")
    parser.add_argument("--readers", default="pyarrow,petastorm")
    args = parser.parse_args()
    path = tempfile.mkdtemp(prefix="vidrec-loader-fair-")
    try:
        write_random_shards(path, args.rows)
        result = compare(
            path,
            args.rows,
            [int(b) for b in args.batches.split(",")],
            args.repeats,
            readers=args.readers.split(","),
        )
        result["command"] = "bench/loader_fair.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if v is not None
        )
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
