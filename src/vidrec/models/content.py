"""Content-based recommendations: item vectors from catalog metadata, user taste profiles, cosine top-N.

Item vectors (:func:`item_vectors`), all in Spark:

1. tokens per item and field (:func:`item_tokens`): ``genres``, ``cast``, ``directors`` (one token per
   list entry), the release-year bucket (``release_year`` floored to ``year_bucket`` years), the
   ``language`` and the tokens of the ``description`` (:mod:`vidrec.data.text`: Latin words
   lower-cased, Chinese/Japanese/Korean runs as character unigrams and bigrams; stop words and Latin
   words shorter than ``min_token_length`` dropped);
2. TF-IDF per token (:func:`tfidf`): ``tf`` = occurrences in the item, ``idf = ln((N + 1) / (df + 1))``
   with ``N`` the catalog size (Spark ML's ``IDF`` formula: a token every item has weighs 0); each
   field's sub-vector is L2-normalised and multiplied by its ``field_weights`` entry, so a field's
   share of a cosine does not depend on how many tokens it has;
3. a dense reduction by **signed feature hashing** (Weinberger et al., 2009; :func:`hashed_slots`):
   token ``t`` adds ``sign(t) * w`` to coordinate ``xxhash64(field, t) mod dim``. Inner products are
   preserved in expectation, collisions add noise of order ``1 / sqrt(dim)``; ``dim`` (default 256)
   bounds the broadcast of :func:`vidrec.models.topn.top_n_from_factors` to ``4 * dim`` bytes per item;
4. the text part L2-normalised, then concatenated with the L2-normalised ``visual_embedding`` and
   ``audio_embedding`` times ``embedding_weight`` when the catalog has them (an item whose embedding
   is null or not of the column's most common length gets zeros there), and the whole vector
   L2-normalised.

An item with no usable metadata at all has a zero vector and is left out: it cannot be
content-recommended and has no content neighbours (a sensible absence, not an error). Items nobody
has watched get vectors like any other, so new items are recommended from the first night.

User profile (:func:`user_profiles`): the weighted mean of the vectors of the user's positive
interactions (``confidence > 0``) with weight ``confidence * 0.5 ** (age_days / half_life_days)``,
``age_days`` counted back from the latest ``last_ts`` of the training data, L2-normalised; computed per
Arrow batch of users (their ``(item, weight)`` lists against the broadcast item vectors, summed in
NumPy) rather than by Spark's vector aggregation, which cost 10 times as much. Scores are
cosines (dot products of unit vectors) computed by :func:`vidrec.models.topn.top_n_from_factors`. Users with
no positive interaction (or whose items all lack vectors) get no list here; the hybrid serves them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vidrec.config.sections import ContentConf
from vidrec.constants import (
    ALGO_CONTENT,
    COL_AUDIO_EMB,
    COL_CAST,
    COL_CONFIDENCE,
    COL_DESCRIPTION,
    COL_DIRECTORS,
    COL_GENRES,
    COL_ITEM_IDX,
    COL_LANGUAGE,
    COL_LAST_TS,
    COL_RANK,
    COL_RELEASE_YEAR,
    COL_SCORE,
    COL_USER_IDX,
    COL_VISUAL_EMB,
)
from vidrec.data.frames import materialise
from vidrec.data.text import tokens_column
from vidrec.models.base import Candidates, FitContext, model_version
from vidrec.models.sparse import sorted_positions
from vidrec.models.topn import COL_FEATURES, top_n_from_factors

if TYPE_CHECKING:
    import pandas as pd

#: Text fields, in the order tokens are built.
FIELDS: tuple[str, ...] = ("genres", "cast", "directors", "year", "language", "description")
#: Description words that say nothing about an item.
STOP_WORDS: frozenset[str] = frozenset(
    {
        "the", "and", "about", "with", "for", "from", "into", "over", "his", "her", "their", "its",
        "this", "that", "who", "when", "where", "what", "directed", "film", "series", "episode", "are",
        "was", "were", "has", "have", "not", "but", "all", "one", "out", "after", "before",
        # Chinese function words and description boilerplate (as unigrams and bigrams)
        "的", "了", "和", "与", "及", "是", "在", "也", "就", "都", "而", "被", "把", "让", "从",
        "对", "这", "那", "一", "一部", "部", "个", "一个", "关于", "讲述",
        "由", "执导", "电影", "剧集", "故事",
    }
)  # fmt: skip
#: Column of :func:`content_neighbours` and :func:`vidrec.models.itemknn.item_neighbours`: the similar item.
COL_NEIGHBOUR_IDX = "neighbour_idx"

_FIELD, _TOKEN, _TF, _W = "_field", "_token", "_tf", "_w"
_SLOT, _N = "_slot", "_n"
_IW = "_item_weight"
#: :func:`user_profiles`' rows.
PROFILES_SCHEMA = f"{COL_USER_IDX} int, {COL_FEATURES} array<float>"
SECONDS_PER_DAY = 86_400.0


def _list_tokens(items: DataFrame, field: str, col: str) -> DataFrame | None:
    if col not in items.columns:
        return None
    return items.select(COL_ITEM_IDX, F.lit(field).alias(_FIELD), F.explode(col).alias(_TOKEN))


def item_tokens(items: DataFrame, year_bucket: int = 5, min_token_length: int = 3) -> DataFrame:
    """``(item_idx, _field, _token, _tf)``: each item's metadata tokens and their counts.

    Missing columns, null lists, null or blank values give no token (never an error).

    Parameters
    ----------
    items : DataFrame
        The catalog with ``item_idx``; any of ``genres, cast, directors, release_year, language,
        description`` may be absent.
    year_bucket : int
        Years per release-year bucket.
    min_token_length : int
        Shorter Latin description words are dropped (Chinese, Japanese and Korean tokens are kept).
    """
    parts = [
        p
        for p in (
            _list_tokens(items, "genres", COL_GENRES),
            _list_tokens(items, "cast", COL_CAST),
            _list_tokens(items, "directors", COL_DIRECTORS),
        )
        if p is not None
    ]
    if COL_RELEASE_YEAR in items.columns:
        bucket = (F.floor(F.col(COL_RELEASE_YEAR) / year_bucket) * year_bucket).cast("int").cast("string")
        parts.append(items.select(COL_ITEM_IDX, F.lit("year").alias(_FIELD), bucket.alias(_TOKEN)))
    if COL_LANGUAGE in items.columns:
        parts.append(
            items.select(COL_ITEM_IDX, F.lit("language").alias(_FIELD), F.col(COL_LANGUAGE).alias(_TOKEN))
        )
    if COL_DESCRIPTION in items.columns:
        words = F.explode(tokens_column(COL_DESCRIPTION, min_token_length, STOP_WORDS))
        parts.append(items.select(COL_ITEM_IDX, F.lit("description").alias(_FIELD), words.alias(_TOKEN)))
    if not parts:
        spark = items.sparkSession
        return spark.createDataFrame([], f"{COL_ITEM_IDX} int, {_FIELD} string, {_TOKEN} string, {_TF} long")
    tokens = parts[0]
    for p in parts[1:]:
        tokens = tokens.unionByName(p)
    tokens = tokens.withColumn(_TOKEN, F.lower(F.trim(F.col(_TOKEN).cast("string"))))
    return (
        tokens.where(F.col(_TOKEN).isNotNull() & (F.col(_TOKEN) != ""))
        .groupBy(COL_ITEM_IDX, _FIELD, _TOKEN)
        .agg(F.count(F.lit(1)).alias(_TF))
    )


def tfidf(tokens: DataFrame, n_items: Column | int, field_weights: Mapping[str, float]) -> DataFrame:
    """``(item_idx, _field, _token, _w)``: TF-IDF weights, L2-normalised per (item, field), times the
    field's weight. Tokens of weight 0 (in every item, or of a field weighted 0) are dropped.

    Parameters
    ----------
    tokens : DataFrame
        From :func:`item_tokens`.
    n_items : Column or int
        Catalog size ``N`` of ``idf = ln((N + 1) / (df + 1))``.
    field_weights : mapping
        Field name -> weight; fields not named weigh 0.
    """
    n_col = n_items if isinstance(n_items, Column) else F.lit(int(n_items))
    pairs = [x for f, w in sorted(field_weights.items()) for x in (F.lit(f), F.lit(float(w)))]
    weights = F.create_map(*pairs)
    # tokens hold one row per (item, field, token), so a count over (field, token) is the df
    doc_freq = F.count(F.lit(1)).over(Window.partitionBy(_FIELD, _TOKEN))
    raw = tokens.withColumn(_W, F.col(_TF) * F.log((n_col + 1.0) / (doc_freq + 1.0))).where(F.col(_W) > 0)
    norm = F.sqrt(F.sum(F.col(_W) * F.col(_W)).over(Window.partitionBy(COL_ITEM_IDX, _FIELD)))
    field_weight = F.coalesce(F.element_at(weights, F.col(_FIELD)), F.lit(0.0))
    scaled = raw.withColumn(_W, F.col(_W) / norm * field_weight)
    return scaled.where(F.col(_W) > 0).select(COL_ITEM_IDX, _FIELD, _TOKEN, _W)


def hashed_slots(weights: DataFrame, dim: int) -> DataFrame:
    """``(item_idx, _slot int, _w double)``: signed feature hashing of TF-IDF weights into ``dim`` slots.

    Token ``t`` of field ``f`` adds ``s * w`` to slot ``xxhash64(f, t) mod dim`` with the sign ``s``
    from a second hash, so collisions cancel in expectation instead of piling up. Long form: one
    row per non-zero slot.
    """
    bucket = F.pmod(F.xxhash64(F.col(_FIELD), F.col(_TOKEN)), F.lit(dim)).cast("int")
    sign = F.when(
        F.pmod(F.xxhash64(F.lit("sign"), F.col(_FIELD), F.col(_TOKEN)), F.lit(2)) == 0, 1.0
    ).otherwise(-1.0)
    return (
        weights.withColumn(_SLOT, bucket)
        .groupBy(COL_ITEM_IDX, _SLOT)
        .agg(F.sum(sign * F.col(_W)).alias(_W))
        .where(F.col(_W) != 0)
    )


def normalise_slots(slots: DataFrame, scale: float = 1.0) -> DataFrame:
    """Long-form vectors ``(item_idx, _slot, _w)`` scaled to L2 norm ``scale`` per item (zeros dropped)."""
    norm = F.sqrt(F.sum(F.col(_W) * F.col(_W)).over(Window.partitionBy(COL_ITEM_IDX)))
    return (
        slots.withColumn("_norm", norm)
        .where(F.col("_norm") > 0)
        .select(COL_ITEM_IDX, _SLOT, (F.col(_W) / F.col("_norm") * F.lit(float(scale))).alias(_W))
    )


def embedding_slots(items: DataFrame, col: str, dim: int, offset: int) -> DataFrame:
    """``(item_idx, _slot, _w)`` of embedding ``col`` at slots ``offset..offset + dim - 1``; items whose
    embedding is null or not of length ``dim`` have none."""
    return (
        items.where(F.size(col) == dim)
        .select(COL_ITEM_IDX, F.posexplode(col).alias("_pos", _W))
        .select(
            COL_ITEM_IDX,
            (F.col("_pos") + offset).cast("int").alias(_SLOT),
            F.col(_W).cast("double").alias(_W),
        )
    )


def densify(slots: DataFrame, length: int) -> DataFrame:
    """``(item_idx, features array<float>)`` of length ``length`` from long-form ``(item_idx, _slot, _w)``."""
    maps = slots.groupBy(COL_ITEM_IDX).agg(
        F.map_from_entries(F.collect_list(F.struct(_SLOT, _W))).alias("_m")
    )
    dense = F.transform(
        F.sequence(F.lit(0), F.lit(length - 1)),
        lambda i: F.coalesce(F.element_at("_m", i), F.lit(0.0)).cast("float"),
    )
    return maps.select(COL_ITEM_IDX, dense.alias(COL_FEATURES))


def l2_normalise(col: Column) -> Column:
    """``col / ||col||`` for an array column; null where the norm is 0 (or the array null)."""
    norm = F.sqrt(F.aggregate(col, F.lit(0.0), lambda acc, x: acc + x.cast("double") * x.cast("double")))
    return F.when(norm > 0, F.transform(col, lambda x: x.cast("double") / norm))


def embedding_dims(items: DataFrame) -> dict[str, int]:
    """Length of each embedding column present in ``items``: its most common length (ties: the
    shortest), so one malformed row cannot change every item's vector. Absent or all-null columns
    are left out. One small Spark job when there is any embedding column."""
    cols = [c for c in (COL_VISUAL_EMB, COL_AUDIO_EMB) if c in items.columns]
    if not cols:
        return {}
    row = items.agg(*[F.mode(F.when(F.col(c).isNotNull(), F.size(c)), True).alias(c) for c in cols]).first()
    return {c: int(row[c]) for c in cols if row is not None and row[c] is not None and row[c] > 0}


def item_vectors(items: DataFrame, cc: ContentConf) -> DataFrame:
    """``(item_idx, features array<float>)``: unit-length content vectors of the catalog.

    Vectors are assembled in long form (one row per non-zero slot: the hashed text part in slots
    ``0..dim-1``, then each embedding) and made dense once at the end, so no array expression is
    nested in another.

    Parameters
    ----------
    items : DataFrame
        The catalog with ``item_idx`` (``silver/items`` columns, any of them may be absent).
    cc : ContentConf
        The ``content`` section.

    Returns
    -------
    DataFrame
        One row per item with any usable metadata; vectors of length ``dim`` plus the embedding
        lengths, L2 norm 1.
    """
    dim = int(cc.dim)
    catalog = items.dropDuplicates([COL_ITEM_IDX])
    n_items = catalog.agg(F.count(F.lit(1)).alias(_N))
    tokens = item_tokens(catalog, int(cc.year_bucket), int(cc.min_token_length))
    weights = tfidf(tokens.crossJoin(F.broadcast(n_items)), F.col(_N), cc.field_weights)
    slots = normalise_slots(hashed_slots(weights, dim))
    length = dim
    if float(cc.embedding_weight) > 0:
        for col, d in embedding_dims(catalog).items():
            emb = normalise_slots(embedding_slots(catalog, col, d, length), float(cc.embedding_weight))
            slots = slots.unionByName(emb)
            length += d
    return densify(normalise_slots(slots), length)


def recency_weight(half_life_days: float, col_ts: str = COL_LAST_TS, col_ref: str = "_ref") -> Column:
    """``0.5 ** (age_days / half_life_days)`` with ``age_days = col_ref - col_ts`` (floored at 1e-6)."""
    age_days = (F.col(col_ref).cast("double") - F.col(col_ts).cast("double")) / SECONDS_PER_DAY
    return F.greatest(
        F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(float(half_life_days))), F.lit(1e-6)
    )


def user_profiles(
    interactions: DataFrame,
    vectors: DataFrame,
    half_life_days: float = 30.0,
    users: DataFrame | None = None,
) -> DataFrame:
    """``(user_idx, features array<float>)``: unit-length taste profiles.

    Parameters
    ----------
    interactions : DataFrame
        ``(user_idx, item_idx, confidence, last_ts)``; rows with ``confidence > 0`` count.
    vectors : DataFrame
        ``(item_idx, features)`` from :func:`item_vectors`.
    half_life_days : float
        An interaction ``half_life_days`` older than the latest one weighs half as much.
    users : DataFrame, optional
        ``user_idx`` to build profiles for (default: everyone with a positive interaction).

    Returns
    -------
    DataFrame
        The confidence- and recency-weighted mean of the user's item vectors, L2-normalised; users
        whose items have no vector are left out.
    """
    pos = interactions.where(F.col(COL_CONFIDENCE) > 0).select(
        COL_USER_IDX, COL_ITEM_IDX, COL_CONFIDENCE, COL_LAST_TS
    )
    ref = pos.agg(F.max(COL_LAST_TS).alias("_ref"))
    if users is not None:
        pos = pos.join(users.select(COL_USER_IDX).distinct(), COL_USER_IDX, "left_semi")
    weighted = pos.crossJoin(F.broadcast(ref)).select(
        COL_USER_IDX,
        F.struct(COL_ITEM_IDX, (F.col(COL_CONFIDENCE) * recency_weight(half_life_days)).alias(_W)).alias(_IW),
    )
    spark = interactions.sparkSession
    catalog = cast("pd.DataFrame", vectors.select(COL_ITEM_IDX, COL_FEATURES).toPandas())
    if catalog.empty:
        return spark.createDataFrame([], PROFILES_SCHEMA)
    catalog = catalog.sort_values(COL_ITEM_IDX)
    bc_items = spark.sparkContext.broadcast(
        (
            catalog[COL_ITEM_IDX].to_numpy(dtype=np.int64),
            np.stack(catalog[COL_FEATURES].to_numpy()).astype(np.float32),
        )
    )

    def profiles(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        ids, vecs = bc_items.value
        for batch in batches:
            yield weighted_profiles(batch, ids, vecs)

    grouped = weighted.groupBy(COL_USER_IDX).agg(F.collect_list(_IW).alias(_IW))
    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    return grouped.mapInArrow(profiles, PROFILES_SCHEMA)  # type: ignore[arg-type]


def weighted_profiles(batch: pa.RecordBatch, ids: np.ndarray, vecs: np.ndarray) -> pa.RecordBatch:
    """Unit-length weighted sums of item vectors for one Arrow batch of ``(user_idx, [(item_idx, w)])``.

    ``ids`` (sorted) and ``vecs`` are the catalog's vectors; items without one are skipped, and users
    left with no weight or a zero sum are dropped. The sum is taken in float64 (:func:`segment_sums`)
    and normalised, so it equals the normalised weighted mean.
    """
    users = batch.column(COL_USER_IDX).to_numpy(zero_copy_only=False)
    lists = batch.column(_IW)
    lengths = lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    flat = lists.flatten()
    items = flat.field(COL_ITEM_IDX).to_numpy(zero_copy_only=False).astype(np.int64)
    weights = flat.field(_W).to_numpy(zero_copy_only=False).astype(np.float64)
    rows = np.repeat(np.arange(len(users)), lengths)
    pos = sorted_positions(ids, items)
    known = pos >= 0
    sums = segment_sums(rows[known], pos[known], weights[known], vecs, len(users))
    norms = np.sqrt(np.einsum("ij,ij->i", sums, sums))
    keep = norms > 0
    unit = (sums[keep] / norms[keep, None]).astype(np.float32)
    dim = vecs.shape[1]
    features = pa.FixedSizeListArray.from_arrays(pa.array(unit.ravel()), dim).cast(pa.list_(pa.float32()))
    return pa.RecordBatch.from_arrays(
        [pa.array(users[keep].astype(np.int32)), features], names=[COL_USER_IDX, COL_FEATURES]
    )


def segment_sums(
    rows: np.ndarray, pos: np.ndarray, weights: np.ndarray, vecs: np.ndarray, n_rows: int, chunk: int = 16_384
) -> np.ndarray:
    """``(n_rows, dim)`` float64: row ``r`` is the sum of ``weights[j] * vecs[pos[j]]`` over ``rows[j] == r``.

    ``rows`` must be sorted. Entries are gathered ``chunk`` at a time (bounded memory) and each run
    of one row is summed with ``np.add.reduceat``.
    """
    sums = np.zeros((n_rows, vecs.shape[1]))
    for start in range(0, len(rows), chunk):
        r = rows[start : start + chunk]
        contrib = vecs[pos[start : start + chunk]].astype(np.float64) * weights[start : start + chunk, None]
        runs = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        sums[r[runs]] += np.add.reduceat(contrib, runs, axis=0)  # r[runs] distinct: no lost update
    return sums


def content_neighbours(
    spark: SparkSession, vectors: DataFrame, n: int, block_size: int = 2048, use_gpu: bool = False
) -> DataFrame:
    """``(item_idx, neighbour_idx, score, rank)``: each item's ``n`` most cosine-similar other items.

    Items are scored like users by :func:`vidrec.models.topn.top_n_from_factors` (the item itself is the
    one "seen" pair), so items nobody watched have neighbours too.
    """
    as_users = vectors.select(F.col(COL_ITEM_IDX).alias(COL_USER_IDX), COL_FEATURES)
    itself = vectors.select(F.col(COL_ITEM_IDX).alias(COL_USER_IDX), COL_ITEM_IDX)
    top = top_n_from_factors(spark, as_users, vectors, itself, n, block_size=block_size, use_gpu=use_gpu)
    return top.select(
        F.col(COL_USER_IDX).alias(COL_ITEM_IDX),
        F.col(COL_ITEM_IDX).alias(COL_NEIGHBOUR_IDX),
        COL_SCORE,
        COL_RANK,
    )


def generate_content(ctx: FitContext) -> Candidates:
    """Content lists for the target users with a positive interaction (cosine of profile and item).

    Artifacts: ``item_vectors`` and ``user_profiles`` (``features array<float>``), reused by
    :func:`vidrec.models.itemknn.similar_items` and the hybrid's explanations.
    """
    cc = ctx.conf.content
    # checkpointed: the hybrid's new-title list and placements, the explanations and the similar items
    # read them again (a cached frame would ship its whole plan with each of their tasks)
    vectors = materialise(item_vectors(ctx.items, cc))
    profiles = materialise(
        user_profiles(ctx.interactions, vectors, float(cc.half_life_days), users=ctx.target_users)
    )
    recs = top_n_from_factors(
        ctx.spark,
        profiles,
        vectors,
        ctx.seen,
        ctx.n,
        block_size=ctx.conf.recommend.user_block_size,
        use_gpu=ctx.use_gpu,
    )
    version = model_version(ALGO_CONTENT, ctx.run_date, cc)
    return Candidates(recs, version, {"item_vectors": vectors, "user_profiles": profiles})
