"""The deep networks, one file each, and how the training loop and the scorer build them by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vidrec.models.deep.networks.base import RecModel
from vidrec.models.deep.networks.fusion import Fusion
from vidrec.models.deep.networks.gru4rec import GRU4Rec
from vidrec.models.deep.networks.multvae import MultVAE
from vidrec.models.deep.networks.ncf import NeuMF
from vidrec.models.deep.networks.sasrec import SASRec
from vidrec.models.deep.networks.text import TextEncoder

MODEL_CLASSES: dict[str, type[RecModel]] = {
    "ncf": NeuMF,
    "multvae": MultVAE,
    "sequence": SASRec,
    "gru": GRU4Rec,
    "text": TextEncoder,
    "fusion": Fusion,
}


def model_config(model_name: str, params: Mapping[str, Any], sizes: Mapping[str, int]) -> dict[str, Any]:
    """Constructor arguments of ``model_name``: ``HPARAMS`` from ``params``, ``SIZES`` from ``sizes``.

    Raises
    ------
    ValueError
        On an unknown model or a missing key.
    """
    cls = _model_class(model_name)
    missing = [k for k in cls.HPARAMS if k not in params] + [k for k in cls.SIZES if k not in sizes]
    if missing:
        raise ValueError(f"{model_name}: missing parameter(s) {missing}")
    config: dict[str, Any] = {k: params[k] for k in cls.HPARAMS}
    config.update({k: int(sizes[k]) for k in cls.SIZES})
    return config


def build_model(model_name: str, config: Mapping[str, Any]) -> RecModel:
    """A fresh model of ``model_name`` from its ``config`` (see :func:`model_config`)."""
    model = _model_class(model_name)(**dict(config))
    model.config = dict(config)
    return model


def _model_class(model_name: str) -> type[RecModel]:
    if model_name not in MODEL_CLASSES:
        raise ValueError(f"unknown deep model '{model_name}' (known: {', '.join(MODEL_CLASSES)})")
    return MODEL_CLASSES[model_name]


def load_model(payload: Mapping[str, Any], device: str | torch.device = "cpu") -> RecModel:
    """Rebuild a model saved by the training loop (``{"model", "config", "state_dict"}``), in eval mode."""
    model = build_model(payload["model"], payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
