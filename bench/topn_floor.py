"""The fair floor of top-N for all users, and a check of ``vidrec.models.topn``'s output.

The floor is what plain torch needs for the same work on this machine, in the best of two set-ups:

- ``1x2``: one process, 2 intra-op threads (torch's own parallelism);
- ``2x1``: 2 processes of 1 thread, each on half the users, started together (vidrec's set-up: one
  single-thread Spark task per core); the set-up's time is the slower process's.

Each set-up first picks its best block size (of :data:`BLOCK_FLOATS`) per variant on a probe of
:data:`PROBE_USERS` users, then times three variants over every user at those blocks: ``gemm`` (the
product alone), ``gemm_topk`` (plus ``torch.topk``), and ``gemm_mask_topk`` (the seen items set to
``-inf`` before the top-k, as vidrec does). The floor of a variant is the faster set-up's.

    PYTHONPATH=src .venv/bin/python bench/topn_floor.py [--users 35000 --items 12000 --rank 64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import numpy as np

VARIANTS = ("gemm", "gemm_topk", "gemm_mask_topk")
#: Scores per block tried (rows = floats // items, at least 32).
BLOCK_FLOATS = (1_000_000, 3_000_000, 6_000_000, 16_000_000)
#: Seconds a half waits for the other at the start (and the parent for both) before failing.
BARRIER_TIMEOUT_S = 600
#: Users of the probe that picks the block size (per set-up and variant).
PROBE_USERS = 8_192


def seen_csr(
    users: np.ndarray, items: np.ndarray, n_users: int, item_pos: dict[int, int] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seen pairs as CSR over user rows: ``cols[indptr[u]:indptr[u+1]]`` are user ``u``'s item columns."""
    users = np.asarray(users, np.int64)
    cols = np.asarray(items, np.int64) if item_pos is None else np.asarray(item_pos)[items]
    order = np.argsort(users, kind="stable")
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, cols[order]


def time_variants(
    U: np.ndarray,
    V: np.ndarray,
    indptr: np.ndarray,
    cols: np.ndarray,
    n: int,
    blocks: dict[str, list[int]] | None = None,
) -> dict[str, dict[int, float]]:
    """Seconds of each variant over all rows of ``U``, per block rows tried (``blocks``: per variant;
    default every size of :data:`BLOCK_FLOATS`)."""
    import torch

    u, vt = torch.from_numpy(U), torch.from_numpy(V).T.contiguous()
    out: dict[str, dict[int, float]] = {v: {} for v in VARIANTS}
    every = sorted({max(32, f // len(V)) for f in BLOCK_FLOATS})
    for variant in VARIANTS:
        for block in (blocks or {}).get(variant, every):
            t0 = time.perf_counter()
            for s in range(0, len(u), block):
                e = min(s + block, len(u))
                scores = u[s:e] @ vt
                if variant == "gemm_mask_topk":
                    lengths = np.diff(indptr[s : e + 1])
                    rows = torch.from_numpy(np.repeat(np.arange(e - s), lengths))
                    scores[rows, torch.from_numpy(cols[indptr[s] : indptr[e]])] = float("-inf")
                if variant != "gemm":
                    torch.topk(scores, n, dim=1)
            out[variant][block] = time.perf_counter() - t0
    return out


def _half_worker(args: tuple[Any, ...]) -> dict[str, dict[int, float]]:
    U, V, indptr, cols, n, blocks, barrier = args
    import torch

    torch.set_num_threads(1)
    barrier.wait(timeout=BARRIER_TIMEOUT_S)  # both halves start together (fails loudly, never hangs)
    return time_variants(U, V, indptr, cols, n, blocks)


def _map2(pool: Any, tasks: list[tuple[Any, ...]]) -> list[dict[str, dict[int, float]]]:
    """Both halves on the pool's two workers, one task each; a hang fails instead of waiting forever."""
    return list(pool.map_async(_half_worker, tasks, chunksize=1).get(timeout=4 * BARRIER_TIMEOUT_S))


def _picked(times: dict[str, dict[int, float]]) -> dict[str, list[int]]:
    return {v: [min(t, key=t.__getitem__)] for v, t in times.items()}


def _best(times: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
    return {
        v: {"seconds": min(t.values()), "block_rows": min(t, key=t.__getitem__)} for v, t in times.items()
    }


def floor(
    U: np.ndarray, V: np.ndarray, indptr: np.ndarray, cols: np.ndarray, n: int, repeats: int
) -> dict[str, Any]:
    """Both set-ups, ``repeats`` times interleaved; medians (min, max) per variant at its best block."""
    import torch

    U = np.ascontiguousarray(U, np.float32)
    V = np.ascontiguousarray(V, np.float32)
    half = len(U) // 2
    halves = [
        (U[:half], indptr[: half + 1], cols),
        (U[half:], indptr[half:] - indptr[half], cols[indptr[half] :]),
    ]
    ctx = mp.get_context("spawn")
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"1x2": [], "2x1": []}
    threads = torch.get_num_threads()
    p = min(len(U) // 2, PROBE_USERS // 2)
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        # probes (also the warm-up): each set-up's best block per variant on PROBE_USERS users
        probe = _map2(pool, [(h[0][:p], V, h[1][: p + 1], h[2], n, None, barrier) for h in halves])
        blocks_2x1 = _picked({v: {b: max(q[v][b] for q in probe) for b in probe[0][v]} for v in VARIANTS})
        torch.set_num_threads(2)
        blocks_1x2 = _picked(time_variants(U[: 2 * p], V, indptr[: 2 * p + 1], cols, n))
        for _ in range(repeats):
            torch.set_num_threads(2)
            runs["1x2"].append(_best(time_variants(U, V, indptr, cols, n, blocks_1x2)))
            torch.set_num_threads(threads)
            parts = _map2(pool, [(h[0], V, h[1], h[2], n, blocks_2x1, barrier) for h in halves])
            slower = {v: {b: max(q[v][b] for q in parts) for b in parts[0][v]} for v in VARIANTS}
            runs["2x1"].append(_best(slower))
        torch.set_num_threads(threads)
    out: dict[str, Any] = {"repeats": repeats}
    for setup, rs in runs.items():
        out[setup] = {}
        for v in VARIANTS:
            xs = [r[v]["seconds"] for r in rs]
            out[setup][v] = {
                "seconds": round(statistics.median(xs), 3),
                "min": round(min(xs), 3),
                "max": round(max(xs), 3),
                "block_rows": rs[xs.index(min(xs))][v]["block_rows"],
            }
    for v in VARIANTS:
        best = min(runs, key=lambda s: out[s][v]["seconds"])
        out[f"floor_{v}"] = {**out[best][v], "setup": best}
    return out


def check_output(
    recs: Any,
    U: np.ndarray,
    V: np.ndarray,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    indptr: np.ndarray,
    cols: np.ndarray,
    n: int,
    total_rows: int,
    sample: np.ndarray,
) -> dict[str, Any]:
    """vidrec's lists (a pandas frame ``user_idx, item_idx, score, rank`` of the sampled users) against
    brute force: the row count, ranks 1..N per user, no seen item, and the same items where scores
    differ by more than float error."""
    want_rows = int(
        sum(min(n, len(V) - len(np.unique(cols[indptr[u] : indptr[u + 1]]))) for u in range(len(U)))
    )
    pos_of_item = {int(i): j for j, i in enumerate(item_ids)}
    bad_rank = seen_hits = wrong = 0
    worst = 0.0
    by_user = {int(k): g for k, g in recs.groupby("user_idx")}
    for row in sample:
        g = by_user.get(int(user_ids[row]))
        if g is None:
            bad_rank += 1
            continue
        g = g.sort_values("rank")
        if g["rank"].tolist() != list(range(1, min(n, len(V)) + 1)):
            bad_rank += 1
        got = np.array([pos_of_item[int(i)] for i in g["item_idx"]])
        seen = set(cols[indptr[row] : indptr[row + 1]].tolist())
        seen_hits += len(seen & set(got.tolist()))
        scores = U[row] @ V.T
        scores[list(seen)] = -np.inf
        best = np.sort(scores)[::-1][: len(got)]
        worst = max(worst, float(np.max(np.abs(best - g["score"].to_numpy()))))
        wrong += int(np.any(np.abs(scores[got] - g["score"].to_numpy()) > 1e-3))
    ok = total_rows == want_rows and bad_rank == 0 and seen_hits == 0 and wrong == 0 and worst < 1e-3
    return {
        "rows": int(total_rows),
        "rows_expected": want_rows,
        "sampled_users": len(sample),
        "users_with_bad_ranks": bad_rank,
        "seen_items_in_lists": seen_hits,
        "users_with_wrong_scores": wrong,
        "max_abs_score_diff_vs_brute_force": round(worst, 6),
        "passed": bool(ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=35_000)
    parser.add_argument("--items", type=int, default=12_000)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--seen", type=int, default=100, help="seen items per user")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    U = rng.standard_normal((args.users, args.rank), dtype=np.float32)
    V = rng.standard_normal((args.items, args.rank), dtype=np.float32)
    users = np.repeat(np.arange(args.users), args.seen)
    items = rng.integers(0, args.items, len(users))
    indptr, cols = seen_csr(users, items, args.users)
    result = {"load_average_before": list(os.getloadavg()), **floor(U, V, indptr, cols, 50, args.repeats)}
    result["load_average_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
