"""The interface every deep recommender implements (:class:`RecModel`) and shared helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
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


def next_items_loss(
    h: torch.Tensor,
    inp: torch.Tensor,
    seq: torch.Tensor,
    item_weight: torch.Tensor,
    window: int = 1,
    log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax loss of each position's next ``window`` items (``window`` 1: the classic next item).

    Parameters
    ----------
    h : Tensor
        ``(B, L, d)`` hidden states of ``inp``.
    inp : Tensor
        ``(B, L)`` input items, ``seq[:, :-1]`` (padding ``< 0``).
    seq : Tensor
        ``(B, L + 1)`` the whole windows; position ``t`` of ``inp`` predicts ``seq[t + 1 .. t + window]``.
    item_weight : Tensor
        ``(n_items, d)`` output item embeddings (row ``i`` is item ``i``).
    window : int
        Future items each position predicts (a "dense all-action" objective, Pancha et al. 2022, when
        > 1: every item in the horizon is a target, so the state learns what a user watches over the
        next ``window`` titles, not only the very next one).
    log_q : Tensor, optional
        ``(n_items,)`` log of each item's share ``q`` of the training targets. Given: the softmax runs
        over the distinct items among the batch's ``n`` targets (in-batch negatives), each logit
        lowered by the log of its item's chance to be among them, ``1 - (1 - q) ** n`` (the
        log-frequency correction of Yi et al., RecSys 2019, for a deduplicated sample, as
        TensorFlow's ``sampled_softmax_loss`` does), so the scores still estimate the full softmax:
        an item every batch holds is not corrected, a rare one is raised; None: a full softmax over
        every item.

    Returns
    -------
    Tensor
        The mean negative log-likelihood over (position, target) pairs; 0 (with a graph) when none.
    """
    b, length = inp.shape
    pad = torch.full((b, max(window - 1, 0)), -1, dtype=seq.dtype, device=seq.device)
    ext = torch.cat([seq[:, 1:], pad], dim=1)  # ext[:, t + w] = seq[:, t + 1 + w]
    targets = torch.stack([ext[:, w : w + length] for w in range(window)], dim=-1)  # (B, L, W)
    at = inp >= 0
    hv, tv = h[at], targets[at].long()  # (M, d), (M, W)
    ok = tv >= 0
    if not bool(ok.any()):
        return 0.0 * h.sum() + 0.0 * item_weight.sum()
    if log_q is not None:
        cand = torch.unique(tv[ok])
        draws = ok.sum().double()
        inclusion = -torch.expm1(draws * torch.log1p(-log_q[cand].double().exp().clamp(max=1 - 1e-12)))
        logits = hv @ item_weight[cand].T - torch.log(inclusion).float()[None, :]
        idx = torch.searchsorted(cand, tv.clamp(min=0)).clamp(max=cand.numel() - 1)
    else:
        logits = hv @ item_weight.T
        idx = tv.clamp(min=0)
    nll = -F.log_softmax(logits.float(), dim=-1).gather(1, idx)
    return (nll * ok).sum() / ok.sum() + 0.0 * h.sum()


#: How a sequence model turns its hidden states into a user's scores (``deep.sequence.readout``,
#: ``deep.gru.readout``): ``last``, the state after the last item (the next-item prediction); ``mean``,
#: the mean of the states after every item (what tends to follow anything in the history); ``mix``,
#: their average.
READOUTS = ("last", "mean", "mix")


def readout_state(h: torch.Tensor, valid: torch.Tensor, last: torch.Tensor, readout: str) -> torch.Tensor:
    """``(B, d)`` user states from hidden states ``h (B, L, d)``: see :data:`READOUTS`.

    ``valid (B, L)`` marks the positions that hold an item; ``last (B,)`` is the index of each row's
    last item.
    """
    state = h[torch.arange(h.shape[0], device=h.device), last]
    if readout == "last":
        return state
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    w = valid.to(h.dtype)[..., None]
    mean = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
    return mean if readout == "mean" else 0.5 * (state + mean)


def target_log_share(freq: torch.Tensor) -> torch.Tensor:
    """``log((freq + 1) / sum(freq + 1))``: each item's log share of the training targets (+1: finite)."""
    f = freq.double().clamp(min=0) + 1.0
    return torch.log(f / f.sum()).float()
