"""NeuMF (He et al. 2017): GMF and MLP towers over user and item ids, sampled negatives."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.models.deep import schema as S
from vidrec.models.deep.networks.base import Batch, RecModel, _normal_, _rows

# --- NeuMF ------------------------------------------------------------------------------------


class NeuMF(RecModel):
    """Neural Matrix Factorization (NeuMF) — He et al., "Neural Collaborative Filtering", WWW 2017.

    Two towers over separate user and item embeddings: GMF (their element-wise product) and an MLP
    (over their concatenation); a linear layer on both outputs gives the logit of "user interacts
    with item". Trained with binary cross-entropy on positives and sampled negatives.
    """

    HPARAMS = ("embedding_dim", "mlp_dim", "mlp_layers", "dropout")
    SIZES = ("n_users", "n_items")
    USER_PARAMETERS = ("gmf_user.weight", "mlp_user.weight")
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
