"""The content encoder: items embedded from their metadata and text tokens, trained on co-watching."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.models.deep import schema as S
from vidrec.models.deep.networks.base import Batch, RecModel, _normal_, _rows

# --- content encoder --------------------------------------------------------------------------


#: ``encoder`` values: a bag of every token, or a bag of the metadata plus a TextCNN over the text.
ENCODERS = ("bag", "cnn")


class TextCNN(nn.Module):
    """TextCNN (Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014).

    Hashed token embeddings of the title and description (in reading order, right-padded), parallel
    ``Conv1d`` of each width in ``kernel_sizes`` (``channels`` filters each, ReLU), max-pooled over
    the positions that hold text, concatenated and projected to ``out_dim``. A text with no token
    gives a zero vector. A width-``k`` filter reads ``k`` neighbouring tokens: word n-grams of Latin
    text, and for Chinese the characters and bigrams that :mod:`vidrec.data.text` interleaves.
    """

    def __init__(
        self, num_buckets: int, dim: int, out_dim: int, kernel_sizes: Sequence[int], channels: int
    ) -> None:
        super().__init__()
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.emb = nn.Embedding(num_buckets, dim, padding_idx=S.PAD_TOKEN)
        _normal_(self.emb, 0.1)
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, k, padding=k - 1) for k in self.kernel_sizes)
        self.proj = nn.Linear(channels * len(self.kernel_sizes), out_dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        text = text.long()
        lengths = (text != S.PAD_TOKEN).sum(1)  # right-padded: the text is text[:, :lengths]
        # the padding past the longest text adds nothing (PAD embeds as zeros, as the conv pads)
        text = text[:, : max(int(lengths.max()) if text.shape[0] else 0, 1)]
        x = self.emb(text).transpose(1, 2)  # (B, dim, L)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            h = torch.relu(conv(x))  # (B, C, L + k - 1): output t reads tokens t - k + 1 .. t
            t = torch.arange(h.shape[2], device=h.device)[None, :]
            ok = t < (lengths + k - 1)[:, None]  # windows that overlap the text
            pooled.append(h.masked_fill(~ok[:, None, :], 0.0).amax(dim=2))
        out = self.proj(torch.cat(pooled, dim=1))
        return out * (lengths > 0)[:, None]


class ContentTower(nn.Module):
    """Item content -> vector: mean of hashed token embeddings (+ projected media vectors, + a TextCNN
    over the title and description when ``kernel_sizes`` is given), then an MLP."""

    def __init__(
        self,
        num_buckets: int,
        dim: int,
        out_dim: int,
        extra_dims: Mapping[str, int] | None = None,
        kernel_sizes: Sequence[int] | None = None,
        channels: int = 64,
    ) -> None:
        super().__init__()
        self.tokens = nn.EmbeddingBag(num_buckets, dim, mode="mean", padding_idx=S.PAD_TOKEN)
        _normal_(self.tokens, 0.1)
        self.extras = nn.ModuleDict({k: nn.Linear(v, dim) for k, v in (extra_dims or {}).items() if v > 0})
        self.text = TextCNN(num_buckets, dim, dim, kernel_sizes, channels) if kernel_sizes else None
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))

    def forward(
        self,
        tokens: torch.Tensor,
        extras: Mapping[str, torch.Tensor] | None = None,
        text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.tokens(tokens.long())
        for name, layer in self.extras.items():
            h = h + layer((extras or {})[name].float())
        if self.text is not None:
            if text is None:
                raise ValueError("this content tower has a TextCNN: pass the items' text tokens")
            h = h + self.text(text)
        return self.mlp(h)


class TextEncoder(RecModel):
    """Content encoder: item embeddings from title, description, genres, cast and directors tokens.

    A hashed vocabulary (no pretrained weights). ``encoder: cnn``: the metadata tokens (genres, cast,
    directors, language, maturity, decade) as a bag plus a :class:`TextCNN` over the title and
    description; ``encoder: bag``: every token, text words included, as one bag (the mean of token
    embeddings, fastText-style, Joulin et al. 2017); either way an MLP on top. Trained as a two-tower
    retrieval model with
    in-batch softmax over co-watched item pairs (Yi et al., "Sampling-Bias-Corrected Neural Modeling
    for Large Corpus Item Recommendations", RecSys 2019) so that items users watch together embed
    nearby. In-batch negatives are drawn in proportion to how often an item occurs in the pairs, so
    without a correction the softmax learns pointwise mutual information and pushes popular items
    away; with ``logq_correction`` each logit is lowered by the log of its item's share of the
    training pairs (the paper's correction, with exact counts from the side table's ``freq`` instead
    of its streaming estimate), so the dot product estimates how likely an item is to be co-watched.
    A user's score for an item is the mean of the embeddings of their ``recent`` last items dotted
    with the item's embedding; items with no interactions have embeddings too (from their tokens).
    """

    HPARAMS = (
        "num_buckets",
        "max_tokens",
        "embedding_dim",
        "temperature",
        "recent",
        "logq_correction",
        "encoder",
        "max_text_len",
        "kernel_sizes",
        "channels",
    )
    SIZES = ("n_items",)
    score_columns = (S.COL_SEQ,)
    # buffers registered in __init__
    item_tokens: torch.Tensor
    item_text: torch.Tensor
    log_q: torch.Tensor

    def __init__(
        self,
        n_items: int,
        num_buckets: int = 16384,
        max_tokens: int = 48,
        embedding_dim: int = 64,
        temperature: float = 0.1,
        recent: int = 10,
        logq_correction: bool = True,
        encoder: str = "bag",
        max_text_len: int = 64,
        kernel_sizes: Sequence[int] = (2, 3, 4),
        channels: int = 64,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.n_items, self.temperature, self.recent = int(n_items), float(temperature), int(recent)
        self.logq_correction = bool(logq_correction)
        self.cnn = encoder == "cnn"
        self.tower = ContentTower(
            num_buckets,
            embedding_dim,
            embedding_dim,
            kernel_sizes=kernel_sizes if self.cnn else None,
            channels=channels,
        )
        self.register_buffer("item_tokens", torch.zeros(self.n_items, max_tokens, dtype=torch.long))
        self.register_buffer(
            "item_text", torch.zeros(self.n_items, max_text_len if self.cnn else 0, dtype=torch.long)
        )
        # log of each item's share of the training pairs; a training-time quantity, not saved
        self.register_buffer("log_q", torch.zeros(self.n_items), persistent=False)

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_ITEM_A, S.COL_ITEM_B)

    @property
    def side_columns(self) -> tuple[str, ...]:
        cols = (S.COL_ITEM_IDX, S.COL_TOKENS, *((S.COL_TEXT,) if self.cnn else ()))
        return (*cols, S.COL_FREQ) if self.logq_correction else cols

    def attach_side_table(self, table: Mapping[str, torch.Tensor]) -> None:
        idx = table[S.COL_ITEM_IDX].long()
        keep = idx < self.n_items
        with torch.no_grad():
            self.item_tokens.zero_()
            self.item_tokens[idx[keep]] = table[S.COL_TOKENS][keep].long().to(self.item_tokens.device)
            if self.cnn:
                self.item_text.zero_()
                self.item_text[idx[keep]] = table[S.COL_TEXT][keep].long().to(self.item_text.device)
            self.log_q.zero_()
            if self.logq_correction:
                freq = torch.zeros(self.n_items, dtype=torch.float64)
                freq[idx[keep]] = table[S.COL_FREQ][keep].double().clamp(min=0)
                # an item absent from the pairs never appears in a batch; +1 keeps its log finite
                self.log_q.copy_(torch.log((freq + 1) / (freq + 1).sum()).float())

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised content embeddings of ``items`` (all items when None).

        Each distinct item is encoded once (a batch of co-watched pairs repeats popular items many
        times, and the TextCNN is the cost): the same vectors and gradients, fewer convolutions.
        """
        if items is None:
            text = self.item_text if self.cnn else None
            return F.normalize(self.tower(self.item_tokens, text=text), dim=-1)
        distinct, where = torch.unique(items.long(), return_inverse=True)
        text = self.item_text[distinct] if self.cnn else None
        return F.normalize(self.tower(self.item_tokens[distinct], text=text), dim=-1)[where]

    def forward(self, batch: Batch) -> torch.Tensor:
        a_ids, b_ids = batch[S.COL_ITEM_A].long(), batch[S.COL_ITEM_B].long()
        n = _rows(a_ids)
        a, b = self.item_vectors(torch.cat([a_ids, b_ids])).split([n, n])
        if n == 0:
            return (a.sum() + b.sum()) * 0.0
        logits = a @ b.T / self.temperature
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        target = torch.arange(n, device=logits.device)
        # rows: anchors, columns: candidates, each lowered by its log sampling share (zeros when off)
        ab, ba = logits - self.log_q[b_ids][None, :], logits.T - self.log_q[a_ids][None, :]
        # the same item elsewhere in the batch is not a negative
        ab = ab.masked_fill((b_ids[None, :] == b_ids[:, None]) & ~eye, float("-inf"))
        ba = ba.masked_fill((a_ids[None, :] == a_ids[:, None]) & ~eye, float("-inf"))
        loss = F.cross_entropy(ab, target, reduction="sum") + F.cross_entropy(ba, target, reduction="sum")
        return loss / (2 * n)

    def user_vectors(self, seq: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Mean embedding of the last ``recent`` items of each left-padded sequence."""
        last = seq[:, -self.recent :].long()
        valid = (last >= 0) & (last < self.n_items)
        vecs = self.item_vectors() if items is None else items
        summed = (vecs[last.clamp(0, self.n_items - 1)] * valid[..., None]).sum(1)
        return summed / valid.sum(1, keepdim=True).clamp(min=1)

    def score(self, batch: Batch) -> torch.Tensor:
        items = self.item_vectors()
        return self.user_vectors(batch[S.COL_SEQ], items) @ items.T
