"""Compare two warehouses table by table: the same rows, in every Delta table both hold?

    .venv/bin/python bench/compare_warehouses.py WAREHOUSE_A WAREHOUSE_B [--digits 9]

Each Delta table under ``<layer>/<table>`` is read whole, its volatile columns dropped (wall-clock
times and run ids, which differ between any two runs by design), doubles rounded to ``--digits``
significant digits (Spark sums a shuffle's doubles in arrival order), and compared as sorted rows.
Prints one line per table (``same``, ``DIFFERENT`` with the row counts and a few differing rows,
``only in A/B``) and exits 1 when any table differs. Used to show that a refactoring changed no output.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

#: Columns that differ between two runs of the same code and data (wall clock, run ids, MLflow ids).
VOLATILE = {
    "ingested_at",
    "run_id",
    "started_at",
    "ended_at",
    "seconds",
    "tuned_at",
    "mlflow_run_id",
    "details",
    "error",
    "updated_at_ts",
}


def delta_tables(root: Path) -> list[str]:
    """``layer/table`` of every Delta table under ``root``."""
    return sorted(str(p.parent.relative_to(root)) for p in root.glob("*/*/_delta_log") if p.is_dir())


def _round(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or value == 0.0 or math.isinf(value):
            return value
        return float(f"{value:.{digits}g}")
    if isinstance(value, (list, tuple)):
        return tuple(_round(v, digits) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _round(v, digits)) for k, v in value.items()))
    return value


def table_rows(spark: Any, path: str, digits: int) -> tuple[list[str], list[tuple]]:
    """Sorted, rounded rows of the Delta table at ``path`` without its volatile columns."""
    df = spark.read.format("delta").load(path)
    cols = sorted(c for c in df.columns if c not in VOLATILE)
    rows = [tuple(_round(r[c], digits) for c in cols) for r in df.select(*cols).collect()]
    return cols, sorted(rows, key=repr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--digits", type=int, default=9)
    parser.add_argument("--skip", default="", help="comma-separated layer/table names not compared")
    args = parser.parse_args(argv)
    from vidrec.config import load_config
    from vidrec.pipeline.session import build_spark

    a, b = Path(args.a).resolve(), Path(args.b).resolve()
    spark = build_spark(load_config(overrides={"warehouse": str(a)}))
    skip = {s for s in args.skip.split(",") if s}
    names_a, names_b = set(delta_tables(a)), set(delta_tables(b))
    differ = 0
    for name in sorted(names_a | names_b):
        if name in skip:
            print(f"{name:<36} skipped")
            continue
        if name not in names_b or name not in names_a:
            print(f"{name:<36} only in {'A' if name in names_a else 'B'}")
            differ += 1
            continue
        cols_a, rows_a = table_rows(spark, str(a / name), args.digits)
        cols_b, rows_b = table_rows(spark, str(b / name), args.digits)
        if cols_a == cols_b and rows_a == rows_b:
            print(f"{name:<36} same ({len(rows_a)} rows)")
            continue
        differ += 1
        print(f"{name:<36} DIFFERENT: {len(rows_a)} vs {len(rows_b)} rows; columns equal: {cols_a == cols_b}")
        if cols_a != cols_b:
            print(f"    A columns {cols_a}\n    B columns {cols_b}")
        else:
            only_a = sorted(set(rows_a) - set(rows_b), key=repr)[:3]
            only_b = sorted(set(rows_b) - set(rows_a), key=repr)[:3]
            for r in only_a:
                print(f"    only A: {r}")
            for r in only_b:
                print(f"    only B: {r}")
    print(f"{len(names_a | names_b)} tables, {differ} different")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
