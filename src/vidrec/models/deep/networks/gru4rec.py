"""GRU4Rec (Hidasi et al. 2016): a recurrent network over the watch history, next-item softmax."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vidrec.models.deep import schema as S
from vidrec.models.deep.networks.base import (
    Batch,
    RecModel,
    _normal_,
    next_items_loss,
    readout_state,
    target_log_share,
)

# --- GRU4Rec ----------------------------------------------------------------------------------


def right_align(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(B, L)`` sequences moved to the front of each row: ``(aligned, lengths)``."""
    length = seq.shape[1]
    lengths = (seq >= 0).sum(1)
    idx = (torch.arange(length, device=seq.device)[None, :] + (length - lengths)[:, None]) % length
    return seq.gather(1, idx), lengths


class GRU4Rec(RecModel):
    """GRU4Rec — Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016.

    A GRU reads a user's items in time order (oldest first; the padding is skipped, packed
    sequences); the hidden state after each item, dotted with the (tied) item embeddings, scores
    the next item. Trained on the same windows as SASRec (``sequence``) with a softmax over the
    batch's own target items (in-batch negatives, the mini-batch sampling of GRU4Rec) whose logits
    are lowered by each item's log share of the training targets (``logq_correction``, Yi et al.
    2019; the side table's ``freq``), so popular items are neither over- nor under-sampled as
    negatives; without the correction, a full softmax over the catalog. ``target_window`` > 1 makes
    every one of the next ``target_window`` items a target of each position. A user's scores come
    from the state after their last item (``readout`` ``last``), the mean state over their history
    (``mean``) or the average of both (``mix``); see :data:`~vidrec.models.deep.networks.base.READOUTS`.
    """

    HPARAMS = (
        "max_len",
        "hidden_dim",
        "num_layers",
        "dropout",
        "target_window",
        "logq_correction",
        "readout",
    )
    SIZES = ("n_items",)
    score_columns = (S.COL_SEQ,)
    # buffer registered in __init__
    log_q: torch.Tensor

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        hidden_dim: int = 64,
        num_layers: int = 1,
        dropout: float = 0.2,
        target_window: int = 1,
        logq_correction: bool = True,
        readout: str = "last",
    ) -> None:
        super().__init__()
        self.n_items, self.max_len, self.dim = int(n_items), int(max_len), int(hidden_dim)
        self.readout = str(readout)
        self.target_window = max(int(target_window), 1)
        self.logq_correction = bool(logq_correction)
        self.item_emb = nn.Embedding(self.n_items + 1, hidden_dim, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(
            hidden_dim,
            hidden_dim,
            num_layers=int(num_layers),
            batch_first=True,
            dropout=dropout if int(num_layers) > 1 else 0.0,
        )
        _normal_(self.item_emb, 0.05)
        # log of each item's share of the training targets; a training-time quantity, not saved
        self.register_buffer("log_q", torch.zeros(self.n_items), persistent=False)

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_USER_IDX, S.COL_SEQ)

    @property
    def side_columns(self) -> tuple[str, ...]:
        return (S.COL_ITEM_IDX, S.COL_FREQ) if self.logq_correction else ()

    def attach_side_table(self, table: Mapping[str, torch.Tensor]) -> None:
        if not self.logq_correction:
            return
        idx = table[S.COL_ITEM_IDX].long()
        keep = (idx >= 0) & (idx < self.n_items)
        freq = torch.zeros(self.n_items, dtype=torch.float64)
        freq[idx[keep]] = table[S.COL_FREQ][keep].double()
        with torch.no_grad():
            self.log_q.copy_(target_log_share(freq).to(self.log_q.device))

    def encode(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of left-padded sequences, front-aligned: ``(h (B, L, d), aligned items (B, L))``."""
        aligned, lengths = right_align(seq.long())
        x = self.drop(self.item_emb(aligned + 1))
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=seq.shape[1])
        return self.drop(h) * (aligned >= 0)[..., None], aligned

    def forward(self, batch: Batch) -> torch.Tensor:
        seq = batch[S.COL_SEQ].long()
        if seq.shape[0] == 0:  # a rank whose shard ran out: zero loss, zero gradient everywhere
            return sum((0.0 * p.sum() for p in self.parameters()), torch.zeros((), device=seq.device))
        h, aligned = self.encode(seq)  # h[:, t]: the state after item t, so h[:, :-1] reads aligned[:, :-1]
        log_q = self.log_q if self.logq_correction and self.training else None
        weight = self.item_emb.weight[1:]
        return next_items_loss(h[:, :-1], aligned[:, :-1], aligned, weight, self.target_window, log_q)

    def score(self, batch: Batch) -> torch.Tensor:
        seq = batch[S.COL_SEQ][:, -self.max_len :].long()
        h, aligned = self.encode(seq)
        valid = aligned >= 0
        last = (valid.sum(1) - 1).clamp(min=0)
        return readout_state(h, valid, last, self.readout) @ self.item_emb.weight[1:].T
