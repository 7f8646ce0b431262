"""The deep recommenders: small, readable PyTorch modules behind one interface.

Every model is a :class:`RecModel`:

- ``forward(batch) -> loss``: the training objective on a batch of its shard (a scalar, the mean
  over the batch's rows; exactly 0 for a batch with no rows, whose graph still touches every
  parameter so a rank with no data left can step in time with its DDP peers);
- ``score(batch) -> (users, n_items)``: scores of every item for a block of users (higher is better);
- ``train_columns`` / ``score_columns`` / ``side_columns``: the shard columns it reads, the user
  features it scores from, and the catalog side table it holds as buffers (if any).

Item arrays use ``-1`` as padding (:data:`vidrec.deep.schema.PAD_ITEM`); models shift ids by one
internally where an embedding needs a padding row. Nothing here imports Spark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.deep import schema as S

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


# --- NeuMF ------------------------------------------------------------------------------------


class NeuMF(RecModel):
    """Neural Matrix Factorization (NeuMF) — He et al., "Neural Collaborative Filtering", WWW 2017.

    Two towers over separate user and item embeddings: GMF (their element-wise product) and an MLP
    (over their concatenation); a linear layer on both outputs gives the logit of "user interacts
    with item". Trained with binary cross-entropy on positives and sampled negatives.
    """

    HPARAMS = ("embedding_dim", "mlp_dim", "mlp_layers", "dropout")
    SIZES = ("n_users", "n_items")
    score_columns = (S.COL_USER_IDX,)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int = 32,
        mlp_dim: int = 32,
        mlp_layers: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.gmf_user = nn.Embedding(self.n_users, embedding_dim)
        self.gmf_item = nn.Embedding(self.n_items, embedding_dim)
        self.mlp_user = nn.Embedding(self.n_users, mlp_dim)
        self.mlp_item = nn.Embedding(self.n_items, mlp_dim)
        layers: list[nn.Module] = []
        width = 2 * mlp_dim
        for h in mlp_layers:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(embedding_dim + width, 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            _normal_(emb, 0.01)

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_USER_IDX, S.COL_ITEM_IDX, S.COL_LABEL)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of ``(user, item)`` pairs; ``users`` and ``items`` broadcast against each other."""
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mu, mi = self.mlp_user(users), self.mlp_item(items)
        mu, mi = torch.broadcast_tensors(mu, mi)
        mlp = self.mlp(torch.cat([mu, mi], dim=-1))
        gmf = gmf.expand(*mlp.shape[:-1], gmf.shape[-1])
        return self.out(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        users, items = batch[S.COL_USER_IDX].long(), batch[S.COL_ITEM_IDX].long()
        labels = batch[S.COL_LABEL].float()
        loss = F.binary_cross_entropy_with_logits(self.logits(users, items), labels, reduction="sum")
        return loss / max(_rows(users), 1)

    def score(self, batch: Batch, item_chunk: int = 4096) -> torch.Tensor:
        users = batch[S.COL_USER_IDX].long()[:, None]
        parts = []
        for start in range(0, self.n_items, item_chunk):
            items = torch.arange(start, min(start + item_chunk, self.n_items), device=users.device)[None, :]
            parts.append(self.logits(users, items))
        return torch.cat(parts, dim=1)


# --- Mult-VAE ---------------------------------------------------------------------------------


class MultVAE(RecModel):
    """Mult-VAE — Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018.

    A user's bag of items (multi-hot, L2-normalised, with dropout on the input) is encoded into a
    Gaussian; the decoder gives a multinomial over all items. Loss: multinomial log-likelihood plus
    a KL term whose weight anneals linearly from 0 to ``beta_max`` over ``anneal_steps`` steps. The
    encoder's mean is the user-interest embedding (:meth:`embed`).
    """

    HPARAMS = ("hidden_dim", "latent_dim", "dropout", "beta_max", "anneal_steps")
    SIZES = ("n_items",)
    score_columns = (S.COL_BAG,)

    def __init__(
        self,
        n_items: int,
        hidden_dim: int = 600,
        latent_dim: int = 200,
        dropout: float = 0.5,
        beta_max: float = 0.2,
        anneal_steps: int = 20000,
    ) -> None:
        super().__init__()
        self.n_items = int(n_items)
        self.latent_dim = int(latent_dim)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Linear(self.n_items, hidden_dim)
        self.to_gaussian = nn.Linear(hidden_dim, 2 * latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, self.n_items)
        )
        self.beta_max, self.anneal_steps = float(beta_max), max(int(anneal_steps), 1)
        self.beta = 0.0

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_USER_IDX, S.COL_BAG)

    def on_train_step(self, step: int) -> None:
        self.beta = self.beta_max * min(1.0, step / self.anneal_steps)

    def multi_hot(self, bag: torch.Tensor) -> torch.Tensor:
        """``(users, n_items)`` 0/1 matrix of a padded bag of item ids."""
        bag = bag.long()
        valid = (bag >= 0) & (bag < self.n_items)
        x = torch.zeros(bag.shape[0], self.n_items, device=bag.device)
        x.scatter_add_(1, bag.clamp(0, self.n_items - 1), valid.float())
        return x.clamp_(max=1.0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the posterior of a multi-hot ``x``."""
        h = torch.tanh(self.encoder(self.drop(F.normalize(x, dim=1))))
        mu, logvar = self.to_gaussian(h).chunk(2, dim=1)
        return mu, logvar

    def forward(self, batch: Batch) -> torch.Tensor:
        x = self.multi_hot(batch[S.COL_BAG])
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        nll = -(F.log_softmax(self.decoder(z), dim=1) * x).sum()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
        return (nll + self.beta * kl) / max(_rows(x), 1)

    def embed(self, batch: Batch) -> torch.Tensor:
        """``(users, latent_dim)``: the encoder mean, the user-interest embedding."""
        return self.encode(self.multi_hot(batch[S.COL_BAG]))[0]

    def score(self, batch: Batch) -> torch.Tensor:
        return self.decoder(self.embed(batch))


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
    after their last item.
    """

    HPARAMS = ("max_len", "hidden_dim", "num_blocks", "num_heads", "dropout")
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
    ) -> None:
        super().__init__()
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
        inp, tgt = seq[:, :-1], seq[:, 1:]
        h = self.encode(inp)
        keep = (tgt >= 0) & (inp >= 0)
        logits = h[keep] @ self.item_emb.weight[1:].T
        loss = F.cross_entropy(logits, tgt[keep], reduction="sum") if logits.numel() else logits.sum()
        return loss / max(int(keep.sum()), 1) + 0.0 * h.sum()

    def score(self, batch: Batch) -> torch.Tensor:
        h = self.encode(batch[S.COL_SEQ][:, -self.max_len :])[:, -1]
        return h @ self.item_emb.weight[1:].T


# --- content encoder --------------------------------------------------------------------------


class ContentTower(nn.Module):
    """Item content -> vector: mean of hashed token embeddings (+ projected media vectors), then an MLP."""

    def __init__(
        self, num_buckets: int, dim: int, out_dim: int, extra_dims: Mapping[str, int] | None = None
    ) -> None:
        super().__init__()
        self.tokens = nn.EmbeddingBag(num_buckets, dim, mode="mean", padding_idx=S.PAD_TOKEN)
        _normal_(self.tokens, 0.1)
        self.extras = nn.ModuleDict({k: nn.Linear(v, dim) for k, v in (extra_dims or {}).items() if v > 0})
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))

    def forward(self, tokens: torch.Tensor, extras: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        h = self.tokens(tokens.long())
        for name, layer in self.extras.items():
            h = h + layer((extras or {})[name].float())
        return self.mlp(h)


class TextEncoder(RecModel):
    """Content encoder: item embeddings from title, description, genres, cast and directors tokens.

    A hashed vocabulary (no pretrained weights), the mean of token embeddings and an MLP
    (a fastText-style bag of words, Joulin et al. 2017), trained as a two-tower retrieval model with
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

    HPARAMS = ("num_buckets", "max_tokens", "embedding_dim", "temperature", "recent", "logq_correction")
    SIZES = ("n_items",)
    score_columns = (S.COL_SEQ,)

    def __init__(
        self,
        n_items: int,
        num_buckets: int = 16384,
        max_tokens: int = 48,
        embedding_dim: int = 64,
        temperature: float = 0.1,
        recent: int = 10,
        logq_correction: bool = True,
    ) -> None:
        super().__init__()
        self.n_items, self.temperature, self.recent = int(n_items), float(temperature), int(recent)
        self.logq_correction = bool(logq_correction)
        self.tower = ContentTower(num_buckets, embedding_dim, embedding_dim)
        self.register_buffer("item_tokens", torch.zeros(self.n_items, max_tokens, dtype=torch.long))
        # log of each item's share of the training pairs; a training-time quantity, not saved
        self.register_buffer("log_q", torch.zeros(self.n_items), persistent=False)

    @property
    def train_columns(self) -> tuple[str, ...]:
        return (S.COL_ITEM_A, S.COL_ITEM_B)

    @property
    def side_columns(self) -> tuple[str, ...]:
        cols = (S.COL_ITEM_IDX, S.COL_TOKENS)
        return (*cols, S.COL_FREQ) if self.logq_correction else cols

    def attach_side_table(self, table: Mapping[str, torch.Tensor]) -> None:
        idx = table[S.COL_ITEM_IDX].long()
        keep = idx < self.n_items
        with torch.no_grad():
            self.item_tokens.zero_()
            self.item_tokens[idx[keep]] = table[S.COL_TOKENS][keep].long().to(self.item_tokens.device)
            self.log_q.zero_()
            if self.logq_correction:
                freq = torch.zeros(self.n_items, dtype=torch.float64)
                freq[idx[keep]] = table[S.COL_FREQ][keep].double().clamp(min=0)
                # an item absent from the pairs never appears in a batch; +1 keeps its log finite
                self.log_q.copy_(torch.log((freq + 1) / (freq + 1).sum()).float())

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised content embeddings of ``items`` (all items when None)."""
        tokens = self.item_tokens if items is None else self.item_tokens[items.long()]
        return F.normalize(self.tower(tokens), dim=-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        a_ids, b_ids = batch[S.COL_ITEM_A].long(), batch[S.COL_ITEM_B].long()
        a, b = self.item_vectors(a_ids), self.item_vectors(b_ids)
        n = _rows(a_ids)
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


# --- fusion -----------------------------------------------------------------------------------


class Fusion(RecModel):
    """Collaborative + content fusion: id embeddings plus a content tower, cold-start ready.

    An item's vector is its id embedding (for items with training interactions, ``known``) plus a
    projection of its content: hashed tokens and, when present, the upstream visual and audio
    embeddings. Items never seen in training use the content part alone (their id part is zero);
    during training the id part of a known item is dropped with probability ``id_dropout`` so the
    content part learns to stand alone (DropoutNet, Volkovs et al., NeurIPS 2017). A user is an id
    embedding; the score is the dot product. Trained with sampled softmax: each positive against
    ``num_negatives`` known items drawn uniformly and shared by the batch (Jean et al. 2015;
    Covington et al. 2016).
    """

    HPARAMS = ("embedding_dim", "num_buckets", "max_tokens", "num_negatives", "id_dropout")
    SIZES = ("n_users", "n_items", "visual_dim", "audio_dim")
    score_columns = (S.COL_USER_IDX,)

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
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.num_negatives, self.id_dropout = int(num_negatives), float(id_dropout)
        self.extra_dims = {S.COL_VISUAL: int(visual_dim), S.COL_AUDIO: int(audio_dim)}
        self.user_emb = nn.Embedding(self.n_users, embedding_dim)
        self.item_emb = nn.Embedding(self.n_items, embedding_dim)
        _normal_(self.user_emb, 0.1)
        _normal_(self.item_emb, 0.01)
        self.content = ContentTower(num_buckets, embedding_dim, embedding_dim, self.extra_dims)
        self.register_buffer("item_tokens", torch.zeros(self.n_items, max_tokens, dtype=torch.long))
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
        return (S.COL_ITEM_IDX, S.COL_TOKENS, S.COL_KNOWN, *media)

    def attach_side_table(self, table: Mapping[str, torch.Tensor]) -> None:
        idx = table[S.COL_ITEM_IDX].long()
        keep = idx < self.n_items
        idx = idx[keep]
        with torch.no_grad():
            self.item_tokens.zero_()
            self.item_tokens[idx] = table[S.COL_TOKENS][keep].long()
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
        return self.content(self.item_tokens[items], extras) + gate[:, None] * self.item_emb(items)

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


MODEL_CLASSES: dict[str, type[RecModel]] = {
    "ncf": NeuMF,
    "multvae": MultVAE,
    "sequence": SASRec,
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
