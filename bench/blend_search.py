"""The learned blend's search on the driver: one trial's metrics, vectorised against the pandas reference.

    .venv/bin/python bench/blend_search.py [--users 300,943,7000] [--items 4000] [--lists 10] \\
        [--repeats 5] [--carve FILE] [--out-json bench/blend_search.json]

:class:`vidrec.evaluation.search.LocalBlend` scores every blend the nightly's weight choice
(:func:`vidrec.evaluation.blend_weights.choose_weights`) and ``jobs/tune.py`` try. Two ways to score a
trial, on the same lists, interleaved, ``--repeats`` times each:

- ``pandas``: the blended pairs sorted in pandas, ranked, then
  :func:`vidrec.evaluation.metrics.ranking_metrics_local` (``LocalBlend.recs``; every trial until this
  change);
- ``vectorised``: ``LocalBlend.metrics`` (a partition per user in one dense array).

Both must give the same metrics (checked on every trial timed). Then one whole
:func:`vidrec.evaluation.search.blend_search` with the shipped grid (``hybrid.weight_grid``,
``rrf_k_grid``, ``tune_rounds``) is timed with the vectorised metrics, and its trials are counted.

The lists are generated: per user, ``--lists`` lists of 50 items drawn from a shared, popularity-skewed
taste (so the lists overlap as real generators' do), coarse scores, and 5 relevant items per user.
``--carve FILE`` reads real lists instead: a pickle of ``{"lists": {algorithm: DataFrame}, "relevant":
DataFrame}``, the two arguments ``choose_weights`` gives ``LocalBlend``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidrec import constants as C
from vidrec.config import load_config
from vidrec.evaluation.metrics import ranking_metrics_local
from vidrec.evaluation.search import LocalBlend, blend_search

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import machine_facts  # noqa: E402  (bench/run.py, a sibling script)

POOL = 50
K = 10


def generated(
    users: int, items: int, lists: int, seed: int = 0
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """``lists`` candidate lists of ``POOL`` items per user, overlapping, and 5 relevant items per user."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    pop /= pop.sum()
    taste = np.stack([rng.choice(items, 3 * POOL, replace=False, p=pop) for _ in range(users)])
    out = {}
    for g in range(lists):
        pick = np.argsort(rng.random((users, taste.shape[1])), axis=1)[:, :POOL]
        chosen = np.take_along_axis(taste, pick, axis=1)
        out[f"list{g}"] = pd.DataFrame(
            {
                C.COL_USER_IDX: np.repeat(np.arange(users), POOL),
                C.COL_ITEM_IDX: chosen.ravel(),
                C.COL_SCORE: np.tile(np.linspace(1.0, 0.0, POOL).round(1), users),
                C.COL_RANK: np.tile(np.arange(1, POOL + 1), users),
            }
        )
    relevant = pd.DataFrame(
        {C.COL_USER_IDX: np.repeat(np.arange(users), 5), C.COL_ITEM_IDX: taste[:, :5].ravel()}
    )
    return out, relevant


def summary(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def compare(lists: Mapping[str, pd.DataFrame], relevant: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """Per-trial seconds of both ways (interleaved, both norms), and one whole search's."""
    hc = load_config().hybrid
    t = time.perf_counter()
    blend = LocalBlend(lists, relevant, K)
    init_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    grid = [float(v) for v in hc.weight_grid]
    times: dict[str, list[float]] = {"pandas": [], "vectorised": []}
    for r in range(repeats):
        weights = {name: float(rng.choice(grid[1:])) for name in blend.names}
        method = ("rrf", "minmax")[r % 2]
        blend.matrix(method, int(hc.rrf_k))  # normalised once per search, as the search does
        t = time.perf_counter()
        expected = ranking_metrics_local(blend.recs(weights, method, int(hc.rrf_k)), relevant, K)
        times["pandas"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got = blend.metrics(weights, method, int(hc.rrf_k))
        times["vectorised"].append(time.perf_counter() - t)
        for key, value in expected.items():
            if abs(value - got[key]) > 1e-9:
                raise AssertionError(f"vectorised {key} {got[key]} != pandas {value} on {weights}, {method}")
    trials = [0]

    def count(params: dict[str, Any], values: dict[str, float]) -> None:
        trials[0] += 1

    t = time.perf_counter()
    _, ndcg = blend_search(
        blend,
        hc.weights,
        hc.score_norm,
        int(hc.rrf_k),
        ["rrf", "minmax"],
        [int(v) for v in hc.rrf_k_grid],
        grid,
        int(hc.tune_rounds),
        on_trial=count,
    )
    search_s = time.perf_counter() - t
    med = {side: statistics.median(v) for side, v in times.items()}
    return {
        "users": int(relevant[C.COL_USER_IDX].nunique()),
        "pairs": len(blend.pairs),
        "lists": len(blend.names),
        "init_s": round(init_s, 3),
        "trial_s": {side: {k: round(v, 4) for k, v in summary(ts).items()} for side, ts in times.items()},
        "trial_speedup": round(med["pandas"] / med["vectorised"], 1),
        "search_s": round(search_s, 2),
        "search_trials": trials[0],
        "search_ndcg": round(ndcg, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", default="300,943,7000")
    ap.add_argument("--items", type=int, default=4000)
    ap.add_argument("--lists", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--carve", action="append", default=[], help="a pickled carve (repeatable)")
    ap.add_argument("--out-json", default="bench/blend_search.json")
    args = ap.parse_args()
    rows = []
    for path in args.carve:
        with open(path, "rb") as f:
            carve = pickle.load(f)
        row = {"case": f"carve {path}", **compare(carve["lists"], carve["relevant"], args.repeats)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    for users in (int(u) for u in args.users.split(",") if u):
        lists, relevant = generated(users, args.items, args.lists)
        case = f"generated {users} users x {args.lists} lists"
        row = {"case": case, **compare(lists, relevant, args.repeats)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(args.out_json).write_text(json.dumps({"machine": machine_facts(), "rows": rows}, indent=1) + "\n")
    print(f"written {args.out_json}")


if __name__ == "__main__":
    main()
