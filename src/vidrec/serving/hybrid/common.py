"""Names shared by the hybrid's steps: tiers, internal component names, the weight chooser's type."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyspark.sql import DataFrame

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


#: ``choose(ctx, components, k=k, conf=hybrid section) -> (weights, validation ndcg@k)``: how the
#: warm weights are chosen when ``hybrid.tune_weights`` is on
#: (:func:`vidrec.evaluation.blend_weights.choose_weights`).
WeightChooser = Callable[..., tuple[dict[str, float], float]]


# --- the hybrid ---------------------------------------------------------------------------------


def materialise(df: DataFrame) -> DataFrame:
    """``df`` computed now and cut from its lineage (``localCheckpoint``).

    The blend stacks joins over every generator's plan; without the cut, the plans of later steps
    (explanations, metrics) grow with every reference to earlier ones and their planning and
    string rendering can exhaust the driver. Local checkpoints live in the executors' block
    managers, like a cache: a lost executor fails the job rather than recomputing.
    """
    return df.localCheckpoint(eager=True)
