"""The hybrid list a product serves: cold-start routing, weighted blending, re-ranking, filters, reasons.

:func:`blend` turns the candidate lists of several generators into one list per target user
(``algorithm = 'hybrid'``):

1. **Normalise** each generator's scores per user (:func:`normalise_scores`): reciprocal-rank
   fusion ``(rrf_k + 1) / (rrf_k + rank)`` (default; 1 at rank 1, scale-free) or per-user min-max.
2. **Route by history** (:func:`user_tiers`): the user's positive training interactions
   (``silver/interactions`` rows with ``confidence > 0``) put them in a tier —
   ``new`` (0): their segment's popular list (:func:`segment_popularity`: country, else age band,
   else overall, whichever first has ``min_segment_users`` engaged users);
   ``cold`` (1..``cold_start_max_events``): ``cold_weights`` (content and item-kNN neighbours of
   their few items blended with the segment's popular list);
   ``warm``: ``weights`` over every generator. The segment list also fills every tier's list at a
   weight of :data:`FILL_WEIGHT`, so a list is short only when the catalog runs out. A user with a
   taste profile also gets their ``new_item_slots`` best **new items** (at most
   ``new_item_max_users`` users engaged with them in training) by content cosine
   (:func:`new_item_list`), weighted by ``weights["new_items"]`` (learned with the other warm
   weights) / ``cold_weights["new_items"]``; titles nobody has watched yet are placed (step 6).
3. **Blend**: ``score(u, i) = sum_g weight(tier(u), g) * norm_g(u, i)``; seen pairs excluded.
4. **Filter**: items whose ``maturity_rating`` is in ``restricted_ratings`` are never shown to a
   user whose ``age_band`` is in ``restricted_age_bands`` (an unknown age band is not restricted).
5. **Re-rank** (:func:`rerank`), when ``mmr_lambda < 1`` or ``max_per_genre > 0``: greedy maximal
   marginal relevance over the top ``rerank_pool * n`` items, ``lambda * rel(i) - (1 - lambda) *
   max_{j chosen} jaccard(genres_i, genres_j)`` with ``rel = score / max score``, skipping items
   that would put a genre over ``max_per_genre``. The greedy values never increase, so they are
   the scores of the re-ranked list.
6. **Place unwatched titles** (:func:`new_title_placements`, :func:`place_new_titles`): a title nobody
   has watched yet goes into the top ``new_title_rank`` of the users whose content taste profile
   matches it best, whatever the learned blend's scale: ``new_title_share`` of those places over all
   lists, split evenly over the titles (:func:`allocate_new_titles`: each reaches at least one user),
   at most ``new_item_slots`` per list.
7. **Explain** (:func:`explain`): one ``reason`` per row, returned as
   ``Candidates.artifacts["reasons"]`` ``(user_idx, item_idx, reason)``.

Modules: :mod:`.common` (tiers, component names, the conf section), :mod:`.routing` (tiers and
segment lists), :mod:`.blend` (normalisation, weights, new titles, :func:`blend`,
:func:`generate_hybrid`), :mod:`.rerank` (maturity filter, MMR), :mod:`.explain` (reasons). The warm
weights can be chosen on a validation split by the evaluation layer
(:func:`vidrec.evaluation.blend_weights.choose_weights`, on by default through ``hybrid.tune_weights``),
which :func:`generate_hybrid` takes as an argument (a :data:`WeightChooser` returning a
:class:`BlendChoice`): serving never imports evaluation.
"""

from __future__ import annotations

from vidrec.data.frames import materialise
from vidrec.serving.hybrid.blend import (
    allocate_new_titles,
    blend,
    blend_scores,
    blended_components,
    contributions,
    generate_hybrid,
    new_item_ids,
    new_item_list,
    new_title_placements,
    normalise_scores,
    place_new_titles,
    searched_lists,
    weight_table,
)
from vidrec.serving.hybrid.common import (
    COL_N_POSITIVE,
    COL_TIER,
    FILL_WEIGHT,
    NEW_ITEMS,
    SEGMENT,
    TIER_COLD,
    TIER_NEW,
    TIER_WARM,
    BlendChoice,
    WeightChooser,
)
from vidrec.serving.hybrid.explain import anchors, explain, user_top_genre
from vidrec.serving.hybrid.rerank import maturity_filter, rerank, rerank_lists
from vidrec.serving.hybrid.routing import OVERALL, SEGMENT_LEVELS, segment_popularity, user_tiers

__all__ = [
    "allocate_new_titles",
    "COL_N_POSITIVE",
    "COL_TIER",
    "FILL_WEIGHT",
    "NEW_ITEMS",
    "OVERALL",
    "SEGMENT",
    "SEGMENT_LEVELS",
    "TIER_COLD",
    "TIER_NEW",
    "TIER_WARM",
    "BlendChoice",
    "WeightChooser",
    "anchors",
    "blend",
    "blend_scores",
    "blended_components",
    "contributions",
    "explain",
    "generate_hybrid",
    "materialise",
    "maturity_filter",
    "new_item_ids",
    "new_item_list",
    "new_title_placements",
    "place_new_titles",
    "normalise_scores",
    "rerank",
    "searched_lists",
    "rerank_lists",
    "segment_popularity",
    "user_tiers",
    "user_top_genre",
    "weight_table",
]
