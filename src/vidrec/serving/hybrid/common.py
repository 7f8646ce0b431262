"""Names shared by the hybrid's steps: tiers, internal component names, the weight chooser's type."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from vidrec.config.sections import HybridConf

log = logging.getLogger(__name__)


TIER_NEW, TIER_COLD, TIER_WARM = "new", "cold", "warm"

#: Internal component name of the segment popular list (``popularity`` in ``cold_weights``).
SEGMENT = "segment_popularity"

#: Component name of each user's best-matching new items (``new_items`` in ``weights``).
NEW_ITEMS = "new_items"

#: Weight of the segment popular list in every tier (fills lists, breaks exact ties).
FILL_WEIGHT = 1e-3

COL_TIER = "tier"

COL_N_POSITIVE = "n_positive"

_ALGO, _NORM, _WEIGHT, _TOP = "_algo", "_norm", "_weight", "_top"


@dataclasses.dataclass(frozen=True)
class BlendChoice:
    """The blend's warm weights, normalisation and ``rrf_k``, and where they come from.

    ``validation_ndcg`` (at ``k``, over ``validation_users``) and ``components`` (name -> model version
    of the lists it was chosen on) describe a learned choice; ``chosen_on`` is its run date and
    ``version`` its ``ops/blend_weights`` version once stored. A choice taken from the configuration
    (:meth:`from_conf`) has ``k`` 0 and no validation.
    """

    weights: dict[str, float]
    score_norm: str
    rrf_k: int
    validation_ndcg: float = float("nan")
    k: int = 0
    validation_users: int = 0
    components: dict[str, str] = dataclasses.field(default_factory=dict)
    chosen_on: str = ""
    version: str = ""

    @classmethod
    def from_conf(cls, hc: HybridConf, components: Sequence[str]) -> BlendChoice:
        """``hybrid.weights`` (of ``components``), ``score_norm`` and ``rrf_k`` as configured."""
        return cls({a: float(hc.weights.get(a, 0.0)) for a in components}, hc.score_norm, int(hc.rrf_k))

    def summary(self) -> dict[str, Any]:
        """The choice as a run log shows it: its version (``hybrid.weights`` for a configured one),
        weights, normalisation, ``rrf_k`` and, for a learned one, its validation NDCG and users."""
        out: dict[str, Any] = {
            "weights_version": self.version or "hybrid.weights",
            "weights": self.weights,
            "score_norm": self.score_norm,
            "rrf_k": self.rrf_k,
        }
        if self.k:
            out[f"validation_ndcg@{self.k}"] = round(self.validation_ndcg, 4)
            out["validation_users"] = self.validation_users
        return out


#: ``choose(ctx, components, k=k, conf=hybrid section) -> BlendChoice``: how the blend is chosen when
#: ``hybrid.tune_weights`` is on (the offline evaluation:
#: :func:`vidrec.evaluation.blend_weights.choose_weights`; the served list:
#: :func:`vidrec.evaluation.blend_weights.stored_chooser`).
WeightChooser = Callable[..., BlendChoice]
