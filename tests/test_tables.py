"""Delta table writes: one commit per run date, idempotent replace, catalog registration."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from vidrec.data import tables

pytestmark = pytest.mark.spark

T = ("gold", "t_test")
D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def frame(spark, rows):
    return spark.createDataFrame(rows, "id int, algorithm string, run_date date")


def test_replace_partition_is_idempotent_and_scoped(spark, tmp_path) -> None:
    wh = str(tmp_path / "wh")
    tables.replace_partition(frame(spark, [(1, "a", D1), (2, "b", D1)]), wh, T, D1)
    tables.replace_partition(frame(spark, [(3, "a", D2)]), wh, T, D2)
    tables.replace_partition(frame(spark, [(1, "a", D1), (2, "b", D1)]), wh, T, D1)
    rows = sorted((r.id, r.algorithm, r.run_date) for r in tables.read(spark, wh, T).collect())
    assert rows == [(1, "a", D1), (2, "b", D1), (3, "a", D2)]
    # replacing one algorithm of a date leaves the others of that date alone
    tables.replace_partition(frame(spark, [(9, "a", D1)]), wh, T, D1, extra_predicate="algorithm IN ('a')")
    rows = sorted((r.id, r.algorithm, r.run_date) for r in tables.read(spark, wh, T).collect())
    assert rows == [(2, "b", D1), (3, "a", D2), (9, "a", D1)]


def test_register_follows_the_latest_warehouse(spark, tmp_path) -> None:
    for name, n in (("a", 1), ("b", 2)):
        wh = str(tmp_path / name)
        tables.replace_partition(frame(spark, [(i, "x", D1) for i in range(n)]), wh, T, D1)
        assert spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(T)}").first()["n"] == n


def test_a_second_registration_reads_no_table_and_a_dropped_name_comes_back(
    spark, tmp_path, monkeypatch
) -> None:
    """Every write registers its table: after the first, the session asks only whether the name is there."""
    wh = str(tmp_path / "wh")
    name = tables.catalog_name(T)
    tables.replace_partition(frame(spark, [(1, "x", D1)]), wh, T, D1)
    issued: list[str] = []
    real_sql = spark.sql
    monkeypatch.setattr(spark, "sql", lambda q, *a, **k: issued.append(q) or real_sql(q, *a, **k))
    tables.register(spark, wh, T)
    assert issued == []  # no DESCRIBE DETAIL, no CREATE
    real_sql(f"DROP TABLE {name}")  # the name dropped behind the session's back: registered again
    tables.register(spark, wh, T)
    assert any(q.startswith("CREATE TABLE") for q in issued)
    monkeypatch.undo()
    assert spark.sql(f"SELECT count(*) AS n FROM {name}").first()["n"] == 1


def test_replace_partition_needs_the_partition_column(spark, tmp_path) -> None:
    with pytest.raises(ValueError, match="run_date"):
        tables.replace_partition(spark.createDataFrame([(1,)], "id int"), str(tmp_path), T, D1)


def test_register_a_relative_warehouse(spark, tmp_path) -> None:
    """A relative warehouse (``./warehouse`` is the local default) registers at its absolute path."""
    rel = os.path.relpath(tmp_path / "rel_wh")  # relative to the cwd the JVM shares with Python
    for n in (1, 3):
        tables.replace_partition(frame(spark, [(i, "x", D1) for i in range(n)]), rel, T, D1)
        assert spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(T)}").first()["n"] == n
    location = spark.sql(f"DESCRIBE DETAIL {tables.catalog_name(T)}").first()["location"]
    assert location.rstrip("/").endswith(str(tmp_path / "rel_wh" / "gold" / "t_test"))


def test_changed_rows_compares_every_column_but_the_ignored_ones_nulls_equal(spark) -> None:
    schema = "id int, title string, genres array<string>, updated_at date"
    stored = spark.createDataFrame(
        [(1, "One", ["Drama"], D1), (2, None, [], D1), (3, "Three", ["A", "B"], D1)], schema
    )
    incoming = spark.createDataFrame(
        [
            (1, "One", ["Drama"], D2),  # same content, a later date: unchanged
            (2, None, [], D2),  # nulls equal nulls: unchanged
            (3, "Three", ["B", "A"], D2),  # list order is content: changed
            (4, "Four", [], D2),  # new
        ],
        schema,
    )
    changed = tables.changed_rows(incoming, stored, ignore=["updated_at"])
    assert sorted(r.id for r in changed.collect()) == [3, 4]
    assert tables.changed_rows(incoming, stored.drop("genres"), ignore=["updated_at"]) is incoming
