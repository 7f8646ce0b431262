"""Ingest: contract validation, quarantine with reasons, dedupe, idempotent writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from vidrec import constants as C
from vidrec.data import ingest, tables

pytestmark = pytest.mark.spark

RUN_DATE = dt.date(2026, 3, 2)
NOW = dt.datetime(2026, 3, 3, 6, 0)


def ev(eid: str, etype: str = "play", ts: str = "2026-03-01T10:00:00Z", **kw) -> str:
    rec = {"event_id": eid, "user_id": "u1", "item_id": "i1", "event_type": etype, "ts": ts, **kw}
    return json.dumps(rec)


GOOD = [
    ev("e1", watch_seconds=100.0),
    ev("e2", "complete", watch_seconds=3000),
    ev("e3", "rate", rating=4.5),
    ev("e4", "like", ts="1772359200000"),  # epoch milliseconds (2026-03-01T10:00Z)
    ev("e5", ts="2026-03-02T23:59:00+00:00"),
]
# (line, expected reason)
BAD = [
    ('{"event_id": "b1", "user_id": "u1"', "malformed record (not parseable)"),
    (
        json.dumps({"event_id": "b2", "item_id": "i1", "event_type": "play", "ts": "2026-03-01T10:00:00Z"}),
        "missing required field user_id",
    ),
    (ev("b3", "teleport"), "unknown event_type"),
    (ev("b4", watch_seconds=-5), "negative watch_seconds"),
    (ev("b5", "rate", rating=7), "rating out of range [0.5, 5]"),
    (ev("b6", ts="2030-01-01T00:00:00Z"), "ts in the future"),
    (ev("b7", ts="1990-01-01T00:00:00Z"), "ts before the catalog existed"),
    (
        json.dumps(
            {
                "event_id": "b8",
                "user_id": "u1",
                "item_id": "nope",
                "event_type": "play",
                "ts": "2026-03-01T10:00:00Z",
            }
        ),
        "unknown item_id",
    ),
    (ev("b9", ts="yesterday"), "invalid ts (want ISO-8601 with zone or epoch milliseconds)"),
    (ev("b10", ts="2026-03-01T10:00:00"), "invalid ts (want ISO-8601 with zone or epoch milliseconds)"),
    (ev("e1", "like", ts="2026-03-01T11:00:00Z"), "duplicate event_id"),  # the earlier copy wins
    (ev("b11", watch_seconds="lots"), "watch_seconds is not a number"),
    (ev("b12", "like", rating=3), "rating on a non-rate event"),
]
LATER = ev("l1", ts="2026-03-03T01:00:00Z")  # after the run date: left for a later run


def write_raw(root: Path, event_lines: list[str]) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "events.jsonl").write_text("\n".join(event_lines) + "\n")
    items = [
        {
            "item_id": "i1",
            "title": "One",
            "genres": ["Drama"],
            "directors": [],
            "cast": ["A"],
            "release_year": 2020,
            "duration_seconds": 3600,
            "description": "d",
            "language": "en",
        },
        {"item_id": "i2", "title": "Two", "genres": [], "release_year": "nineteen", "duration_seconds": 60},
    ]
    (root / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    (root / "users.csv").write_text(
        "user_id,signup_date,country,age_band,gender\nu1,2026-01-01,FR,25-34,f\n,2026-01-01,FR,,\n"
    )
    return str(root)


def test_validate_and_quarantine(spark, conf, tmp_path) -> None:
    raw = write_raw(tmp_path / "raw", GOOD + [line for line, _ in BAD] + [LATER])
    report = ingest.run(spark, conf.override({"ingest": {"max_bad_fraction": 0.9}}), raw, RUN_DATE, now=NOW)
    wh = conf.warehouse
    bronze = tables.read(spark, wh, C.T_EVENTS)
    assert sorted(r.event_id for r in bronze.collect()) == ["e1", "e2", "e3", "e4", "e5"]
    e4 = bronze.where("event_id = 'e4'").first()
    assert e4.ts == dt.datetime(2026, 3, 1, 10, 0) and e4.event_date == dt.date(2026, 3, 1)
    q = {
        (r.raw, r.reason) for r in tables.read(spark, wh, C.T_QUARANTINE).where("entity = 'events'").collect()
    }
    assert q == set(BAD)
    item_q = [r.reason for r in tables.read(spark, wh, C.T_QUARANTINE).where("entity = 'items'").collect()]
    assert item_q == ["invalid release_year"]
    user_q = [r.reason for r in tables.read(spark, wh, C.T_QUARANTINE).where("entity = 'users'").collect()]
    assert user_q == ["missing required field user_id"]
    assert report.deferred_events == 1 and report.new_events == 5
    assert report.rejected == {"events": len(BAD), "items": 1, "users": 1}
    assert report.reasons["unknown event_type"] == 1
    items = tables.read(spark, wh, C.T_ITEMS).collect()
    assert [(r.item_id, r.genres, r.duration_seconds) for r in items] == [("i1", ["Drama"], 3600.0)]


def test_rerun_is_idempotent(spark, conf, tmp_path) -> None:
    raw = write_raw(tmp_path / "raw", GOOD)
    ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    second = ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    wh = conf.warehouse
    assert tables.read(spark, wh, C.T_EVENTS).count() == len(GOOD)
    assert tables.read(spark, wh, C.T_ITEMS).count() == 1
    assert second.new_events == 0 and second.already_ingested == len(GOOD)
    assert tables.read(spark, wh, C.T_QUARANTINE).where("entity = 'events'").count() == 0


def test_a_clean_rerun_clears_the_dates_quarantine_and_a_clean_night_commits_nothing(
    spark, conf, tmp_path
) -> None:
    from delta.tables import DeltaTable

    wh = conf.warehouse
    lenient = conf.override({"ingest": {"max_bad_fraction": 0.9}})
    ingest.run(spark, lenient, write_raw(tmp_path / "bad", GOOD + [ev("b3", "teleport")]), RUN_DATE, now=NOW)
    # the teleport event, item i2's release year, the profile without a user_id
    assert tables.read(spark, wh, C.T_QUARANTINE).count() == 3
    clean = write_raw(tmp_path / "clean", GOOD)
    for name in ("items.jsonl", "users.csv"):  # the first line (and the header) only: nothing to reject
        path = tmp_path / "clean" / name
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[: 2 if name.endswith(".csv") else 1]) + "\n")
    ingest.run(spark, conf, clean, RUN_DATE, now=NOW)
    assert tables.read(spark, wh, C.T_QUARANTINE).count() == 0  # the rerun replaced the date's rows

    def version() -> int:
        return DeltaTable.forPath(spark, tables.table_path(wh, C.T_QUARANTINE)).history(1).first().version

    before = version()
    report = ingest.run(spark, conf, clean, RUN_DATE + dt.timedelta(days=1), now=NOW)
    assert report.rejected == {"events": 0, "items": 0, "users": 0}
    assert version() == before  # no empty commit for a clean night


def test_an_unchanged_catalog_makes_no_commit_and_a_changed_title_rewrites_its_row_only(
    spark, conf, tmp_path
) -> None:
    from delta.tables import DeltaTable

    wh = conf.warehouse
    lenient = conf.override({"ingest": {"max_bad_fraction": 0.9}})
    raw = tmp_path / "raw"
    write_raw(raw, GOOD)

    def night(day: dt.date, second_title: str) -> None:
        titles = (("i1", "One"), ("i2", second_title))
        lines = [json.dumps({"item_id": i, "title": t, "genres": ["Drama"]}) for i, t in titles]
        (raw / "items.jsonl").write_text("\n".join(lines) + "\n")
        ingest.run(spark, lenient, str(raw), day, now=NOW)

    def last_commit(table):
        return DeltaTable.forPath(spark, tables.table_path(wh, table)).history(1).first()

    def items() -> list[tuple]:
        return sorted((r.item_id, r.title, r.updated_at) for r in tables.read(spark, wh, C.T_ITEMS).collect())

    night(RUN_DATE, "Two")
    before = (last_commit(C.T_ITEMS).version, last_commit(C.T_USERS).version)
    day2, day3 = RUN_DATE + dt.timedelta(days=1), RUN_DATE + dt.timedelta(days=2)
    night(day2, "Two")  # the same catalog and profiles again
    assert (last_commit(C.T_ITEMS).version, last_commit(C.T_USERS).version) == before
    assert items() == [("i1", "One", RUN_DATE), ("i2", "Two", RUN_DATE)]  # the date of the last change
    night(day3, "Deux")
    assert (last_commit(C.T_ITEMS).version, last_commit(C.T_USERS).version) == (before[0] + 1, before[1])
    assert items() == [("i1", "One", RUN_DATE), ("i2", "Deux", day3)]
    assert last_commit(C.T_ITEMS).operationMetrics["numTargetRowsUpdated"] == "1"


def test_conflicting_replay_is_quarantined(spark, conf, tmp_path) -> None:
    raw = write_raw(tmp_path / "raw", GOOD)
    ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    raw2 = write_raw(tmp_path / "raw2", [ev("e1", "complete", watch_seconds=10)])
    report = ingest.run(spark, conf.override({"ingest": {"max_bad_fraction": 1.0}}), raw2, RUN_DATE, now=NOW)
    assert report.rejected["events"] == 1
    assert report.reasons["duplicate event_id (differs from the event already ingested)"] == 1


def test_rejects_keep_raw_text_when_bronze_exists(spark, conf, tmp_path) -> None:
    """The cache keeps raw text only where a record can still be quarantined: each kind keeps it."""
    raw = write_raw(tmp_path / "raw", GOOD)
    ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    conflict = ev("e2", "like")  # e2 is in bronze as a complete: other content
    dupe_new = ev("n1", "like", ts="2026-03-01T12:00:00Z")  # the later copy of a new event_id
    bad = ev("b4", watch_seconds=-5)
    lines = [GOOD[0], conflict, ev("n1", "like"), dupe_new, bad, LATER]
    raw2 = write_raw(tmp_path / "raw2", lines)
    report = ingest.run(spark, conf.override({"ingest": {"max_bad_fraction": 1.0}}), raw2, RUN_DATE, now=NOW)
    wh = conf.warehouse
    q = {
        (r.raw, r.reason) for r in tables.read(spark, wh, C.T_QUARANTINE).where("entity = 'events'").collect()
    }
    assert q == {
        (conflict, "duplicate event_id (differs from the event already ingested)"),
        (dupe_new, "duplicate event_id"),
        (bad, "negative watch_seconds"),
    }
    assert report.already_ingested == 1 and report.new_events == 1 and report.deferred_events == 1
    n1 = tables.read(spark, wh, C.T_EVENTS).where("event_id = 'n1'").first()
    assert n1.event_type == "like" and n1.ts == dt.datetime(2026, 3, 1, 10, 0)


def test_drop_unneeded_raw_keeps_it_on_rejectable_records(spark) -> None:
    rows = [
        # (event_id, raw, _reason, _due, _copy, _old_ts)
        ("a", "new, wins", None, True, 1, None),
        ("a", "new, loses", None, True, 2, None),
        ("b", "broke a rule", "unknown event_type", False, 1, None),
        ("c", "deferred copy", None, False, 2, None),
        ("d", "in bronze", None, True, 1, dt.datetime(2026, 3, 1)),
    ]
    df = spark.createDataFrame(
        rows, "event_id string, raw string, _reason string, _due boolean, _copy int, _old_ts timestamp"
    )
    got = {r.raw for r in ingest.drop_unneeded_raw(df).collect()}
    assert got == {None, "new, loses", "broke a rule", "in bronze"}
    no_bronze = {r.raw for r in ingest.drop_unneeded_raw(df.drop("_old_ts")).collect()}
    assert no_bronze == {None, "new, loses", "broke a rule"}


def test_bad_fraction_fails_before_silver(spark, conf, tmp_path) -> None:
    raw = write_raw(tmp_path / "raw", GOOD[:1] + [line for line, _ in BAD[:5]])
    with pytest.raises(ingest.BadInputError, match="max_bad_fraction"):
        ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    wh = conf.warehouse
    assert not tables.exists(spark, wh, C.T_EVENTS)
    assert not tables.exists(spark, wh, C.T_ITEMS)
    assert tables.read(spark, wh, C.T_QUARANTINE).count() >= 5


def test_unknown_extension_is_named(tmp_path) -> None:
    from vidrec.data.raw import discover

    (tmp_path / "events.xlsx").write_text("x")
    with pytest.raises(ValueError, match="events.xlsx"):
        discover(tmp_path)


# --- every kind of bad input: quarantined with raw text, source file and reason, counted -------

LONG = 600  # conf ingest.max_line_bytes for the suite below


def _line(eid: str, **kw) -> str:
    rec = {"event_id": eid, "user_id": "u1", "item_id": "i1", "event_type": "play"}
    rec.update({"ts": "2026-03-01T10:00:00Z", **kw})
    return json.dumps(rec)


#: (kind, file name, file bytes, the rejected line's text, expected reason)
BAD_KINDS = [
    (
        "malformed JSON",
        "events_malformed.jsonl",
        b'{"event_id": "m1", "user_id": \n',
        '{"event_id": "m1", "user_id": ',
        "malformed record (not parseable)",
    ),
    (
        "truncated file",
        "events_truncated.jsonl",
        (_line("t0") + '\n{"event_id": "t1", "user_id": "u1", "item_').encode(),
        '{"event_id": "t1", "user_id": "u1", "item_',
        "malformed record (not parseable)",
    ),
    (
        "wrong type (watch_seconds)",
        "events_type_watch.jsonl",
        (_line("w1", watch_seconds="lots") + "\n").encode(),
        _line("w1", watch_seconds="lots"),
        "watch_seconds is not a number",
    ),
    (
        "wrong type (rating)",
        "events_type_rating.jsonl",
        (_line("w2", event_type="rate", rating=[4]) + "\n").encode(),
        _line("w2", event_type="rate", rating=[4]),
        "rating is not a number",
    ),
    (
        "missing field",
        "events_missing.jsonl",
        (
            json.dumps(
                {"event_id": "f1", "user_id": "u1", "event_type": "play", "ts": "2026-03-01T10:00:00Z"}
            )
            + "\n"
        ).encode(),
        json.dumps({"event_id": "f1", "user_id": "u1", "event_type": "play", "ts": "2026-03-01T10:00:00Z"}),
        "missing required field item_id",
    ),
    (
        "empty required field",
        "events_empty_id.jsonl",
        (_line("") + "\n").encode(),
        _line(""),
        "missing required field event_id",
    ),
    (
        "unknown event type",
        "events_type.jsonl",
        (_line("u1x", event_type="teleport") + "\n").encode(),
        _line("u1x", event_type="teleport"),
        "unknown event_type",
    ),
    (
        "negative watch_seconds",
        "events_negative.jsonl",
        (_line("n1", watch_seconds=-5) + "\n").encode(),
        _line("n1", watch_seconds=-5),
        "negative watch_seconds",
    ),
    (
        "absurd watch_seconds",
        "events_absurd.jsonl",
        (_line("a1", watch_seconds=1e9) + "\n").encode(),
        _line("a1", watch_seconds=1e9),
        "absurd watch_seconds",
    ),
    (
        "rating above range",
        "events_rating_hi.jsonl",
        (_line("r1", event_type="rate", rating=7) + "\n").encode(),
        _line("r1", event_type="rate", rating=7),
        "rating out of range [0.5, 5]",
    ),
    (
        "rating below range",
        "events_rating_lo.jsonl",
        (_line("r2", event_type="rate", rating=0) + "\n").encode(),
        _line("r2", event_type="rate", rating=0),
        "rating out of range [0.5, 5]",
    ),
    (
        "ts in the future",
        "events_future.jsonl",
        (_line("ts1", ts="2030-01-01T00:00:00Z") + "\n").encode(),
        _line("ts1", ts="2030-01-01T00:00:00Z"),
        "ts in the future",
    ),
    (
        "ts before the catalog",
        "events_past.jsonl",
        (_line("ts2", ts="1990-01-01T00:00:00Z") + "\n").encode(),
        _line("ts2", ts="1990-01-01T00:00:00Z"),
        "ts before the catalog existed",
    ),
    (
        "unknown item id",
        "events_item.jsonl",
        (_line("i1x", item_id="nope") + "\n").encode(),
        _line("i1x", item_id="nope"),
        "unknown item_id",
    ),
    (
        "duplicate id within a file",
        "events_dup_within.jsonl",
        (_line("d1") + "\n" + _line("d1", ts="2026-03-01T11:00:00Z") + "\n").encode(),
        _line("d1", ts="2026-03-01T11:00:00Z"),
        "duplicate event_id",
    ),
    (
        "duplicate id across files",
        "events_dup_z.jsonl",
        (_line("good1") + "\n").encode(),
        _line("good1"),
        "duplicate event_id",
    ),
    (
        "non-UTF-8 bytes",
        "events_bytes.jsonl",
        (_line("nb1", device="tv@@") + "\n").encode().replace(b"@@", b"\xff\xfe"),
        _line("nb1", device="tv@@").replace("@@", "\ufffd\ufffd"),  # kept readable, bytes marked
        "invalid UTF-8 bytes",
    ),
    (
        "huge line",
        "events_huge.jsonl",
        (_line("h1", device="x" * (2 * LONG)) + "\n").encode(),
        _line("h1", device="x" * (2 * LONG)),
        f"line too long (> {LONG} bytes)",
    ),
]


@pytest.fixture(scope="module")
def bad_input_run(spark, base_conf, tmp_path_factory) -> dict:
    """One ingest over a good file and one file per kind of bad input (max_bad_fraction 1)."""
    root = tmp_path_factory.mktemp("bad_kinds")
    raw = Path(write_raw(root / "raw", [_line("good1"), _line("good2", event_type="like")]))
    for _, name, content, _, _ in BAD_KINDS:
        (raw / name).write_bytes(content)
    conf = base_conf.override(
        {"warehouse": str(root / "wh"), "ingest": {"max_bad_fraction": 1.0, "max_line_bytes": LONG}}
    )
    report = ingest.run(spark, conf, str(raw), RUN_DATE, now=NOW)
    rows = tables.read(spark, conf.warehouse, C.T_QUARANTINE).where("entity = 'events'").collect()
    bronze = {r.event_id for r in tables.read(spark, conf.warehouse, C.T_EVENTS).collect()}
    return {"report": report, "rows": rows, "bronze": bronze}


@pytest.mark.parametrize(
    ("kind", "name", "content", "line", "reason"), BAD_KINDS, ids=[k[0] for k in BAD_KINDS]
)
def test_each_kind_of_bad_input_is_quarantined(bad_input_run, kind, name, content, line, reason) -> None:
    hits = [r for r in bad_input_run["rows"] if r.source_file.endswith("/" + name)]
    assert [(r.raw, r.reason) for r in hits] == [(line, reason)], kind
    assert all(r.run_date == RUN_DATE for r in hits)


def test_bad_input_is_counted_by_reason_and_nothing_else_is_lost(bad_input_run) -> None:
    report = bad_input_run["report"]
    want: dict[str, int] = {}
    for *_, reason in BAD_KINDS:
        want[reason] = want.get(reason, 0) + 1
    want["invalid release_year"] = 1  # write_raw's catalog
    want["missing required field user_id"] = 1  # write_raw's profiles
    assert report.reasons == want
    assert report.event_reasons == {k: v for k, v in want.items() if k in {b[-1] for b in BAD_KINDS}}
    # every event line is either in bronze or in the quarantine
    assert bad_input_run["bronze"] == {"good1", "good2", "t0", "d1"}
    assert report.rejected["events"] == len(BAD_KINDS) == len(bad_input_run["rows"])
    assert report.new_events == 4 and report.events_read == 4 + len(BAD_KINDS)


def test_describe_days_keeps_a_backfill_log_line_short() -> None:
    few = {"2026-03-01": 3, "2026-03-02": 1}
    assert ingest.describe_days(few) == str(few)
    many = {f"2026-01-{d:02d}": d for d in range(1, 31)}
    text = ingest.describe_days(many)
    assert text.startswith("30 days from 2026-01-01 to 2026-01-30")
    assert "2026-01-30: 30" in text and "2026-01-01: 1" not in text
