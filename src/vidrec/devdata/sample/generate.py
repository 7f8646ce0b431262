"""The generator: build the world on the driver, simulate users on Spark, write the raw files."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from vidrec import constants as C
from vidrec.devdata.sample.catalog import make_catalog
from vidrec.devdata.sample.render import _dumps
from vidrec.devdata.sample.simulate import CatalogArrays, n_user_blocks, simulate_users_batch, user_block
from vidrec.devdata.sample.vocab import (
    COL_RELEASE_DATE,
    EVENTS_DIR,
    ITEM_COLUMNS,
    ITEMS_FILE,
    USER_COLUMNS,
    USERS_FILE,
    USERS_PER_PARTITION,
    Span,
    log,
)


def build_world(
    seed: int,
    n_users: int,
    n_items: int,
    span: Span,
    events_per_user_mean: float = 40.0,
    lang: str = "en",
    media_taste: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The catalog and users :func:`generate` writes for these arguments (with internal columns).

    Returns
    -------
    catalog : pandas.DataFrame
        From :func:`make_catalog` with the generator ``default_rng([seed, 0])``, ``lang`` and
        ``media_taste``.
    users : pandas.DataFrame
        The blocks of :func:`user_block`, in order.
    """
    catalog = make_catalog(
        np.random.default_rng([seed, 0]), n_items, span, lang=lang, media_taste=media_taste
    )
    users = pd.concat(
        [user_block(seed, b, n_users, span, events_per_user_mean) for b in range(n_user_blocks(n_users))],
        ignore_index=True,
    )
    return catalog, users


def default_partitions(spark: SparkSession, n_users: int) -> int:
    """Partitions for simulating ``n_users``: one per :data:`USERS_PER_PARTITION` users, at least
    the default parallelism, at most one per block of :data:`USERS_PER_BLOCK` users."""
    wanted = max(spark.sparkContext.defaultParallelism, math.ceil(n_users / USERS_PER_PARTITION))
    return max(1, min(n_user_blocks(n_users), wanted))


def _write_items(catalog: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: never read as input
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in catalog[list(ITEM_COLUMNS)].to_dict(orient="records"):
            fh.write(_dumps(rec) + "\n")
    tmp.replace(path)


def _write_users(users: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: never read as input
    out = users[list(USER_COLUMNS)].copy()
    out[C.COL_SIGNUP_DATE] = [d.isoformat() for d in out[C.COL_SIGNUP_DATE]]
    out.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


def _rename_parts(spark: SparkSession, directory: str, suffix: str) -> int:
    """Rename Spark's ``part-*.txt`` files in ``directory`` to ``part-*<suffix>`` (checksums follow)."""
    jvm = spark._jvm
    assert jvm is not None, "the Spark session has no JVM gateway"
    path = jvm.org.apache.hadoop.fs.Path(directory)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    renamed = 0
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if name.startswith("part-") and name.endswith(".txt"):
            fs.rename(status.getPath(), jvm.org.apache.hadoop.fs.Path(path, name[: -len(".txt")] + suffix))
            renamed += 1
    return renamed


def generate(
    spark: SparkSession,
    out_dir: str,
    n_users: int,
    n_items: int,
    days: int,
    end_date: dt.date,
    seed: int = 42,
    bad_fraction: float = 0.0,
    events_per_user_mean: float = 40.0,
    num_partitions: int | None = None,
    lang: str = "en",
    media_taste: float = 0.0,
) -> dict[str, int]:
    """Write a synthetic sample into ``out_dir``: ``items.jsonl``, ``users.csv``, ``events.jsonl/``.

    The catalog and users are drawn on the driver and written there. Events are simulated on
    Spark's workers: a DataFrame of user-block numbers (consecutive blocks per partition) goes
    through ``mapInPandas``, which redraws each block's users (:func:`user_block`, nothing about
    users is shipped) and simulates them against the broadcast catalog; Spark writes the lines to
    ``events.jsonl/part-*.json``, users in index order, each user's events in time order. Existing
    outputs are replaced.

    Parameters
    ----------
    spark : SparkSession
    out_dir : str
        A local directory (created if needed).
    n_users, n_items : int
        Sizes, at least 1 each.
    days : int
        Days of events, ending at ``end_date`` (inclusive); at least 1.
    end_date : datetime.date
    seed : int
        Same arguments, same rows (whatever ``num_partitions``).
    bad_fraction : float
        Share of event lines replaced by garbage (:data:`BAD_KINDS`), in ``[0, 1]``; 0 writes only
        valid records.
    events_per_user_mean : float
        Target mean events per user (> 0); the measured mean lands near it.
    num_partitions : int, optional
        Spark partitions of the simulation; default :func:`default_partitions`.
    lang : str
        ``en`` or ``zh``: the catalog's language (:func:`make_catalog`); users and events are the same.
    media_taste : float
        Strength of the latent taste factor beyond genre that media embeddings carry and users follow
        (:func:`make_catalog`); 0 (default) leaves it out.

    Returns
    -------
    dict of str to int
        ``items``, ``users``, ``events`` (lines written, garbage included), ``bad_events``.

    Raises
    ------
    ValueError
        On an argument out of range, before any work.
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("days", days)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if events_per_user_mean <= 0:
        raise ValueError(f"events_per_user_mean must be > 0, got {events_per_user_mean}")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"bad_fraction must be in [0, 1], got {bad_fraction}")
    if num_partitions is not None and num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    span = Span(end_date=end_date, days=days)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    catalog, users = build_world(seed, n_users, n_items, span, events_per_user_mean, lang, media_taste)
    _write_items(catalog, out / ITEMS_FILE)
    _write_users(users, out / USERS_FILE)
    n_new = int((catalog[COL_RELEASE_DATE] > span.start_date).sum())
    log.info(
        "sample: %d items (%d released during the span) and %d users written to %s in %.1f s",
        n_items,
        n_new,
        n_users,
        out,
        time.perf_counter() - t0,
    )

    t1 = time.perf_counter()
    parts = num_partitions or default_partitions(spark, n_users)
    arrays = spark.sparkContext.broadcast(CatalogArrays.from_catalog(catalog, span))
    bad_counter = spark.sparkContext.accumulator(0)

    def simulate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cat = arrays.value
        for batch in batches:
            for block in batch["id"]:
                users_of_block = user_block(seed, int(block), n_users, span, events_per_user_mean)
                lines, n_bad = simulate_users_batch(users_of_block, cat, span, seed, bad_fraction)
                bad_counter.add(n_bad)
                if lines:
                    yield pd.DataFrame({"value": lines})

    blocks = spark.range(0, n_user_blocks(n_users), numPartitions=parts)  # consecutive blocks per partition
    events_path = out / EVENTS_DIR
    if events_path.is_file():
        events_path.unlink()
    log.info("sample: simulating events of %d users in %d partitions", n_users, parts)
    # pyspark's stub wants Iterable -> Iterable; Spark passes (and takes) an iterator
    blocks.mapInPandas(simulate, schema="value string").write.mode("overwrite").text(str(events_path))  # type: ignore[arg-type]
    _rename_parts(spark, str(events_path), ".json")
    arrays.unpersist()
    n_events = spark.read.text(str(events_path)).count()
    log.info(
        "sample: %d event lines (%d garbage) written to %s in %.1f s",
        n_events,
        bad_counter.value,
        events_path,
        time.perf_counter() - t1,
    )
    return {"items": n_items, "users": n_users, "events": int(n_events), "bad_events": int(bad_counter.value)}
