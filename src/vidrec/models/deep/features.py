"""Training rows of the deep models: pure, lazy Spark transforms (no action, no I/O).

Every function takes DataFrames and returns a DataFrame; randomness comes from hashes of ids and a
seed, so the same input gives the same rows whatever the partitioning. A *positive* is an
interaction with ``confidence > 0``. Item arrays are padded with :data:`~vidrec.models.deep.schema.PAD_ITEM`.

- :func:`ncf_examples`: (user, item, label) with sampled negatives that are never positives;
- :func:`user_bags`: per-user bag of positive items (Mult-VAE);
- :func:`user_sequences`: per-user time-ordered items, truncated and left-padded (scoring SASRec, text);
- :func:`user_windows`: every user's whole history cut into such windows (training SASRec and GRU4Rec),
  and :func:`target_frequencies`: how often each item is a target in them (GRU4Rec's sampling-bias
  correction);
- :func:`cowatch_pairs`: items watched close together by a user (content encoder), and
  :func:`pair_frequencies`: how often each item occurs in them (its sampling-bias correction);
- :func:`item_tokens` / :func:`item_text` / :func:`item_content`: hashed metadata and text tokens, the
  title and description as a token sequence (the TextCNN's input), and media embeddings;
- :func:`training_frames` / :func:`scoring_frame`: what each model trains on and is scored with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.data.frames import number_in_one_task
from vidrec.data.text import tokens_column
from vidrec.models.deep import schema as S

_HASH_SCALE = 1_000_000


def positives(interactions: DataFrame) -> DataFrame:
    """``(user_idx, item_idx, first_ts, last_ts)`` of the interactions with ``confidence > 0``.

    Raises
    ------
    ValueError
        When a required column is missing.
    """
    _require(
        interactions,
        "interactions",
        [C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_CONFIDENCE, C.COL_FIRST_TS, C.COL_LAST_TS],
    )
    return interactions.where(F.col(C.COL_CONFIDENCE) > 0).select(
        F.col(C.COL_USER_IDX).cast("int").alias(C.COL_USER_IDX),
        F.col(C.COL_ITEM_IDX).cast("int").alias(C.COL_ITEM_IDX),
        C.COL_FIRST_TS,
        C.COL_LAST_TS,
    )


def hash_unit(cols: Sequence[str | Column], seed: int) -> Column:
    """A deterministic pseudo-random number in ``[0, 1)`` from ``cols`` and ``seed``."""
    exprs = [F.col(c) if isinstance(c, str) else c for c in cols]
    return F.pmod(F.xxhash64(*exprs, F.lit(seed)), F.lit(_HASH_SCALE)) / F.lit(float(_HASH_SCALE))


def split_by_hash(
    df: DataFrame, cols: Sequence[str], val_fraction: float, seed: int
) -> tuple[DataFrame, DataFrame]:
    """Split ``df`` into ``(train, val)``: val holds rows whose hash of ``cols`` is under ``val_fraction``.

    Rows with equal ``cols`` always land on the same side (split users by ``[user_idx]``).

    Raises
    ------
    ValueError
        When ``val_fraction`` is outside ``(0, 1)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    in_val = hash_unit(cols, seed) < F.lit(val_fraction)
    return df.where(~in_val), df.where(in_val)


def sample_negatives(
    pos: DataFrame, all_pos: DataFrame, candidates: DataFrame, num_negatives: int, seed: int
) -> DataFrame:
    """Up to ``num_negatives`` items per row of ``pos``, drawn uniformly from ``candidates``.

    A draw that is a positive of the user (in ``all_pos``) is dropped, as are repeated draws, so a
    negative is never a positive and appears once per user.

    Parameters
    ----------
    pos : DataFrame
        ``(user_idx, item_idx)`` rows to draw negatives for.
    all_pos : DataFrame
        ``(user_idx, item_idx)``: every positive of the users (train and validation).
    candidates : DataFrame
        ``(item_idx)`` to draw from (broadcast: catalog-sized).
    num_negatives : int
        Draws per row, ``>= 1``.
    seed : int

    Returns
    -------
    DataFrame
        ``(user_idx int, item_idx int)`` negatives.
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    # catalog-sized: numbered in one task on purpose
    distinct = candidates.select(F.col(C.COL_ITEM_IDX).cast("int").alias("_neg")).distinct()
    numbered = number_in_one_task(distinct, [F.col("_neg")], "_pos", start=0)
    size = numbered.agg(F.count(F.lit(1)).alias("_n"))
    draws = (
        pos.select(
            C.COL_USER_IDX, C.COL_ITEM_IDX, F.explode(F.sequence(F.lit(1), F.lit(num_negatives))).alias("_j")
        )
        .crossJoin(F.broadcast(size))
        .withColumn(
            "_pos", F.pmod(F.xxhash64(C.COL_USER_IDX, C.COL_ITEM_IDX, "_j", F.lit(seed)), F.col("_n"))
        )
        .join(F.broadcast(numbered), "_pos")
        .select(C.COL_USER_IDX, F.col("_neg").alias(C.COL_ITEM_IDX))
    )
    known = all_pos.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    return draws.join(known, [C.COL_USER_IDX, C.COL_ITEM_IDX], "left_anti").distinct()


def ncf_examples(
    pos: DataFrame, all_pos: DataFrame, candidates: DataFrame, num_negatives: int, seed: int
) -> DataFrame:
    """NeuMF rows: ``(user_idx int, item_idx int, label float)``, positives 1.0 and sampled negatives 0.0.

    See :func:`sample_negatives` for the negatives.
    """
    p = (
        pos.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
        .distinct()
        .withColumn(S.COL_LABEL, F.lit(1.0).cast("float"))
    )
    n = sample_negatives(pos, all_pos, candidates, num_negatives, seed).withColumn(
        S.COL_LABEL, F.lit(0.0).cast("float")
    )
    return p.unionByName(n).select(
        F.col(C.COL_USER_IDX).cast("int"), F.col(C.COL_ITEM_IDX).cast("int"), F.col(S.COL_LABEL).cast("float")
    )


def _pad_right(arr: Column, length: int, pad: Column) -> Column:
    cut = F.slice(arr, 1, length)
    return F.concat(cut, F.array_repeat(pad, F.lit(length) - F.size(cut)))


def _pad_left(arr: Column, length: int, pad: Column) -> Column:
    return F.concat(F.array_repeat(pad, F.lit(length) - F.size(arr)), arr)


def user_bags(pos: DataFrame, max_items: int) -> DataFrame:
    """Per-user bag of positive items: ``(user_idx int, items array<int>[max_items], length int)``.

    Keeps the ``max_items`` most recent positives (by ``last_ts``, ties by item), sorted by
    ``item_idx`` and right-padded with ``PAD_ITEM``.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    w = Window.partitionBy(C.COL_USER_IDX).orderBy(F.col(C.COL_LAST_TS).desc(), F.col(C.COL_ITEM_IDX))
    recent = pos.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= max_items)
    bags = recent.groupBy(C.COL_USER_IDX).agg(F.sort_array(F.collect_list(C.COL_ITEM_IDX)).alias("_b"))
    return bags.select(
        F.col(C.COL_USER_IDX).cast("int"),
        _pad_right(F.col("_b"), max_items, F.lit(S.PAD_ITEM)).cast("array<int>").alias(S.COL_BAG),
        F.size("_b").cast("int").alias(S.COL_LENGTH),
    )


def _by_recency(pos: DataFrame) -> DataFrame:
    """``pos`` plus ``_d``: 0 for a user's most recent item then 1, 2... (``first_ts``, ties ``item_idx``)."""
    w = Window.partitionBy(C.COL_USER_IDX).orderBy(F.col(C.COL_FIRST_TS).desc(), F.col(C.COL_ITEM_IDX).desc())
    return pos.withColumn("_d", F.row_number().over(w) - 1)


def _time_ordered(rows: DataFrame, keys: Sequence[str], length: int, min_length: int) -> DataFrame:
    """``(user_idx, seq, length)`` per group of ``keys``: its items in time order, left-padded."""
    grouped = rows.groupBy(*keys).agg(
        F.sort_array(F.collect_list(F.struct(C.COL_FIRST_TS, C.COL_ITEM_IDX))).alias("_s")
    )
    items = F.transform("_s", lambda s: s[C.COL_ITEM_IDX])
    return grouped.where(F.size("_s") >= min_length).select(
        F.col(C.COL_USER_IDX).cast("int"),
        _pad_left(items, length, F.lit(S.PAD_ITEM)).cast("array<int>").alias(S.COL_SEQ),
        F.size("_s").cast("int").alias(S.COL_LENGTH),
    )


def user_sequences(pos: DataFrame, length: int, min_length: int = 1) -> DataFrame:
    """Per-user items in time order: ``(user_idx int, seq array<int>[length], length int)``.

    Ordered by ``first_ts`` (ties by ``item_idx``), truncated to the last ``length`` items and
    left-padded with ``PAD_ITEM`` (the most recent item is the last element). Users with fewer than
    ``min_length`` items are dropped.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    last = _by_recency(pos).where(F.col("_d") < length)
    return _time_ordered(last, [C.COL_USER_IDX], length, min_length)


def user_windows(pos: DataFrame, length: int, min_length: int = 2) -> DataFrame:
    """Every user's whole time-ordered history cut into windows: ``(user_idx int, seq array<int>[length])``.

    The most recent window ends at the user's last item; each earlier window ends where the next one
    starts (consecutive windows share one item), so every item but a user's first is a next-item
    target exactly once, not only the last ``length`` items (``user_sequences``). Order and padding
    as in :func:`user_sequences` (``first_ts``, ties by ``item_idx``; left-padded with ``PAD_ITEM``);
    windows with fewer than ``min_length`` items are dropped.
    """
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    stride = length - 1
    k = F.floor(F.col("_d") / stride).cast("int")
    # window k covers _d in [k * stride, k * stride + stride]: a boundary item is in windows k and k - 1
    windows = F.when((F.col("_d") % stride == 0) & (k > 0), F.array(k, k - 1)).otherwise(F.array(k))
    rows = _by_recency(pos).withColumn("_w", F.explode(windows))
    return _time_ordered(rows, [C.COL_USER_IDX, "_w"], length, min_length).drop(S.COL_LENGTH)


def target_frequencies(windows: DataFrame) -> DataFrame:
    """``(item_idx int, freq int)``: how often each item is a next-item target in ``windows``.

    An item is a target where an item precedes it in the window (consecutive windows of a user share
    one item, the first of the later one), so this counts each training transition once.
    """
    seq = F.col(S.COL_SEQ)
    after_an_item = F.transform(
        F.sequence(F.lit(2), F.greatest(F.size(seq), F.lit(2))),
        lambda i: F.when(F.element_at(seq, i - 1) != F.lit(S.PAD_ITEM), F.element_at(seq, i)),
    )
    targets = windows.select(F.explode(after_an_item).alias(C.COL_ITEM_IDX)).where(
        F.col(C.COL_ITEM_IDX).isNotNull() & (F.col(C.COL_ITEM_IDX) != F.lit(S.PAD_ITEM))
    )
    return targets.groupBy(C.COL_ITEM_IDX).agg(F.count(F.lit(1)).cast("int").alias(S.COL_FREQ))


def pair_frequencies(pairs: DataFrame) -> DataFrame:
    """``(item_idx int, freq int)``: how often each item occurs in co-watched ``pairs``, either side."""
    sides = pairs.select(F.col(S.COL_ITEM_A).alias(C.COL_ITEM_IDX)).unionAll(
        pairs.select(F.col(S.COL_ITEM_B).alias(C.COL_ITEM_IDX))
    )
    return sides.groupBy(C.COL_ITEM_IDX).agg(F.count(F.lit(1)).cast("int").alias(S.COL_FREQ))


def cowatch_pairs(pos: DataFrame, window: int) -> DataFrame:
    """``(item_a int, item_b int)``: for each user, every item and each of the next ``window`` items.

    Items are in ``first_ts`` order; a pair appears once per user who watched the two items that close.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    w = Window.partitionBy(C.COL_USER_IDX).orderBy(C.COL_FIRST_TS, C.COL_ITEM_IDX)
    frames = [
        pos.select(
            F.col(C.COL_ITEM_IDX).cast("int").alias(S.COL_ITEM_A),
            F.lead(C.COL_ITEM_IDX, k).over(w).cast("int").alias(S.COL_ITEM_B),
        ).where(F.col(S.COL_ITEM_B).isNotNull())
        for k in range(1, window + 1)
    ]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _prefixed(df: DataFrame, col: str, prefix: str, is_list: bool) -> Column:
    if col not in df.columns:
        return F.array().cast("array<string>")
    if is_list:
        values = F.coalesce(F.col(col), F.array().cast("array<string>"))
        return F.transform(values, lambda v: F.concat(F.lit(prefix), F.lower(F.trim(v))))
    value = F.col(col).cast("string")
    return F.when(value.isNull(), F.array().cast("array<string>")).otherwise(
        F.array(F.concat(F.lit(prefix), F.lower(F.trim(value))))
    )


#: Latin words shorter than this are left out of the deep text features (CJK tokens never are).
MIN_WORD_LENGTH = 2


def _words(df: DataFrame, col: str, prefix: str) -> Column:
    """Tokens of a text column (:func:`vidrec.data.text.tokens_column`), each prefixed."""
    if col not in df.columns:
        return F.array().cast("array<string>")
    words = tokens_column(col, MIN_WORD_LENGTH)
    return F.transform(words, lambda w: F.concat(F.lit(prefix), w))


def _hashed(strings: Column, num_buckets: int) -> Column:
    return F.transform(strings, lambda t: (F.pmod(F.xxhash64(t), F.lit(num_buckets - 1)) + 1).cast("int"))


def item_tokens(items: DataFrame, num_buckets: int, max_tokens: int, text_words: bool = True) -> DataFrame:
    """``(item_idx int, tokens array<int>[max_tokens])``: hashed metadata and text tokens of each item.

    Tokens, in this order (metadata first, so truncation keeps it): ``g:<genre>``, ``d:<director>``,
    ``c:<cast>``, ``l:<language>``, ``m:<maturity>``, ``y:<decade>``, then, with ``text_words``,
    ``t:<title token>`` and ``w:<description token>`` (:mod:`vidrec.data.text`: Latin words, CJK
    unigrams and bigrams); duplicates dropped, hashed into ``[1, num_buckets)``, right-padded with
    ``PAD_TOKEN``. Items with no metadata at all get only padding (the models handle it).
    """
    if num_buckets < 2 or max_tokens < 1:
        raise ValueError(f"num_buckets must be >= 2 and max_tokens >= 1, got {num_buckets}, {max_tokens}")
    _require(items, "items", [C.COL_ITEM_IDX])
    decade = (
        F.when(
            F.col(C.COL_RELEASE_YEAR).isNotNull(),
            F.array(F.concat(F.lit("y:"), (F.floor(F.col(C.COL_RELEASE_YEAR) / 10) * 10).cast("string"))),
        ).otherwise(F.array().cast("array<string>"))
        if C.COL_RELEASE_YEAR in items.columns
        else F.array().cast("array<string>")
    )
    parts = [
        _prefixed(items, C.COL_GENRES, "g:", True),
        _prefixed(items, C.COL_DIRECTORS, "d:", True),
        _prefixed(items, C.COL_CAST, "c:", True),
        _prefixed(items, C.COL_LANGUAGE, "l:", False),
        _prefixed(items, C.COL_MATURITY, "m:", False),
        decade,
    ]
    if text_words:
        parts += [_words(items, C.COL_TITLE, "t:"), _words(items, C.COL_DESCRIPTION, "w:")]
    hashed = _hashed(F.array_distinct(F.concat(*parts)), num_buckets)
    return items.select(
        F.col(C.COL_ITEM_IDX).cast("int").alias(C.COL_ITEM_IDX),
        _pad_right(hashed, max_tokens, F.lit(S.PAD_TOKEN)).cast("array<int>").alias(S.COL_TOKENS),
    )


def item_text(items: DataFrame, num_buckets: int, max_len: int) -> DataFrame:
    """``(item_idx int, text array<int>[max_len])``: the title then the description as hashed tokens in
    reading order (repeats kept), right-padded with ``PAD_TOKEN``: the input of the TextCNN encoder.

    Tokens are :func:`vidrec.data.text.tokens_column`'s (a CJK run's characters interleaved with their
    bigrams), hashed with the prefix ``x:`` into ``[1, num_buckets)``; text past ``max_len`` is cut.
    """
    if num_buckets < 2 or max_len < 1:
        raise ValueError(f"num_buckets must be >= 2 and max_len >= 1, got {num_buckets}, {max_len}")
    _require(items, "items", [C.COL_ITEM_IDX])
    words = F.concat(_words(items, C.COL_TITLE, "x:"), _words(items, C.COL_DESCRIPTION, "x:"))
    return items.select(
        F.col(C.COL_ITEM_IDX).cast("int").alias(C.COL_ITEM_IDX),
        _pad_right(_hashed(words, num_buckets), max_len, F.lit(S.PAD_TOKEN))
        .cast("array<int>")
        .alias(S.COL_TEXT),
    )


def content_side(items: DataFrame, params: Mapping[str, Any]) -> DataFrame:
    """``(item_idx, tokens[, text])``: the content inputs of ``text`` / ``fusion`` per their ``encoder``.

    ``encoder: bag``: every token (metadata and text words) in the bag ``tokens``; ``encoder: cnn``:
    the metadata in ``tokens`` and the title and description as the sequence ``text``
    (:func:`item_text`).
    """
    cnn = str(params.get("encoder", "bag")) == "cnn"
    tokens = item_tokens(items, int(params["num_buckets"]), int(params["max_tokens"]), text_words=not cnn)
    if not cnn:
        return tokens
    return tokens.join(
        item_text(items, int(params["num_buckets"]), int(params["max_text_len"])), C.COL_ITEM_IDX
    )


def _fixed_vector(df: DataFrame, col: str, dim: int) -> Column:
    zeros = F.array_repeat(F.lit(0.0).cast("float"), dim)
    if col not in df.columns:
        return zeros.cast("array<float>")
    ok = F.col(col).isNotNull() & (F.size(col) == dim) & F.forall(col, lambda x: x.isNotNull())
    return F.when(ok, F.col(col)).otherwise(zeros).cast("array<float>")


def item_content(
    items: DataFrame,
    known_items: DataFrame,
    num_buckets: int,
    max_tokens: int,
    visual_dim: int = 0,
    audio_dim: int = 0,
    params: Mapping[str, Any] | None = None,
) -> DataFrame:
    """Content side table of the fusion model: tokens, media embeddings and whether the item is known.

    Returns ``(item_idx, tokens[, text], known int[, visual_embedding array<float>[visual_dim]]
    [, audio_embedding array<float>[audio_dim]])``: ``text`` with ``params["encoder"] == "cnn"``
    (:func:`content_side`), the embedding columns only when their dimension is > 0; a missing or
    malformed vector becomes zeros. ``known`` is 1 for items of ``known_items`` (those with a positive
    training interaction).
    """
    side = {"num_buckets": num_buckets, "max_tokens": max_tokens, **dict(params or {})}
    tokens = content_side(items, side)
    extra = [C.COL_ITEM_IDX]
    vectors = []
    for col, dim in ((S.COL_VISUAL, visual_dim), (S.COL_AUDIO, audio_dim)):
        if dim > 0:
            vectors.append(_fixed_vector(items, col, dim).alias(col))
    media = items.select(F.col(C.COL_ITEM_IDX).cast("int").alias(C.COL_ITEM_IDX), *vectors)
    known = (
        known_items.select(F.col(C.COL_ITEM_IDX).cast("int").alias(C.COL_ITEM_IDX))
        .distinct()
        .withColumn(S.COL_KNOWN, F.lit(1))
    )
    out = tokens.join(media, extra).join(known, C.COL_ITEM_IDX, "left")
    return out.select(
        C.COL_ITEM_IDX,
        S.COL_TOKENS,
        *([S.COL_TEXT] if S.COL_TEXT in tokens.columns else []),
        F.coalesce(F.col(S.COL_KNOWN), F.lit(0)).cast("int").alias(S.COL_KNOWN),
        *[c for c in (S.COL_VISUAL, S.COL_AUDIO) if c in media.columns],
    )


def training_frames(
    model_name: str,
    interactions: DataFrame,
    items: DataFrame,
    params: Mapping[str, Any],
    visual_dim: int = 0,
    audio_dim: int = 0,
) -> dict[str, DataFrame]:
    """The shards one model trains on: ``train`` and ``val`` rows, and ``items`` side table if any.

    Parameters
    ----------
    model_name : str
        ``ncf``, ``multvae``, ``sequence``, ``gru``, ``text`` or ``fusion``.
    interactions : DataFrame
        ``silver/interactions`` rows of the training data.
    items : DataFrame
        The catalog with ``item_idx``.
    params : mapping
        The model's parameters (:func:`vidrec.models.deep.params.model_params`).
    visual_dim, audio_dim : int
        Dimensions of the media embeddings (0 when absent); fusion only.

    Returns
    -------
    dict of str to DataFrame
        Keys ``train``, ``val`` and, for ``gru``, ``text`` and ``fusion``, ``items``.
    """
    seed = int(params["seed"])
    frac = float(params["val_fraction"])
    pos = positives(interactions)
    pairs = pos.select(C.COL_USER_IDX, C.COL_ITEM_IDX)
    if model_name == C.ALGO_NCF:
        train_pos, val_pos = split_by_hash(pairs, [C.COL_USER_IDX, C.COL_ITEM_IDX], frac, seed)
        cands = pairs.select(C.COL_ITEM_IDX)
        k = int(params["num_negatives"])
        return {
            S.TRAIN: ncf_examples(train_pos, pairs, cands, k, seed),
            S.VAL: ncf_examples(val_pos, pairs, cands, k, seed + 1),
        }
    if model_name == C.ALGO_MULTVAE:
        bags = user_bags(pos, int(params["max_items"])).drop(S.COL_LENGTH)
        train, val = split_by_hash(bags, [C.COL_USER_IDX], frac, seed)
        return {S.TRAIN: train, S.VAL: val}
    if model_name in (C.ALGO_SEQUENCE, C.ALGO_GRU):
        seqs = user_windows(pos, int(params["max_len"]) + 1, min_length=2)
        train, val = split_by_hash(seqs, [C.COL_USER_IDX], frac, seed)
        if model_name == C.ALGO_SEQUENCE:
            return {S.TRAIN: train, S.VAL: val}
        return {S.TRAIN: train, S.VAL: val, S.ITEMS: target_frequencies(train)}
    if model_name == C.ALGO_TEXT:
        train, val = split_by_hash(
            cowatch_pairs(pos, int(params["window"])), [S.COL_ITEM_A, S.COL_ITEM_B], frac, seed
        )
        tokens = content_side(items, params)
        freq = F.coalesce(F.col(S.COL_FREQ), F.lit(0)).cast("int").alias(S.COL_FREQ)
        side = tokens.join(pair_frequencies(train), C.COL_ITEM_IDX, "left").select(*tokens.columns, freq)
        return {S.TRAIN: train, S.VAL: val, S.ITEMS: side}
    if model_name == C.ALGO_FUSION:
        train, val = split_by_hash(pairs, [C.COL_USER_IDX, C.COL_ITEM_IDX], frac, seed)
        side = item_content(
            items,
            train.select(C.COL_ITEM_IDX),
            int(params["num_buckets"]),
            int(params["max_tokens"]),
            visual_dim,
            audio_dim,
            params,
        )
        return {S.TRAIN: train, S.VAL: val, S.ITEMS: side}
    raise ValueError(f"unknown deep model '{model_name}'")


def scoring_frame(model_name: str, interactions: DataFrame, params: Mapping[str, Any]) -> DataFrame:
    """Per-user model inputs for scoring: ``user_idx`` plus the model's user features.

    ``ncf`` and ``fusion`` score users by id (users with a positive); ``multvae`` by their full bag;
    ``sequence`` and ``gru`` by their last ``max_len`` items; ``text`` by their last ``history_len`` items.
    """
    pos = positives(interactions)
    if model_name in (C.ALGO_NCF, C.ALGO_FUSION):
        return pos.select(C.COL_USER_IDX).distinct()
    if model_name == C.ALGO_MULTVAE:
        return user_bags(pos, int(params["max_items"])).drop(S.COL_LENGTH)
    if model_name in (C.ALGO_SEQUENCE, C.ALGO_GRU):
        return user_sequences(pos, int(params["max_len"])).drop(S.COL_LENGTH)
    if model_name == C.ALGO_TEXT:
        return user_sequences(pos, int(params["history_len"])).drop(S.COL_LENGTH)
    raise ValueError(f"unknown deep model '{model_name}'")


def _require(df: DataFrame, name: str, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing} (has {df.columns})")
