"""What the served lists expose: catalog coverage, concentration (Gini), genre exposure vs consumption."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vidrec.analytics.common import (
    _WEIGHT,
    COL_CATALOG_COVERAGE,
    COL_CATALOG_SIZE,
    COL_CONSUMPTION_SHARE,
    COL_EXPOSURE_LIFT,
    COL_EXPOSURE_SHARE,
    COL_EXPOSURES,
    COL_GENRE,
    COL_GINI,
    COL_GINI_CONSUMPTION,
    COL_ITEMS_RECOMMENDED,
    COL_NEW_TITLES,
    COL_NEW_TITLES_SHOWN,
    COL_PLAYS,
    COL_USERS,
    COL_USERS_SHOWN_NEW,
    DEFAULT_DAYS,
    EVENT_PLAY,
    NEW_TITLE_TOP_K,
    RECOMMENDATION_COLUMNS,
    _events_between,
    _is_engaged,
    _lit_date,
    _positive,
    _ratio,
    _require,
    _with_genres,
    as_date,
    item_genres,
)
from vidrec.constants import (
    COL_ALGORITHM,
    COL_EVENT_DATE,
    COL_EVENT_TYPE,
    COL_GENRES,
    COL_ITEM,
    COL_RANK,
    COL_RUN_DATE,
    COL_USER,
)
from vidrec.data.frames import number_in_one_task


# --- recommendation coverage ----------------------------------------------------------------------
def _exposures(recommendations: DataFrame, run_day: dt.date) -> DataFrame:
    """``(algorithm, item_id, exposures)``: times each item is in a list of ``run_day``."""
    return (
        recommendations.where(F.col(COL_RUN_DATE) == _lit_date(run_day))
        .groupBy(COL_ALGORITHM, COL_ITEM)
        .agg(F.count(F.lit(1)).alias(COL_EXPOSURES))
    )


def gini(df: DataFrame, value_col: str, group_cols: list[str], order_col: str) -> DataFrame:
    """Gini coefficient of ``value_col`` within each group of ``group_cols``.

    ``G = 2 * sum(i * x_i) / (n * sum(x)) - (n + 1) / n`` over the values sorted ascending
    (``i = 1..n``): 0 when every row has the same value, ``(n - 1) / n`` when one row has it all.

    Parameters
    ----------
    df : DataFrame
        One row per unit (zeros included: a unit that is absent does not count).
    value_col : str
        The non-negative quantity (e.g. exposures).
    group_cols : list of str
        Grouping columns; none: the whole DataFrame is one group (one row out).
    order_col : str
        Tie-breaker so that the ranking is deterministic.

    Returns
    -------
    DataFrame
        ``group_cols + ['gini']``; null where the group's total is 0.
    """
    _require(df, [value_col, order_col, *group_cols], "df", "gini")
    if group_cols:
        ranked = Window.partitionBy(*group_cols).orderBy(F.col(value_col), F.col(order_col))
        positioned = df.select(
            *group_cols, F.col(value_col).cast("double").alias("_x"), F.row_number().over(ranked).alias("_i")
        )
    else:  # one group, numbered in one task
        values = df.select(F.col(value_col).cast("double").alias("_x"), F.col(order_col).alias("_o"))
        positioned = number_in_one_task(values, [F.col("_x"), F.col("_o")], "_i").select("_x", "_i")
    return (
        positioned.groupBy(*group_cols)
        .agg(
            F.sum(F.col("_i") * F.col("_x")).alias("_s_ix"),
            F.sum("_x").alias("_s_x"),
            F.count(F.lit(1)).cast("double").alias("_n"),
        )
        .select(
            *group_cols,
            F.when(
                F.col("_s_x") > 0,
                2.0 * F.col("_s_ix") / (F.col("_n") * F.col("_s_x")) - (F.col("_n") + 1.0) / F.col("_n"),
            ).alias("gini"),
        )
    )


def recommendation_coverage(
    recommendations: DataFrame,
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
    top_k: int = NEW_TITLE_TOP_K,
) -> DataFrame:
    """Per algorithm: users served, catalog coverage, concentration (Gini) of exposure, new titles shown.

    Parameters
    ----------
    recommendations : DataFrame
        ``gold/recommendations`` rows (``run_date``, ``user_id``, ``item_id``, ``algorithm``,
        ``rank``); only the rows of ``run_date`` count.
    events : DataFrame
        ``bronze/events`` rows (``item_id``, ``event_type``, ``event_date``): the ``play`` events
        of the ``days`` event dates ending on ``run_date`` give the consumption baseline; the
        engagement events up to ``run_date`` tell which titles are new.
    items : DataFrame
        ``silver/items`` rows (``item_id``): the catalog.
    run_date : date or str
        The run date.
    days : int
        Consumption window (default 28).
    top_k : int
        A new title counts as shown when a list holds it at this rank or better (default 10).

    Returns
    -------
    DataFrame
        ``run_date, algorithm, users, items_recommended, catalog_size, catalog_coverage,
        exposures, gini_exposure, gini_consumption, new_titles, new_titles_in_top10,
        users_shown_new_title``. Exposure is the number of lists an item appears in;
        ``catalog_coverage`` the share of catalog items recommended at least once;
        ``gini_exposure`` the Gini coefficient of exposure over all catalog items (never
        recommended ones count 0): 0 is perfectly even, near 1 is all exposure on one item;
        ``gini_consumption`` the same coefficient of plays over the catalog (the same on every
        row): an algorithm above it concentrates exposure more than users concentrate viewing.
        ``new_titles`` counts the catalog titles nobody has engaged with up to ``run_date`` (the
        same on every row); ``new_titles_in_top10`` how many of them are in at least one of the
        algorithm's lists at rank ``top_k`` or better, ``users_shown_new_title`` how many users
        have one there.

    Raises
    ------
    ValueError
        When a required column is missing, ``days < 1`` or ``top_k < 1``.
    """
    func = "recommendation_coverage"
    _require(recommendations, [*RECOMMENDATION_COLUMNS, COL_RANK], "recommendations", func)
    _require(events, [COL_ITEM, COL_EVENT_TYPE, COL_EVENT_DATE], "events", func)
    _require(items, [COL_ITEM], "items", func)
    _positive(days, "days", func)
    _positive(top_k, "top_k", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)

    recs = recommendations.where(F.col(COL_RUN_DATE) == _lit_date(run_day))
    exposures = _exposures(recommendations, run_day)
    catalog = items.select(COL_ITEM).distinct()
    catalog_size = catalog.agg(F.count(F.lit(1)).alias(COL_CATALOG_SIZE))
    algorithms = exposures.select(COL_ALGORITHM).distinct()

    per_catalog_item = (
        algorithms.crossJoin(catalog)
        .join(exposures, on=[COL_ALGORITHM, COL_ITEM], how="left")
        .select(COL_ALGORITHM, COL_ITEM, F.coalesce(F.col(COL_EXPOSURES), F.lit(0)).alias(COL_EXPOSURES))
    )
    concentration = gini(per_catalog_item, COL_EXPOSURES, [COL_ALGORITHM], COL_ITEM).withColumnRenamed(
        "gini", COL_GINI
    )
    covered = (
        exposures.join(catalog, on=COL_ITEM, how="left_semi")
        .groupBy(COL_ALGORITHM)
        .agg(F.count(F.lit(1)).alias("_covered"))
    )
    plays = (
        _events_between(events, start, run_day)
        .where(F.col(COL_EVENT_TYPE) == EVENT_PLAY)
        .groupBy(COL_ITEM)
        .agg(F.count(F.lit(1)).alias(COL_PLAYS))
    )
    # one group holding the whole catalog
    consumption = gini(
        catalog.join(plays, on=COL_ITEM, how="left").select(
            COL_ITEM, F.coalesce(F.col(COL_PLAYS), F.lit(0)).alias(COL_PLAYS)
        ),
        COL_PLAYS,
        [],
        COL_ITEM,
    ).select(F.col("gini").alias(COL_GINI_CONSUMPTION))
    engaged = (
        events.where((F.col(COL_EVENT_DATE) <= _lit_date(run_day)) & _is_engaged())
        .select(COL_ITEM)
        .distinct()
    )
    new_titles = catalog.join(engaged, on=COL_ITEM, how="left_anti")
    new_count = new_titles.agg(F.count(F.lit(1)).alias(COL_NEW_TITLES))
    new_shown = (
        recs.where(F.col(COL_RANK) <= F.lit(int(top_k)))
        .join(new_titles, on=COL_ITEM, how="left_semi")
        .groupBy(COL_ALGORITHM)
        .agg(
            F.countDistinct(COL_ITEM).alias(COL_NEW_TITLES_SHOWN),
            F.countDistinct(COL_USER).alias(COL_USERS_SHOWN_NEW),
        )
    )
    served = recs.groupBy(COL_ALGORITHM).agg(
        F.countDistinct(COL_USER).alias(COL_USERS),
        F.countDistinct(COL_ITEM).alias(COL_ITEMS_RECOMMENDED),
        F.count(F.lit(1)).alias(COL_EXPOSURES),
    )
    return (
        served.join(covered, on=COL_ALGORITHM, how="left")
        .join(concentration, on=COL_ALGORITHM, how="left")
        .join(new_shown, on=COL_ALGORITHM, how="left")
        .crossJoin(catalog_size)
        .crossJoin(consumption)
        .crossJoin(new_count)
        .select(
            _lit_date(run_day).alias(COL_RUN_DATE),
            COL_ALGORITHM,
            F.col(COL_USERS).cast("long").alias(COL_USERS),
            F.col(COL_ITEMS_RECOMMENDED).cast("long").alias(COL_ITEMS_RECOMMENDED),
            F.col(COL_CATALOG_SIZE).cast("long").alias(COL_CATALOG_SIZE),
            _ratio(F.coalesce(F.col("_covered"), F.lit(0)), F.col(COL_CATALOG_SIZE)).alias(
                COL_CATALOG_COVERAGE
            ),
            F.col(COL_EXPOSURES).cast("long").alias(COL_EXPOSURES),
            F.col(COL_GINI).cast("double").alias(COL_GINI),
            F.col(COL_GINI_CONSUMPTION).cast("double").alias(COL_GINI_CONSUMPTION),
            F.col(COL_NEW_TITLES).cast("long").alias(COL_NEW_TITLES),
            F.coalesce(F.col(COL_NEW_TITLES_SHOWN), F.lit(0)).cast("long").alias(COL_NEW_TITLES_SHOWN),
            F.coalesce(F.col(COL_USERS_SHOWN_NEW), F.lit(0)).cast("long").alias(COL_USERS_SHOWN_NEW),
        )
    )


def genre_exposure(
    recommendations: DataFrame,
    events: DataFrame,
    items: DataFrame,
    run_date: dt.date | str,
    days: int = DEFAULT_DAYS,
) -> DataFrame:
    """Per algorithm x genre: share of exposure vs share of consumption (whom the lists favour).

    Parameters
    ----------
    recommendations : DataFrame
        ``gold/recommendations`` rows; only those of ``run_date`` count.
    events : DataFrame
        ``bronze/events`` rows (``item_id``, ``event_type``, ``event_date``): consumption is the
        ``play`` events of the ``days`` event dates ending on ``run_date``.
    items : DataFrame
        ``silver/items`` rows (``item_id``, ``genres``).
    run_date : date or str
        The run date.
    days : int
        Consumption window (default 28).

    Returns
    -------
    DataFrame
        ``run_date, algorithm, genre, exposures, exposure_share, plays, consumption_share,
        exposure_lift``: one row per algorithm and every genre it exposes or users played.
        ``exposure_lift = exposure_share / consumption_share`` (> 1: the algorithm recommends the
        genre more than users watch it; null when the genre was not played).

    Raises
    ------
    ValueError
        When a required column is missing or ``days < 1``.
    """
    func = "genre_exposure"
    _require(recommendations, RECOMMENDATION_COLUMNS, "recommendations", func)
    _require(events, [COL_ITEM, COL_EVENT_TYPE, COL_EVENT_DATE], "events", func)
    _require(items, [COL_ITEM, COL_GENRES], "items", func)
    _positive(days, "days", func)
    run_day = as_date(run_date)
    start = run_day - dt.timedelta(days=days - 1)

    genres = item_genres(items)
    exposed = (
        _with_genres(_exposures(recommendations, run_day), genres)
        .groupBy(COL_ALGORITHM, COL_GENRE)
        .agg(F.sum(F.col(COL_EXPOSURES) * F.col(_WEIGHT)).alias(COL_EXPOSURES))
    )
    consumed = (
        _with_genres(
            _events_between(events, start, run_day)
            .where(F.col(COL_EVENT_TYPE) == EVENT_PLAY)
            .select(COL_ITEM),
            genres,
        )
        .groupBy(COL_GENRE)
        .agg(F.sum(_WEIGHT).alias(COL_PLAYS))
    )
    algorithms = exposed.select(COL_ALGORITHM).distinct()
    grid = algorithms.crossJoin(consumed.select(COL_GENRE)).unionByName(
        exposed.select(COL_ALGORITHM, COL_GENRE)
    )
    per_algorithm = Window.partitionBy(COL_ALGORITHM)
    exposures = F.coalesce(F.col(COL_EXPOSURES), F.lit(0.0))
    plays = F.coalesce(F.col(COL_PLAYS), F.lit(0.0))
    shares = (
        grid.distinct()
        .join(exposed, on=[COL_ALGORITHM, COL_GENRE], how="left")
        .join(consumed, on=COL_GENRE, how="left")
        .select(
            COL_ALGORITHM,
            COL_GENRE,
            exposures.cast("double").alias(COL_EXPOSURES),
            _ratio(exposures, F.sum(exposures).over(per_algorithm)).alias(COL_EXPOSURE_SHARE),
            plays.cast("double").alias(COL_PLAYS),
            _ratio(plays, F.sum(plays).over(per_algorithm)).alias(COL_CONSUMPTION_SHARE),
        )
    )
    return shares.select(
        _lit_date(run_day).alias(COL_RUN_DATE),
        COL_ALGORITHM,
        COL_GENRE,
        COL_EXPOSURES,
        COL_EXPOSURE_SHARE,
        COL_PLAYS,
        COL_CONSUMPTION_SHARE,
        _ratio(F.col(COL_EXPOSURE_SHARE), F.col(COL_CONSUMPTION_SHARE)).alias(COL_EXPOSURE_LIFT),
    )
