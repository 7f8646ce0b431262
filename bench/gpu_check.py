"""The GPU paths measured on a machine with one CUDA GPU and no Spark: top-N scoring and DDP training.

    bash bench/gpu_check.sh OUT.json            # on the GPU box (under 8 minutes on one H200)
    bash bench/gpu_check.sh OUT.json --cpu-only --small   # every code path on CPU, in seconds

Imports only Spark-free modules (``vidrec.models.topn_kernel``, ``vidrec.models.deep.train``/``loader``/
``networks``): needs Python, CUDA torch, NumPy and pyarrow, no Java, pyspark, Petastorm or network.

1. **Top-N block scoring at the 20M shape** (140,000 users x 27,000 items, rank 64, N=50; random
   factors, ~100 seen items per user masked): the kernel of :mod:`vidrec.models.topn`
   (:func:`~vidrec.models.topn_kernel.score_user_block`, block rows from
   :func:`~vidrec.models.topn_kernel.block_rows`) over all users on the GPU (item factors resident,
   user blocks pinned and copied in, positions and scores copied back) and on the CPU (one process,
   every core as torch threads); repeats with median, min and max. The GPU's lists are checked against
   the CPU's (same items but where scores tie within float error) and for no seen item.
2. **One deep model's DDP training** (NeuMF at its default size and batch, 1 epoch over random
   ``(user, item, label)`` shards written with pyarrow as the shard writer lays them out, read by the
   project's pyarrow loader): ``torchrun`` + ``vidrec.models.deep.train`` with NCCL and AMP (bf16) on the
   GPU (and without AMP), against gloo on the CPU with 2 processes; rows/s and seconds from each run's
   ``metrics.json``.

Writes one JSON file (rewritten after each part, so a part that fails or runs out of time leaves the
others): ``bench/run.py --gpu-json`` folds it into ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vidrec.models.topn_kernel import block_rows, score_user_block

ROOT = Path(__file__).resolve().parents[1]
TOP_N = 50
#: (users, items, rank, seen per user, repeats) of the full check and of ``--small``.
TOPN_SHAPE = {"full": (140_000, 27_000, 64, 100, 3), "small": (3_000, 1_500, 16, 20, 2)}
#: (train rows, users, items, epochs) of the DDP check.
DDP_SHAPE = {"full": (4_000_000, 140_000, 27_000, 1), "small": (40_000, 2_000, 1_500, 1)}
DDP_TIMEOUT_S = {"full": 120, "small": 240}
NCF_CONFIG = {"embedding_dim": 32, "mlp_dim": 32, "mlp_layers": [64, 32], "dropout": 0.0}
NCF_BATCH, NCF_LR = 1024, 0.003
ROWS_PER_GROUP = 131_072


def _stats(times: list[float]) -> dict[str, Any]:
    return {
        "seconds": round(statistics.median(times), 4),
        "min": round(min(times), 4),
        "max": round(max(times), 4),
        "runs": [round(t, 4) for t in times],
    }


def _nccl_version() -> str | None:
    try:
        v = torch.cuda.nccl.version()
    except Exception:  # no NCCL in this build
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def environment() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if cuda
        else None,
        "nccl": _nccl_version() if cuda else None,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# --- 1. top-N ---------------------------------------------------------------------------------------


def _seen_csr(
    users: int, items: int, per_user: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    lengths = rng.integers(per_user // 2, per_user * 3 // 2 + 1, users)
    indptr = np.zeros(users + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    cols = rng.integers(0, items, int(indptr[-1]), dtype=np.int64)  # duplicates are harmless
    return indptr, cols


def score_all(
    U: np.ndarray, V: np.ndarray, indptr: np.ndarray, cols: np.ndarray, k: int, device: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """All users' top ``k`` with the topn kernel, blocks as :func:`block_rows` sizes them on ``device``."""
    items_t = torch.from_numpy(V).to(device).T
    step = block_rows(len(V), 2048, device)
    pos = np.empty((len(U), k), np.int32)
    sc = np.empty((len(U), k), np.float32)
    for s in range(0, len(U), step):
        e = min(s + step, len(U))
        lengths = np.diff(indptr[s : e + 1])
        rows = np.repeat(np.arange(e - s), lengths)
        p, v = score_user_block(U[s:e].copy(), rows, cols[indptr[s] : indptr[e]], items_t, k, device)
        pos[s:e], sc[s:e] = p, v
    if device != "cpu":
        torch.cuda.synchronize()
    return pos, sc, step


def check_topn(small: bool, cpu_only: bool) -> dict[str, Any]:
    users, items, rank, per_user, repeats = TOPN_SHAPE["small" if small else "full"]
    rng = np.random.default_rng(0)
    U = rng.standard_normal((users, rank), dtype=np.float32)
    V = rng.standard_normal((items, rank), dtype=np.float32)
    indptr, cols = _seen_csr(users, items, per_user, rng)
    k = TOP_N
    devices = ["cpu"] if cpu_only or not torch.cuda.is_available() else ["cpu", "cuda"]
    out: dict[str, Any] = {
        "users": users,
        "items": items,
        "rank": rank,
        "top_n": k,
        "seen_pairs": int(indptr[-1]),
        "cpu_threads": torch.get_num_threads(),
        "repeats": repeats,
    }
    results: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    times: dict[str, list[float]] = {d: [] for d in devices}
    for d in devices:  # warm-up on a slice: CUDA context, cuBLAS handles, allocator
        score_all(U[:4096], V, indptr[:4097], cols, k, d)
    for _ in range(repeats):
        for d in devices:  # interleaved
            t0 = time.perf_counter()
            pos, sc, step = score_all(U, V, indptr, cols, k, d)
            times[d].append(time.perf_counter() - t0)
            results[d] = (pos, sc)
            out.setdefault(f"{d}_block_rows", step)
    flops = 2.0 * users * items * rank
    for d in devices:
        out[d] = {**_stats(times[d]), "gflops": round(flops / statistics.median(times[d]) / 1e9, 1)}
    if "cuda" in times:
        out["gpu_speedup_vs_cpu"] = round(out["cpu"]["seconds"] / out["cuda"]["seconds"], 2)
        out["gpu_peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    # correctness: no seen item; the GPU's lists are the CPU's but where scores tie within float error
    pos, sc = results[devices[-1]]
    sample = rng.choice(users, min(users, 2000), replace=False)
    seen_hits = sum(
        len(np.intersect1d(pos[u], cols[indptr[u] : indptr[u + 1]], assume_unique=False)) for u in sample
    )
    brute = U[sample] @ V.T
    for j, u in enumerate(sample):
        brute[j, cols[indptr[u] : indptr[u + 1]]] = -np.inf
    want = -np.sort(np.partition(-brute, k - 1, axis=1)[:, :k], axis=1)
    out["check"] = {
        "sampled_users": len(sample),
        "seen_items_in_lists": int(seen_hits),
        "ranks_complete": bool(np.isfinite(sc).all()),
        "scores_vs_brute_force_max_abs_diff": float(np.max(np.abs(sc[sample] - want))),
    }
    if "cuda" in results:
        a, b = results["cpu"][0], results["cuda"][0]
        same = np.mean([len(np.intersect1d(a[u], b[u])) / k for u in sample])
        out["check"]["gpu_cpu_list_overlap"] = round(float(same), 5)
        out["check"]["gpu_cpu_score_max_abs_diff"] = float(
            np.max(np.abs(results["cpu"][1] - results["cuda"][1]))
        )
    ok = out["check"]
    ok["passed"] = bool(
        ok["seen_items_in_lists"] == 0
        and ok["ranks_complete"]
        and ok["scores_vs_brute_force_max_abs_diff"] < 1e-3
        and ok.get("gpu_cpu_list_overlap", 1.0) >= 0.99
    )
    return out


# --- 2. DDP training -------------------------------------------------------------------------------


def write_ncf_shards(folder: Path, rows: int, users: int, items: int, seed: int) -> None:
    """Random NCF rows as the shard writer lays them out: one 131,072-row group per file."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "user_idx": rng.integers(0, users, rows, dtype=np.int32),
            "item_idx": rng.integers(0, items, rows, dtype=np.int32),
            "label": (rng.random(rows) < 0.2).astype(np.float32),
        }
    )
    groups = max(2, -(-rows // ROWS_PER_GROUP))
    per = -(-rows // groups)
    for g in range(groups):
        pq.write_table(table.slice(g * per, per), folder / f"part-{g:05d}.parquet")


def run_ddp(
    work: Path, name: str, spec: dict[str, Any], nproc: int, use_gpu: bool, timeout: int
) -> dict[str, Any]:
    """One ``torchrun`` of ``vidrec.models.deep.train``; its metrics, or the error and log tail."""
    art = work / name
    art.mkdir(parents=True)
    spec = {**spec, "artifact_dir": str(art), "checkpoint_dir": str(art / "checkpoints")}
    (art / "spec.json").write_text(json.dumps(spec))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "vidrec.models.deep.train", "--spec", str(art / "spec.json"),
    ]  # fmt: skip
    if use_gpu:
        cmd.append("--use-gpu")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_NUM_THREADS", None)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        rc, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, log = 124, f"timed out after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "processes": nproc,
        "use_gpu": use_gpu,
        "amp": spec["amp"],
        "wall_seconds": round(wall, 1),
    }
    metrics = art / "metrics.json"
    if rc != 0 or not metrics.exists():
        return {**out, "error": f"exit {rc}", "log_tail": log[-3000:]}
    m = json.loads(metrics.read_text())
    last = m["history"][-1]
    backend = "nccl" if "backend nccl" in log else "gloo" if "backend gloo" in log else None
    return {
        **out,
        "backend": backend,
        "device": m["device"],
        "rows_per_epoch": last["rows"],
        "steps_per_epoch": last["steps"],
        "train_seconds": round(m["train_seconds"], 2),
        "rows_per_s_per_process": round(m["rows_per_s_per_process"]),
        "rows_per_s": round(m["rows_per_s_per_process"] * nproc),
        "train_loss": round(last["train_loss"], 5),
        "val_loss": round(last["val_loss"], 5),
    }


def check_ddp(small: bool, cpu_only: bool, work: Path) -> dict[str, Any]:
    size = "small" if small else "full"
    rows, users, items, epochs = DDP_SHAPE[size]
    val_rows = max(2 * 1024, rows // 50)
    write_ncf_shards(work / "train", rows, users, items, seed=1)
    write_ncf_shards(work / "val", val_rows, users, items, seed=2)
    spec = {
        "model": "ncf",
        "model_config": {"n_users": users, "n_items": items, **NCF_CONFIG},
        "train_path": str(work / "train"),
        "val_path": str(work / "val"),
        "batch_size": NCF_BATCH,
        "max_epochs": epochs,
        "lr": NCF_LR,
        "patience": epochs,
        "seed": 42,
        "amp": True,
        "loader": "pyarrow",
        "expected_train_rows": rows,
        "expected_val_rows": val_rows,
    }
    out: dict[str, Any] = {
        "model": "ncf",
        "model_config": spec["model_config"],
        "batch_size": NCF_BATCH,
        "train_rows": rows,
        "epochs": epochs,
        "loader": "pyarrow",
    }
    timeout = DDP_TIMEOUT_S[size]
    runs: list[tuple[str, dict[str, Any], int, bool]] = [("cpu_gloo_2proc", {**spec, "amp": False}, 2, False)]
    if not cpu_only and torch.cuda.is_available():
        runs = [
            ("gpu_nccl_amp", spec, 1, True),
            ("gpu_nccl_fp32", {**spec, "amp": False}, 1, True),
            *runs,
        ]
    for name, s, nproc, gpu in runs:
        out[name] = run_ddp(work, name, s, nproc, gpu, timeout)
        print(f"gpu_check ddp {name}: {json.dumps(out[name])[:400]}", flush=True)
    cpu = out["cpu_gloo_2proc"].get("rows_per_s")
    for name in ("gpu_nccl_amp", "gpu_nccl_fp32"):
        gpu_rate = out.get(name, {}).get("rows_per_s")
        if gpu_rate and cpu:
            out[f"{name}_rows_per_s_vs_cpu_gloo"] = round(gpu_rate / cpu, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--cpu-only", action="store_true", help="no CUDA: exercise every path on the CPU")
    parser.add_argument("--small", action="store_true", help="small shapes (a test on CPU)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: topn,ddp")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "environment": environment(),
        "mode": ("cpu-only" if args.cpu_only else "gpu") + (", small" if args.small else ""),
    }
    if not args.cpu_only and not torch.cuda.is_available():
        result["error"] = "torch sees no CUDA device (run with --cpu-only to exercise the paths on CPU)"
    t_all = time.perf_counter()

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - t_all, 1)
        out_path.write_text(json.dumps(result, indent=2) + "\n")

    save()
    if "topn" not in skip:
        t0 = time.perf_counter()
        try:
            result["topn"] = {**check_topn(args.small, args.cpu_only), "part_seconds": 0.0}
        except Exception as exc:  # keep what the other part measures
            result["topn"] = {"error": f"{type(exc).__name__}: {exc}"}
        result["topn"]["part_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"gpu_check topn: {json.dumps(result['topn'])[:600]}", flush=True)
        save()
    if "ddp" not in skip:
        t0 = time.perf_counter()
        work = Path(tempfile.mkdtemp(prefix="vidrec-gpu-check-"))
        try:
            result["ddp"] = check_ddp(args.small, args.cpu_only, work)
        except Exception as exc:
            result["ddp"] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result["ddp"]["part_seconds"] = round(time.perf_counter() - t0, 1)
        save()
    save()
    print(f"gpu_check: wrote {out_path} in {result['seconds']} s", flush=True)
    failed = [p for p in ("topn", "ddp") if "error" in result.get(p, {})]
    return 1 if failed or "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
