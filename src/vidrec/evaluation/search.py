"""Searching parameters on a validation split: coordinate ascent, and the one blend-weight search.

:func:`coordinate_search` tunes any parameters against an objective. :class:`LocalBlend` holds the
validation lists of several algorithms on the driver and scores weighted blends of them in
milliseconds (normalised as :func:`vidrec.serving.hybrid.normalise_scores` does); :func:`blend_search`
chooses the hybrid's normalisation, ``rrf_k`` and warm weights with it. Tuning (``jobs/tune.py``) and
the hybrid's nightly weight choice (:mod:`vidrec.evaluation.blend_weights`) both use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vidrec import constants as C
from vidrec.evaluation.metrics import RANKING_METRICS, metrics_from_hits


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical text of ``params`` (sorted JSON): equal parameters, equal key."""
    return json.dumps(params, sort_keys=True, default=str)


def coordinate_search(
    space: Mapping[str, Sequence[Any]],
    start: Mapping[str, Any],
    objective: Callable[[dict[str, Any]], float],
    rounds: int = 2,
    canonicalise: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    cache: dict[str, float] | None = None,
) -> tuple[dict[str, Any], float]:
    """Coordinate ascent: the best parameters found and their objective (higher is better).

    From ``start``, for each parameter in turn, every value of its list with the others fixed; the
    best so far is kept (ties keep the earlier). Stops after ``rounds`` rounds or a round without
    improvement. ``objective`` is called once per distinct configuration (after ``canonicalise``);
    pass ``cache`` to share those values between searches of the same objective.
    """
    cache = {} if cache is None else cache

    def score(params: dict[str, Any]) -> float:
        key = params_key(canonicalise(params) if canonicalise else params)
        if key not in cache:
            cache[key] = float(objective(dict(params)))
        return cache[key]

    best = dict(start)
    best_value = score(best)
    for _ in range(int(rounds)):
        improved = False
        for name, values in space.items():
            for value in values:
                trial = {**best, name: value}
                if trial == best:
                    continue
                value_ = score(trial)
                if value_ > best_value + 1e-12:
                    best, best_value, improved = trial, value_, True
        if not improved:
            break
    return best, best_value


def normalise_local(recs: pd.DataFrame, method: str, rrf_k: int) -> np.ndarray:
    """:func:`vidrec.serving.hybrid.normalise_scores` on a collected list: one value per row of ``recs``."""
    if method == "rrf":
        return (rrf_k + 1.0) / (rrf_k + recs[C.COL_RANK].to_numpy(np.float64))
    if method == "minmax":
        by_user = recs.groupby(C.COL_USER_IDX)[C.COL_SCORE]
        lo, hi = by_user.transform("min").to_numpy(), by_user.transform("max").to_numpy()
        s = recs[C.COL_SCORE].to_numpy(np.float64)
        span = hi - lo
        return np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    raise ValueError(f"score normalisation must be 'rrf' or 'minmax', got {method!r}")


class LocalBlend:
    """Weighted blends of collected candidate lists, ranked and scored on the driver.

    The lists are laid out once as one row per distinct ``(user, item)`` pair (sorted by user, then
    item) with each algorithm's normalised value; a blend is one matrix-vector product. Its metrics
    (:meth:`metrics`) rank every user's pairs at once in a dense ``(users, pairs of a user)`` array:
    the ``k`` best by a partition, ties broken by the lower item as :meth:`recs` does, so a trial
    costs milliseconds where sorting the blended pairs in pandas took about a second at 7,000 users
    (``make bench``'s 1M events). :meth:`recs` is that pandas reference, kept for inspection and as
    the test oracle of :meth:`metrics`.

    Parameters
    ----------
    lists : mapping
        Algorithm -> its validation lists ``(user_idx, item_idx, score, rank)``.
    relevant : pandas.DataFrame
        ``(user_idx, item_idx)`` relevant validation pairs.
    k : int
    """

    def __init__(self, lists: Mapping[str, pd.DataFrame], relevant: pd.DataFrame, k: int) -> None:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.names = sorted(lists)
        self.k = int(k)
        self.relevant = relevant
        self._lists = lists
        rel = relevant[[C.COL_USER_IDX, C.COL_ITEM_IDX]].drop_duplicates()
        rel_u = rel[C.COL_USER_IDX].to_numpy(np.int64)
        rel_i = rel[C.COL_ITEM_IDX].to_numpy(np.int64)
        cols = {
            name: (
                lists[name][C.COL_USER_IDX].to_numpy(np.int64),
                lists[name][C.COL_ITEM_IDX].to_numpy(np.int64),
            )
            for name in self.names
        }
        width = 1 + max([0, *(int(i.max()) for _, i in cols.values() if len(i)), int(rel_i.max(initial=0))])
        codes = np.unique(np.concatenate([np.zeros(0, np.int64), *(u * width + i for u, i in cols.values())]))
        pair_u, pair_i = codes // width, codes % width
        self.pairs = pd.DataFrame({C.COL_USER_IDX: pair_u, C.COL_ITEM_IDX: pair_i})
        # each list's rows -> their pair row (pairs are unique codes, sorted: user, then item)
        self._row = {name: np.searchsorted(codes, u * width + i) for name, (u, i) in cols.items()}
        self._present = np.zeros((len(codes), len(self.names)), dtype=bool)
        for g, name in enumerate(self.names):
            self._present[self._row[name], g] = True
        self._norm_cache: dict[tuple[str, int], np.ndarray] = {}
        # the dense layout of the evaluated users: one row per relevant user holding candidates, one
        # column per candidate of that user (in item order)
        self._eval_users, self._n_rel = np.unique(rel_u, return_counts=True)
        on_eval = np.isin(pair_u, self._eval_users)
        self._dense_rows = np.flatnonzero(on_eval)
        users_with, starts, counts = np.unique(pair_u[on_eval], return_index=True, return_counts=True)
        self._n_rel_dense = self._n_rel[np.searchsorted(self._eval_users, users_with)]
        self._dense_u = np.repeat(np.arange(len(users_with)), counts)
        self._dense_p = np.arange(len(self._dense_rows)) - np.repeat(starts, counts)
        self._shape = (len(users_with), int(counts.max()) if len(counts) else 0)
        hit = np.zeros(self._shape, dtype=bool)
        hit[self._dense_u, self._dense_p] = np.isin(codes[self._dense_rows], rel_u * width + rel_i)
        self._hit = hit

    def matrix(self, method: str, rrf_k: int) -> np.ndarray:
        """``(pairs, algorithms)``: each algorithm's normalised value of each pair (0 when absent)."""
        key = (method, int(rrf_k))
        if key not in self._norm_cache:
            m = np.zeros((len(self.pairs), len(self.names)))
            for g, name in enumerate(self.names):
                m[self._row[name], g] = normalise_local(self._lists[name], method, int(rrf_k))
            self._norm_cache[key] = m
        return self._norm_cache[key]

    def _scores(self, weights: Mapping[str, float], method: str, rrf_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every pair's blended score, and which pairs some positively weighted list holds."""
        w = np.array([float(weights.get(name, 0.0)) for name in self.names])
        score = self.matrix(method, rrf_k) @ w
        keep = self._present[:, w > 0].any(axis=1)  # as the Spark blend: pairs some weighted list holds
        return score, keep

    def recs(self, weights: Mapping[str, float], method: str, rrf_k: int) -> pd.DataFrame:
        """The blended top-k ``(user_idx, item_idx, score, rank)``; ties by lower item first."""
        score, keep = self._scores(weights, method, rrf_k)
        out = self.pairs[keep].assign(**{C.COL_SCORE: score[keep]})
        out = out.sort_values(
            [C.COL_USER_IDX, C.COL_SCORE, C.COL_ITEM_IDX], ascending=[True, False, True], kind="stable"
        )
        out[C.COL_RANK] = out.groupby(C.COL_USER_IDX).cumcount() + 1
        return out[out[C.COL_RANK] <= self.k]

    def top_hits(self, weights: Mapping[str, float], method: str, rrf_k: int) -> np.ndarray:
        """``(users with candidates, k)`` bool: whether each rank of each evaluated user's top k is relevant.

        The same top k as :meth:`recs` (score descending, the lower item first on a tie); ranks
        past the end of a user's list are ``False``.
        """
        score, keep = self._scores(weights, method, rrf_k)
        n_users, width = self._shape
        k = min(self.k, width)
        dense = np.full(self._shape, -np.inf)
        rows = self._dense_rows
        dense[self._dense_u, self._dense_p] = np.where(keep[rows], score[rows], -np.inf)
        out = np.zeros((n_users, self.k), dtype=bool)
        if k == 0:
            return out
        # the k-th largest score of each row; everything above it is in, ties at it by item order
        kth = -np.partition(-dense, k - 1, axis=1)[:, k - 1 : k]
        above = dense > kth
        tied = (dense == kth) & (dense > -np.inf)
        room = k - above.sum(axis=1, keepdims=True)
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
        # the chosen columns in item order, then ranked by score (stable: the lower item first)
        cols = np.argsort(~chosen, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(dense, cols, axis=1)
        top[~np.take_along_axis(chosen, cols, axis=1)] = -np.inf
        order = np.argsort(-top, axis=1, kind="stable")
        cols = np.take_along_axis(cols, order, axis=1)
        valid = np.take_along_axis(top, order, axis=1) > -np.inf
        out[:, :k] = np.take_along_axis(self._hit, cols, axis=1) & valid
        return out

    def metrics(self, weights: Mapping[str, float], method: str, rrf_k: int) -> dict[str, float]:
        """Validation ranking metrics of a blend: ``ranking_metrics_local`` of :meth:`recs`, vectorised."""
        n_users = len(self._eval_users)
        if n_users == 0:
            return {**{m: 0.0 for m in RANKING_METRICS}, "users": 0.0}
        return metrics_from_hits(self.top_hits(weights, method, rrf_k), self._n_rel_dense, n_users)


def blend_search(
    blend: LocalBlend,
    start_weights: Mapping[str, float],
    start_norm: str,
    start_rrf_k: int,
    norms: Sequence[str],
    rrf_ks: Sequence[int],
    grid: Sequence[float],
    rounds: int,
    on_trial: Callable[[dict[str, Any], dict[str, float]], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """Choose the hybrid's ``score_norm``, ``rrf_k`` and warm weights by coordinate ascent on NDCG@k.

    Each normalisation (and ``rrf_k`` for ``rrf``) gets its own weight search, from ``start_weights``
    and again from equal weights (coordinate ascent stops at the first local optimum it meets, and
    which one depends on where it starts); the best of them all wins, the first on a tie. Then every
    list whose weight changes nothing on the validation split is set to 0 (:func:`_pruned`).
    ``on_trial(params, metrics)`` is called once for each distinct blend scored.

    Returns
    -------
    params : dict
        ``score_norm``, ``rrf_k``, ``weights`` (every algorithm of the blend).
    ndcg : float
    """
    names = blend.names
    reported: set[str] = set()

    def report(params: dict[str, Any], values: dict[str, float]) -> None:
        """``on_trial``, once per distinct blend (the pruning's probes may repeat the search's)."""
        key = repr((params["score_norm"], params["rrf_k"], sorted(params["weights"].items())))
        if on_trial is not None and key not in reported:
            reported.add(key)
            on_trial(params, values)

    equal = dict.fromkeys(names, 1.0)
    start = {a: float(start_weights.get(a, 0.0)) for a in names}
    starts = [start, equal] if any(v > 0 for v in start.values()) and start != equal else [equal]
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    settings = [(m, int(r)) for m in norms for r in (rrf_ks if m == "rrf" else [start_rrf_k])]
    for method, rrf_k in settings:

        def objective(w: dict[str, Any], method: str = method, rrf_k: int = rrf_k) -> float:
            if not any(v > 0 for v in w.values()):
                return -1.0
            values = blend.metrics(w, method, rrf_k)
            report({"score_norm": method, "rrf_k": rrf_k, "weights": dict(w)}, values)
            return values["ndcg"]

        space = {a: [float(v) for v in grid] for a in names}
        scored: dict[str, float] = {}  # each blend once, whichever start reaches it
        for origin in starts:
            weights, value = coordinate_search(space, origin, objective, rounds, cache=scored)
            if value > best[0] + 1e-12:
                best = (value, {"score_norm": method, "rrf_k": rrf_k, "weights": weights})
    del start_norm
    if best[1]:
        weights, value = _pruned(blend, best[1], best[0], report)
        best = (value, {**best[1], "weights": weights})
    return best[1], best[0]


def _pruned(
    blend: LocalBlend,
    params: Mapping[str, Any],
    value: float,
    on_trial: Callable[[dict[str, Any], dict[str, float]], None],
) -> tuple[dict[str, float], float]:
    """``params["weights"]`` without the lists that change nothing on the validation split.

    Each weighted list in turn, smallest weight first, is set to 0 when the blend's NDCG stays the
    same without it: a weight that the search kept only because every value tied (the coordinate
    ascent keeps its start on a tie) is a list served on no evidence, read and joined for nothing.
    Each blend scored here is reported to ``on_trial`` as the search's are.
    """
    weights = {a: float(w) for a, w in params["weights"].items()}
    for name in sorted((a for a, w in weights.items() if w > 0), key=lambda a: (weights[a], a)):
        trial = {**weights, name: 0.0}
        if not any(w > 0 for w in trial.values()):
            continue  # the last weighted list stays
        metrics = blend.metrics(trial, str(params["score_norm"]), int(params["rrf_k"]))
        on_trial({**params, "weights": dict(trial)}, metrics)
        found = metrics["ndcg"]
        if found >= value - 1e-12:
            weights, value = trial, max(value, found)
    return weights, value
