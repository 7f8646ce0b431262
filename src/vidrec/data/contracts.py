"""The output contracts as code: what every candidate list and gold table promises, checked in Spark.

The promises (``docs/tables.md``):

- **candidate lists** of a generator, ``(user_idx, item_idx, score, rank)``, and the rows of
  ``gold/recommendations`` per ``(user_id, algorithm)``: ranks 1..k without a gap, ``k <= n``, no
  duplicate item, scores non-increasing with rank, no null key, and no pair the user has already
  seen (completed, rated, liked, favorited or disliked);
- ``gold/similar_items`` per ``(item_id, algorithm)``: ranks 1..k, ``k <= n``, no duplicate, never
  the item itself, scores non-increasing;
- ``gold/popular_items`` per ``segment``: ranks 1..k, ``k <= n``, no duplicate item.

Each ``*_violations`` function returns the offending lists as a DataFrame ``(key columns..., rule)``
(lazily, no Spark job); each ``check_*`` runs it as one Spark job and raises :class:`ContractError`
naming the table, the rules broken and the first offending keys. The pipeline checks every gold
table before it writes it; the tests use the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from vidrec import constants as C

#: Rules, as they appear in the ``rule`` column and in error messages.
RULE_RANKS = "ranks are not 1..k without a gap"
RULE_DUPLICATE = "an item appears twice in one list"
RULE_TOO_LONG = "the list is longer than n"
RULE_SCORES = "a score increases with rank"
RULE_NULL = "a key column is null"
RULE_SEEN = "an item the user has already seen is recommended"
RULE_SELF = "an item is listed as similar to itself"
COL_RULE = "rule"
#: Offending lists named in an error message.
SAMPLE = 5
#: Scores may rise by float noise between ranks.
SCORE_TOLERANCE = 1e-9


class ContractError(ValueError):
    """A table or candidate list breaks its contract; the message names the rules and the lists."""


def _list_violations(
    rows: DataFrame, keys: Sequence[str], item: str, n: int | None, extra: Column | None = None
) -> DataFrame:
    """Structural rules per list (``keys``): ranks, duplicates, length, scores, nulls (and ``extra``)."""
    by_list = Window.partitionBy(*keys).orderBy(F.col(C.COL_RANK), F.col(item))
    prev = F.lag(C.COL_SCORE).over(by_list)
    # ranks sorted are exactly 1..k when every row's rank is its position: one window, no
    # distinct counts (each of those would add a copy of every row to the aggregation)
    flagged = rows.select(
        *keys,
        F.col(item).alias("_item"),
        F.coalesce(F.col(C.COL_RANK) != F.row_number().over(by_list), F.lit(True)).alias("_gap"),
        (F.col(C.COL_SCORE) > prev + F.lit(SCORE_TOLERANCE)).alias("_rises"),
        (F.col(item).isNull() | F.col(C.COL_RANK).isNull() | F.col(C.COL_SCORE).isNull()).alias("_null"),
        (extra if extra is not None else F.lit(False)).alias("_extra"),
    )
    agg = flagged.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("_n"),
        F.max(F.col("_gap").cast("int")).alias("_gap"),
        F.size(F.collect_set("_item")).alias("_items"),
        F.max(F.coalesce(F.col("_rises"), F.lit(False)).cast("int")).alias("_rises"),
        F.max(F.col("_null").cast("int")).alias("_null"),
        F.max(F.col("_extra").cast("int")).alias("_extra"),
    )
    rules = [
        F.when(F.col("_gap") > 0, RULE_RANKS),
        F.when(F.col("_items") != F.col("_n"), RULE_DUPLICATE),
        F.when(F.lit(n is not None) & (F.col("_n") > F.lit(n if n is not None else 0)), RULE_TOO_LONG),
        F.when(F.col("_rises") > 0, RULE_SCORES),
        F.when(F.col("_null") > 0, RULE_NULL),
        F.when(F.col("_extra") > 0, RULE_SELF),
    ]
    return agg.select(*keys, F.explode(F.filter(F.array(*rules), lambda r: r.isNotNull())).alias(COL_RULE))


def candidate_violations(recs: DataFrame, seen: DataFrame | None = None, n: int | None = None) -> DataFrame:
    """Lists of a generator's ``(user_idx, item_idx, score, rank)`` that break the contract.

    Returns ``(user_idx, rule)`` rows; ``seen`` ``(user_idx, item_idx)`` pairs must not be listed.
    """
    out = _list_violations(recs, [C.COL_USER_IDX], C.COL_ITEM_IDX, n)
    if seen is not None:
        clash = recs.join(seen.select(C.COL_USER_IDX, C.COL_ITEM_IDX), [C.COL_USER_IDX, C.COL_ITEM_IDX])
        out = out.unionByName(clash.select(C.COL_USER_IDX, F.lit(RULE_SEEN).alias(COL_RULE)).distinct())
    return out


def recommendation_violations(
    gold: DataFrame, seen: DataFrame | None = None, n: int | None = None
) -> DataFrame:
    """Lists of ``gold/recommendations`` rows (one run date) that break the contract.

    Returns ``(user_id, algorithm, rule)``; ``seen`` holds ``(user_id, item_id)`` pairs never to list.
    """
    keys = [C.COL_USER, C.COL_ALGORITHM]
    out = _list_violations(gold, keys, C.COL_ITEM, n)
    if seen is not None:
        clash = gold.join(seen.select(C.COL_USER, C.COL_ITEM), [C.COL_USER, C.COL_ITEM])
        out = out.unionByName(clash.select(*keys, F.lit(RULE_SEEN).alias(COL_RULE)).distinct())
    return out


def similar_item_violations(rows: DataFrame, n: int | None = None) -> DataFrame:
    """Lists of ``gold/similar_items`` rows that break the contract: ``(item_id, algorithm, rule)``."""
    renamed = rows.withColumnRenamed(C.COL_SIMILAR_ITEM, "_similar")
    return _list_violations(
        renamed, [C.COL_ITEM, C.COL_ALGORITHM], "_similar", n, extra=F.col("_similar") == F.col(C.COL_ITEM)
    )


def popular_item_violations(rows: DataFrame, n: int | None = None) -> DataFrame:
    """Segments of ``gold/popular_items`` rows that break the contract: ``(segment, rule)``."""
    return _list_violations(rows, [C.COL_SEGMENT], C.COL_ITEM, n)


def raise_if_any(violations: DataFrame, what: str) -> None:
    """One Spark job: raise :class:`ContractError` naming ``what``, the rules and the first lists.

    Raises
    ------
    ContractError
        When ``violations`` has a row.
    """
    keys = [c for c in violations.columns if c != COL_RULE]
    summary = violations.groupBy(COL_RULE).agg(
        F.count(F.lit(1)).alias("_lists"),
        F.slice(F.sort_array(F.collect_list(F.struct(*keys))), 1, SAMPLE).alias("_sample"),
    )
    found = summary.collect()
    if not found:
        return
    parts = []
    for r in sorted(found, key=lambda r: r[COL_RULE]):
        sample = ", ".join(str(tuple(s)) for s in r["_sample"])
        parts.append(f"{r[COL_RULE]}: {r['_lists']} list(s), e.g. {sample}")
    raise ContractError(f"{what} breaks its contract ({', '.join(keys)}): " + "; ".join(parts))


def check_candidates(
    recs: DataFrame, seen: DataFrame | None = None, n: int | None = None, what: str = "a candidate list"
) -> None:
    """Raise :class:`ContractError` when ``recs`` breaks the candidate-list contract."""
    raise_if_any(candidate_violations(recs, seen, n), what)


def check_recommendations(gold: DataFrame, seen: DataFrame | None = None, n: int | None = None) -> None:
    """Raise :class:`ContractError` when ``gold/recommendations`` rows break their contract."""
    raise_if_any(recommendation_violations(gold, seen, n), "gold/recommendations")


def check_similar_items(rows: DataFrame, n: int | None = None) -> None:
    """Raise :class:`ContractError` when ``gold/similar_items`` rows break their contract."""
    raise_if_any(similar_item_violations(rows, n), "gold/similar_items")


def check_popular_items(rows: DataFrame, n: int | None = None) -> None:
    """Raise :class:`ContractError` when ``gold/popular_items`` rows break their contract."""
    raise_if_any(popular_item_violations(rows, n), "gold/popular_items")
