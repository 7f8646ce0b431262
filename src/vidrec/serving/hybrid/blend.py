"""The blend: normalised component lists weighted per tier, new titles, seen items excluded, top-N."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vidrec.config.sections import SCORE_NORMS, HybridConf, to_mapping
from vidrec.constants import (
    ALGO_CONTENT,
    ALGO_HYBRID,
    ALGO_POPULARITY,
    COL_CONFIDENCE,
    COL_ITEM_IDX,
    COL_RANK,
    COL_SCORE,
    COL_USER_IDX,
)
from vidrec.data.frames import materialise
from vidrec.models import registry
from vidrec.models.base import Candidates, FitContext, model_version
from vidrec.models.content import item_vectors
from vidrec.models.itemknn import rank_per_user
from vidrec.models.topn import top_n_from_factors
from vidrec.serving.hybrid.common import (
    _ALGO,
    _NORM,
    _TOP,
    _WEIGHT,
    COL_TIER,
    FILL_WEIGHT,
    NEW_ITEMS,
    SEGMENT,
    TIER_COLD,
    TIER_NEW,
    TIER_WARM,
    BlendChoice,
    WeightChooser,
    log,
)
from vidrec.serving.hybrid.explain import _reasons
from vidrec.serving.hybrid.rerank import maturity_filter, rerank_lists
from vidrec.serving.hybrid.routing import segment_popularity, user_tiers

# --- blending -----------------------------------------------------------------------------------


def normalise_scores(recs: DataFrame, method: str = "rrf", rrf_k: int = 60) -> DataFrame:
    """``(user_idx, item_idx, _norm)``: a generator's scores made comparable across generators.

    ``rrf``: ``(rrf_k + 1) / (rrf_k + rank)`` (1 at rank 1); ``minmax``: ``(s - min) / (max - min)``
    per user (1 where all scores are equal).
    """
    if method == "rrf":
        norm = F.lit(float(rrf_k + 1)) / (F.lit(float(rrf_k)) + F.col(COL_RANK))
        return recs.select(COL_USER_IDX, COL_ITEM_IDX, norm.alias(_NORM))
    if method == "minmax":
        w = Window.partitionBy(COL_USER_IDX)
        lo, hi = F.min(COL_SCORE).over(w), F.max(COL_SCORE).over(w)
        norm = F.when(hi > lo, (F.col(COL_SCORE) - lo) / (hi - lo)).otherwise(F.lit(1.0))
        return recs.select(COL_USER_IDX, COL_ITEM_IDX, norm.alias(_NORM))
    raise ValueError(f"score normalisation must be one of {SCORE_NORMS}, got {method!r}")


def weight_table(spark: SparkSession, rows: list[tuple[str, str, float]]) -> DataFrame:
    """``(tier, _algo, _weight)`` of :func:`weight_rows`: each component's weight in each tier."""
    return spark.createDataFrame(rows, f"{COL_TIER} string, {_ALGO} string, {_WEIGHT} double")


def weight_rows(
    weights: Mapping[str, float], cold_weights: Mapping[str, float]
) -> list[tuple[str, str, float]]:
    """The rows of :func:`weight_table`: ``(tier, algorithm, weight)``, zero weights left out.

    ``popularity`` in ``cold_weights`` is the segment list; the ``new`` tier is the segment list alone.
    """
    rows: list[tuple[str, str, float]] = [(TIER_NEW, SEGMENT, 1.0)]
    for algo, w in weights.items():
        if w > 0 and algo != SEGMENT:
            rows.append((TIER_WARM, algo, float(w)))
    rows.append((TIER_WARM, SEGMENT, FILL_WEIGHT))
    cold_segment = FILL_WEIGHT
    for algo, w in cold_weights.items():
        if algo in (ALGO_POPULARITY, SEGMENT):
            cold_segment = max(float(w), FILL_WEIGHT)
        elif w > 0:
            rows.append((TIER_COLD, algo, float(w)))
    rows.append((TIER_COLD, SEGMENT, cold_segment))
    return rows


def contributions(
    candidates: Mapping[str, DataFrame], tiers: DataFrame, method: str = "rrf", rrf_k: int = 60
) -> DataFrame:
    """``(user_idx, item_idx, _algo, _norm, tier)``: every normalised candidate with its user's tier.

    Parameters
    ----------
    candidates : mapping
        Component name -> candidate recs ``(user_idx, item_idx, score, rank)``.
    tiers : DataFrame
        From :func:`user_tiers`; users outside it are dropped.
    """
    frames = [
        normalise_scores(recs, method, rrf_k).withColumn(_ALGO, F.lit(name))
        for name, recs in candidates.items()
    ]
    if not frames:
        raise ValueError("hybrid: no candidate lists to blend")
    union = frames[0]
    for f in frames[1:]:
        union = union.unionByName(f)
    return union.join(tiers.select(COL_USER_IDX, COL_TIER), COL_USER_IDX)


def blend_scores(contribs: DataFrame, weights: DataFrame) -> DataFrame:
    """``(user_idx, item_idx, score, _top)``: weighted sums of normalised scores per (user, item).

    ``_top`` names the component that contributed most (for the explanation).
    """
    part = contribs.join(F.broadcast(weights), [COL_TIER, _ALGO]).withColumn(
        "_c", F.col(_WEIGHT) * F.col(_NORM)
    )
    return part.groupBy(COL_USER_IDX, COL_ITEM_IDX).agg(
        F.sum("_c").alias(COL_SCORE), F.max_by(_ALGO, F.struct(F.col("_c"), F.col(_ALGO))).alias(_TOP)
    )


def _window_days(ctx: FitContext) -> int:
    return ctx.conf.popularity.window_days


def new_item_ids(interactions: DataFrame, items: DataFrame, max_users: int) -> DataFrame:
    """``item_idx`` of catalog items with at most ``max_users`` users of positive interaction.

    These are the titles too new to have an audience: collaborative generators cannot rank them,
    content similarity can (:func:`new_item_list`).
    """
    audience = (
        interactions.where(F.col(COL_CONFIDENCE) > 0)
        .groupBy(COL_ITEM_IDX)
        .agg(F.countDistinct(COL_USER_IDX).alias("_aud"))
    )
    return (
        items.select(COL_ITEM_IDX)
        .distinct()
        .join(audience, COL_ITEM_IDX, "left")
        .where(F.coalesce(F.col("_aud"), F.lit(0)) <= F.lit(int(max_users)))
        .select(COL_ITEM_IDX)
    )


def _content_vectors(ctx: FitContext, content: Candidates | None) -> tuple[DataFrame, DataFrame]:
    """The content model's ``item_vectors`` and ``user_profiles`` when it was fitted, else built (lazily)."""
    from vidrec.models.content import user_profiles

    cc = ctx.conf.content
    vectors = content.artifacts.get("item_vectors") if content is not None else None
    profiles = content.artifacts.get("user_profiles") if content is not None else None
    if vectors is None:
        vectors = item_vectors(ctx.items, cc)
    if profiles is None:
        profiles = user_profiles(ctx.interactions, vectors, float(cc.half_life_days), users=ctx.target_users)
    return vectors, profiles


def new_item_list(ctx: FitContext, content: Candidates | None, new_items: DataFrame, slots: int) -> DataFrame:
    """Each target user's ``slots`` best new items by content cosine: ``(user_idx, item_idx, score, rank)``.

    Uses the content generator's ``item_vectors`` and ``user_profiles`` when it was fitted (else
    builds them). Users without a profile (no positive item) get no row.
    """
    vectors, profiles = _content_vectors(ctx, content)
    fresh = vectors.join(new_items.select(COL_ITEM_IDX), COL_ITEM_IDX, "left_semi")
    targets = profiles.join(ctx.target_users.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
    block = ctx.conf.recommend.user_block_size
    return top_n_from_factors(ctx.spark, targets, fresh, ctx.seen, int(slots), block_size=block)


#: Each user's best unwatched titles searched for the placement (:func:`new_title_placements`): a title's
#: best-matching users are found among the users it is one of the best this many for (exact while the
#: catalog has at most this many unwatched titles).
NEW_TITLE_SEARCH = 50

#: Candidate users per unwatched title handed to the allocation, as a multiple of its reach (at most
#: the number of unwatched titles): room for the users that better-matching titles already took, as
#: when several new titles are near copies of each other (same genres, years) and want the same users.
NEW_TITLE_CANDIDATES = 20


def allocate_new_titles(candidates: pd.DataFrame, reach: int, slots: int) -> pd.DataFrame:
    """Greedy allocation of unwatched titles to users, fair across titles.

    ``candidates`` ``(user_idx, item_idx, score)``: Round ``r`` gives every title its ``r``-th best
    candidate (titles in order of that candidate's score) unless the title already has ``reach``
    users or the user ``slots`` titles. So every title with a free candidate reaches at least one
    user, and a user wanted by several titles goes to the one it matches best in the earliest round.
    Returns the chosen rows, same columns.
    """
    if candidates.empty:
        return candidates
    df = candidates.sort_values([COL_ITEM_IDX, COL_SCORE, COL_USER_IDX], ascending=[True, False, True])
    df = df.assign(_r=df.groupby(COL_ITEM_IDX).cumcount())
    df = df.sort_values(["_r", COL_SCORE, COL_ITEM_IDX, COL_USER_IDX], ascending=[True, False, True, True])
    taken: dict[int, int] = {}
    given: dict[int, int] = {}
    keep = []
    for k, (user, item) in enumerate(
        zip(df[COL_USER_IDX].to_numpy(), df[COL_ITEM_IDX].to_numpy(), strict=True)
    ):
        if given.get(item, 0) < reach and taken.get(user, 0) < slots:
            given[item] = given.get(item, 0) + 1
            taken[user] = taken.get(user, 0) + 1
            keep.append(k)
    return df.iloc[keep][list(candidates.columns)]


def new_title_placements(
    ctx: FitContext, content: Candidates | None, hc: HybridConf, n: int
) -> DataFrame | None:
    """``(user_idx, item_idx, score)``: where the lists must show a title nobody has watched yet.

    An *unwatched* title is a catalog item without a positive training interaction. Each one is
    placed in the lists of the target users whose content taste profile matches it best (cosine of
    :func:`vidrec.models.content.user_profiles` and the title's content vector), under two caps from
    ``hybrid``: ``new_title_share`` of the places up to rank ``min(n, new_title_rank)`` of all lists
    goes to placements, split evenly over the unwatched titles (each reaches at least one user), and
    no list gets more than ``new_item_slots`` placed titles (:func:`allocate_new_titles`, on the
    driver: at most ``min(titles, NEW_TITLE_CANDIDATES)`` x reach candidates per title, so at most
    ``NEW_TITLE_CANDIDATES x new_title_share x new_title_rank`` rows per user, 2 by default). Users
    without a profile, pairs the maturity filter forbids and users whose profile shares nothing with
    the title (cosine 0) are never placements. ``None`` when ``new_title_share`` is 0 or nothing is unwatched.
    """
    share = float(hc.new_title_share)
    if share <= 0:
        return None
    vectors, profiles = _content_vectors(ctx, content)
    unwatched = vectors.join(new_item_ids(ctx.interactions, ctx.items, 0), COL_ITEM_IDX, "left_semi")
    unwatched = materialise(unwatched)
    titles = unwatched.count()
    if titles == 0:
        return None
    wanted = ctx.target_users.select(COL_USER_IDX).distinct()
    targets = materialise(profiles.join(wanted, COL_USER_IDX, "left_semi"))
    users = targets.count()
    if users == 0:
        return None
    slots = int(hc.new_item_slots)
    places = min(int(n), int(hc.new_title_rank))
    reach = max(1, math.floor(share * users * places / titles))
    block = ctx.conf.recommend.user_block_size
    best = top_n_from_factors(
        ctx.spark, targets, unwatched, ctx.seen, max(slots, NEW_TITLE_SEARCH), block_size=block
    ).where(F.col(COL_SCORE) > 0)
    best = maturity_filter(best, ctx.users, ctx.items, hc.restricted_age_bands, hc.restricted_ratings)
    per_title = Window.partitionBy(COL_ITEM_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_USER_IDX))
    candidates = (
        best.withColumn("_r", F.row_number().over(per_title))
        .where(F.col("_r") <= reach * min(titles, NEW_TITLE_CANDIDATES))
        .select(COL_USER_IDX, COL_ITEM_IDX, COL_SCORE)
        .toPandas()
    )
    chosen = allocate_new_titles(candidates, reach, slots)
    reached = int(chosen[COL_ITEM_IDX].nunique()) if not chosen.empty else 0
    log.info(
        "hybrid: %d unwatched title(s), each placed in the top %d of up to %d best-matching user(s) "
        "(new_title_share %.3g of %d lists; at most %d per list): %d placement(s), %d title(s) placed",
        titles,
        places,
        reach,
        share,
        users,
        slots,
        len(chosen),
        reached,
    )
    schema = f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_SCORE} double"
    return ctx.spark.createDataFrame(chosen.astype({COL_USER_IDX: "int32", COL_ITEM_IDX: "int32"}), schema)


def place_new_titles(recs: DataFrame, placed: DataFrame, n: int, rank: int) -> DataFrame:
    """``recs`` with each user's ``placed`` titles in the places ending at ``min(n, rank)``.

    A placed title already in the user's top ``min(n, rank)`` keeps its place. The others (``m`` of
    them, best match first; moved up when they are further down the list) take the places just before
    ``min(rank, length + m)``; the items from there on move down and those past ``n`` drop out. A
    placed title gets the score of the item just above it (the first item's when it is placed first),
    so scores stay non-increasing with rank. Users without placements keep their list; a placement of
    a user without a list is dropped.
    """
    end = min(int(n), int(rank))
    pair = [COL_USER_IDX, COL_ITEM_IDX]
    top = recs.where(F.col(COL_RANK) <= F.lit(end)).select(*pair)
    missing = placed.join(top, pair, "left_anti").join(recs.select(COL_USER_IDX).distinct(), COL_USER_IDX)
    by_score = Window.partitionBy(COL_USER_IDX).orderBy(F.col(COL_SCORE).desc(), F.col(COL_ITEM_IDX))
    missing = missing.withColumn("_j", F.row_number().over(by_score))
    by_rank = Window.partitionBy(COL_USER_IDX).orderBy(F.col(COL_RANK))
    rest = recs.join(missing.select(*pair), pair, "left_anti").withColumn("_p", F.row_number().over(by_rank))
    length = F.coalesce(F.col("_len"), F.lit(0))
    info = (
        missing.groupBy(COL_USER_IDX)
        .agg(F.max("_j").alias("_m"))
        .join(rest.groupBy(COL_USER_IDX).agg(F.count("*").alias("_len")), COL_USER_IDX, "left")
        .select(COL_USER_IDX, "_m", (F.least(F.lit(end), length + F.col("_m")) - F.col("_m")).alias("_cut"))
    )
    marked = rest.join(info, COL_USER_IDX, "left")
    key = F.when(F.col("_m").isNull() | (F.col("_p") <= F.col("_cut")), F.col("_p")).otherwise(
        F.col("_p") + F.col("_m")
    )
    floor = marked.where(F.col("_p") == F.greatest(F.col("_cut"), F.lit(1))).select(
        COL_USER_IDX, F.col(COL_SCORE).alias("_floor")
    )
    added = (
        missing.join(info, COL_USER_IDX)
        .join(floor, COL_USER_IDX, "left")
        .select(
            COL_USER_IDX,
            COL_ITEM_IDX,
            F.coalesce(F.col("_floor"), F.col(COL_SCORE)).alias(COL_SCORE),
            (F.col("_cut") + F.col("_j")).alias("_key"),
        )
    )
    merged = marked.select(COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, key.alias("_key")).unionByName(added)
    by_key = Window.partitionBy(COL_USER_IDX).orderBy(F.col("_key"))
    ranked = merged.withColumn(COL_RANK, F.row_number().over(by_key)).where(F.col(COL_RANK) <= F.lit(int(n)))
    return ranked.select(*recs.columns)


def _prepared(
    ctx: FitContext,
    candidates: Mapping[str, Candidates],
    hc: HybridConf,
    n: int,
    new_items: DataFrame | None = None,
    used: Collection[str] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Tiers and contributions of ``ctx.target_users``, both materialised.

    The contributions hold every candidate list (only those named in ``used``, when given: a list
    with no weight in any tier would be joined and then dropped by the weights), the segment popular
    list and, when ``new_items`` is given, each user's best new items (:func:`new_item_list`).
    """
    targets = ctx.target_users.select(COL_USER_IDX).distinct()
    tiers = materialise(user_tiers(ctx.interactions, targets, int(hc.cold_start_max_events)))
    segment = segment_popularity(
        ctx.events, ctx.users, targets, ctx.seen, n, int(hc.min_segment_users), _window_days(ctx)
    )
    lists = {name: cand.recs for name, cand in candidates.items() if used is None or name in used}
    lists[SEGMENT] = segment
    if new_items is not None:
        lists[NEW_ITEMS] = new_item_list(ctx, candidates.get(ALGO_CONTENT), new_items, int(hc.new_item_slots))
    contribs = materialise(contributions(lists, tiers, hc.score_norm, int(hc.rrf_k)))
    return tiers, contribs


def _uses_new_items(warm: Mapping[str, float], hc: HybridConf) -> bool:
    return warm.get(NEW_ITEMS, 0.0) > 0 or float(hc.cold_weights.get(NEW_ITEMS, 0.0)) > 0


def blend(
    ctx: FitContext,
    candidates: Mapping[str, Candidates],
    weights: Mapping[str, float] | None = None,
    conf: HybridConf | None = None,
) -> Candidates:
    """One hybrid list per target user from the generators' ``candidates`` (see the module docstring).

    Parameters
    ----------
    ctx : FitContext
        Training data of the split (``events`` and ``users`` for segment popularity, ``items`` for
        genres, maturity and titles), ``target_users``, ``seen`` and the list length ``n``.
        ``ctx.explain = False`` skips the explanations (evaluation does not need them).
    candidates : mapping
        Algorithm name -> its :class:`Candidates` for (a superset of) the target users. The
        ``item_vectors``/``user_profiles`` artifacts of ``content`` (new items, content neighbours)
        and the ``neighbours`` of ``itemknn`` (explanations) are reused when present.
    weights : mapping, optional
        Warm-tier weight per algorithm (and ``new_items``); default ``hybrid.weights``.
    conf : HybridConf, optional
        The ``hybrid`` section; default ``ctx.conf.hybrid``.

    Returns
    -------
    Candidates
        ``recs`` under the generator contract; ``artifacts["tiers"]``; unless explanations are off,
        ``artifacts["reasons"]`` ``(user_idx, item_idx, reason)`` with one non-null reason per row
        of ``recs``.
    """
    hc = conf if conf is not None else ctx.conf.hybrid
    warm = {str(k): float(v) for k, v in (weights if weights is not None else hc.weights).items()}
    n = ctx.n
    fresh = (
        materialise(new_item_ids(ctx.interactions, ctx.items, int(hc.new_item_max_users)))
        if _uses_new_items(warm, hc)
        else None
    )
    rows = weight_rows(warm, hc.cold_weights)
    used = {algo for _, algo, _ in rows}  # lists with a weight somewhere
    tiers, contribs = _prepared(ctx, candidates, hc, max(n * int(hc.rerank_pool), n), fresh, used)
    table = weight_table(ctx.spark, rows)
    scored = blend_scores(contribs, table).join(
        ctx.seen.select(COL_USER_IDX, COL_ITEM_IDX), [COL_USER_IDX, COL_ITEM_IDX], "left_anti"
    )
    scored = materialise(
        maturity_filter(scored, ctx.users, ctx.items, hc.restricted_age_bands, hc.restricted_ratings)
    )
    lam, cap = float(hc.mmr_lambda), int(hc.max_per_genre)
    if lam < 1.0 or cap > 0:
        recs = rerank_lists(scored.drop(_TOP), ctx.items, n, lam, cap, n * int(hc.rerank_pool))
    else:
        recs = rank_per_user(scored.drop(_TOP), n)
    placed = new_title_placements(ctx, candidates.get(ALGO_CONTENT), hc, n)
    if placed is not None:
        recs = place_new_titles(recs, placed, n, int(hc.new_title_rank))
        # a placed title's explanation names it as new (and its genre), like the new-title slot's
        tops = placed.select(COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, F.lit(NEW_ITEMS).alias(_TOP))
        scored = scored.join(placed, [COL_USER_IDX, COL_ITEM_IDX], "left_anti").unionByName(tops)
        unwatched = placed.select(COL_ITEM_IDX).distinct()
        fresh = unwatched if fresh is None else fresh.unionByName(unwatched).distinct()
    recs = materialise(recs)
    params = {
        **{k: v for k, v in to_mapping(hc).items() if k != "weights"},
        "weights": warm,
        "components": {name: cand.model_version for name, cand in sorted(candidates.items())},
    }
    version = model_version(ALGO_HYBRID, ctx.run_date, params)
    artifacts: dict[str, DataFrame] = {"tiers": tiers}
    if ctx.explain:
        artifacts["reasons"] = _reasons(ctx, candidates, hc, recs, scored, tiers, fresh)
    return Candidates(recs, version, artifacts)


# --- the generator ------------------------------------------------------------------------------


def blended_components(hc: HybridConf, allowed: Collection[str] | None = None) -> list[str]:
    """The generators the hybrid blends (a positive weight), of ``allowed`` when given (the night's
    ``models``): a weighted generator not allowed is left out with a warning, not fitted behind the
    user's back."""
    names = hc.components()
    if allowed is None:
        return names
    left_out = [a for a in names if a not in allowed]
    if left_out:
        log.warning("hybrid: %s have a positive weight but are not in `models`: left out", left_out)
    return [a for a in names if a in allowed]


def searched_lists(hc: HybridConf, components: Sequence[str]) -> list[str]:
    """The lists whose weights a chooser searches, of the hybrid's fitted ``components``.

    The new-items list is weighed too; titles nobody has watched are placed (``new_title_share``).
    """
    return [a for a in components if a in hc.weights] + ([NEW_ITEMS] if NEW_ITEMS in hc.weights else [])


def generate_hybrid(
    ctx: FitContext,
    candidates: Mapping[str, Candidates] | None = None,
    components: Sequence[str] | None = None,
    choose_weights: WeightChooser | None = None,
) -> Candidates:
    """The hybrid as a generator: fit the components, optionally tune the weights, :func:`blend`.

    Components already fitted on the same context can be passed as ``candidates`` (name ->
    :class:`Candidates`, e.g. by the nightly recommend stage) and are not refitted; the others are
    fitted here with lists of ``max(n, hybrid.pool_n)``. ``components``, when given (the nightly
    passes ``models``), limits the components to those names: a weighted generator not among them is
    left out with a warning rather than fitted behind the user's back.
    With ``hybrid.tune_weights``, ``choose_weights`` picks the warm weights, the normalisation and
    ``rrf_k`` (a :class:`BlendChoice`): the offline evaluation passes
    :func:`vidrec.evaluation.blend_weights.choose_weights` (chosen on a validation carve of ``ctx``),
    the served list :func:`vidrec.evaluation.blend_weights.stored_chooser` (the latest stored choice).
    Without a chooser (or with ``tune_weights`` off) the blend is the configured one.
    """
    hc = ctx.conf.hybrid
    given: Mapping[str, Candidates] = candidates or {}
    names = blended_components(hc, components)
    pool_ctx = dataclasses.replace(ctx, n=max(ctx.n, int(hc.pool_n)))
    cands = {name: given[name] if name in given else registry.get(name)(pool_ctx) for name in names}
    weights = hc.weights
    if hc.tune_weights and choose_weights is not None:
        k = ctx.conf.evaluation.k
        choice: BlendChoice = choose_weights(ctx, searched_lists(hc, list(cands)), k=k, conf=hc)
        weights = {**weights, **choice.weights}
        hc = dataclasses.replace(hc, score_norm=choice.score_norm, rrf_k=int(choice.rrf_k))
        log.info("hybrid: blending with %s (%s, rrf_k %d)", choice.weights, choice.score_norm, choice.rrf_k)
    return blend(ctx, cands, weights, hc)
