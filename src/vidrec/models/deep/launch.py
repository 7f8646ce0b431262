"""Fit a deep model: Spark builds the features and writes the shards, TorchDistributor runs DDP training.

:func:`fit` is the only place Spark meets PyTorch training: it computes the data sizes, builds the
model's training frames (:mod:`vidrec.models.deep.features`), writes them as Parquet shards
(:mod:`vidrec.models.deep.shards`), writes ``spec.json`` (everything
:func:`vidrec.models.deep.train.train_worker` needs, so ``torchrun`` can rerun the same training on
a box without Spark) and runs ``TorchDistributor(num_processes, local_mode, use_gpu).run(train_worker,
spec)``. There is no
single-process shortcut: one process is a DDP job of world size 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config.scheduling import local_task_slots
from vidrec.config.sections import LaunchConf
from vidrec.models.base import FitContext
from vidrec.models.deep import features, shards
from vidrec.models.deep import schema as S
from vidrec.models.deep.networks import MODEL_CLASSES, model_config
from vidrec.models.deep.params import model_params
from vidrec.models.deep.train import (
    SCORING_ONLY,
    SPEC_FILE,
    cleanup_checkpoint_nights,
    train_many,
    train_worker,
)

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` trained and where it put it.

    Attributes
    ----------
    model_name : str
    params : dict
        The model's resolved parameters.
    sizes : dict
        ``n_users``, ``n_items``, ``visual_dim``, ``audio_dim``.
    spec : dict
        The spec the training processes ran.
    metrics : dict
        What rank 0 of ``train_worker`` returned.
    artifact_dir, model_path : str
    shards : dict
        Split name -> :class:`~vidrec.models.deep.shards.ShardInfo`.
    """

    model_name: str
    params: dict[str, Any]
    sizes: dict[str, int]
    spec: dict[str, Any]
    metrics: dict[str, Any]
    artifact_dir: str
    model_path: str
    shards: dict[str, shards.ShardInfo] = field(default_factory=dict)


def data_sizes(interactions: DataFrame, items: DataFrame) -> dict[str, int]:
    """``n_users``, ``n_items`` (max index + 1 over interactions and catalog) and media embedding sizes.

    ``visual_dim`` / ``audio_dim`` are the most common length of the catalog's
    ``visual_embedding`` / ``audio_embedding`` (0 when the column is absent or always null).
    One Spark job.
    """
    media = [
        (key, col)
        for key, col in (("visual_dim", S.COL_VISUAL), ("audio_dim", S.COL_AUDIO))
        if col in items.columns
    ]
    stats = interactions.agg(F.max(C.COL_USER_IDX).alias("_u"), F.max(C.COL_ITEM_IDX).alias("_i")).crossJoin(
        items.agg(
            F.max(C.COL_ITEM_IDX).alias("_c"),
            *[F.mode(F.when(F.col(col).isNotNull(), F.size(col))).alias(key) for key, col in media],
        )
    )
    row = stats.first()
    values = row.asDict() if row else {}
    max_item = max(v for v in (values.get("_i"), values.get("_c"), -1) if v is not None)
    sizes = {
        "n_users": int(cast(int, values.get("_u") if values.get("_u") is not None else -1)) + 1,
        "n_items": int(max_item) + 1,
    }
    for key in ("visual_dim", "audio_dim"):
        dim = values.get(key)
        sizes[key] = int(dim) if dim is not None and dim > 0 else 0
    return sizes


def _absolute(path: str) -> str:
    parsed = urlparse(str(path))
    if parsed.scheme and len(parsed.scheme) > 1:
        return str(path)
    return str(Path(path).resolve())


def build_spec(
    model_name: str,
    params: Mapping[str, Any],
    config: Mapping[str, Any],
    paths: Mapping[str, str | None],
    launch: LaunchConf,
    use_gpu: bool,
    expected_rows: Mapping[str, int | None] | None = None,
    diagnostics: bool = False,
    data_digest: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON-able spec of :func:`vidrec.models.deep.train.train_worker`.

    Parameters
    ----------
    model_name : str
    params : mapping
        Resolved model parameters (:func:`vidrec.models.deep.params.model_params`).
    config : mapping
        Model constructor arguments (:func:`vidrec.models.deep.networks.model_config`).
    paths : mapping
        ``train``, ``val`` (or None), ``items`` (or None), ``artifact_dir``.
    launch : mapping
        Launch settings (``num_threads``, ``loader``).
    use_gpu : bool
    expected_rows : mapping, optional
        ``train`` and ``val`` row counts the shard writer wrote.
    diagnostics : bool
        Ask every rank to write the rows it saw and a parameter checksum.
    data_digest : mapping, optional
        Split name -> content checksum of the shards; a checkpoint is resumed only on equal data.
    """
    expected = dict(expected_rows or {})
    artifact_dir = paths["artifact_dir"]
    digest_text = json.dumps(data_digest or {}, sort_keys=True)
    return {
        "model": model_name,
        "model_config": dict(config),
        "train_path": paths[S.TRAIN],
        "val_path": paths.get(S.VAL),
        "items_path": paths.get(S.ITEMS),
        "artifact_dir": artifact_dir,
        "checkpoint_dir": f"{artifact_dir}/checkpoints",
        "batch_size": int(params["batch_size"]),
        "max_epochs": int(params["max_epochs"]),
        "lr": float(params["lr"]),
        "weight_decay": float(params["weight_decay"]),
        "grad_clip": float(params["grad_clip"]),
        "patience": int(params["patience"]),
        "min_delta": float(params["min_delta"]),
        "seed": int(params["seed"]),
        "amp": bool(params["amp"]),
        "shuffle_buffer": int(params["shuffle_buffer"]),
        "keep_checkpoints": 1,  # a resume reads the newest only (deep.keep_checkpoints counts nights)
        "use_gpu": bool(use_gpu),
        "num_threads": int(launch.num_threads),
        "loader": str(launch.loader),
        "expected_train_rows": expected.get(S.TRAIN),
        "expected_val_rows": expected.get(S.VAL),
        "diagnostics": bool(diagnostics),
        "data_digest": hashlib.sha1(digest_text.encode()).hexdigest()[:16] if data_digest else None,
    }


def run_locally(master: str | None, local_mode: bool) -> bool:
    """TorchDistributor's ``local_mode`` for ``deep.launch.local_mode`` on ``master``.

    A local master's only executor is the driver, so its processes run there (local mode) whatever
    the setting: as barrier tasks they would need as many task slots as processes (or wait for them),
    and under ``spark-submit`` only the driver sees the wheel on its ``PYTHONPATH``.
    """
    if not local_mode and local_task_slots(master) is not None:
        log.info("deep: master %s runs the training processes on the driver (local mode)", master)
        return True
    return local_mode


def artifact_dir_for(ctx: FitContext, model_name: str, launch: LaunchConf) -> str:
    """``<artifact_root or ctx.work_dir>/<model_name>``, absolute when local."""
    root = launch.artifact_root or ctx.work_dir
    return _absolute(f"{str(root).rstrip('/')}/{model_name}")


def write_model_shards(
    frames: Mapping[str, DataFrame], base: str, num_processes: int, launch: LaunchConf
) -> dict[str, shards.ShardInfo]:
    """Write each frame of :func:`vidrec.models.deep.features.training_frames` under ``base/<split>``.

    ``items`` (a side table every rank reads whole) is written for one reader. A validation set too
    small for ``num_processes`` readers is skipped (early stopping then follows the training loss).
    """
    out: dict[str, shards.ShardInfo] = {}
    for split, frame in frames.items():
        procs = 1 if split == S.ITEMS else num_processes
        try:
            out[split] = shards.write_shards(
                frame,
                f"{base}/{split}",
                procs,
                int(launch.rows_per_row_group),
                int(launch.min_row_groups_per_process) if split != S.ITEMS else 1,
            )
        except ValueError:
            if split != S.VAL:
                raise
            log.warning(
                "deep: validation set too small for %d processes: early stopping on training loss", procs
            )
    return out


def warm_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` for a fine-tune from last night's model: at most ``warm_epochs`` epochs, at
    ``warm_lr_scale`` of the learning rate (a step from a trained model, not a new descent)."""
    out = dict(params)
    out["max_epochs"] = min(int(out["max_epochs"]), int(out["warm_epochs"]))
    out["lr"] = float(out["lr"]) * float(out["warm_lr_scale"])
    return out


def previous_model(ctx: FitContext, model_name: str, params: Mapping[str, Any]) -> str | None:
    """The saved ``model_name`` to warm-start from, if one fits.

    With ``ctx.warm_root`` (the offline evaluation's fits of the same night) it is
    ``<warm_root>/<model>/model.pt`` and nothing else: that night is a full retrain, so an earlier
    night's fit must not be continued. Otherwise the latest earlier night's
    ``<models root>/<run date>/<model>/model.pt`` with a run date before ``ctx.run_date`` (the
    nightly's layout: ``ctx.work_dir`` is ``<models root>/<run date>``). Either must have been trained
    with the same architecture (every hyper-parameter of its configuration but the sizes, which grow
    with new ids, and the scoring-only ``readout``). ``None`` when there is none, or when
    ``deep.launch.artifact_root`` moves models elsewhere.
    """
    if ctx.conf.deep.launch.artifact_root or urlparse(ctx.work_dir).scheme not in ("", "file"):
        return None
    if ctx.warm_root is not None:
        candidates = [Path(ctx.warm_root) / model_name / "model.pt"]
    else:
        root = Path(ctx.work_dir).parent
        if not root.is_dir():
            return None
        dates = sorted((d.name for d in root.iterdir() if d.is_dir() and d.name < ctx.run_date), reverse=True)
        candidates = [root / day / model_name / "model.pt" for day in dates]
    # the architecture, not how it scores: a readout change still warm-starts (as it resumes a checkpoint)
    hparams = [k for k in MODEL_CLASSES[model_name].HPARAMS if k not in SCORING_ONLY]
    want = {k: params[k] for k in hparams}
    for path in candidates:
        if not path.is_file():
            continue
        import torch  # the driver imports torch only when it warm-starts

        saved = torch.load(path, map_location="cpu", weights_only=False).get("config") or {}
        have = {k: saved.get(k) for k in hparams}
        if have != want:
            log.info("deep %s: %s was trained with another configuration: no warm start", model_name, path)
            return None
        return str(path)
    return None


@dataclass
class Prepared:
    """A model ready to train: its parameters, data sizes, shards and spec (see :func:`prepare`)."""

    model_name: str
    params: dict[str, Any]
    sizes: dict[str, int]
    spec: dict[str, Any]
    artifact_dir: str
    shards: dict[str, shards.ShardInfo]
    features_seconds: float


def prepare(
    spark: SparkSession,
    model_name: str,
    ctx: FitContext,
    num_processes: int,
    use_gpu: bool,
    params: Mapping[str, Any] | None = None,
    diagnostics: bool = False,
    sizes: Mapping[str, int] | None = None,
) -> Prepared:
    """Resolve ``model_name``'s parameters, build its training frames, write the shards and the spec.

    ``sizes`` is :func:`data_sizes` of ``ctx`` when the caller has it (one Spark job saved per model).

    Raises
    ------
    ValueError
        On an unknown model, too little data, or an invalid parameter.
    """
    if model_name not in MODEL_CLASSES:
        raise ValueError(f"unknown deep model '{model_name}' (known: {', '.join(MODEL_CLASSES)})")
    start = time.perf_counter()
    mp = model_params(ctx.conf.deep, model_name, ctx.conf.evaluation.protocol)
    for key, value in (params or {}).items():
        if key not in mp:
            raise ValueError(f"unknown parameter '{key}' for deep model '{model_name}'")
        mp[key] = value
    lp = ctx.conf.deep.launch
    sizes = dict(sizes) if sizes is not None else data_sizes(ctx.interactions, ctx.items)
    if sizes["n_users"] == 0 or sizes["n_items"] == 0:
        raise ValueError(f"deep {model_name}: no interactions or no catalog items to train on")
    warm_from = previous_model(ctx, model_name, mp) if ctx.warm_start and mp["warm_start"] else None
    if warm_from is not None:
        mp = warm_params(mp)
    config = model_config(model_name, mp, sizes)
    frames = features.training_frames(
        model_name, ctx.interactions, ctx.items, mp, sizes["visual_dim"], sizes["audio_dim"]
    )
    root = shards.features_root(_absolute(ctx.conf.warehouse), lp.shard_root)
    base = shards.shard_dir(root, model_name, ctx.run_date)
    written = write_model_shards(frames, base, num_processes, lp)
    try:
        shards.cleanup_shards(ctx.conf.warehouse, int(lp.keep_shards), lp.shard_root)
    except NotImplementedError as exc:
        log.info("deep: %s", exc)
    artifact_dir = artifact_dir_for(ctx, model_name, lp)
    paths = {split: info.path for split, info in written.items()}
    paths["artifact_dir"] = artifact_dir
    spec = build_spec(
        model_name,
        mp,
        config,
        paths,
        lp,
        use_gpu,
        {split: info.rows for split, info in written.items()},
        diagnostics,
        {split: f"{info.rows}:{info.checksum}" for split, info in written.items()},
    )
    spec["warm_from"] = warm_from
    if urlparse(artifact_dir).scheme in ("", "file"):
        Path(artifact_dir).mkdir(parents=True, exist_ok=True)
        (Path(artifact_dir) / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    seconds = time.perf_counter() - start
    log.info(
        "deep %s: features and shards in %.1f s (%s)",
        model_name,
        seconds,
        ", ".join(f"{k} {v.rows} rows / {v.row_groups} groups" for k, v in written.items()),
    )
    return Prepared(model_name, mp, sizes, spec, artifact_dir, written, seconds)


def train_prepared(
    prepared: list[Prepared], num_processes: int, local_mode: bool, use_gpu: bool
) -> dict[str, FitResult]:
    """Train every model of ``prepared`` in one TorchDistributor launch (one process group, the models
    one after the other: the processes start, import torch and join the group once)."""
    from pyspark.ml.torch.distributor import TorchDistributor

    names = [p.model_name for p in prepared]
    log.info(
        "deep: training %s with %d process(es), local_mode=%s, use_gpu=%s",
        ", ".join(names),
        num_processes,
        local_mode,
        use_gpu,
    )
    t0 = time.perf_counter()
    distributor = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)
    results: Any
    if len(prepared) == 1:
        results = [distributor.run(train_worker, prepared[0].spec)]
    else:
        results = distributor.run(train_many, [p.spec for p in prepared])
    wall = time.perf_counter() - t0
    if not isinstance(results, list) or len(results) != len(prepared):
        raise RuntimeError(
            f"deep: training returned {type(results).__name__}, expected one metrics dict a model"
        )
    out: dict[str, FitResult] = {}
    for prep, metrics in zip(prepared, results, strict=True):
        if not isinstance(metrics, dict):
            got = type(metrics).__name__
            raise RuntimeError(f"deep {prep.model_name}: training returned {got}, expected the metrics dict")
        metrics = {
            **metrics,
            "features_seconds": prep.features_seconds,
            "distributor_seconds": wall if len(prepared) == 1 else float(metrics.get("seconds", 0.0)),
        }
        log.info(
            "deep %s: %d epoch(s) (best %d, val loss %.5f), %.0f rows/s per process, %.1f s training",
            prep.model_name,
            metrics["epochs_done"],
            metrics["best_epoch"],
            metrics["best_val_loss"],
            metrics["rows_per_s_per_process"],
            float(metrics.get("seconds", 0.0)),
        )
        out[prep.model_name] = FitResult(
            model_name=prep.model_name,
            params=prep.params,
            sizes=prep.sizes,
            spec=prep.spec,
            metrics=metrics,
            artifact_dir=prep.artifact_dir,
            model_path=metrics["model_path"],
            shards=prep.shards,
        )
    log.info("deep: %d model(s) trained in one launch in %.1f s wall", len(prepared), wall)
    return out


def fit_many(
    spark: SparkSession,
    model_names: list[str],
    ctx: FitContext,
    num_processes: int | None = None,
    use_gpu: bool | None = None,
) -> dict[str, FitResult]:
    """:func:`fit` several deep models on ``ctx``: shards for each, then one training launch for all."""
    lp = ctx.conf.deep.launch
    procs = int(num_processes if num_processes is not None else lp.num_processes)
    gpu = bool(lp.use_gpu if use_gpu is None else use_gpu)
    if procs < 1:
        raise ValueError(f"num_processes must be >= 1, got {procs}")
    sizes = data_sizes(ctx.interactions, ctx.items)  # the same for every model of the context
    prepared = [prepare(spark, name, ctx, procs, gpu, sizes=sizes) for name in model_names]
    local = run_locally(spark.sparkContext.master, bool(lp.local_mode))
    results = train_prepared(prepared, procs, local, gpu)
    prune_checkpoints(ctx)
    return results


def fit(
    spark: SparkSession,
    model_name: str,
    ctx: FitContext,
    num_processes: int | None = None,
    use_gpu: bool | None = None,
    params: Mapping[str, Any] | None = None,
    diagnostics: bool = False,
) -> FitResult:
    """Build features, write shards and train ``model_name`` data-parallel with TorchDistributor.

    Parameters
    ----------
    spark : SparkSession
    model_name : str
        ``ncf``, ``multvae``, ``sequence``, ``text`` or ``fusion``.
    ctx : FitContext
        Training data (``interactions``, ``items``), ``conf`` (its ``deep`` section), ``work_dir``
        and ``run_date``.
    num_processes : int, optional
        DDP processes; default ``deep.launch.num_processes``.
    use_gpu : bool, optional
        Train on GPUs (NCCL); default ``deep.launch.use_gpu``. Passed to TorchDistributor explicitly.
    params : mapping, optional
        Overrides of the model's parameters (tests, tuning).
    diagnostics : bool
        Ranks write the row keys they read and a parameter checksum under ``<artifact_dir>/diagnostics``.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        On an unknown model, too little data, or an invalid parameter.
    """
    lp = ctx.conf.deep.launch
    procs = int(num_processes if num_processes is not None else lp.num_processes)
    gpu = bool(lp.use_gpu if use_gpu is None else use_gpu)
    if procs < 1:
        raise ValueError(f"num_processes must be >= 1, got {procs}")
    prepared = prepare(spark, model_name, ctx, procs, gpu, params, diagnostics)
    local = run_locally(spark.sparkContext.master, bool(lp.local_mode))
    result = train_prepared([prepared], procs, local, gpu)[model_name]
    prune_checkpoints(ctx)
    return result


def prune_checkpoints(ctx: FitContext) -> None:
    """Delete the epoch checkpoints of nights older than ``deep.keep_checkpoints`` (they hold user
    embeddings; a resume only ever reads tonight's). Local warehouses with the default artifact root."""
    lp = ctx.conf.deep.launch
    if lp.artifact_root is None and urlparse(ctx.conf.warehouse).scheme in ("", "file"):
        models_root = f"{_absolute(ctx.conf.warehouse)}/{C.MODELS}"
        pruned = cleanup_checkpoint_nights(models_root, str(ctx.run_date), ctx.conf.deep.keep_checkpoints)
        if pruned:
            log.info(
                "deep: deleted the epoch checkpoints of %d folder(s) older than deep.keep_checkpoints = %d "
                "night(s)",
                len(pruned),
                ctx.conf.deep.keep_checkpoints,
            )
