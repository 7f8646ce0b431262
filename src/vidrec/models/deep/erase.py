"""Erasing users from saved deep models (``model.pt``) and their epoch checkpoints; no Spark.

A deep model keeps per-user rows only in the parameters its class lists in ``USER_PARAMETERS``
(the user embeddings of ``ncf`` and ``fusion``; the other models hold no per-user row). Erasing
users from a ``model.pt`` zeroes their rows there (the file is rewritten atomically under the same
name): the model still scores everybody else exactly as before, and a zero row gives the erased user
nothing of theirs back.

Epoch checkpoints (``checkpoints/epoch-*.pt``, written for resuming a crashed night) hold the same
rows, in the model state, the best state and the optimizer's moment estimates. After an erasure no
checkpoint can be resumed anyway: the next fit's shards lack the user, so their data digest differs
and training starts over (see :mod:`vidrec.models.deep.train`). So a checkpoint of a model with
per-user rows is deleted, not edited.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vidrec.models.deep.networks import MODEL_CLASSES
from vidrec.models.deep.schema import SPEC_FILE


def user_parameters(model_name: str) -> tuple[str, ...]:
    """The per-user parameters of ``model_name`` (empty for an unknown name or a model without any)."""
    cls = MODEL_CLASSES.get(model_name)
    return tuple(cls.USER_PARAMETERS) if cls is not None else ()


def erase_from_model_file(path: str | Path, user_idx: Sequence[int]) -> int:
    """Zero the rows of ``user_idx`` in the per-user parameters of a saved ``model.pt``.

    Returns the number of users whose rows held anything but zeros (0: nothing to erase; the file is
    then left untouched, so a second erasure is a no-op).
    """
    p = Path(path)
    payload: dict[str, Any] = torch.load(p, map_location="cpu", weights_only=False)
    names = user_parameters(str(payload.get("model")))
    state = payload.get("state_dict") or {}
    erased: set[int] = set()
    for name in names:
        weight = state.get(name)
        if weight is None:
            continue
        rows = [i for i in user_idx if 0 <= int(i) < weight.shape[0]]
        if not rows:
            continue
        index = torch.tensor(rows, dtype=torch.long)
        nonzero = weight.index_select(0, index).abs().sum(dim=tuple(range(1, weight.dim()))) > 0
        erased.update(int(r) for r, hit in zip(rows, nonzero.tolist(), strict=True) if hit)
        weight.index_fill_(0, index, 0)
    if erased:
        tmp = p.with_name(f".{p.name}.forget-{os.getpid()}")
        torch.save(payload, tmp)
        os.replace(tmp, p)
    return len(erased)


def checkpoint_model(path: str | Path) -> str | None:
    """The model name of a checkpoint: from ``spec.json`` beside its folder, else from the file itself."""
    p = Path(path)
    spec = p.parent.parent / SPEC_FILE
    if spec.is_file():
        try:
            return str(json.loads(spec.read_text())["model"])
        except (ValueError, KeyError):
            pass
    try:
        return str(torch.load(p, map_location="cpu", weights_only=False).get("model"))
    except Exception:  # an unreadable checkpoint: treat it as holding user rows
        return None


def checkpoint_holds_users(path: str | Path) -> bool:
    """True when a checkpoint's model keeps per-user rows (or the model cannot be told)."""
    name = checkpoint_model(path)
    return name is None or bool(user_parameters(name))
