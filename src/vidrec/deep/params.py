"""Hyper-parameter defaults of the deep models and their merge with the ``deep:`` configuration section.

:data:`DEFAULTS` is the source of truth; the ``deep:`` section of ``conf/base.yaml`` mirrors it (a
test keeps the two equal). A model's parameters are the shared
``train`` section, then the model's own section (which may override ``batch_size``, ``max_epochs``
and ``lr``), then the same two sections of ``conf['deep']``. Launch settings (processes, GPU, shard
layout) live in ``launch``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vidrec import constants as C

#: Model names this package trains, in the order of ``DESIGN.md``.
MODEL_NAMES: tuple[str, ...] = (C.ALGO_NCF, C.ALGO_MULTVAE, C.ALGO_SEQUENCE, C.ALGO_TEXT, C.ALGO_FUSION)

DEFAULTS: dict[str, Any] = {
    "launch": {
        "num_processes": 2,  # DDP processes (local mode: on the driver; cluster: one per executor GPU)
        "local_mode": True,  # False on a cluster: TorchDistributor runs the processes on executors
        "use_gpu": False,  # explicit: TorchDistributor's own default is True
        "num_threads": 0,  # torch threads per process; 0: cores / processes
        # target rows per Parquet row group (Petastorm's unit of sharding; one file each): Petastorm's cost
        # per row group grows with the number of files, so few large groups (BENCHMARKS.md, loader)
        "rows_per_row_group": 131072,
        "min_row_groups_per_process": 2,
        "keep_shards": 3,  # run dates of shards kept per model by cleanup_shards
        "shard_root": None,  # null: <warehouse>/features (must be readable by every process)
        "artifact_root": None,  # null: the fit's work_dir (must be shared by every process and the driver)
        "score_block_size": 256,  # users scored per block in Spark
    },
    "train": {
        "seed": 42,
        "patience": 2,  # epochs without validation improvement before stopping
        "min_delta": 0.0001,
        "grad_clip": 5.0,  # max gradient norm; 0 disables
        "weight_decay": 0.0,
        "val_fraction": 0.1,
        "amp": True,  # autocast (bf16, or fp16 + GradScaler) when training on CUDA; ignored on CPU
        "shuffle_buffer": 0,  # rows in the loader's cross-row-group shuffling buffer; 0: none
        "keep_checkpoints": 2,
    },
    C.ALGO_NCF: {
        "embedding_dim": 32,  # GMF tower
        "mlp_dim": 32,  # MLP tower embeddings
        "mlp_layers": [64, 32],
        "dropout": 0.0,
        "num_negatives": 4,  # sampled negatives per positive, written by Spark
        "batch_size": 1024,
        "max_epochs": 12,
        "lr": 0.003,
    },
    C.ALGO_MULTVAE: {
        "hidden_dim": 256,
        "latent_dim": 64,
        "dropout": 0.5,  # on the input bag
        "beta_max": 0.2,  # KL weight after annealing
        "anneal_steps": 400,  # optimizer steps to anneal beta from 0 to beta_max
        "max_items": 256,  # most recent positive items kept per user bag
        "batch_size": 64,
        "max_epochs": 40,
        "lr": 0.002,
    },
    C.ALGO_SEQUENCE: {
        "max_len": 50,  # items of history the model attends to
        "hidden_dim": 64,
        "num_blocks": 2,
        "num_heads": 2,
        "dropout": 0.2,
        "batch_size": 64,
        "max_epochs": 40,
        "lr": 0.002,
    },
    C.ALGO_TEXT: {
        "num_buckets": 16384,  # hashed token vocabulary
        "max_tokens": 48,
        "embedding_dim": 64,
        "window": 3,  # co-watched pairs: items within this many positions in a user's history
        "temperature": 0.1,
        "recent": 10,  # a user's vector: mean of the embeddings of the last N items
        "logq_correction": True,  # lower in-batch logits by log item frequency (Yi et al. 2019)
        "history_len": 50,
        "batch_size": 512,
        "max_epochs": 10,
        "lr": 0.003,
    },
    C.ALGO_FUSION: {
        "embedding_dim": 48,
        "num_buckets": 16384,
        "max_tokens": 48,
        "num_negatives": 256,  # uniformly sampled items shared by a batch (sampled softmax)
        "id_dropout": 0.3,  # share of known items trained on content alone (cold-start readiness)
        "batch_size": 1024,
        "max_epochs": 25,
        "lr": 0.003,
    },
}


def _section(conf: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    deep = (conf or {}).get("deep") or {}
    value = deep.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"config key 'deep.{key}' must be a mapping, got {type(value).__name__}")
    return dict(value)


def model_params(conf: Mapping[str, Any] | None, model_name: str) -> dict[str, Any]:
    """Parameters of ``model_name``: shared ``train`` then the model section, defaults then ``conf['deep']``.

    Parameters
    ----------
    conf : mapping or None
        The whole configuration (only its ``deep`` section is read).
    model_name : str
        One of :data:`MODEL_NAMES`.

    Returns
    -------
    dict
        A fresh dictionary (safe to modify).

    Raises
    ------
    ValueError
        On an unknown model name or a key absent from the defaults.
    """
    if model_name not in MODEL_NAMES:
        raise ValueError(f"unknown deep model '{model_name}' (known: {', '.join(MODEL_NAMES)})")
    out = copy.deepcopy({**DEFAULTS["train"], **DEFAULTS[model_name]})
    for key in ("train", model_name):
        for k, v in _section(conf, key).items():
            if k not in DEFAULTS[key]:
                raise ValueError(
                    f"unknown config key 'deep.{key}.{k}' (known: {', '.join(sorted(DEFAULTS[key]))})"
                )
            out[k] = copy.deepcopy(v)
    return out


def launch_params(conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """Launch settings: ``DEFAULTS['launch']`` updated by ``conf['deep']['launch']``.

    Raises
    ------
    ValueError
        On a key absent from the defaults.
    """
    out = copy.deepcopy(DEFAULTS["launch"])
    for k, v in _section(conf, "launch").items():
        if k not in out:
            raise ValueError(f"unknown config key 'deep.launch.{k}' (known: {', '.join(sorted(out))})")
        out[k] = v
    return out
