"""Ingest: validate raw records against the input contract, quarantine the rest, write bronze/silver.

Pure transforms take the string-typed records of :mod:`vidrec.data.raw`: ``validate_items`` and
``validate_users`` return ``(accepted, rejected)``; ``tag_events`` types every event and tags it
with the first rule it broke (``reason`` in the quarantine), ``rank_copies`` marks which copy of a
duplicated ``event_id`` wins, and ``dedupe_events`` splits new events, duplicates and replays of
bronze. ``run`` does the I/O, reading the events once (parsed, checked, ranked and matched with bronze,
then cached; ``drop_unneeded_raw`` keeps the raw text only on records that can still be
quarantined, so the cache of a large batch holds typed columns): one Delta commit per table,
quarantine written first, and no bronze/silver write at all when the bad fraction passes the limit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import cast

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec.config import Config
from vidrec.config.sections import IngestConf
from vidrec.data import privacy, schemas, tables
from vidrec.data import raw as rawio

log = logging.getLogger(__name__)

COL_ENTITY = "entity"
_REASON_TMP = "_reason"
_DUE = "_due"
_COPY = "_copy"
#: ISO-8601 with a zone designator, or epoch milliseconds.
_ISO_WITH_ZONE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"
_EPOCH_MS = r"^\d{10,14}$"


class BadInputError(RuntimeError):
    """Rejected share of events passed ``ingest.max_bad_fraction``; only the quarantine was written.

    ``report`` holds the run's counts (rejected records by reason), for the run log.
    """

    def __init__(self, message: str, report: IngestReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def describe_days(counts: dict[str, int], limit: int = 10) -> str:
    """``counts`` (event_date -> events) for a log line: all of them, or a range and the largest days."""
    if len(counts) <= limit:
        return str(counts)
    days = sorted(counts)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    largest = ", ".join(f"{d}: {n}" for d, n in top)
    return f"{len(days)} days from {days[0]} to {days[-1]} (largest: {largest})"


@dataclass
class IngestReport:
    """Counts of one ingest run, for the run summary and ``ops/runs``."""

    read: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    deferred_events: int = 0
    already_ingested: int = 0
    new_events: int = 0
    #: new events dated before the run date (arrived late), by ``event_date`` (ISO string)
    late_events: dict[str, int] = field(default_factory=dict)
    #: rejected records by reason, events only (what ``max_bad_fraction`` is about)
    event_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def bad_fraction(self) -> float:
        total = self.accepted.get("events", 0) + self.rejected.get("events", 0)
        return self.rejected.get("events", 0) / total if total else 0.0

    @property
    def events_read(self) -> int:
        """Event records in the input, whatever became of them (accepted, rejected or deferred)."""
        return self.accepted.get("events", 0) + self.rejected.get("events", 0) + self.deferred_events

    @property
    def empty_day(self) -> bool:
        """True when the input held no event record at all (a valid, if quiet, day)."""
        return self.events_read == 0


def _first_reason(checks: list[tuple[F.Column, str]]) -> F.Column:
    """The message of the first check whose condition is true, else null."""
    expr = F.lit(None).cast("string")
    for cond, message in reversed(checks):
        expr = F.when(F.coalesce(cond, F.lit(False)), F.lit(message)).otherwise(expr)
    return expr


def _common_checks(
    df: DataFrame, required: tuple[str, ...], max_line_bytes: int
) -> list[tuple[F.Column, str]]:
    checks: list[tuple[F.Column, str]] = [
        (F.octet_length(C.COL_RAW) > max_line_bytes, f"line too long (> {max_line_bytes} bytes)"),
        (F.col(rawio.COL_MALFORMED), "malformed record (not parseable)"),
        # Spark keeps a line's bytes as they came: invalid UTF-8 is only visible to is_valid_utf8
        (~F.is_valid_utf8(C.COL_RAW) | (F.instr(C.COL_RAW, "\ufffd") > 0), "invalid UTF-8 bytes"),
    ]
    for name in required:
        checks.append((F.col(name).isNull() | (F.trim(F.col(name)) == ""), f"missing required field {name}"))
    return checks


def parse_ts(col: F.Column) -> F.Column:
    """ISO-8601 with zone, or epoch milliseconds, to a UTC timestamp (null when neither)."""
    trimmed = F.trim(col)
    return (
        F.when(trimmed.rlike(_EPOCH_MS), F.timestamp_millis(trimmed.try_cast("long")))
        .when(trimmed.rlike(_ISO_WITH_ZONE), trimmed.try_cast("timestamp"))
        .otherwise(F.lit(None).cast("timestamp"))
    )


def _rejected(tagged: DataFrame, entity: str) -> DataFrame:
    """Quarantine rows (``source_file, raw, reason, entity``) of a frame tagged with ``_reason``."""
    return tagged.where(F.col(_REASON_TMP).isNotNull()).select(
        C.COL_SOURCE_FILE,
        F.make_valid_utf8(C.COL_RAW).alias(C.COL_RAW),  # invalid bytes kept as U+FFFD, readable
        F.col(_REASON_TMP).alias(C.COL_REASON),
        F.lit(entity).alias(COL_ENTITY),
    )


def _split(df: DataFrame, reason: F.Column, keep: list[F.Column], entity: str) -> tuple[DataFrame, DataFrame]:
    tagged = df.withColumn(_REASON_TMP, reason)
    return tagged.where(F.col(_REASON_TMP).isNull()).select(*keep), _rejected(tagged, entity)


def tag_events(
    records: DataFrame,
    now: dt.datetime,
    ingest_conf: IngestConf,
    known_items: DataFrame | None = None,
) -> DataFrame:
    """Type and check event records: every record, typed, with the first rule it broke (null: none).

    Parameters
    ----------
    records : DataFrame
        String-typed event records from :func:`vidrec.data.raw.read_source`.
    now : datetime
        Ingestion time (UTC): events later than ``now + future_tolerance_hours`` are rejected.
    ingest_conf : dict
        The ``ingest`` section of the configuration.
    known_items : DataFrame, optional
        ``item_id`` of the catalog; events of other items are rejected when given.

    Returns
    -------
    DataFrame
        Bronze columns except ``ingested_at`` (typed ``ts``, ``watch_seconds``, ``rating``...), with
        ``source_file``, ``raw`` and ``_reason``; one pass over the records serves both the accepted
        rows and the quarantine.
    """
    ts = parse_ts(F.col(C.COL_TS))
    watch = F.col(C.COL_WATCH_SECONDS).try_cast("double")
    rating = F.col(C.COL_RATING).try_cast("double")
    position = F.col(C.COL_POSITION).try_cast("double")
    etype = F.lower(F.trim(F.col(C.COL_EVENT_TYPE)))
    future = F.lit((now + dt.timedelta(hours=ingest_conf.future_tolerance_hours)).isoformat(sep=" ")).cast(
        "timestamp"
    )
    oldest = F.lit(ingest_conf.min_event_date).cast("timestamp")
    present = lambda name: F.col(name).isNotNull() & (F.trim(F.col(name)) != "")  # noqa: E731
    checks = _common_checks(
        records, ("event_id", "user_id", "item_id", "event_type", "ts"), ingest_conf.max_line_bytes
    )
    checks += [
        (~etype.isin(*C.EVENT_TYPES), "unknown event_type"),
        (ts.isNull(), "invalid ts (want ISO-8601 with zone or epoch milliseconds)"),
        (ts > future, "ts in the future"),
        (ts < oldest, "ts before the catalog existed"),
        (present(C.COL_WATCH_SECONDS) & watch.isNull(), "watch_seconds is not a number"),
        (watch < 0, "negative watch_seconds"),
        (watch > ingest_conf.max_watch_seconds, "absurd watch_seconds"),
        (
            present(C.COL_WATCH_SECONDS) & ~etype.isin(*C.WATCH_EVENT_TYPES),
            "watch_seconds on a non-watch event",
        ),
        (present(C.COL_RATING) & rating.isNull(), "rating is not a number"),
        (present(C.COL_RATING) & (etype != "rate"), "rating on a non-rate event"),
        ((etype == "rate") & rating.isNull(), "rate event without rating"),
        ((rating < C.RATING_MIN) | (rating > C.RATING_MAX), "rating out of range [0.5, 5]"),
        (present(C.COL_POSITION) & (position.isNull() | (position < 0)), "invalid position_seconds"),
    ]
    df = records
    if known_items is not None:
        known = known_items.select(F.col(C.COL_ITEM).alias("_known_item")).distinct()
        df = df.join(F.broadcast(known), F.col(C.COL_ITEM) == F.col("_known_item"), "left")
        checks.append((F.col("_known_item").isNull(), "unknown item_id"))
    keep = [
        F.trim(F.col(C.COL_EVENT_ID)).alias(C.COL_EVENT_ID),
        F.trim(F.col(C.COL_USER)).alias(C.COL_USER),
        F.trim(F.col(C.COL_ITEM)).alias(C.COL_ITEM),
        etype.alias(C.COL_EVENT_TYPE),
        ts.alias(C.COL_TS),
        watch.alias(C.COL_WATCH_SECONDS),
        rating.alias(C.COL_RATING),
        F.col(C.COL_SESSION),
        F.col(C.COL_DEVICE),
        position.alias(C.COL_POSITION),
        F.to_date(ts).alias(C.COL_EVENT_DATE),
        F.col(C.COL_SOURCE_FILE),
        F.col(C.COL_RAW),
    ]
    return df.select(*keep, _first_reason(checks).alias(_REASON_TMP))


def rank_copies(tagged: DataFrame, run_date: dt.date) -> DataFrame:
    """``tagged`` plus ``_due`` (valid and dated up to ``run_date``) and ``_copy`` (1 for the copy of an
    ``event_id`` that wins among the due events: earliest by ts, source file, raw text).

    One shuffle of the records serves the deferred count, the dedupe and the quarantine of duplicates.
    """
    due = F.col(_REASON_TMP).isNull() & (F.col(C.COL_EVENT_DATE) <= F.lit(run_date))
    w = Window.partitionBy(C.COL_EVENT_ID, _DUE).orderBy(C.COL_TS, C.COL_SOURCE_FILE, C.COL_RAW)
    return tagged.withColumn(_DUE, due).withColumn(_COPY, F.row_number().over(w))


#: Bronze columns compared with a batch event of the same ``event_id``: equal means a replay.
_CONTENT = (C.COL_USER, C.COL_ITEM, C.COL_EVENT_TYPE, C.COL_TS)
_OLD = "_old_"


def attach_ingested(ranked: DataFrame, existing: DataFrame) -> DataFrame:
    """``ranked`` plus the bronze content (``_old_<col>``, null when the ``event_id`` is new) of each
    record's ``event_id``: the one join with bronze that replays and conflicts are told apart by."""
    old = existing.select(C.COL_EVENT_ID, *[F.col(c).alias(_OLD + c) for c in _CONTENT])
    return ranked.join(old, C.COL_EVENT_ID, "left")


def drop_unneeded_raw(ranked: DataFrame) -> DataFrame:
    """``ranked`` with ``raw`` kept only on records that can still reach the quarantine.

    Those are the records that broke a rule, the losing copies of a due ``event_id``, and (with
    :func:`attach_ingested` applied) those whose ``event_id`` is already in bronze (a conflict keeps
    its raw text). Every other record is accepted or deferred, and neither keeps its raw text, so
    the cached batch holds the typed columns of most events and raw text only for a few.
    """
    can_reject = F.col(_REASON_TMP).isNotNull() | (F.col(_DUE) & (F.col(_COPY) > 1))
    if _OLD + C.COL_TS in ranked.columns:
        can_reject = can_reject | F.col(_OLD + C.COL_TS).isNotNull()
    return ranked.withColumn(C.COL_RAW, F.when(can_reject, F.col(C.COL_RAW)))


def dedupe_events(ranked: DataFrame, existing: DataFrame | None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Resolve duplicate ``event_id`` within the batch and against bronze.

    Within the batch the earliest copy (by ts, source file, raw text) wins and the others are
    rejected. A batch event already in bronze with the same content is a replay (a rerun or an
    overlapping file): skipped, not an error. One whose content differs is rejected.
    ``ranked`` holds the due events of :func:`rank_copies` (their ``_copy`` says which copy wins),
    with bronze's content already attached by :func:`attach_ingested` or not (then it is joined here).

    Returns
    -------
    new : DataFrame
        Events to append to bronze.
    rejected : DataFrame
        ``source_file, raw, reason, entity``.
    replays : DataFrame
        Events already ingested (only counted).
    """
    dupes = ranked.where(F.col(_COPY) > 1).select(
        C.COL_SOURCE_FILE,
        C.COL_RAW,
        F.lit("duplicate event_id").alias(C.COL_REASON),
        F.lit("events").alias(COL_ENTITY),
    )
    attached = _OLD + C.COL_TS in ranked.columns
    if existing is None and not attached:
        first = ranked.where(F.col(_COPY) == 1).drop(_COPY, _DUE, _REASON_TMP)
        return first, dupes, first.limit(0)
    # not attached: existing is not None (returned above otherwise)
    joined = ranked if attached else attach_ingested(ranked, cast(DataFrame, existing))
    joined = joined.where(F.col(_COPY) == 1).drop(_COPY, _DUE, _REASON_TMP)
    is_old = F.col(_OLD + C.COL_TS).isNotNull()
    same = F.lit(True)
    for c in _CONTENT:
        same = same & F.col(c).eqNullSafe(F.col(_OLD + c))
    cols = [c for c in joined.columns if not c.startswith(_OLD)]
    new = joined.where(~is_old).select(*cols)
    replays = joined.where(is_old & same).select(*cols)
    conflicts = joined.where(is_old & ~same).select(
        C.COL_SOURCE_FILE,
        C.COL_RAW,
        F.lit("duplicate event_id (differs from the event already ingested)").alias(C.COL_REASON),
        F.lit("events").alias(COL_ENTITY),
    )
    return new, dupes.unionByName(conflicts), replays


def _dedupe_keep_last(accepted: DataFrame, key: str, entity: str) -> tuple[DataFrame, DataFrame]:
    """Keep one record per ``key`` (the last by source file and raw text); reject the others."""
    w = Window.partitionBy(key).orderBy(F.col(C.COL_SOURCE_FILE).desc(), F.col(C.COL_RAW).desc())
    ranked = accepted.withColumn("_n", F.row_number().over(w))
    rejected = ranked.where(F.col("_n") > 1).select(
        C.COL_SOURCE_FILE,
        C.COL_RAW,
        F.lit(f"duplicate {key}").alias(C.COL_REASON),
        F.lit(entity).alias(COL_ENTITY),
    )
    return ranked.where(F.col("_n") == 1).drop("_n"), rejected


def validate_items(records: DataFrame, run_date: dt.date, max_line_bytes: int) -> tuple[DataFrame, DataFrame]:
    """Type and check catalog records (one kept per ``item_id``); return ``(accepted, rejected)``."""
    year = F.col(C.COL_RELEASE_YEAR).try_cast("int")
    duration = F.col(C.COL_DURATION).try_cast("double")
    visual = F.col(C.COL_VISUAL_EMB).try_cast("array<float>")
    audio = F.col(C.COL_AUDIO_EMB).try_cast("array<float>")
    checks = _common_checks(records, (C.COL_ITEM, C.COL_TITLE), max_line_bytes)
    checks += [
        (
            F.col(C.COL_RELEASE_YEAR).isNotNull() & (year.isNull() | (year < 1870) | (year > 2100)),
            "invalid release_year",
        ),
        (
            F.col(C.COL_DURATION).isNotNull() & (duration.isNull() | (duration <= 0)),
            "invalid duration_seconds",
        ),
        (F.col(C.COL_VISUAL_EMB).isNotNull() & visual.isNull(), "visual_embedding is not a list of numbers"),
        (F.col(C.COL_AUDIO_EMB).isNotNull() & audio.isNull(), "audio_embedding is not a list of numbers"),
    ]
    clean_list = lambda name: F.filter(F.transform(F.col(name), F.trim), lambda x: x != "")  # noqa: E731
    keep = [
        F.trim(F.col(C.COL_ITEM)).alias(C.COL_ITEM),
        F.col(C.COL_TITLE),
        F.coalesce(clean_list(C.COL_GENRES), F.array().cast("array<string>")).alias(C.COL_GENRES),
        F.coalesce(clean_list(C.COL_DIRECTORS), F.array().cast("array<string>")).alias(C.COL_DIRECTORS),
        F.coalesce(clean_list(C.COL_CAST), F.array().cast("array<string>")).alias(C.COL_CAST),
        year.alias(C.COL_RELEASE_YEAR),
        duration.alias(C.COL_DURATION),
        F.col(C.COL_DESCRIPTION),
        F.col(C.COL_LANGUAGE),
        F.col(C.COL_MATURITY),
        visual.alias(C.COL_VISUAL_EMB),
        audio.alias(C.COL_AUDIO_EMB),
        F.lit(run_date).alias(C.COL_UPDATED_AT),
        F.col(C.COL_SOURCE_FILE),
        F.col(C.COL_RAW),
    ]
    accepted, rejected = _split(records, _first_reason(checks), keep, "items")
    accepted, dupes = _dedupe_keep_last(accepted, C.COL_ITEM, "items")
    return accepted.drop(C.COL_SOURCE_FILE, C.COL_RAW), rejected.unionByName(dupes)


def validate_users(
    records: DataFrame,
    run_date: dt.date,
    max_line_bytes: int,
    keep_optional: tuple[str, ...] = (),
) -> tuple[DataFrame, DataFrame]:
    """Type and check user profiles (one kept per ``user_id``); return ``(accepted, rejected)``.

    Accepted rows hold ``user_id``, the profile columns something uses
    (:data:`vidrec.constants.PROFILE_COLUMNS`),
    those of ``keep_optional`` (``privacy.keep_profile_columns``) and ``updated_at``: a column nothing
    needs is read and checked, never stored.
    """
    signup = F.coalesce(
        F.col(C.COL_SIGNUP_DATE).try_cast("date"), F.to_date(parse_ts(F.col(C.COL_SIGNUP_DATE)))
    )
    checks = _common_checks(records, (C.COL_USER,), max_line_bytes)
    checks.append((F.col(C.COL_SIGNUP_DATE).isNotNull() & signup.isNull(), "invalid signup_date"))
    keep = [
        F.trim(F.col(C.COL_USER)).alias(C.COL_USER),
        signup.alias(C.COL_SIGNUP_DATE),
        F.col(C.COL_COUNTRY),
        F.col(C.COL_AGE_BAND),
        *[F.col(c) for c in C.PROFILE_OPTIONAL_COLUMNS if c in keep_optional],
        F.lit(run_date).alias(C.COL_UPDATED_AT),
        F.col(C.COL_SOURCE_FILE),
        F.col(C.COL_RAW),
    ]
    accepted, rejected = _split(records, _first_reason(checks), keep, "users")
    accepted, dupes = _dedupe_keep_last(accepted, C.COL_USER, "users")
    return accepted.drop(C.COL_SOURCE_FILE, C.COL_RAW), rejected.unionByName(dupes)


def run(
    spark: SparkSession,
    conf: Config,
    raw_dir: str,
    run_date: dt.date,
    now: dt.datetime | None = None,
) -> IngestReport:
    """Ingest ``raw_dir`` for ``run_date``: catalog and users MERGEd, new events appended to bronze.

    Bronze is read once (the ``event_id`` and content of every stored event, to tell new events from
    replays and conflicts); the new events are then appended, which relies on the caller holding the
    warehouse lease (:mod:`vidrec.pipeline.lease`) as every job does.

    Order of writes: quarantine (replaced for the run date) first; then, only when the bad fraction
    is within ``ingest.max_bad_fraction``, ``silver/items``, ``silver/users`` and ``bronze/events``
    (each one commit). Events after the run date are left for later runs.

    Raises
    ------
    BadInputError
        When the rejected share of events passes ``ingest.max_bad_fraction``.
    """
    wh = conf.warehouse
    icf = conf.ingest
    key = privacy.load_key(conf.privacy)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report = IngestReport()
    sources = rawio.discover(raw_dir)
    log.info("ingest: %d source(s) in %s: %s", len(sources), raw_dir, ", ".join(s.path for s in sources))

    rejected_frames: list[DataFrame] = []
    items_ok = users_ok = None
    items_raw = rawio.read_entity(spark, sources, "items")
    if items_raw is not None:
        items_ok, items_bad = validate_items(items_raw, run_date, icf.max_line_bytes)
        items_ok = items_ok.cache()
        rejected_frames.append(items_bad)
        report.accepted["items"] = items_ok.count()
    users_raw = rawio.read_entity(spark, sources, "users")
    if users_raw is not None:
        if key is not None:
            users_raw = privacy.pseudonymize_ids(users_raw, key)
        users_ok, users_bad = validate_users(
            users_raw, run_date, icf.max_line_bytes, conf.privacy.keep_profile_columns
        )
        users_ok = users_ok.cache()
        rejected_frames.append(users_bad)
        report.accepted["users"] = users_ok.count()

    catalog = None
    if icf.check_item_ids:
        frames = [df.select(C.COL_ITEM) for df in (items_ok,) if df is not None]
        if tables.exists(spark, wh, C.T_ITEMS):
            frames.append(tables.read(spark, wh, C.T_ITEMS).select(C.COL_ITEM))
        if frames:
            catalog = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])

    events_raw = rawio.read_entity(spark, sources, "events")
    new_events = ev_typed = None
    if events_raw is not None:
        if key is not None:
            events_raw = privacy.pseudonymize_ids(events_raw, key)
        # parsed, checked, ranked and matched with bronze once, then cached with raw text only where
        # a record can still be quarantined: every count, the quarantine and the write read it
        ranked = rank_copies(tag_events(events_raw, now, icf, catalog), run_date)
        existing = tables.read(spark, wh, C.T_EVENTS) if tables.exists(spark, wh, C.T_EVENTS) else None
        if existing is not None:
            ranked = attach_ingested(ranked, existing)
        ev_typed = drop_unneeded_raw(ranked).cache()
        later = F.col(_REASON_TMP).isNull() & ~F.col(_DUE)  # valid, dated after the run: later runs
        report.deferred_events = ev_typed.where(later).count()
        new_events, dup_bad, replays = dedupe_events(ev_typed.where(F.col(_DUE)), existing)
        ev_bad_all = _rejected(ev_typed, "events").unionByName(dup_bad)
        rejected_frames.append(ev_bad_all)
        by_date = new_events.groupBy(C.COL_EVENT_DATE).count().collect()  # one job: total and late
        report.new_events = sum(r["count"] for r in by_date)
        report.late_events = {
            r[C.COL_EVENT_DATE].isoformat(): r["count"]
            for r in sorted(by_date, key=lambda r: r[C.COL_EVENT_DATE])
            if r[C.COL_EVENT_DATE] < run_date
        }
        report.already_ingested = replays.count()
        report.accepted["events"] = report.new_events + report.already_ingested

    quarantine = None
    if rejected_frames:
        quarantine = rejected_frames[0]
        for frame in rejected_frames[1:]:
            quarantine = quarantine.unionByName(frame)
        quarantine = quarantine.withColumn(C.COL_RUN_DATE, F.lit(run_date))
        if key is not None:
            quarantine = privacy.redact_raw(quarantine, key, COL_ENTITY)
        quarantine = quarantine.cache()
        counts = quarantine.groupBy(COL_ENTITY, C.COL_REASON).count().collect()  # one job for both tallies
        report.rejected = {e: sum(r["count"] for r in counts if r[COL_ENTITY] == e) for e in rawio.ENTITIES}
        for r in counts:
            report.reasons[r[C.COL_REASON]] = report.reasons.get(r[C.COL_REASON], 0) + r["count"]
            if r[COL_ENTITY] == "events":
                report.event_reasons[r[C.COL_REASON]] = r["count"]
        if counts or not _quarantine_clean(spark, wh, run_date):
            tables.replace_partition(quarantine, wh, C.T_QUARANTINE, run_date)
        else:  # nothing to add and nothing of this date to replace: no commit
            log.info("ingest: nothing quarantined for %s: the quarantine is left as it is", run_date)
    log.info(
        "ingest: accepted %s, rejected %s, deferred %d events (after run date), %d replayed events skipped",
        report.accepted,
        report.rejected,
        report.deferred_events,
        report.already_ingested,
    )
    if report.reasons:
        log.warning("ingest: quarantined by reason: %s", report.reasons)
    if report.late_events:
        log.info(
            "ingest: %d new event(s) dated before %s arrived late, into their own event_date partitions: %s",
            sum(report.late_events.values()),
            run_date,
            describe_days(report.late_events),
        )
    if report.empty_day:
        log.warning(
            "ingest: EMPTY DAY for %s: no event records in %s (%s); the run goes on with what the "
            "warehouse already holds",
            run_date,
            raw_dir,
            ", ".join(s.path for s in sources if s.entity == "events") or "no events file",
        )
    if report.bad_fraction > icf.max_bad_fraction:
        raise BadInputError(bad_input_message(report, icf.max_bad_fraction, wh, run_date), report)

    # a run for an earlier date than the stored rows (out of order, backfill) never regresses them
    newer = f"s.{C.COL_UPDATED_AT} >= t.{C.COL_UPDATED_AT}"
    # only new and changed rows: a drop that repeats the whole catalog leaves unchanged rows (and their
    # ``updated_at``, the date of their last change) alone, and an unchanged catalog makes no commit
    if users_ok is not None:
        align_users_table(spark, wh, users_ok.columns)
    profiles: list[tuple[str, DataFrame | None, tuple[str, str], str]] = [
        ("items", items_ok, C.T_ITEMS, C.COL_ITEM),
        ("users", users_ok, C.T_USERS, C.COL_USER),
    ]
    for entity, profile_rows, table, id_col in profiles:
        if profile_rows is None:
            continue
        merged = tables.merge_upsert(
            profile_rows, wh, table, [id_col], update_if=newer, compare_ignoring=[C.COL_UPDATED_AT]
        )
        if merged is not None:
            log.info(
                "ingest: %s: %d of %d row(s) new or changed%s",
                tables.catalog_name(table),
                merged,
                report.accepted[entity],
                "" if merged else ": no commit",
            )
    if new_events is not None:
        bronze = new_events.drop(C.COL_RAW).withColumn(
            C.COL_INGESTED_AT, F.lit(now.isoformat(sep=" ")).cast("timestamp")
        )
        # an append, not a MERGE: ``new_events`` already holds only ids absent from the bronze that
        # was read above, and the warehouse lease keeps any other writer out until this commit, so a
        # second scan of all of bronze (MERGE's join) would find nothing more; the night writes the
        # day's files and reads history once
        tables.append(bronze, wh, C.T_EVENTS, partition_by=[C.COL_EVENT_DATE])
    for df in (items_ok, users_ok, new_events, quarantine, ev_typed):
        if df is not None:
            df.unpersist()
    return report


def _quarantine_clean(spark: SparkSession, warehouse: str, run_date: dt.date) -> bool:
    """Whether ``bronze/quarantine`` exists and holds no row of ``run_date`` (one partition-pruned read)."""
    if not tables.exists(spark, warehouse, C.T_QUARANTINE):
        return False  # the first night creates it, empty or not: readers find the table
    rows = tables.read(spark, warehouse, C.T_QUARANTINE).where(F.col(C.COL_RUN_DATE) == F.lit(run_date))
    return rows.limit(1).count() == 0


def align_users_table(spark: SparkSession, warehouse: str, columns: list[str]) -> None:
    """Make ``silver/users`` hold exactly ``columns`` before the profiles are MERGEd into it.

    A column the table holds but the profiles no longer carry (``gender`` once
    ``privacy.keep_profile_columns`` stops naming it) is dropped by rewriting the table without it
    (one commit; the older files keep it until VACUUM); a column newly kept is added (null for the
    stored rows).
    """
    if not tables.exists(spark, warehouse, C.T_USERS):
        return
    stored = tables.read(spark, warehouse, C.T_USERS)
    extra = [c for c in stored.columns if c not in columns]
    if extra:
        log.warning(
            "ingest: %s: dropping column(s) %s, which privacy.keep_profile_columns does not keep",
            tables.catalog_name(C.T_USERS),
            ", ".join(extra),
        )
        tables.overwrite(stored.drop(*extra).localCheckpoint(), warehouse, C.T_USERS)
    missing = [c for c in columns if c not in stored.columns]
    if missing:
        types = dict(spark.createDataFrame([], schemas.SILVER_USERS_ALL).dtypes)
        added = ", ".join(f"`{c}` {types.get(c, 'string')}" for c in missing)
        spark.sql(f"ALTER TABLE delta.`{tables.table_path(warehouse, C.T_USERS)}` ADD COLUMNS ({added})")
        log.info("ingest: %s: added column(s) %s", tables.catalog_name(C.T_USERS), ", ".join(missing))


def bad_input_message(report: IngestReport, threshold: float, warehouse: str, run_date: dt.date) -> str:
    """The :class:`BadInputError` text: the bad fraction, the threshold, top reasons, where the rows are."""
    total = report.accepted.get("events", 0) + report.rejected.get("events", 0)
    top = sorted(report.event_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    reasons = "; ".join(f"{reason}: {n}" for reason, n in top) or "none"
    name = tables.catalog_name(C.T_QUARANTINE)
    return (
        f"ingest {run_date}: {report.rejected.get('events', 0)} of {total} event records rejected, "
        f"bad fraction {report.bad_fraction:.1%} > ingest.max_bad_fraction {threshold:.1%}. "
        f"Top reasons: {reasons}. The rejected records (raw text, source file, reason) are kept in "
        f"{name} at {tables.table_path(warehouse, C.T_QUARANTINE)}, run_date {run_date}: "
        f"SELECT reason, source_file, raw FROM {name} WHERE run_date = '{run_date}'. "
        "Nothing was written to bronze/events, silver or gold."
    )


def timed_run(spark: SparkSession, conf: Config, raw_dir: str, run_date: dt.date) -> IngestReport:
    """:func:`run` with its wall time logged."""
    start = time.perf_counter()
    report = run(spark, conf, raw_dir, run_date)
    log.info("ingest: done in %.1f s", time.perf_counter() - start)
    return report
