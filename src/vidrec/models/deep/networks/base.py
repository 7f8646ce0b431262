"""The interface every deep recommender implements (:class:`RecModel`) and shared helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


def _rows(t: torch.Tensor) -> int:
    return int(t.shape[0])


class RecModel(nn.Module):
    """Base of the deep recommenders: the interface the training loop and the scorer rely on."""

    #: Hyper-parameters (keys of the model's parameter section) the constructor takes.
    HPARAMS: ClassVar[tuple[str, ...]] = ()
    #: Sizes the constructor takes, computed from the data at launch.
    SIZES: ClassVar[tuple[str, ...]] = ()
    #: Per-user feature columns :meth:`score` reads.
    score_columns: ClassVar[tuple[str, ...]] = ()
    #: ``state_dict`` keys of parameters with one row per ``user_idx`` (user embeddings): what erasing
    #: a user zeroes (:mod:`vidrec.models.deep.erase`). Empty: the model keeps nothing per user.
    USER_PARAMETERS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    @property
    def train_columns(self) -> tuple[str, ...]:
        """Columns of the training shard that :meth:`forward` reads."""
        raise NotImplementedError

    @property
    def side_columns(self) -> tuple[str, ...]:
        """Columns of the ``items`` side table :meth:`attach_side_table` takes (empty: none)."""
        return ()

    def attach_side_table(self, table: Mapping[str, torch.Tensor]) -> None:  # noqa: B027
        """Copy a catalog side table into the model's buffers (models without one ignore it)."""

    def on_train_step(self, step: int) -> None:  # noqa: B027
        """Called before each optimizer step with the global step number (for schedules)."""

    def rows(self, batch: Batch) -> int:
        """Rows in ``batch`` (the unit of rows/s and of the loss average)."""
        return _rows(next(iter(batch.values())))

    def score(self, batch: Batch) -> torch.Tensor:
        """``(users, n_items)`` scores of every item for the users of ``batch``."""
        raise NotImplementedError


def _normal_(emb: nn.Embedding | nn.EmbeddingBag, std: float) -> None:
    nn.init.normal_(emb.weight, std=std)
    if emb.padding_idx is not None:
        with torch.no_grad():
            emb.weight[emb.padding_idx].zero_()
