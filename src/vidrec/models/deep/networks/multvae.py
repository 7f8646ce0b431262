"""Mult-VAE (Liang et al. 2018): a variational autoencoder of each user's bag of items."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.models.deep import schema as S
from vidrec.models.deep.networks.base import Batch, RecModel, _rows

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
