"""Petastorm (``vidrec.models.deep.loader.iter_batches``) vs plain pyarrow, by rows per Parquet row group.

    .venv/bin/python bench/loader_row_groups.py [--rows 5611874] [--row-groups 16384,131072,524288]

Writes random ``(user_idx, item_idx, label)`` rows laid out as ``vidrec.models.deep.shards.write_shards``
lays them out (one file per row group) and reads every row with both loaders (batches of 1,024, as
NCF), alternating, three times each; prints the medians and the ratio. The default row count is the
20M bench set's interactions. Used to choose ``deep.launch.rows_per_row_group`` (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vidrec.models.deep.loader import iter_batches

COLS = ["user_idx", "item_idx", "label"]


def plain(path: str) -> int:
    n = 0
    for f in sorted(Path(path).glob("*.parquet")):
        for rb in pq.ParquetFile(f).iter_batches(batch_size=1024, columns=COLS):
            tensors = {c: torch.from_numpy(rb.column(c).to_numpy(zero_copy_only=False)) for c in COLS}
            n += len(tensors["item_idx"])
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_611_874)
    parser.add_argument("--row-groups", default="16384,131072,524288")
    parser.add_argument("--shuffle", action="store_true", help="Petastorm shuffles row groups and rows")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    table = pa.table(
        {
            "user_idx": rng.integers(0, 140_000, n, dtype=np.int32),
            "item_idx": rng.integers(0, 27_000, n, dtype=np.int32),
            "label": rng.random(n, dtype=np.float32),
        }
    )

    def petastorm(path: str) -> int:
        batches = iter_batches(path, 0, 1, 1024, 0, COLS, shuffle=args.shuffle)
        return sum(len(b["item_idx"]) for b in batches)

    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores, shuffle={args.shuffle}", flush=True)
    for rg in [int(x) for x in args.row_groups.split(",")]:
        path = tempfile.mkdtemp(prefix=f"vidrec-rg{rg}-")
        try:
            files = -(-n // rg)
            for f in range(files):
                pq.write_table(table.slice(f * rg, rg), f"{path}/part-{f:05d}.parquet", compression="snappy")
            times: dict[str, list[float]] = {"petastorm": [], "plain": []}
            for name, fn in (("petastorm", petastorm), ("plain", plain)) * 3:
                t0 = time.perf_counter()
                got = fn(path)
                times[name].append(time.perf_counter() - t0)
                if got != n:
                    raise RuntimeError(f"{name} read {got} rows of {n}")
            p, q = statistics.median(times["petastorm"]), statistics.median(times["plain"])
            print(
                f"rows {n:,} rows_per_row_group {rg:,} files {files}: petastorm {n / p / 1e6:.2f}M rows/s "
                f"({p:.2f} s), pyarrow {n / q / 1e6:.2f}M rows/s ({q:.2f} s), ratio {q / p:.2f}",
                flush=True,
            )
        finally:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
