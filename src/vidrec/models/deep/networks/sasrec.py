"""SASRec (Kang & McAuley 2018): causal self-attention over the watch history, next-item objective."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.models.deep import schema as S
from vidrec.models.deep.networks.base import Batch, RecModel, _normal_, next_items_loss, readout_state

# --- SASRec -----------------------------------------------------------------------------------


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: masked self-attention then a position-wise feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0
        )
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRec(RecModel):
    """SASRec — Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.

    Causal self-attention over a user's time-ordered items (item plus learned position embeddings);
    the hidden state at each position predicts the next item with a full softmax over the catalog
    (scores are dot products with the shared item embeddings). A user's scores are the predictions
    after their last item (``readout`` ``last``; ``mean`` and ``mix`` as for GRU4Rec, see
    :data:`~vidrec.models.deep.networks.base.READOUTS`). With ``target_window`` > 1 each position
    predicts each of the next ``target_window`` items
    (:func:`~vidrec.models.deep.networks.base.next_items_loss`).
    """

    HPARAMS = ("max_len", "hidden_dim", "num_blocks", "num_heads", "dropout", "target_window", "readout")
    SIZES = ("n_items",)
    score_columns = (S.COL_SEQ,)

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        hidden_dim: int = 64,
        num_blocks: int = 2,
        num_heads: int = 2,
        dropout: float = 0.2,
        target_window: int = 1,
        readout: str = "last",
    ) -> None:
        super().__init__()
        self.target_window = max(int(target_window), 1)
        self.readout = str(readout)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} must be a multiple of num_heads {num_heads}")
        self.n_items, self.max_len, self.dim = int(n_items), int(max_len), int(hidden_dim)
        self.item_emb = nn.Embedding(self.n_items + 1, hidden_dim, padding_idx=0)
        self.pos_emb = nn.Embedding(self.max_len, hidden_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(hidden_dim, num_heads, dropout) for _ in range(num_blocks))
        self.ln = nn.LayerNorm(hidden_dim)
        _normal_(self.item_emb, 0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_USER_IDX, S.COL_SEQ)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """``(users, L, dim)`` hidden states of left-padded item sequences (``L <= max_len``)."""
        tok = seq.long() + 1
        length = tok.shape[1]
        valid = tok > 0
        pos = torch.arange(self.max_len - length, self.max_len, device=tok.device)
        x = self.drop(self.item_emb(tok) * math.sqrt(self.dim) + self.pos_emb(pos)[None])
        causal = torch.ones(length, length, dtype=torch.bool, device=tok.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=tok.device)
        mask = (causal[None] & (valid[:, None, :] | eye[None]))[:, None]  # (users, 1, L, L)
        for block in self.blocks:
            x = block(x, mask) * valid[..., None]
        return self.ln(x)

    def forward(self, batch: Batch) -> torch.Tensor:
        seq = batch[S.COL_SEQ].long()
        inp = seq[:, :-1]
        return next_items_loss(self.encode(inp), inp, seq, self.item_emb.weight[1:], self.target_window)

    def score(self, batch: Batch) -> torch.Tensor:
        seq = batch[S.COL_SEQ][:, -self.max_len :]
        h = self.encode(seq)
        last = torch.full((h.shape[0],), h.shape[1] - 1, dtype=torch.long, device=h.device)
        return readout_state(h, seq >= 0, last, self.readout) @ self.item_emb.weight[1:].T
