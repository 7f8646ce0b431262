"""Deep training's checkpoints: when one is resumed (:func:`config_digest`), where they are, how long
they are kept, and how they are written (atomically, on CPU tensors)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vidrec.models.deep.schema import CHECKPOINT_PREFIX, CHECKPOINTS_DIR

#: Model settings that only change how a trained model scores (not its weights or training): a
#: checkpoint trained under another value is resumed, and its weights serve the new one.
SCORING_ONLY = ("readout",)


#: Spec keys that change the weights an epoch produces: a checkpoint trained under other values is not
#: resumed (a rerun with another ``lr`` or ``batch_size`` trains afresh instead of reusing the old run).
#: ``max_epochs``, ``patience`` and ``min_delta`` only say when to stop, so a run resumes under new
#: ones (more epochs continue where it stopped); ``loader``, threads and device do not change the math.
TRAINING_KEYS = ("batch_size", "lr", "weight_decay", "grad_clip", "seed", "amp", "shuffle_buffer")


def training_settings(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`TRAINING_KEYS` of ``spec``, and whether it starts warm from another night's model."""
    return {**{k: spec.get(k) for k in TRAINING_KEYS}, "warm": bool(spec.get("warm_from"))}


def config_digest(
    model_name: str,
    config: Mapping[str, Any],
    data_digest: str | None = None,
    training: Mapping[str, Any] | None = None,
) -> str:
    """Short hash of the model architecture, the training settings (:func:`training_settings`) and
    the data: a checkpoint of another one is not resumed.

    :data:`SCORING_ONLY` settings are left out.
    """
    trained = {k: v for k, v in config.items() if k not in SCORING_ONLY}
    payload = {"model": model_name, "config": trained, "data": data_digest, "training": dict(training or {})}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def checkpoint_files(checkpoint_dir: str) -> list[Path]:
    """Checkpoint files in ``checkpoint_dir``, oldest first."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{CHECKPOINT_PREFIX}*.pt"))


_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def cleanup_checkpoint_nights(models_root: str, run_date: str, keep_nights: int) -> list[str]:
    """Delete the epoch checkpoints of older nights under ``models_root`` (``<warehouse>/models``).

    Checkpoints live in ``<models_root>/<YYYY-MM-DD>/**/checkpoints``. Those of ``run_date`` and of
    the ``keep_nights - 1`` most recent other dates are kept; every other date's ``checkpoints``
    folders are deleted. Returns the folders deleted. A local path only (checkpoints are written with
    plain file I/O); nothing happens for a missing root.
    """
    root = Path(models_root)
    if not root.is_dir():
        return []
    dates = sorted((d.name for d in root.iterdir() if d.is_dir() and _DATE_DIR.match(d.name)), reverse=True)
    keep = {run_date, *[d for d in dates if d != run_date][: max(keep_nights - 1, 0)]}
    deleted: list[str] = []
    for day in dates:
        if day in keep:
            continue
        for folder in sorted((root / day).rglob(CHECKPOINTS_DIR)):
            if folder.is_dir() and any(folder.glob(f"{CHECKPOINT_PREFIX}*.pt")):
                shutil.rmtree(folder, ignore_errors=True)
                deleted.append(str(folder))
    return deleted


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def param_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes in name order (equal on every rank after DDP training)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
