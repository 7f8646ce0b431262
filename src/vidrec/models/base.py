"""What every candidate generator shares: its input (:class:`FitContext`), its output (:class:`Candidates`).

A generator is a function ``FitContext -> Candidates``: it fits its model on the context's training
data and returns a DataFrame ``(user_idx int, item_idx int, score double, rank int)`` with ranks
1..n per target user, no seen item, scores non-increasing with rank. Evaluation, tuning and the
nightly gold writer treat every generator the same way through this one interface;
:mod:`vidrec.models.registry` is the one place that lists them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from vidrec.config import Config
from vidrec.config.sections import to_mapping
from vidrec.data.frames import holds_blocks, release


@dataclass
class FitContext:
    """Everything a generator may use for one fit-and-recommend.

    Attributes
    ----------
    spark : SparkSession
    conf : Config
        The whole typed configuration; each generator reads its own section (``conf.als``...).
    interactions : DataFrame
        ``silver/interactions`` rows of the training data (``user_idx``, ``item_idx``, counts,
        ``watch_ratio``, ``rating``, ``first_ts``, ``last_ts``, ``confidence``...).
    events : DataFrame
        Training events with ``user_idx`` and ``item_idx`` added (bronze columns otherwise).
    items : DataFrame
        The catalog (``silver/items`` columns) with ``item_idx``; may hold items with no events.
    users : DataFrame
        Profiles (``silver/users`` columns) with ``user_idx`` where known.
    target_users : DataFrame
        ``user_idx`` of the users to produce lists for.
    seen : DataFrame
        ``(user_idx, item_idx)`` pairs that must not be recommended.
    n : int
        List length.
    work_dir : str
        A folder (under the warehouse) for model artifacts of this fit.
    run_date : str
        ISO run date, for model versions.
    use_gpu : bool
        Score (and train deep models) on the GPU.
    save_model : bool
        Keep the fitted model under ``work_dir`` (the nightly, tuning trials); evaluation fits do not.
    explain : bool
        Give the hybrid's rows a reason (served lists); metrics need none.
    warm_start : bool
        Models that can start from the previous night's fit do (the deep models fine-tune it, see
        ``deep.train.warm_start``); off for evaluation, tuning and a full retrain.
    warm_root : str, optional
        With ``warm_start``: the folder of ``<model>/model.pt`` fits to start from (the offline
        evaluation's of the same night, ``deep.train.warm_from_evaluation``); ``None``: the latest
        earlier night's fits.
    """

    spark: SparkSession
    conf: Config
    interactions: DataFrame
    events: DataFrame
    items: DataFrame
    users: DataFrame
    target_users: DataFrame
    seen: DataFrame
    n: int
    work_dir: str
    run_date: str
    use_gpu: bool = False
    save_model: bool = False
    explain: bool = True
    warm_start: bool = False
    warm_root: str | None = None

    def replace(self, **changes: Any) -> FitContext:
        """A copy with ``changes`` (``ctx.replace(n=50)``)."""
        return dataclasses.replace(self, **changes)


@dataclass
class Candidates:
    """A generator's output: ranked lists and the model version that made them."""

    recs: DataFrame
    model_version: str
    #: Optional extra outputs (factors, embeddings) for the gold writer; name -> DataFrame.
    artifacts: dict[str, DataFrame] = field(default_factory=dict)

    def release_artifacts(self) -> None:
        """Free every cached or checkpointed artifact (a no-op for the others), once nothing reads
        them again."""
        for frame in self.artifacts.values():
            if isinstance(frame, DataFrame) and holds_blocks(frame):
                release(frame)


Generator = Callable[[FitContext], Candidates]


def model_version(algorithm: str, run_date: str, params: Mapping[str, Any] | Any) -> str:
    """``<algorithm>-<run_date>-<8 hex of the parameters>``: equal parameters, equal version.

    ``params`` is a mapping or a typed configuration section (hashed as its YAML mapping).
    """
    data = dict(params) if isinstance(params, Mapping) else to_mapping(params)
    digest = hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{algorithm}-{run_date}-{digest}"
