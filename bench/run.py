"""vidrec benchmarks: writes ``bench/results.json`` and ``BENCHMARKS.md``, generated from it.

For each size (generated data at 1M, 5M and 20M events; ``--sizes`` or ``BENCH_SIZES`` to choose),
side by side in one run; every timed section but the nightly is repeated (3 times by default, the
loader at least 5), its sides interleaved (A B C, A B C, ...), and reported as median, min and max:

- the sample generator's wall time (data is cached under ``--data-dir`` and reused);
- the nightly pipeline (``jobs/nightly.py``, bench model set ``BENCH_MODELS``) wall and CPU time by
  stage: ingest throughput (events/s), bytes on disk per event, matrix build time;
- ALS at rank 64: Spark MLlib (``vidrec.models.als.fit_als``, the project's settings) seconds per iteration
  against the ``implicit`` library's CPU ALS on the same pairs, with its conjugate-gradient solver and
  with the exact solve (``use_cg=False``), and NDCG@10 of all three on a held-out per-user 20% of the pairs;
- top-N for all users (N=50) on the Spark ALS factors: ``vidrec.models.topn`` against Spark's
  ``recommendForAllUsers`` and against the fair floor of ``bench/topn_floor.py`` (the faster of 1
  process x 2 threads and 2 processes x 1 thread, best block each; GEMM, + top-k, + seen mask), peak
  memory, and vidrec's output checked (row count, ranks, no seen item, scores against brute force);
- feature shard write, and the loader seam's readers (``vidrec.models.deep.loader.iter_batches``:
  pyarrow and Petastorm) against the fair plain-pyarrow baseline of ``bench/loader_fair.py``, shuffled
  and not, at the models' batch sizes;
- deep model training throughput (rows/s per process), at the smallest size of the run.

``--render-only`` measures nothing and regenerates the report, folding in ``--gpu-json`` (the output of
``bench/gpu_check.sh``) and ``--side-json NAME=FILE`` (focused checks run apart).

Usage::

    .venv/bin/python bench/run.py [--sizes 1m,5m,20m] [--repeats K] [--skip nightly,als,topn,loader,deep]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from second_night import day_drop  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("vidrec.bench")
#: BENCHMARKS.md is generated whole from ``results.json``; hand-written measurements and their history
#: live in docs/performance.md, recommendation quality in docs/evaluation.md (the report's last line).
DOCS_LINE = (
    "Hand-written measurements (what each fast path gained, memory at 20M, earlier runs) are in "
    "[docs/performance.md](docs/performance.md); recommendation quality (MovieLens-100k, the demo "
    "sample) is in [docs/evaluation.md](docs/evaluation.md)."
)
RUN_DATE = "2026-03-31"
#: Generated data per size: ~143 events per user (as MovieLens-20M), 90 days.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"users": 400, "items": 300, "events_per_user": 60, "days": 30, "repeats": 2},
    "1m": {"users": 7_000, "items": 4_000, "events_per_user": 143, "days": 90, "repeats": 3},
    "5m": {"users": 35_000, "items": 12_000, "events_per_user": 143, "days": 90, "repeats": 3},
    "20m": {"users": 140_000, "items": 27_000, "events_per_user": 143, "days": 90, "repeats": 3},
}
DEFAULT_SIZES = "1m,5m,20m"
#: The nightly's model set at every size (the scaling figures); the default model set is the full
#: nightly's (``--full-nightly-sizes``, ``make bench-nightly``) and the deep models' own section.
BENCH_MODELS = ["popularity", "als"]
DEEP_MODELS = ["ncf", "multvae", "sequence", "text", "fusion"]
SECTIONS = ("nightly", "full_nightly", "als", "topn", "loader", "deep")
#: Size-level numbers read from the bench nightly's warehouse: they travel with its section.
NIGHTLY_FACTS = (
    "events",
    "interactions",
    "bronze_bytes_per_event",
    "raw_bytes_per_event",
    "ingest_events_per_s",
    "matrix_seconds",
)
#: Sizes whose default-model-set nightly (first and second night) is timed (``--full-nightly-sizes``):
#: none by default, so ``make bench`` fits its hour (50 min on 2 cores, 2026-12-06); at 1m the deep text
#: model alone trains 2 epochs in ~170 s, and a first night fits every model up to three times.
#: ``make bench-nightly`` runs it (1m by default) and folds it into the same results.
FULL_NIGHTLY_SIZES = ""
#: What the run's time is reported by: the sections, data generation, and the session's table reads.
BENCH_SECTIONS = ("generate", "nightly", "full_nightly", "session", "als", "topn", "loader", "deep")
ALS_RANK = 64
TOP_N = 50
#: ``recommendForAllUsers(N + p95 seen)`` then the seen pairs filtered out (the like-for-like output of
#: ``vidrec.models.topn``) is timed only up to this many users: at 20M (124k users) it alone took 171 s of the
#: hour, and the headline ratio is against the plain ``recommendForAllUsers(N)``, which does less work.
TOPN_FILTERED_MAX_USERS = 50_000


# --- measuring ------------------------------------------------------------------------------------


def bench_module(name: str) -> Any:
    """A sibling module of bench/ (``loader_fair``, ``topn_floor``), importable by spawned workers too."""
    import importlib

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def machine_facts() -> dict[str, Any]:
    import pyarrow
    import pyspark
    import torch

    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    try:
        import implicit

        implicit_version = implicit.__version__
    except ImportError:
        implicit_version = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "java": java,
        "pyspark": pyspark.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyarrow": pyarrow.__version__,
        "implicit": implicit_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class PeakRss:
    """Peak resident memory of a process tree (this process, the JVM and its Python workers), sampled.

    Also keeps each process's CPU seconds at its last sample (``cpu_seconds``: their sum), which
    counts the Spark JVM that ``RUSAGE_CHILDREN`` misses (pyspark never waits for it); a process
    that exits between two samples loses at most one period.
    """

    def __init__(self, pids: list[int], period: float = 0.2) -> None:
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.period = period
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        seen: set[int] = set()
        total = 0
        for root in self.procs:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in tree:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                try:
                    total += p.memory_info().rss
                    cpu = p.cpu_times()
                    self.cpu[p.pid] = cpu.user + cpu.system
                except psutil.NoSuchProcess:
                    pass
        return total

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.period)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn: Callable[[], Any], repeats: int, pids: list[int] | None = None) -> dict[str, Any]:
    """Median wall seconds of ``repeats`` calls (and peak RSS of ``pids``' trees when given)."""
    times, peaks = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if pids:
            with PeakRss(pids) as peak:
                fn()
            peaks.append(peak.peak)
        else:
            fn()
        times.append(time.perf_counter() - t0)
    return _summary(times, peaks)


def _summary(times: list[float], peaks: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seconds": round(statistics.median(times), 3),
        "min": round(min(times), 3),
        "max": round(max(times), 3),
        "runs": [round(t, 3) for t in times],
    }
    if peaks:
        out["peak_rss_gib"] = round(max(peaks) / 2**30, 2)
    return out


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, pids: list[int] | None = None
) -> dict[str, dict[str, Any]]:
    """Each of ``fns`` timed ``repeats`` times, interleaved (A B C, A B C, ...): median, min, max."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    peaks: dict[str, list[int]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            if pids:
                with PeakRss(pids) as peak:
                    fn()
                peaks[name].append(peak.peak)
            else:
                fn()
            times[name].append(time.perf_counter() - t0)
    return {k: _summary(times[k], peaks[k]) for k in fns}


def du(path: Path, suffix: str = "") -> int:
    """Bytes of the files under ``path`` (ending with ``suffix``)."""
    return sum(p.stat().st_size for p in path.rglob(f"*{suffix}") if p.is_file())


# --- data and the nightly -------------------------------------------------------------------------


def generate(size: str, data_dir: Path) -> dict[str, Any]:
    """The raw sample of ``size`` under ``data_dir/size`` (generated once, reused while its spec matches)."""
    spec = {k: v for k, v in SIZES[size].items() if k != "repeats"}
    out = data_dir / size
    marker = out / ".bench-spec.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        info = json.loads((out / ".bench-generated.json").read_text())
        return {**info, "reused": True}
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        str(ROOT / "jobs/generate_sample.py"),
        "--out",
        str(out),
        "--users",
        str(spec["users"]),
        "--items",
        str(spec["items"]),
        "--days",
        str(spec["days"]),
        "--end-date",
        RUN_DATE,
        "--events-per-user-mean",
        str(spec["events_per_user"]),
    ]
    log.info("bench %s: generating %s", size, spec)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    info = {"generate_seconds": round(seconds, 1), "raw_bytes": du(out / "events.jsonl", ".json")}
    (out / ".bench-generated.json").write_text(json.dumps(info))
    marker.write_text(json.dumps(spec))
    return {**info, "reused": False}


def parse_stage_times(text: str) -> dict[str, float]:
    line = next((ln for ln in text.splitlines() if ln.startswith("Stage times:")), "")
    out = {}
    for part in line.removeprefix("Stage times:").split(","):
        if part.strip():
            name, secs = part.split()
            out[name] = float(secs.rstrip("s"))
    return out


def parse_model_times(text: str) -> dict[str, float]:
    """Seconds per model from a nightly's log: ``<stage>: <model> fitted and listed in <s> s`` lines."""
    out: dict[str, float] = {}
    for m in re.finditer(r"(\w+): (\w+) (?:fitted and listed|blended) in ([\d.]+) s", text):
        out[f"{m.group(1)}:{m.group(2)}"] = float(m.group(3))
    return out


def run_nightly(
    raw: Path,
    warehouse: Path,
    log_path: Path,
    run_date: str = RUN_DATE,
    models: list[str] | None = BENCH_MODELS,
    fresh: bool = True,
) -> dict[str, Any]:
    """``jobs/nightly.py`` in a subprocess (``models``: None for the default set of conf/base.yaml; a fresh
    warehouse unless ``fresh`` is false); wall and CPU seconds, stage times, seconds per model."""
    if fresh:
        shutil.rmtree(warehouse, ignore_errors=True)
    cmd = [
        sys.executable,
        str(ROOT / "jobs/nightly.py"),
        "--raw",
        str(raw),
        "--warehouse",
        str(warehouse),
        "--run-date",
        run_date,
    ]
    if models is not None:
        cmd += ["--set", f"models=[{','.join(models)}]"]
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True)
        with PeakRss([proc.pid], period=1.0) as tree:
            stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"nightly failed (exit {proc.returncode}); log: {log_path}")
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(tree.cpu_seconds, 1),  # the job's process tree: driver, JVM, workers
        "peak_rss_gib": round(tree.peak / 2**30, 2),
        "stages": parse_stage_times(stdout),
        "models": parse_model_times(log_path.read_text(errors="replace")),
    }


def bench_full_nightly(raw: Path, work: Path) -> dict[str, Any]:
    """The default model set (every model in conf/base.yaml): night 1 on a fresh warehouse (the day
    before the run date: every event up to it, the first offline evaluation), then night 2 on the same
    warehouse with that day's drop (the catalog, the profiles and the run date's events: incremental
    matrix, served-list check)."""
    wh = work / "warehouse_full"
    day1 = (dt.date.fromisoformat(RUN_DATE) - dt.timedelta(days=1)).isoformat()
    first = run_nightly(raw, wh, work / "full_night1.log", day1, models=None)
    log.info("bench: full nightly, night 1 %s", first)
    # night 2 reads the day's drop, as a scheduled nightly does (--raw .../{run_date})
    drop = day_drop(raw, dt.date.fromisoformat(RUN_DATE), work / "full_night2_drop")
    second = run_nightly(drop, wh, work / "full_night2.log", RUN_DATE, models=None, fresh=False)
    shutil.rmtree(drop, ignore_errors=True)
    log.info("bench: full nightly, night 2 %s", second)
    shutil.rmtree(wh, ignore_errors=True)
    return {
        "first": {"run_date": day1, **first},
        "second": {"run_date": RUN_DATE, **second},
        "second_night_time_vs_first": round(second["wall_seconds"] / first["wall_seconds"], 3),
    }


# --- ALS, top-N, loader, deep -----------------------------------------------------------------------


def split_pairs(spark: Any, warehouse: str, seed: int = 42) -> tuple[Any, Any]:
    """``(train, test)`` of the positive pairs: a per-pair hash puts ~20% of each user's pairs in test."""
    from pyspark.sql import functions as F

    from vidrec import constants as C
    from vidrec.data import tables

    pos = tables.read(spark, warehouse, C.T_INTERACTIONS).where(F.col(C.COL_CONFIDENCE) > 0)
    bucket = F.pmod(F.xxhash64(C.COL_USER_IDX, C.COL_ITEM_IDX, F.lit(seed)), F.lit(5))
    pairs = pos.select(C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_CONFIDENCE, bucket.alias("_b"))
    return pairs.where("_b != 0").drop("_b"), pairs.where("_b = 0").drop("_b")


def ndcg_at_k(
    user_vecs: np.ndarray,
    item_vecs: np.ndarray,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    k: int = 10,
    max_users: int = 20_000,
) -> float:
    """Mean NDCG@k (binary relevance: the held-out pairs) over test users, training pairs excluded.

    ``user_vecs``/``item_vecs`` are indexed by user_idx/item_idx; a sample of ``max_users`` test users
    (seeded) bounds the cost.
    """
    import scipy.sparse as sp
    import torch

    n_users, n_items = len(user_vecs), len(item_vecs)
    tr = sp.csr_matrix((np.ones(len(train[0]), np.float32), train), shape=(n_users, n_items))
    te = sp.csr_matrix((np.ones(len(test[0]), np.float32), test), shape=(n_users, n_items))
    users = np.flatnonzero(np.diff(te.indptr) > 0)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, max_users, replace=False))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    v = torch.from_numpy(np.ascontiguousarray(item_vecs, dtype=np.float32))
    total = 0.0
    for s in range(0, len(users), 1024):
        block = users[s : s + 1024]
        scores = torch.from_numpy(np.ascontiguousarray(user_vecs[block], dtype=np.float32)) @ v.T
        seen = tr[block].tocoo()
        scores[
            torch.from_numpy(seen.row.astype(np.int64)), torch.from_numpy(seen.col.astype(np.int64))
        ] = -np.inf
        top = torch.topk(scores, k, dim=1).indices.numpy()
        rel = np.asarray(te[block][np.arange(len(block))[:, None], top].todense()) > 0
        n_rel = np.minimum(np.diff(te.indptr)[block], k)
        ideal = np.array([discounts[:m].sum() for m in n_rel])
        total += float(((rel * discounts).sum(axis=1) / ideal).sum())
    return total / max(1, len(users))


def bench_als(
    spark: Any, conf: Any, warehouse: str, iters: int, repeats: int = 1
) -> tuple[dict[str, Any], Any]:
    """Spark ALS (the project's fit) vs implicit's CPU ALS both ways, rank 64, same pairs; also the model.

    ``implicit`` runs with its default conjugate-gradient solver (``use_cg=True``) and with the exact
    solve Spark does (``use_cg=False``). Seconds per iteration are ``(fit(1 + k) - fit(1)) / k`` per
    repeat; the three sides are interleaved per repeat, and the report has median, min and max.
    """
    import scipy.sparse as sp
    import threadpoolctl
    from implicit.cpu.als import AlternatingLeastSquares

    from vidrec import constants as C
    from vidrec.models.als import fit_als, netlib_implementations

    train, test = split_pairs(spark, warehouse)
    train = train.cache()
    n_train = train.count()
    params = dataclasses.replace(conf.als, rank=ALS_RANK)

    import psutil

    jvm = psutil.Process(int(spark.sparkContext._jvm.ProcessHandle.current().pid()))

    def jvm_cpu() -> float:
        c = jvm.cpu_times()
        return c.user + c.system

    tr = train.select(C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_CONFIDENCE).toPandas()
    te = test.select(C.COL_USER_IDX, C.COL_ITEM_IDX).toPandas()
    n_users = int(max(tr[C.COL_USER_IDX].max(), te[C.COL_USER_IDX].max())) + 1
    n_items = int(max(tr[C.COL_ITEM_IDX].max(), te[C.COL_ITEM_IDX].max())) + 1
    tr_ij = (tr[C.COL_USER_IDX].to_numpy(), tr[C.COL_ITEM_IDX].to_numpy())
    te_ij = (te[C.COL_USER_IDX].to_numpy(), te[C.COL_ITEM_IDX].to_numpy())
    matrix = sp.csr_matrix(
        (tr[C.COL_CONFIDENCE].to_numpy(np.float32), tr_ij), shape=(n_users, n_items), dtype=np.float32
    )
    models: dict[str, Any] = {}

    def spark_fit(it: int) -> tuple[float, float]:
        c0, t0 = jvm_cpu(), time.perf_counter()
        models["spark"] = fit_als(train, dataclasses.replace(params, max_iter=it))
        return time.perf_counter() - t0, jvm_cpu() - c0

    def implicit_fit(it: int, use_cg: bool) -> tuple[float, float]:
        imp = AlternatingLeastSquares(
            factors=ALS_RANK,
            regularization=params.reg_param,
            alpha=params.alpha,
            iterations=it,
            random_state=params.seed,
            num_threads=os.cpu_count() or 1,
            use_cg=use_cg,
        )
        with threadpoolctl.threadpool_limits(1, "blas"):  # implicit's advice: its own threads, single BLAS
            c0, t0 = time.process_time(), time.perf_counter()
            imp.fit(matrix, show_progress=False)
            out = time.perf_counter() - t0, time.process_time() - c0
        models["implicit_cg" if use_cg else "implicit_exact"] = imp
        return out

    sides: dict[str, Callable[[int], tuple[float, float]]] = {
        "spark": spark_fit,
        "implicit_cg": lambda it: implicit_fit(it, True),
        "implicit_exact": lambda it: implicit_fit(it, False),
    }
    for fit in sides.values():  # warm-up: JIT, native library load, first checkpoint, page faults
        fit(1)
    per_iter: dict[str, list[float]] = {k: [] for k in sides}
    per_iter_cpu: dict[str, list[float]] = {k: [] for k in sides}
    fits: dict[str, list[list[float]]] = {k: [] for k in sides}
    for _ in range(max(1, repeats)):
        for name, fit in sides.items():  # interleaved
            (w1, c1), (wk, ck) = fit(1), fit(1 + iters)
            per_iter[name].append((wk - w1) / iters)
            per_iter_cpu[name].append((ck - c1) / iters)
            fits[name].append([round(w1, 2), round(wk, 2)])

    def med(xs: list[float]) -> float:
        return float(statistics.median(xs))

    def dense(df: Any, n: int) -> np.ndarray:
        pdf = df.toPandas()
        out = np.zeros((n, ALS_RANK), np.float32)
        out[pdf["id"].to_numpy()] = np.stack(pdf["features"].to_numpy())
        return out

    model = models["spark"]
    ndcg = {
        "spark": ndcg_at_k(dense(model.userFactors, n_users), dense(model.itemFactors, n_items), tr_ij, te_ij)
    }
    for name in ("implicit_cg", "implicit_exact"):
        imp = models[name]
        ndcg[name] = ndcg_at_k(np.asarray(imp.user_factors), np.asarray(imp.item_factors), tr_ij, te_ij)
    train.unpersist()
    blas = netlib_implementations(spark)
    spark_iter, cg_iter, exact_iter = (med(per_iter[k]) for k in sides)
    spark_cpu, cg_cpu, exact_cpu = (med(per_iter_cpu[k]) for k in sides)
    return {
        "train_pairs": n_train,
        "test_pairs": len(te),
        "users": n_users,
        "items": n_items,
        "rank": ALS_RANK,
        "iterations_timed": iters,
        "repeats": max(1, repeats),
        "spark_blas": blas,
        "spark_seconds_per_iteration": round(spark_iter, 3),
        "implicit_seconds_per_iteration": round(cg_iter, 3),
        "implicit_exact_seconds_per_iteration": round(exact_iter, 3),
        "als_iteration_time_vs_implicit": round(spark_iter / cg_iter, 2),
        "als_iteration_time_vs_implicit_exact": round(spark_iter / exact_iter, 2),
        "spread_seconds_per_iteration": {
            k: {"min": round(min(v), 3), "max": round(max(v), 3), "runs": [round(x, 3) for x in v]}
            for k, v in per_iter.items()
        },
        "spark_cpu_seconds_per_iteration": round(spark_cpu, 3),
        "implicit_cpu_seconds_per_iteration": round(cg_cpu, 3),
        "implicit_exact_cpu_seconds_per_iteration": round(exact_cpu, 3),
        "als_iteration_cpu_vs_implicit": round(spark_cpu / cg_cpu, 2),
        "fit_seconds_1_and_1_plus_k": fits,
        "spark_ndcg_at_10": round(ndcg["spark"], 4),
        "implicit_ndcg_at_10": round(ndcg["implicit_cg"], 4),
        "implicit_exact_ndcg_at_10": round(ndcg["implicit_exact"], 4),
        "quality_iterations": 1 + iters,
    }, model


def bench_topn(spark: Any, conf: Any, warehouse: str, model: Any, repeats: int) -> dict[str, Any]:
    """vidrec.models.topn vs recommendForAllUsers vs the GEMM floor, on the Spark ALS factors."""
    import psutil
    from pyspark.sql import functions as F

    from vidrec import constants as C
    from vidrec.data import matrix, tables
    from vidrec.models.topn import top_n_from_factors

    uf = model.userFactors.select(F.col("id").alias(C.COL_USER_IDX), "features").cache()
    itf = model.itemFactors.select(F.col("id").alias(C.COL_ITEM_IDX), "features").cache()
    seen = matrix.seen_pairs(tables.read(spark, warehouse, C.T_INTERACTIONS), False).cache()
    n_users, n_items, n_seen = uf.count(), itf.count(), seen.count()
    per_user = seen.groupBy(C.COL_USER_IDX).count().select(F.percentile_approx("count", 0.95)).first()[0] or 0
    extra = int(per_user)
    pids = [os.getpid(), int(spark.sparkContext._jvm.ProcessHandle.current().pid())]
    block = conf.recommend.user_block_size

    def ours() -> None:
        recs = top_n_from_factors(spark, uf, itf, seen, TOP_N, block_size=block)
        recs.write.format("noop").mode("overwrite").save()

    def builtin_plain() -> None:
        model.recommendForAllUsers(TOP_N).write.format("noop").mode("overwrite").save()

    def builtin_filtered() -> None:
        recs = model.recommendForAllUsers(TOP_N + extra)
        exploded = recs.select(C.COL_USER_IDX, F.posexplode("recommendations").alias("pos", "r")).select(
            C.COL_USER_IDX, F.col("r.item_idx").alias(C.COL_ITEM_IDX), F.col("r.rating").alias(C.COL_SCORE)
        )
        exploded.join(seen, [C.COL_USER_IDX, C.COL_ITEM_IDX], "left_anti").write.format("noop").mode(
            "overwrite"
        ).save()

    # warm-up on 200 users: Python workers started, torch imported, JIT warm, for every path alike
    few = uf.limit(200).cache()
    few.count()
    top_n_from_factors(spark, few, itf, seen, TOP_N, block_size=block).write.format("noop").mode(
        "overwrite"
    ).save()
    model.recommendForUserSubset(few, TOP_N).write.format("noop").mode("overwrite").save()
    few.unpersist()
    sides: dict[str, Callable[[], None]] = {"vidrec": ours, "plain": builtin_plain}
    if n_users <= TOPN_FILTERED_MAX_USERS:
        sides["filtered"] = builtin_filtered
    timings = interleaved(sides, repeats, pids)
    ours_r, plain_r, filtered_r = timings["vidrec"], timings["plain"], timings.get("filtered")
    tf = bench_module("topn_floor")
    updf = uf.toPandas().sort_values(C.COL_USER_IDX)
    ipdf = itf.toPandas().sort_values(C.COL_ITEM_IDX)
    user_ids, item_ids = updf[C.COL_USER_IDX].to_numpy(np.int64), ipdf[C.COL_ITEM_IDX].to_numpy(np.int64)
    U = np.stack(updf["features"].to_numpy()).astype(np.float32)
    V = np.stack(ipdf["features"].to_numpy()).astype(np.float32)
    spdf = seen.select(C.COL_USER_IDX, C.COL_ITEM_IDX).toPandas()
    row_of = np.full(int(user_ids.max()) + 1, -1, np.int64)
    row_of[user_ids] = np.arange(len(user_ids))
    col_of = np.full(int(max(item_ids.max(), spdf[C.COL_ITEM_IDX].max())) + 1, -1, np.int64)
    col_of[item_ids] = np.arange(len(item_ids))
    raw_u = spdf[C.COL_USER_IDX].to_numpy()
    su = np.where(raw_u < len(row_of), row_of[np.minimum(raw_u, len(row_of) - 1)], -1)
    si = col_of[spdf[C.COL_ITEM_IDX].to_numpy()]
    keep = (su >= 0) & (si >= 0)
    indptr, cols = tf.seen_csr(su[keep], si[keep], len(user_ids))
    fl = tf.floor(U, V, indptr, cols, TOP_N, repeats)
    floor = fl["floor_gemm_topk"]["seconds"]
    # vidrec's output checked: row count, ranks 1..N, no seen item, scores against brute force
    sample = np.sort(np.random.default_rng(0).choice(len(user_ids), min(300, len(user_ids)), replace=False))
    recs = top_n_from_factors(spark, uf, itf, seen, TOP_N, block_size=block).cache()
    total = recs.count()
    sampled = recs.where(F.col(C.COL_USER_IDX).isin([int(x) for x in user_ids[sample]])).toPandas()
    recs.unpersist()
    check = tf.check_output(sampled, U, V, user_ids, item_ids, indptr, cols, TOP_N, total, sample)
    flops = 2.0 * len(U) * len(V) * ALS_RANK
    for df in (uf, itf, seen):
        df.unpersist()
    return {
        "users": n_users,
        "items": n_items,
        "seen_pairs": n_seen,
        "top_n": TOP_N,
        "filtered_extra": extra,
        "vidrec": ours_r,
        "recommendForAllUsers_plain": plain_r,
        "recommendForAllUsers_seen_filtered": filtered_r,
        "floor": fl,
        "gemm_floor": {k: fl["floor_gemm_topk"][k] for k in ("seconds", "min", "max", "setup", "block_rows")},
        "gemm_gflops": round(flops / fl["floor_gemm"]["seconds"] / 1e9, 1),
        "output_check": check,
        "topn_speedup_vs_recommendForAllUsers": round(plain_r["seconds"] / ours_r["seconds"], 2),
        "topn_speedup_vs_recommendForAllUsers_seen_filtered": (
            round(filtered_r["seconds"] / ours_r["seconds"], 2) if filtered_r else None
        ),
        "topn_time_vs_gemm_floor": round(ours_r["seconds"] / floor, 2),
        "topn_time_vs_floor_with_seen_mask": round(
            ours_r["seconds"] / fl["floor_gemm_mask_topk"]["seconds"], 2
        ),
        "driver_rss_gib": round(psutil.Process().memory_info().rss / 2**30, 2),
    }


#: The models' batch sizes (conf/base.yaml: NCF 1,024; Mult-VAE and the sequence models 64).
LOADER_BATCHES = (64, 1024)
LOADER_REPEATS = 5


def bench_loader(spark: Any, warehouse: str, work: Path, repeats: int) -> dict[str, Any]:
    """Shard write, then the loader seam's readers (pyarrow, Petastorm) vs the fair plain-pyarrow baseline.

    ``bench/loader_fair.py``: shuffled and not, at the models' batch sizes, at least 5 interleaved
    repeats each. ``loader_rate_vs_pyarrow`` is the default reader's worst ratio over the shuffled
    cases (training reads shuffled).
    """
    from pyspark.sql import functions as F

    from vidrec import constants as C
    from vidrec.data import tables
    from vidrec.models.deep.loader import DEFAULT_READER
    from vidrec.models.deep.shards import write_shards

    lf = bench_module("loader_fair")
    cols = [C.COL_USER_IDX, C.COL_ITEM_IDX, "label"]
    df = tables.read(spark, warehouse, C.T_INTERACTIONS).select(
        C.COL_USER_IDX, C.COL_ITEM_IDX, F.col(C.COL_CONFIDENCE).cast("float").alias("label")
    )
    path = str(work / "loader_shards")
    t0 = time.perf_counter()
    info = write_shards(df, path, num_processes=2)
    write_s = time.perf_counter() - t0
    cmp = lf.compare(path, info.rows, LOADER_BATCHES, max(repeats, LOADER_REPEATS), cols=cols)
    shutil.rmtree(path, ignore_errors=True)
    shuffled = {k: v for k, v in cmp.items() if k.endswith("shuffle=True")}
    worst = min(shuffled, key=lambda k: shuffled[k][f"{DEFAULT_READER}_vs_fair"])
    return {
        "rows": info.rows,
        "row_groups": info.row_groups,
        "batch_sizes": list(LOADER_BATCHES),
        "default_reader": DEFAULT_READER,
        "shard_write_seconds": round(write_s, 2),
        "cases": cmp,
        "worst_shuffled_case": worst,
        "loader_rows_per_s": shuffled[worst][DEFAULT_READER]["rows_per_s"],
        "fair_pyarrow_rows_per_s": shuffled[worst]["fair_pyarrow"]["rows_per_s"],
        "loader_rate_vs_pyarrow": shuffled[worst][f"{DEFAULT_READER}_vs_fair"],
        "petastorm_rate_vs_pyarrow": min(v["petastorm_vs_fair"] for v in shuffled.values()),
    }


def bench_deep(spark: Any, conf: Any, models: list[str], epochs: int) -> dict[str, Any]:
    """Rows/s per process of each deep model, trained ``epochs`` epochs with the nightly's launcher."""
    import vidrec.models.deep.generators  # noqa: F401  (registers the deep generators)
    from vidrec.models.deep.launch import fit
    from vidrec.pipeline import build_fit_context

    ctx = build_fit_context(spark, conf, dt.date.fromisoformat(RUN_DATE))
    out = {}
    for name in models:
        t0 = time.perf_counter()
        result = fit(spark, name, ctx, params={"max_epochs": epochs, "patience": epochs})
        out[name] = {
            "rows_per_s_per_process": round(float(result.metrics["rows_per_s_per_process"])),
            "processes": conf.deep.launch.num_processes,
            "epochs": epochs,
            "fit_seconds": round(time.perf_counter() - t0, 1),
        }
        log.info("bench deep %s: %s", name, out[name])
    return out


def bench_size(size: str, args: argparse.Namespace, skip: set[str], deep: bool) -> dict[str, Any]:
    from vidrec import constants as C
    from vidrec.config import load_config
    from vidrec.data import tables
    from vidrec.pipeline.session import build_spark

    repeats = args.repeats or SIZES[size]["repeats"]
    work = Path(args.work_dir) / size
    work.mkdir(parents=True, exist_ok=True)
    wh = work / "warehouse"
    res: dict[str, Any] = {"spec": SIZES[size], "repeats": repeats}
    spent: dict[str, float] = {}  # this bench's own wall seconds per section of this size
    res["bench_seconds"] = spent
    raw = Path(args.data_dir) / size
    t0 = time.perf_counter()

    def lap(section: str) -> None:
        nonlocal t0
        spent[section] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()

    full = "full_nightly" not in skip and size in args.full_nightly_sizes.split(",")
    if "nightly" not in skip or full:
        res["generate"] = generate(size, Path(args.data_dir))
        lap("generate")
    if "nightly" not in skip:
        log.info("bench %s: nightly (%s) ...", size, ",".join(BENCH_MODELS))
        res["nightly"] = run_nightly(raw, wh, work / "nightly.log")
        log.info("bench %s: nightly %s", size, res["nightly"])
        lap("nightly")
    if full:
        log.info("bench %s: full nightly (the default model set), first and second night ...", size)
        res["full_nightly"] = bench_full_nightly(raw, work)
        lap("full_nightly")
    if all(x in skip for x in ("als", "topn", "loader", "deep")) and not (wh / "silver").exists():
        return res  # nothing needs the bench warehouse (e.g. only the full nightly was asked for)
    if "nightly" in skip and not (wh / "silver").exists():
        raise SystemExit(f"--skip nightly needs an existing warehouse at {wh}")
    conf = load_config(overrides={"warehouse": str(wh)})
    spark = build_spark(conf)
    try:
        events = tables.read(spark, str(wh), C.T_EVENTS).count()
        res["events"] = events
        res["interactions"] = tables.read(spark, str(wh), C.T_INTERACTIONS).count()
        res["bronze_bytes_per_event"] = round(du(wh / "bronze" / "events", ".parquet") / events, 1)
        if raw.exists():
            res["raw_bytes_per_event"] = round(du(raw / "events.jsonl", ".json") / events, 1)
        stages = res.get("nightly", {}).get("stages", {})
        if "ingest" in stages:
            res["ingest_events_per_s"] = round(events / stages["ingest"])
            res["matrix_seconds"] = stages.get("matrix")
        lap("session")
        model = None
        if "als" not in skip or "topn" not in skip:
            res["als"], model = bench_als(spark, conf, str(wh), iters=args.als_iters, repeats=repeats)
            log.info("bench %s: als %s", size, res["als"])
            lap("als")
        if "topn" not in skip and model is not None:
            res["topn"] = bench_topn(spark, conf, str(wh), model, repeats)
            log.info("bench %s: topn %s", size, {k: v for k, v in res["topn"].items()})
            lap("topn")
        if "loader" not in skip:
            res["loader"] = bench_loader(spark, str(wh), work, repeats)
            log.info("bench %s: loader %s", size, res["loader"])
            lap("loader")
        if deep and "deep" not in skip:
            res["deep"] = bench_deep(spark, conf, DEEP_MODELS, args.deep_epochs)
            lap("deep")
    finally:
        spark.stop()
    log.info("bench %s: done; seconds by section %s", size, spent)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return res


# --- report -----------------------------------------------------------------------------------------


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's keys, from the largest size of the run (and the growth ratios where measured)."""
    sizes = [s for s in SIZES if s in results["sizes"]]
    top = results["sizes"][sizes[-1]]
    out: dict[str, Any] = {"largest_size": sizes[-1]}
    if "topn" in top:
        out["topn_speedup_vs_recommendForAllUsers"] = top["topn"]["topn_speedup_vs_recommendForAllUsers"]
        out["topn_time_vs_gemm_floor"] = top["topn"]["topn_time_vs_gemm_floor"]
        if "topn_time_vs_floor_with_seen_mask" in top["topn"]:
            out["topn_time_vs_floor_with_seen_mask"] = top["topn"]["topn_time_vs_floor_with_seen_mask"]
    if "loader" in top:
        out["loader_rate_vs_pyarrow"] = top["loader"]["loader_rate_vs_pyarrow"]
    if "als" in top:
        out["als_iteration_time_vs_implicit"] = top["als"]["als_iteration_time_vs_implicit"]
        if "als_iteration_time_vs_implicit_exact" in top["als"]:
            out["als_iteration_time_vs_implicit_exact"] = top["als"]["als_iteration_time_vs_implicit_exact"]
    full = [s for s in sizes if "full_nightly" in results["sizes"][s]]
    for s in full:
        out[f"full_nightly_seconds_{s}"] = results["sizes"][s]["full_nightly"]["first"]["wall_seconds"]
    if full:
        out["second_night_time_vs_first"] = results["sizes"][full[-1]]["full_nightly"][
            "second_night_time_vs_first"
        ]
        out["second_night_size"] = full[-1]
    walls = {
        s: results["sizes"][s]["nightly"]["wall_seconds"] for s in sizes if "nightly" in results["sizes"][s]
    }
    run = {s: _section_run(results, s, "nightly") for s in sizes}
    for a, b in (("5m", "1m"), ("20m", "5m")):
        if a in walls and b in walls and run[a] == run[b]:  # growth only within one run
            out[f"nightly_time_ratio_{a}_over_{b}"] = round(walls[a] / walls[b], 2)
    return out


def _fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:,.1f}"


def _fmt_n(x: float | None) -> str:
    return "–" if x is None else f"{x:,}"


def _fmt_x(x: float | None) -> str:
    return "–" if x is None else f"{x}x"


def _med(r: dict[str, Any] | None) -> str:
    """``median (min-max)`` seconds of a timing, or the median alone for runs stored before spreads."""
    if not r:
        return "–"
    return f"{r['seconds']} ({r['min']}-{r['max']})" if "min" in r else f"{r['seconds']}"


def _earlier_runs(results: dict[str, Any]) -> list[str]:
    """A line naming what was kept from earlier runs (their timings are not comparable to this run's)."""
    this = results["machine"]["date"]

    def where(entry: dict[str, Any]) -> str:
        # the earlier run's date and CPU: this machine's CPU may not be the one that measured it
        return f"the run of {entry['run']} ({entry.get('cpu') or 'CPU not recorded'})"

    earlier = {s: r for s, r in results["sizes"].items() if r.get("run") not in (None, this)}
    sections = [
        f"{s} {section} from {where(r[section])}"
        for s, r in results["sizes"].items()
        if s not in earlier
        for section in SECTIONS
        if isinstance(r.get(section), dict) and r[section].get("run") not in (None, this)
    ]
    if not earlier and not sections:
        return []
    kept = "; ".join([f"{s} from {where(r)}" for s, r in earlier.items()] + sections)
    return [
        f"Sizes measured in this run: {', '.join(results.get('sizes_run', []))}. Kept from earlier runs "
        f"(earlier code, other load; their rows are not ratios against this run's): {kept}.",
        "",
    ]


def _run_time(results: dict[str, Any]) -> list[str]:
    """The bench run's own wall time: in all, and by size and section (what `make bench` costs)."""
    total = results.get("total_seconds")
    ran = [s for s in results.get("sizes_run", []) if "bench_seconds" in results["sizes"].get(s, {})]
    if total is None or not ran:
        return []
    lines = [
        "## This run's time",
        "",
        f"`bench/run.py --sizes {','.join(results['sizes_run'])}` took **{total / 60:,.1f} min** "
        f"({total:,.0f} s) in all, generated data included where it was not cached.",
        "",
        "| size | " + " | ".join(f"{x} s" for x in BENCH_SECTIONS) + " | size total s |",
        "| --- | " + " | ".join("---:" for _ in BENCH_SECTIONS) + " | ---: |",
    ]
    for s in ran:
        spent = results["sizes"][s]["bench_seconds"]
        cells = [_fmt_s(spent.get(x)) for x in BENCH_SECTIONS]
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {_fmt_s(sum(spent.values()))} |")
    return lines + [""]


def markdown(results: dict[str, Any]) -> list[str]:
    f, h = results["machine"], results["headline"]
    sizes = [s for s in SIZES if s in results["sizes"]]
    R = results["sizes"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); raw numbers in `bench/results.json`. Each size's numbers "
        "are measured side by side in one run; medians of the repeats shown.",
        "",
        f"Machine of this run: {f['cores']} cores ({f['cpu']}), {f['memory_gib']} GiB, Python {f['python']}, "
        f"{f['java']}, "
        f"pyspark {f['pyspark']}, torch {f['torch']}, numpy {f['numpy']}, pyarrow {f['pyarrow']}, "
        f"implicit {f['implicit']}; load average at start "
        f"{', '.join(f'{x:.1f}' for x in f['load_average_at_start'])}; {f['date']}.",
        "",
        *_earlier_runs(results),
        f"## Headline (largest size of the run: {h['largest_size']})",
        "",
        "| key | value |",
        "| --- | ---: |",
        *[f"| `{k}` | {v} |" for k, v in h.items() if k != "largest_size"],
        "",
        *_run_time(results),
        "## Data and the nightly pipeline",
        "",
        f"Generated by `jobs/generate_sample.py` (90 days, ~143 events per user); nightly model set "
        f"`{','.join(BENCH_MODELS)}` at every size, for the growth ratios; the default model set is the "
        "full nightly's (`make bench-nightly`, below when it ran) and the deep models are also measured "
        "on their own.",
        "",
        "| size | users | items | events | interactions | generate s | nightly wall s | nightly CPU s "
        "| nightly peak RSS GiB | ingest events/s | bronze bytes/event | raw bytes/event | matrix s "
        "| stages (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in sizes:
        r = R[s]
        n = r.get("nightly", {})
        g = r.get("generate", {})
        gen = _fmt_s(g.get("generate_seconds")) + (" (cached)" if g.get("reused") else "")
        stages = ", ".join(f"{k} {v:.0f}" for k, v in n.get("stages", {}).items())
        lines.append(
            f"| {s} | {r['spec']['users']:,} | {r['spec']['items']:,} | {_fmt_n(r.get('events'))} | "
            f"{_fmt_n(r.get('interactions'))} | {gen} | {_fmt_s(n.get('wall_seconds'))} | "
            f"{_fmt_s(n.get('cpu_seconds'))} | {_fmt_s(n.get('peak_rss_gib'))} | "
            f"{_fmt_n(r.get('ingest_events_per_s'))} | "
            f"{_fmt_n(r.get('bronze_bytes_per_event'))} | {_fmt_n(r.get('raw_bytes_per_event'))} | "
            f"{_fmt_s(r.get('matrix_seconds'))} | {stages} |"
        )
    lines += full_nightly_section(R, sizes)
    lines += [
        "",
        "## ALS, rank 64: Spark MLlib vs `implicit` both ways (same pairs, same iterations)",
        "",
        "Seconds per iteration from fits of 1 and 1+k iterations after a warm-up fit (the difference "
        "over k; CPU seconds of the Spark JVM, of this process for implicit, beside); NDCG@10 on a "
        "per-pair hashed 20% of each user's positive pairs, training pairs excluded, after 1+k iterations. "
        "`implicit` with its default conjugate-gradient solver (CG) and with the exact solve Spark does "
        "(`use_cg=False`); the sides interleaved per repeat, median (min-max). Rows without the exact "
        "columns are from runs before it (CG only, one sample).",
        "",
        "| size | train pairs | users x items | Spark BLAS | Spark s/iter | implicit CG s/iter | ratio "
        "| implicit exact s/iter | ratio | CPU s/iter Spark / implicit CG (ratio) "
        "| NDCG@10 Spark / CG / exact |",
        "| --- | ---: | --- | --- | --- | --- | ---: | --- | ---: | --- | --- |",
    ]
    for s in sizes:
        a = R[s].get("als")
        if a:
            spread = a.get("spread_seconds_per_iteration", {})

            def it(key: str, side: str, a: dict[str, Any] = a, spread: dict[str, Any] = spread) -> str:
                if key not in a:
                    return "–"
                sp_ = spread.get(side)
                return f"{a[key]} ({sp_['min']}-{sp_['max']})" if sp_ else f"{a[key]}"

            lines.append(
                f"| {s} | {a['train_pairs']:,} | {a['users']:,} x {a['items']:,} | {a['spark_blas']} | "
                f"{it('spark_seconds_per_iteration', 'spark')} | "
                f"{it('implicit_seconds_per_iteration', 'implicit_cg')} | "
                f"{a['als_iteration_time_vs_implicit']}x | "
                f"{it('implicit_exact_seconds_per_iteration', 'implicit_exact')} | "
                f"{_fmt_x(a.get('als_iteration_time_vs_implicit_exact'))} | "
                f"{a['spark_cpu_seconds_per_iteration']} / "
                f"{a['implicit_cpu_seconds_per_iteration']} ({a['als_iteration_cpu_vs_implicit']}x) | "
                f"{a['spark_ndcg_at_10']} / {a['implicit_ndcg_at_10']} / "
                f"{a.get('implicit_exact_ndcg_at_10', '–')} |"
            )
    lines += [
        "",
        f"## Top-N for all users (N={TOP_N}) on the Spark ALS factors, result written (Spark noop sink)",
        "",
        f"The seen-filtered variant is timed up to {TOPN_FILTERED_MAX_USERS:,} users ('–' above). Seconds: "
        "median (min-max) of the interleaved repeats. The floor (`bench/topn_floor.py`) is plain torch on "
        "the same factors, the faster of 1 process x 2 threads and 2 processes x 1 thread on half the users "
        "each, at the best block size of each: GEMM alone, GEMM + top-k (the floor the ratio is against), "
        "and GEMM + seen mask + top-k. Output check: row count, ranks 1..N, no seen item and scores against "
        "brute force on sampled users. GFLOP/s: of the GEMM floor. Rows without these columns are from runs "
        "before the fair floor (one process x all threads, GEMM + top-k; GFLOP/s of that).",
        "",
        "| size | users x items | vidrec.models.topn s | recommendForAllUsers(N) s "
        "| …(N + p95 seen) then seen filtered s | floor s: GEMM / + top-k / + mask (set-up) | GFLOP/s "
        "| speed-up vs plain | vs filtered | vidrec / floor | vidrec / floor with mask | output check "
        "| peak RSS GiB (vidrec / Spark) |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for s in sizes:
        t = R[s].get("topn")
        if t:
            fl = t.get("floor")
            if fl:
                floor = (
                    f"{fl['floor_gemm']['seconds']} / {_med(fl['floor_gemm_topk'])} / "
                    f"{fl['floor_gemm_mask_topk']['seconds']} ({fl['floor_gemm_topk']['setup']})"
                )
            else:
                floor = f"– / {t['gemm_floor']['seconds']} / –"
            chk = t.get("output_check")
            check = "–" if not chk else ("passed" if chk["passed"] else "FAILED") + f" ({chk['rows']:,} rows)"
            lines.append(
                f"| {s} | {t['users']:,} x {t['items']:,} | {_med(t['vidrec'])} | "
                f"{_med(t['recommendForAllUsers_plain'])} | "
                f"{_med(t['recommendForAllUsers_seen_filtered'])} | {floor} | {t['gemm_gflops']} | "
                f"{t['topn_speedup_vs_recommendForAllUsers']}x | "
                f"{_fmt_x(t['topn_speedup_vs_recommendForAllUsers_seen_filtered'])} | "
                f"{t['topn_time_vs_gemm_floor']}x | {_fmt_x(t.get('topn_time_vs_floor_with_seen_mask'))} | "
                f"{check} | "
                f"{t['vidrec'].get('peak_rss_gib')} / {t['recommendForAllUsers_plain'].get('peak_rss_gib')} |"
            )
    lines += [
        "",
        "## Feature shards and the loader (`vidrec.models.deep.loader` vs plain pyarrow)",
        "",
        "Rows with cases: `bench/loader_fair.py` on the shards `write_shards` wrote, both readers of the "
        "seam against the fair baseline (`read_table` per file, each column converted once, slices; "
        "shuffled: one permutation per row group), shuffled and not, at the models' batch sizes, "
        "interleaved repeats; the ratio is the default reader's worst shuffled case. Rows without cases "
        "are from runs before it (Petastorm against pyarrow's 1,024-row record batches, unshuffled).",
        "",
        "| size | rows | row groups | shard write s | loader rows/s | pyarrow rows/s | ratio "
        "| Petastorm ratio | cases: reader / fair (Petastorm / fair) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in sizes:
        ld = R[s].get("loader")
        if ld and "cases" in ld:
            cases = "; ".join(
                f"{k.replace('batch=', 'b').replace(',shuffle=', ' shuffled ')}: "
                f"{v[ld['default_reader'] + '_vs_fair']} ({v.get('petastorm_vs_fair', '–')})"
                for k, v in ld["cases"].items()
                if k.startswith("batch=")
            )
            lines.append(
                f"| {s} | {ld['rows']:,} | {ld['row_groups']} | {ld['shard_write_seconds']} | "
                f"{ld['loader_rows_per_s']:,} ({ld['default_reader']}) | {ld['fair_pyarrow_rows_per_s']:,} | "
                f"{ld['loader_rate_vs_pyarrow']} | {ld['petastorm_rate_vs_pyarrow']} | {cases} |"
            )
        elif ld:
            lines.append(
                f"| {s} | {ld['rows']:,} | {ld['row_groups']} | {ld['shard_write_seconds']} | "
                f"{ld['petastorm_rows_per_s']:,} (Petastorm) | {ld['pyarrow_rows_per_s']:,} | "
                f"{ld['loader_rate_vs_pyarrow']} | – | – |"
            )
    lines += deep_section(R, sizes)
    return (
        lines
        + gpu_section(results.get("gpu"))
        + side_checks_section(results.get("side_checks"))
        + [
            "",
            DOCS_LINE,
            "",
        ]
    )


def deep_section(R: dict[str, Any], sizes: list[str]) -> list[str]:
    """The deep models' training throughput, from the first size that measured it."""
    deep = next(((s, R[s]["deep"]) for s in sizes if "deep" in R[s]), None)
    if not deep:
        return []
    return [
        "",
        f"## Deep model training throughput ({deep[0]} data, TorchDistributor, gloo, CPU)",
        "",
        "| model | rows/s per process | processes | epochs | fit s (features, shards, training) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {m} | {d['rows_per_s_per_process']:,} | {d['processes']} | {d['epochs']} | "
            f"{d['fit_seconds']} |"
            for m, d in deep[1].items()
            if isinstance(d, dict)  # not the `run` a carried section records
        ],
    ]


def full_nightly_section(R: dict[str, Any], sizes: list[str]) -> list[str]:
    """The default model set's nightly, first and second night, per stage and per model."""
    full = [s for s in sizes if "full_nightly" in R[s]]
    if not full:
        return []
    lines = [
        "",
        "## The full nightly: every model of conf/base.yaml, first night and second night",
        "",
        "Night 1: a fresh warehouse, the day before the run date (every event up to it, the first offline "
        "evaluation). Night 2: the run date on the same warehouse (one more day of events). One sample "
        "each (the nightly is not repeated). Peak RSS sums the resident memory of every process of the job "
        "(driver JVM, Python, training processes), so pages they share count once per process. Models: "
        "each fit and its lists, by the stage that ran it (`validation`: the learned blend's carve of the "
        "evaluation's training side); the deep models' training launch is in the stage times, not here.",
        "",
        "| size | night | wall s | CPU s | peak RSS GiB | stages (s) | models (s) |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for s in full:
        f = R[s]["full_nightly"]
        for night in ("first", "second"):
            n = f[night]
            stages = ", ".join(f"{k} {v:.0f}" for k, v in n.get("stages", {}).items())
            # "evaluate:als" -> evaluate: als (validation: the blend's carve)
            by_stage: dict[str, list[str]] = {}
            for k, v in n.get("models", {}).items():
                stage, _, model = k.rpartition(":")
                by_stage.setdefault(stage or "fit", []).append(f"{model} {v:.0f}")
            models = "; ".join(f"{stage}: {', '.join(fits)}" for stage, fits in by_stage.items())
            lines.append(
                f"| {s} | {night} ({n['run_date']}) | {_fmt_s(n['wall_seconds'])} | "
                f"{_fmt_s(n['cpu_seconds'])} | {n['peak_rss_gib']} | {stages} | {models} |"
            )
        lines.append(f"| {s} | second / first | {f['second_night_time_vs_first']} | | | | |")
    return lines


GPU_COMMAND = "bash bench/gpu_check.sh OUT.json"
GPU_FOLD = "bench/run.py --render-only --gpu-json OUT.json"


def gpu_section(gpu: dict[str, Any] | None) -> list[str]:
    """The GPU paths (``bench/gpu_check.py``'s JSON), or "not measured" until one ran."""
    lines = [
        "",
        "## GPU paths (`bench/gpu_check.sh`: top-N block scoring, DDP training with NCCL and AMP)",
        "",
    ]
    if not gpu or "environment" not in gpu:
        return lines + [
            f"Not measured: no GPU was lent to a run yet. On a machine with one CUDA GPU (no Spark or Java "
            f"needed): `{GPU_COMMAND}`, then `{GPU_FOLD}` here folds it into this report.",
        ]
    env = gpu["environment"]
    lines += [
        f"Measured {env.get('date')} on {env.get('gpu') or 'no GPU'} ({env.get('gpu_memory_gib')} GiB), "
        f"{env.get('cpu_count')} CPU cores, Python {env.get('python')}, torch {env.get('torch')} "
        f"(CUDA {env.get('torch_cuda')}, NCCL {env.get('nccl')}), pyarrow {env.get('pyarrow')}; mode "
        f"{gpu.get('mode')}; the check took {gpu.get('seconds')} s.",
        "",
    ]
    if "error" in gpu:
        lines += [f"The check reported: {gpu['error']}", ""]
    t = gpu.get("topn", {})
    if "error" in t:
        lines += [f"Top-N failed: {t['error']}", ""]
    elif t:
        chk = t.get("check", {})
        lines += [
            f"Top-N, {t['users']:,} users x {t['items']:,} items, rank {t['rank']}, N={t['top_n']}, "
            f"{t['seen_pairs']:,} seen pairs masked (random factors), the kernel of `vidrec.models.topn` "
            f"(`vidrec.models.topn_kernel.score_user_block`) over all users, {t['repeats']} interleaved "
            "repeats (median, min-max):",
            "",
            "| device | block rows | seconds (min-max) | GFLOP/s |",
            "| --- | ---: | --- | ---: |",
        ]
        for d, label in (("cpu", f"CPU, {t['cpu_threads']} torch threads"), ("cuda", "GPU")):
            r = t.get(d)
            if r:
                lines.append(
                    f"| {label} | {t.get(f'{d}_block_rows')} | {r['seconds']} ({r['min']}-{r['max']}) "
                    f"| {r['gflops']:,} |"
                )
        lines += [
            "",
            f"GPU vs CPU: **{_fmt_x(t.get('gpu_speedup_vs_cpu'))}**; GPU peak memory "
            f"{t.get('gpu_peak_memory_gib', '–')} GiB. Output check on {chk.get('sampled_users')} "
            f"sampled users against brute force: seen items in lists {chk.get('seen_items_in_lists')}, "
            f"lists full {chk.get('ranks_complete')}, score max abs diff "
            f"{chk.get('scores_vs_brute_force_max_abs_diff')}, "
            f"GPU/CPU list overlap {chk.get('gpu_cpu_list_overlap', '–')}: "
            f"{'passed' if chk.get('passed') else 'FAILED'}.",
            "",
        ]
    dd = gpu.get("ddp", {})
    if "error" in dd:
        lines += [f"DDP failed: {dd['error']}", ""]
    elif dd:
        lines += [
            f"DDP training, {dd['model']} ({dd['train_rows']:,} random rows, batch {dd['batch_size']}, "
            f"{dd['epochs']} epoch, `{dd['loader']}` loader), `torchrun` + `vidrec.models.deep.train`:",
            "",
            "| run | processes | backend | AMP | rows/s | train s | wall s (start-up incl.) | train loss |",
            "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for name in ("gpu_nccl_amp", "gpu_nccl_fp32", "cpu_gloo_2proc"):
            r = dd.get(name)
            if not r:
                continue
            if "error" in r:
                lines.append(f"| {name} | {r['processes']} | – | {r['amp']} | failed: {r['error']} | | | |")
                continue
            lines.append(
                f"| {name} | {r['processes']} | {r['backend']} | {r['amp']} | {r['rows_per_s']:,} | "
                f"{r['train_seconds']} | {r['wall_seconds']} | {r['train_loss']} |"
            )
        ratios = [
            f"{n}: {_fmt_x(dd.get(f'{n}_rows_per_s_vs_cpu_gloo'))}"
            for n in ("gpu_nccl_amp", "gpu_nccl_fp32")
            if f"{n}_rows_per_s_vs_cpu_gloo" in dd
        ]
        if ratios:
            lines += ["", "Rows/s against CPU gloo: " + "; ".join(ratios) + "."]
    return lines


def side_checks_section(checks: dict[str, Any] | None) -> list[str]:
    """Focused measurements taken outside `make bench` (their own run, load average, command)."""
    if not checks:
        return []
    lines = [
        "",
        "## Side checks (outside `make bench`: their own runs, marked with their load)",
    ]
    fair = checks.get("loader_fair")
    if fair:
        lines += [
            "",
            f"Loader against fair plain pyarrow (`{fair['command']}`, {fair['run']}, {fair['rows']:,} rows, "
            f"{fair['repeats']} interleaved repeats, load average "
            f"{fair['load_average_before'][0]:.1f} before and {fair['load_average_after'][0]:.1f} after "
            f"on {fair.get('cores', '?')} cores: noisy, the "
            "ratios are of interleaved runs). Seconds median (min-max):",
            "",
            "| batch | shuffled | fair pyarrow s | pyarrow reader s | Petastorm s | pyarrow reader / fair "
            "| Petastorm / fair |",
            "| ---: | --- | --- | --- | --- | ---: | ---: |",
        ]
        for key, case in fair.items():
            if not key.startswith("batch="):
                continue
            b, sh = (x.split("=")[1] for x in key.split(","))
            cells = [
                f"{case[k]['seconds']} ({case[k]['min']}-{case[k]['max']})" if k in case else "–"
                for k in ("fair_pyarrow", "pyarrow", "petastorm")
            ]
            lines.append(
                f"| {b} | {sh} | " + " | ".join(cells) + f" | {case.get('pyarrow_vs_fair', '–')} | "
                f"{case.get('petastorm_vs_fair', '–')} |"
            )
    return lines


def carry_earlier(results: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """What this run did not measure, kept from an earlier ``results.json`` with its run's date.

    Sizes this run did not measure are kept whole, and of the sizes it did measure, the sections it
    skipped (``--skip``) are kept; each records the run it came from (``run``: that run's start date)
    and that run's CPU (``cpu``; ``None`` where an older file did not record it: the machine under
    this project changes between sessions), so a report can hold numbers benchmarked earlier (e.g.
    ``BENCH_SIZES=5m,20m`` keeps 1m, ``--skip als,topn`` keeps those sections) without mixing their
    timings into this run's ratios: the headline's growth ratios only compare nightly runs of one run.

    Returns
    -------
    list of str
        The sizes kept whole, then ``size:section`` for each section kept.
    """
    earlier_date = old.get("machine", {}).get("date")
    earlier_cpu = old.get("machine", {}).get("cpu")

    def cpu_of(run: str | None, recorded: str | None) -> str | None:
        # a result's own CPU; else the earlier file's, when the result is that file's run (None: unknown)
        return recorded or (earlier_cpu if run == earlier_date else None)

    carried, sections = [], []
    for size, r in old.get("sizes", {}).items():
        if size not in SIZES:
            continue
        run = r.get("run") or earlier_date
        cpu = cpu_of(run, r.get("cpu"))
        if size not in results["sizes"]:
            results["sizes"][size] = {**r, "run": run, "cpu": cpu}
            carried.append(size)
            continue
        new = results["sizes"][size]
        for section in SECTIONS:
            if section in r and section not in new:
                s_run = r[section].get("run") or run
                s_cpu = r[section].get("cpu") or (cpu if s_run == run else cpu_of(s_run, None))
                new[section] = {**r[section], "run": s_run, "cpu": s_cpu}
                sections.append(f"{size}:{section}")
                if section == "nightly":  # with the facts measured on its warehouse
                    new.update({k: r[k] for k in NIGHTLY_FACTS if k in r and k not in new})
    results["sizes"] = {s: results["sizes"][s] for s in SIZES if s in results["sizes"]}
    for key in ("gpu", "side_checks"):  # measured apart from the sizes: kept until measured again
        if key in old and key not in results:
            results[key] = old[key]
            carried.append(key)
    return carried + sections


def _section_run(results: dict[str, Any], size: str, section: str) -> str | None:
    """The run a size's section was measured in (its own ``run`` when carried, else the size's)."""
    r = results["sizes"][size]
    return r.get(section, {}).get("run") or r.get("run")


def render_report(results: dict[str, Any]) -> str:
    """The whole of ``BENCHMARKS.md`` for ``results`` (as in ``results.json``): nothing is kept from the
    file it replaces."""
    return "\n".join(markdown(results))


def write_report(results: dict[str, Any], out_json: Path, out_md: Path) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    out_md.write_text(render_report(results))


def fold_extra(results: dict[str, Any], gpu_json: str | None, side_json: list[str]) -> None:
    """``results["gpu"]`` from ``gpu_json`` and ``results["side_checks"][name]`` from ``NAME=FILE``."""
    if gpu_json:
        results["gpu"] = json.loads(Path(gpu_json).read_text())
    for item in side_json:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"--side-json expects NAME=FILE, got '{item}'")
        results.setdefault("side_checks", {})[name] = json.loads(Path(path).read_text())


def render_only(args: argparse.Namespace) -> int:
    """Regenerate the report from the stored results (nothing measured, nothing else changed)."""
    out_json = Path(args.out_json)
    if not out_json.exists():
        raise SystemExit(f"--render-only: no results at {out_json}")
    results = json.loads(out_json.read_text())
    fold_extra(results, args.gpu_json, args.side_json)
    write_report(results, out_json, Path(args.out_md))
    log.info("bench: %s regenerated from %s", args.out_md, out_json)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES") or DEFAULT_SIZES)
    parser.add_argument(
        "--repeats", type=int, default=None, help="default: per size (3 at 1m, 5m and 20m; the loader >= 5)"
    )
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "bench"), help="generated raw data (kept)")
    parser.add_argument("--work-dir", default="/tmp/vidrec-bench", help="warehouses and shards (deleted)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (warehouses) afterwards")
    parser.add_argument(
        "--als-iters", type=int, default=3, help="k: ALS timed from fits of 1 and 1+k iterations"
    )
    parser.add_argument("--deep-epochs", type=int, default=2)
    parser.add_argument(
        "--full-nightly-sizes",
        default=FULL_NIGHTLY_SIZES,
        help="sizes whose default-model-set nightly (first and second night) is timed",
    )
    parser.add_argument(
        "--keep-earlier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep sizes of the existing --out-json that this run does not measure (marked with their run)",
    )
    parser.add_argument("--out-json", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--out-md", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: regenerate --out-md from --out-json (with --gpu-json/--side-json folded in)",
    )
    parser.add_argument("--gpu-json", help="fold bench/gpu_check.sh's JSON in as the GPU section")
    parser.add_argument(
        "--side-json",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="fold a side check's JSON in (loader_fair: bench/loader_fair.py's output)",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        return render_only(args)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        parser.error(f"--sizes: unknown {unknown} (known: {', '.join(SIZES)})")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(SECTIONS):
        parser.error(f"--skip: unknown {sorted(skip - set(SECTIONS))} (known: {', '.join(SECTIONS)})")
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    sizes = [s for s in SIZES if s in sizes]  # smallest first
    results: dict[str, Any] = {"machine": machine_facts(), "sizes": {}}
    t0 = time.perf_counter()
    out_json = Path(args.out_json)
    partial = out_json.with_name(out_json.stem + ".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        results["sizes"][size] = {
            **bench_size(size, args, skip, deep=i == 0),
            "run": results["machine"]["date"],
            "cpu": results["machine"]["cpu"],
        }
        # each finished size is on disk at once: a failure at a larger size loses only that size
        partial.write_text(json.dumps(results, indent=2, default=str) + "\n")
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    results["sizes_run"] = sizes
    fold_extra(results, args.gpu_json, args.side_json)
    if args.keep_earlier and out_json.exists():
        carried = carry_earlier(results, json.loads(out_json.read_text()))
        if carried:
            log.info("bench: kept %s from the earlier results in %s", ",".join(carried), out_json)
    results["headline"] = headline(results)
    write_report(results, out_json, Path(args.out_md))
    partial.unlink(missing_ok=True)
    print(json.dumps(results["headline"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
