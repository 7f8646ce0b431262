"""Ingest: contract validation, quarantine with reasons, dedupe, idempotent writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from vidrec import constants as C
from vidrec import ingest, tables

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
    report = ingest.run(
        spark, {**conf, "ingest": {**conf["ingest"], "max_bad_fraction": 0.9}}, raw, RUN_DATE, now=NOW
    )
    wh = conf["warehouse"]
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
    wh = conf["warehouse"]
    assert tables.read(spark, wh, C.T_EVENTS).count() == len(GOOD)
    assert tables.read(spark, wh, C.T_ITEMS).count() == 1
    assert second.new_events == 0 and second.already_ingested == len(GOOD)
    assert tables.read(spark, wh, C.T_QUARANTINE).where("entity = 'events'").count() == 0


def test_conflicting_replay_is_quarantined(spark, conf, tmp_path) -> None:
    raw = write_raw(tmp_path / "raw", GOOD)
    ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    raw2 = write_raw(tmp_path / "raw2", [ev("e1", "complete", watch_seconds=10)])
    report = ingest.run(
        spark, {**conf, "ingest": {**conf["ingest"], "max_bad_fraction": 1.0}}, raw2, RUN_DATE, now=NOW
    )
    assert report.rejected["events"] == 1
    assert report.reasons["duplicate event_id (differs from the event already ingested)"] == 1


def test_bad_fraction_fails_before_silver(spark, conf, tmp_path) -> None:
    raw = write_raw(tmp_path / "raw", GOOD[:1] + [line for line, _ in BAD[:5]])
    with pytest.raises(ingest.BadInputError, match="max_bad_fraction"):
        ingest.run(spark, conf, raw, RUN_DATE, now=NOW)
    wh = conf["warehouse"]
    assert not tables.exists(spark, wh, C.T_EVENTS)
    assert not tables.exists(spark, wh, C.T_ITEMS)
    assert tables.read(spark, wh, C.T_QUARANTINE).count() >= 5


def test_unknown_extension_is_named(tmp_path) -> None:
    from vidrec.raw import discover

    (tmp_path / "events.xlsx").write_text("x")
    with pytest.raises(ValueError, match="events.xlsx"):
        discover(tmp_path)
