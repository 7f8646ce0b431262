"""Fusion: collaborative id embeddings with content and media features, so new titles are scored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.models.deep import schema as S
from vidrec.models.deep.networks.base import Batch, RecModel, _normal_, _rows
from vidrec.models.deep.networks.text import ENCODERS, ContentTower

# --- fusion -----------------------------------------------------------------------------------


class Fusion(RecModel):
    """Collaborative + content fusion: id embeddings plus a content tower, cold-start ready.

    An item's vector is its id embedding (for items with training interactions, ``known``) plus a
    projection of its content (:class:`~vidrec.models.deep.networks.text.ContentTower`, the item tower
    of the ``text`` model: hashed tokens, with ``encoder: cnn`` a TextCNN over the title and
    description) and, when present, the upstream visual and audio embeddings. Items never seen in
    training use the content part alone (their id part is zero); during training the id part of a
    known item is dropped with probability ``id_dropout`` so the
    content part learns to stand alone (DropoutNet, Volkovs et al., NeurIPS 2017). A user is an id
    embedding; the score is the dot product. Trained with sampled softmax: each positive against
    ``num_negatives`` known items drawn uniformly and shared by the batch (Jean et al. 2015;
    Covington et al. 2016).
    """

    HPARAMS = (
        "embedding_dim",
        "num_buckets",
        "max_tokens",
        "num_negatives",
        "id_dropout",
        "encoder",
        "max_text_len",
        "kernel_sizes",
        "channels",
    )
    SIZES = ("n_users", "n_items", "visual_dim", "audio_dim")
    USER_PARAMETERS = ("user_emb.weight",)
    score_columns = (S.COL_USER_IDX,)
    # buffers registered in __init__ (plus media_<name>, read with getattr)
    item_tokens: torch.Tensor
    item_text: torch.Tensor
    known: torch.Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        visual_dim: int = 0,
        audio_dim: int = 0,
        embedding_dim: int = 48,
        num_buckets: int = 16384,
        max_tokens: int = 48,
        num_negatives: int = 256,
        id_dropout: float = 0.3,
        encoder: str = "bag",
        max_text_len: int = 64,
        kernel_sizes: Sequence[int] = (2, 3, 4),
        channels: int = 64,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.cnn = encoder == "cnn"
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.num_negatives, self.id_dropout = int(num_negatives), float(id_dropout)
        self.extra_dims = {S.COL_VISUAL: int(visual_dim), S.COL_AUDIO: int(audio_dim)}
        self.user_emb = nn.Embedding(self.n_users, embedding_dim)
        self.item_emb = nn.Embedding(self.n_items, embedding_dim)
        _normal_(self.user_emb, 0.1)
        _normal_(self.item_emb, 0.01)
        self.content = ContentTower(
            num_buckets,
            embedding_dim,
            embedding_dim,
            self.extra_dims,
            kernel_sizes=kernel_sizes if self.cnn else None,
            channels=channels,
        )
        self.register_buffer("item_tokens", torch.zeros(self.n_items, max_tokens, dtype=torch.long))
        text_len = max_text_len if self.cnn else 0
        self.register_buffer("item_text", torch.zeros(self.n_items, text_len, dtype=torch.long))
        self.register_buffer("known", torch.zeros(self.n_items))
        for name, dim in self.extra_dims.items():
            if dim > 0:
                self.register_buffer(f"media_{name}", torch.zeros(self.n_items, dim))

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_USER_IDX, S.COL_ITEM_IDX)

    @property
    def side_columns(self) -> tuple[str, ...]:
        media = tuple(k for k, v in self.extra_dims.items() if v > 0)
        text = (S.COL_TEXT,) if self.cnn else ()
        return (S.COL_ITEM_IDX, S.COL_TOKENS, *text, S.COL_KNOWN, *media)

    def attach_side_table(self, table: Mapping[str, torch.Tensor]) -> None:
        idx = table[S.COL_ITEM_IDX].long()
        keep = idx < self.n_items
        idx = idx[keep]
        with torch.no_grad():
            self.item_tokens.zero_()
            self.item_tokens[idx] = table[S.COL_TOKENS][keep].long()
            if self.cnn:
                self.item_text.zero_()
                self.item_text[idx] = table[S.COL_TEXT][keep].long()
            self.known.zero_()
            self.known[idx] = table[S.COL_KNOWN][keep].float()
            for name, dim in self.extra_dims.items():
                if dim > 0:
                    buf = getattr(self, f"media_{name}")
                    buf.zero_()
                    buf[idx] = table[name][keep].float()

    def item_vectors(self, items: torch.Tensor | None = None, drop_ids: bool = False) -> torch.Tensor:
        """Fused vectors of ``items`` (all items when None); ``drop_ids`` applies id dropout."""
        if items is None:
            items = torch.arange(self.n_items, device=self.known.device)
        items = items.long()
        extras = {n: getattr(self, f"media_{n}")[items] for n, d in self.extra_dims.items() if d > 0}
        gate = self.known[items]
        if drop_ids and self.id_dropout > 0:
            gate = gate * (torch.rand_like(gate) >= self.id_dropout).float()
        text = self.item_text[items] if self.cnn else None
        return self.content(self.item_tokens[items], extras, text) + gate[:, None] * self.item_emb(items)

    def _negatives(self, device: torch.device) -> torch.Tensor:
        pool = torch.nonzero(self.known > 0).squeeze(1)
        if pool.numel() == 0:
            pool = torch.arange(self.n_items, device=device)
        gen = None
        if not self.training:  # fixed negatives: validation losses comparable across epochs
            gen = torch.Generator(device=pool.device).manual_seed(12345)
        pick = torch.randint(0, pool.numel(), (self.num_negatives,), generator=gen, device=pool.device)
        return pool[pick]

    def forward(self, batch: Batch) -> torch.Tensor:
        users, items = batch[S.COL_USER_IDX].long(), batch[S.COL_ITEM_IDX].long()
        u = self.user_emb(users)
        negs = self._negatives(u.device)
        pos = self.item_vectors(items, drop_ids=self.training)
        neg = self.item_vectors(negs, drop_ids=self.training)
        logits = torch.cat([(u * pos).sum(-1, keepdim=True), u @ neg.T], dim=1)
        hit = torch.cat(
            [torch.zeros_like(items[:, None], dtype=torch.bool), negs[None, :] == items[:, None]], 1
        )
        logits = logits.masked_fill(hit, float("-inf"))
        target = torch.zeros(_rows(users), dtype=torch.long, device=u.device)
        loss = F.cross_entropy(logits, target, reduction="sum") if _rows(users) else logits.sum()
        return loss / max(_rows(users), 1)

    def score(self, batch: Batch) -> torch.Tensor:
        return self.user_emb(batch[S.COL_USER_IDX].long()) @ self.item_vectors().T
