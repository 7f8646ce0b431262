"""Reliability of the nightly: idempotent reruns, crash safety, consistent readers, roll-back, bad input.

Every promise is checked on one small generated sample (60 users, 40 items, 10 days):

- a rerun of the same run date leaves every table exactly as one run did;
- two dates run in reverse order end exactly like a backfill that runs them in order;
- a run killed with SIGKILL mid-gold-write, then rerun, ends exactly like an uninterrupted run; so do
  runs killed mid-ingest, mid-ALS and mid-gold-write in a chain, each taking the stale lease over;
- a reader of ``gold/recommendations`` during a rerun only ever sees complete versions;
- a failed stage restores every table to its version before the run and logs a ``failed`` row;
  a run refused for bad input keeps its quarantine rows and changes nothing else;
- ``ops/runs`` holds a row per stage with counts, bad records and model versions;
- an empty input day is a valid run that says so; configuration errors exit 2 before any table is
  written; a backfill stops at the first failed date and says how to resume.

The three-point kill chain, the reverse-order dates and the late events repeat whole nightlies to
cover a scenario matrix: they are marked ``extended`` (``make test-extended``, the scheduled suite),
the rest is in the CI gate (``make test``).

"Exactly": full sorted contents of each bronze/silver/gold table (``ops/runs`` and the
``ingested_at`` wall-clock column excluded) and of the ALS factor files under ``models/``, doubles
to 12 significant digits: Spark adds up a shuffle's doubles in the order its blocks arrive, so an
average over users (a metric) can move in the 16th digit between two identical runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from vidrec import analytics, pipeline
from vidrec import constants as C
from vidrec.config import Config
from vidrec.data import ingest, tables
from vidrec.devdata import sample

pytestmark = [pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = dt.date(2026, 3, 10)
#: Columns that differ between two runs by design (wall-clock time of the run).
VOLATILE = {C.T_EVENTS: [C.COL_INGESTED_AT]}
CONTENT_TABLES = (
    C.T_EVENTS,
    C.T_QUARANTINE,
    C.T_ITEMS,
    C.T_USERS,
    C.T_USER_INDEX,
    C.T_ITEM_INDEX,
    C.T_INTERACTIONS,
    C.T_MODEL_METRICS,
    C.T_RECOMMENDATIONS,
    C.T_POPULAR_ITEMS,
)
ARTIFACTS = (
    f"models/{RUN_DATE.isoformat()}/als_user_factors",
    f"models/{RUN_DATE.isoformat()}/als_item_factors",
)
#: Stages of the killed runs (evaluate left out to keep the test short: it only writes
#: gold/model_metrics, with the same replace-the-run-date write as popular and recommend).
CRASH_STAGES = ["ingest", "matrix", "recommend", "popular"]


def job_overrides(base_conf: Config, checkpoints: Path) -> list[str]:
    """``--set`` flags giving ``jobs/nightly.py`` the test session's settings (same results)."""
    als = base_conf.als
    sets = [
        f"spark.master={base_conf.spark.master}",
        f"spark.shuffle_partitions={base_conf.spark.shuffle_partitions}",
        "spark.driver_memory=2g",
        f"spark.checkpoint_dir={checkpoints}",
        f"als.rank={als.rank}",
        f"als.max_iter={als.max_iter}",
        f"als.num_blocks={als.num_blocks}",
        f"recommend.top_n={base_conf.recommend.top_n}",
        # a killed job leaves its lease behind: stale after 3 s, so the next job takes it over at once
        "lease.heartbeat_s=1",
        "lease.stale_after_s=3",
    ]
    return [arg for s in sets for arg in ("--set", s)]


def canon(value: Any) -> Any:
    """``value`` with every float rounded to 12 significant digits (lists and rows recursively)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list):
        return [canon(v) for v in value]
    if isinstance(value, tuple):  # rows too (a Row is a tuple)
        return tuple(canon(v) for v in value)
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    return value


def snapshot(spark, warehouse: str, names=CONTENT_TABLES, artifacts=ARTIFACTS) -> dict[str, list[str]]:
    """Full sorted contents of each table (as ``repr`` of rows) and of the ALS factor files."""
    out: dict[str, list[str]] = {}
    for t in names:
        if not tables.exists(spark, warehouse, t):
            out[tables.catalog_name(t)] = ["<missing>"]
            continue
        df = tables.read(spark, warehouse, t).drop(*VOLATILE.get(t, []))
        out[tables.catalog_name(t)] = sorted(repr(canon(tuple(r))) for r in df.collect())
    for art in artifacts:
        path = Path(warehouse, art)
        files = sorted(str(p) for p in path.glob("*.parquet")) if path.is_dir() else []
        out[art] = (
            sorted(repr(canon(tuple(r))) for r in spark.read.parquet(*files).collect())
            if files
            else ["<missing>"]
        )
    return out


def differences(a: dict[str, list[str]], b: dict[str, list[str]]) -> dict[str, str]:
    """Per table that differs: row counts and a sample of rows only on one side."""
    out = {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name, []), b.get(name, [])
        if x != y:
            only_x, only_y = sorted(set(x) - set(y)), sorted(set(y) - set(x))
            out[name] = f"{len(x)} vs {len(y)} rows; only left: {only_x[:2]}; only right: {only_y[:2]}"
    return out


def gold_counts(spark, warehouse: str) -> dict[tuple[str, str], int]:
    rows = (
        spark.read.format("delta")
        .load(tables.table_path(warehouse, C.T_RECOMMENDATIONS))
        .groupBy(C.COL_RUN_DATE, C.COL_ALGORITHM)
        .count()
        .collect()
    )
    return {(str(r[0]), r[1]): r[2] for r in rows}


def latest_version(spark, warehouse: str, t=C.T_RECOMMENDATIONS) -> int:
    return DeltaTable.forPath(spark, tables.table_path(warehouse, t)).history(1).first()["version"]


# --- one reference run, then the same date again with a reader looking on ----------------------


@pytest.fixture(scope="module")
def ref(spark, base_conf, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reliability")
    raw = str(root / "raw")
    sample.generate(spark, raw, n_users=60, n_items=40, days=10, end_date=RUN_DATE, seed=5)
    conf = base_conf.replace(warehouse=str(root / "ref"))
    start = time.perf_counter()
    summary = pipeline.run_nightly(spark, conf, RUN_DATE, raw)
    seconds = time.perf_counter() - start
    return {
        "root": root,
        "raw": raw,
        "conf": conf,
        "summary": summary,
        "seconds": seconds,
        "snapshot": snapshot(spark, conf.warehouse),
        "counts": gold_counts(spark, conf.warehouse),
    }


@pytest.fixture(scope="module")
def rerun(spark, ref) -> dict[str, Any]:
    """The same run date again, while a reader thread counts gold/recommendations in a loop."""
    wh = ref["conf"].warehouse
    v0 = latest_version(spark, wh)
    observations: list[tuple[int, dict, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                before = latest_version(spark, wh)
                counts = gold_counts(spark, wh)
                observations.append((before, counts, latest_version(spark, wh)))
                stop.wait(0.5)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        summary = pipeline.run_nightly(spark, ref["conf"], RUN_DATE, ref["raw"])
        time.sleep(2)  # a few more reads of the final version
    finally:
        stop.set()
        thread.join(timeout=120)
    return {
        "summary": summary,
        "snapshot": snapshot(spark, wh),
        "observations": observations,
        "errors": errors,
        "v0": v0,
        "v1": latest_version(spark, wh),
    }


@pytest.mark.slow
def test_rerun_of_the_same_date_changes_nothing(ref, rerun) -> None:
    assert rerun["summary"]["ingest"]["new_events"] == 0
    assert rerun["summary"]["ingest"]["replayed_events"] == ref["summary"]["ingest"]["new_events"]
    assert differences(ref["snapshot"], rerun["snapshot"]) == {}


@pytest.mark.slow
def test_readers_only_see_complete_versions(ref, rerun) -> None:
    assert rerun["errors"] == []
    obs = rerun["observations"]
    assert rerun["v1"] > rerun["v0"], "the rerun must have committed a new version of gold"
    # reads pinned to one version (no commit between the two version probes) saw each side
    old = [c for b, c, a in obs if b == a == rerun["v0"]]
    new = [c for b, c, a in obs if b == a and b > rerun["v0"]]
    assert old and new, f"the reader did not overlap the write: {len(obs)} reads"
    # the rerun writes the same rows again: every complete version has the reference counts,
    # a torn read would miss or double an algorithm's lists
    bad = [c for _, c, _ in obs if c != ref["counts"]]
    assert bad == [], f"{len(bad)} of {len(obs)} reads saw a partial table, e.g. {bad[:1]}"


# --- SIGKILL at three points, then a rerun -----------------------------------------------------


def run_and_kill(cmd: list[str], marker: str, delay: float, timeout: float = 3600) -> tuple[int, list[str]]:
    """Run ``cmd`` in its own process group; SIGKILL the group ``delay`` s after ``marker`` is logged.

    Returns the exit status and the log lines read. Fails when the job ends before the marker.
    ``timeout`` only guards against a hung job (on a busy 2-core machine a run takes many minutes).
    """
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        start_new_session=True,
    )

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    lines: list[str] = []
    killed = False
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip())
            if marker in line and not killed:
                time.sleep(delay)
                kill()
                killed = True
        rc = proc.wait()
    finally:
        watchdog.cancel()
        kill()
    assert killed, f"the job ended (exit {proc.returncode}) before logging '{marker}':\n" + "\n".join(
        lines[-30:]
    )
    return rc, lines


#: (name, log line that triggers the kill, seconds after it)
KILL_POINTS = [
    # quarantine committed; items, users and bronze MERGEs still to come
    ("mid-ingest", "ingest: accepted", 0.0),
    # popularity lists done, the ALS fit is running
    ("mid-ALS", "recommend: popularity lists built", 1.0),
    # every list built: the union and the gold/recommendations write are running
    ("mid-gold-write", "recommend: als fitted and listed", 0.3),
]


def crash_and_rerun(spark, base_conf, ref, points, name: str) -> dict[str, Any]:
    """Run the nightly job into a fresh warehouse, SIGKILLed at each of ``points`` in turn (each run
    picking up what the last left), then the same date again in this process."""
    root = ref["root"]
    wh = str(root / name)
    cmd = [
        sys.executable,
        str(ROOT / "jobs" / "nightly.py"),
        "--raw",
        ref["raw"],
        "--warehouse",
        wh,
        "--run-date",
        RUN_DATE.isoformat(),
        "--stages",
        ",".join(CRASH_STAGES),
        "--wait",
        "120",  # until the killed job's lease is stale
        *job_overrides(base_conf, root / f"{name}_checkpoints"),
    ]
    kills = []
    for point, marker, delay in points:
        start = time.perf_counter()
        rc, lines = run_and_kill(cmd, marker, delay)
        readable = {}
        for t in pipeline.RUN_TABLES:  # every table that exists is a readable Delta table
            if tables.exists(spark, wh, t):
                readable[tables.catalog_name(t)] = tables.read(spark, wh, t).count()
        gold = Path(tables.table_path(wh, C.T_RECOMMENDATIONS))
        kills.append(
            {
                "name": point,
                "rc": rc,
                "seconds": round(time.perf_counter() - start, 1),
                "last_log": lines[-1] if lines else "",
                "took_over_stale_lease": any("took over the STALE lease" in line for line in lines),
                "tables": readable,
                "gold_files": len(list(gold.rglob("*.parquet"))) if gold.exists() else 0,
            }
        )
    conf = ref["conf"].replace(warehouse=wh)
    summary = pipeline.run_nightly(spark, conf, RUN_DATE, ref["raw"], stages=CRASH_STAGES)
    return {"wh": wh, "kills": kills, "summary": summary}


def assert_like_the_reference(spark, ref, crashed) -> None:
    names = [t for t in CONTENT_TABLES if t != C.T_MODEL_METRICS]
    got = snapshot(spark, crashed["wh"], names)
    want = {k: v for k, v in ref["snapshot"].items() if k in got}
    assert differences(want, got) == {}


@pytest.fixture(scope="module")
def crashed(spark, base_conf, ref) -> dict[str, Any]:
    return crash_and_rerun(spark, base_conf, ref, KILL_POINTS, "crash")


@pytest.fixture(scope="module")
def crashed_mid_gold_write(spark, base_conf, ref) -> dict[str, Any]:
    return crash_and_rerun(spark, base_conf, ref, KILL_POINTS[-1:], "crash_gold")


@pytest.mark.slow
def test_a_run_killed_while_writing_gold_then_a_rerun_ends_like_an_uninterrupted_run(
    spark, ref, crashed_mid_gold_write
) -> None:
    """The gate's crash check: the riskiest point (gold/recommendations being written); the three-point
    chain below (make test-extended) also kills mid-ingest and mid-ALS and takes stale leases over."""
    (kill,) = crashed_mid_gold_write["kills"]
    assert kill["rc"] == -signal.SIGKILL, kill
    assert tables.catalog_name(C.T_INTERACTIONS) in kill["tables"], kill
    assert_like_the_reference(spark, ref, crashed_mid_gold_write)


@pytest.mark.slow
@pytest.mark.extended
def test_killed_runs_then_a_rerun_end_like_an_uninterrupted_run(spark, ref, crashed) -> None:
    for k in crashed["kills"]:
        assert k["rc"] == -signal.SIGKILL, k
    # each killed job left its lease behind; the next one took it over (a kill never blocks the next run)
    assert [k["took_over_stale_lease"] for k in crashed["kills"]] == [False, True, True]
    # each kill left the warehouse further along: nothing yet, then bronze, then silver
    first, second, third = crashed["kills"]
    assert tables.catalog_name(C.T_EVENTS) not in first["tables"], first
    assert tables.catalog_name(C.T_QUARANTINE) in first["tables"], first
    assert second["tables"].get(tables.catalog_name(C.T_INTERACTIONS), 0) > 0, second
    assert tables.catalog_name(C.T_RECOMMENDATIONS) not in second["tables"], second
    assert_like_the_reference(spark, ref, crashed)


# --- a failing stage rolls every table back ----------------------------------------------------


@pytest.mark.slow
def test_failed_stage_restores_every_table_and_logs_failed(spark, ref, rerun, tmp_path, monkeypatch) -> None:
    wh = str(tmp_path / "wh")
    shutil.copytree(ref["conf"].warehouse, wh)
    conf = ref["conf"].replace(warehouse=wh)
    before = snapshot(spark, wh)
    versions = pipeline.table_versions(spark, wh, pipeline.RUN_TABLES)
    runs_before = tables.read(spark, wh, C.T_RUNS).count()

    def broken_recommend(rc: pipeline.RunContext) -> dict[str, Any]:
        # write half a gold partition, then fail: the roll-back has to undo the write
        partial = (
            tables.read(spark, wh, C.T_RECOMMENDATIONS)
            .where(F.col(C.COL_RUN_DATE) == F.lit(RUN_DATE))
            .limit(7)
        ).cache()
        partial.count()
        tables.replace_partition(partial, wh, C.T_RECOMMENDATIONS, RUN_DATE)
        raise RuntimeError("injected failure in recommend")

    monkeypatch.setattr(  # the runner's own reference (vidrec.pipeline.STAGES is only a re-export)
        pipeline.runner,
        "STAGES",
        [(n, broken_recommend if n == "recommend" else f) for n, f in pipeline.STAGES],
    )
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.run_nightly(spark, conf, RUN_DATE, ref["raw"], stages=["matrix", "recommend"])

    assert differences(before, snapshot(spark, wh)) == {}
    now = pipeline.table_versions(spark, wh, pipeline.RUN_TABLES)
    restored = {t for t, v in versions.items() if now[t] != v}
    for t in restored:  # changed by the run, then restored: the last commit is a RESTORE to v
        last = DeltaTable.forPath(spark, tables.table_path(wh, t)).history(1).first()
        assert last["operation"] == "RESTORE", t
        assert int(last["operationParameters"]["version"]) == versions[t], t
    runs = tables.read(spark, wh, C.T_RUNS).orderBy("started_at").collect()[runs_before:]
    assert [(r.stage, r.status) for r in runs] == [("matrix", "succeeded"), ("recommend", "failed")]
    assert "injected" in runs[-1].error
    # the run log names exactly the tables the roll-back restored; the half-written gold partition is one.
    # (matrix on a date already folded finds no new bronze events: silver/interactions is left as it was)
    assert C.T_RECOMMENDATIONS in restored
    assert set(json.loads(runs[-1].details)["rolled_back"]) == {tables.catalog_name(t) for t in restored}


@pytest.mark.slow
def test_bad_input_failure_keeps_its_quarantine(spark, ref, rerun, tmp_path) -> None:
    wh = str(tmp_path / "wh")
    shutil.copytree(ref["conf"].warehouse, wh)
    conf = ref["conf"].replace(warehouse=wh)
    day = RUN_DATE + dt.timedelta(days=1)
    raw = tmp_path / "raw"
    raw.mkdir()
    rec = {"user_id": sample.user_id(0), "item_id": sample.item_id(0), "ts": f"{day}T08:00:00Z"}
    good = [json.dumps({"event_id": f"g{i}", "event_type": "play", **rec}) for i in range(3)]
    bad = [json.dumps({"event_id": f"b{i}", "event_type": "teleport", **rec}) for i in range(3)]
    (raw / "events.jsonl").write_text("\n".join(good + bad) + "\n")
    before = snapshot(spark, wh)
    runs_before = tables.read(spark, wh, C.T_RUNS).count()

    with pytest.raises(ingest.BadInputError) as err:
        pipeline.run_nightly(spark, conf, day, str(raw))

    message = str(err.value)
    for part in (
        "bad fraction 50.0%",
        "ingest.max_bad_fraction 5.0%",
        "unknown event_type: 3",
        tables.catalog_name(C.T_QUARANTINE),
        tables.table_path(wh, C.T_QUARANTINE),
        f"run_date {day}",
    ):
        assert part in message, (part, message)
    after = snapshot(spark, wh)
    quarantine = tables.catalog_name(C.T_QUARANTINE)
    assert (
        differences(
            {k: v for k, v in before.items() if k != quarantine},
            {k: v for k, v in after.items() if k != quarantine},
        )
        == {}
    )
    kept = tables.read(spark, wh, C.T_QUARANTINE).where(F.col(C.COL_RUN_DATE) == F.lit(day)).collect()
    assert sorted((r.raw, r.reason, Path(r.source_file).name) for r in kept) == [
        (line, "unknown event_type", "events.jsonl") for line in bad
    ]
    added = [r for r in after[quarantine] if r not in before[quarantine]]
    assert len(added) == 3 and set(before[quarantine]) <= set(after[quarantine])
    (row,) = tables.read(spark, wh, C.T_RUNS).orderBy("started_at").collect()[runs_before:]
    assert (row.stage, row.status, row.bad_records) == ("ingest", "failed", 3)
    assert json.loads(row.details)["quarantine_kept"] == quarantine
    assert quarantine not in json.loads(row.details)["rolled_back"]


# --- an empty day -----------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture(scope="module")
def empty_day(spark, ref, rerun) -> dict[str, Any]:
    """The day after the reference run, with an empty events file (and nothing else)."""
    root = ref["root"]
    wh = str(root / "empty_day")
    shutil.copytree(ref["conf"].warehouse, wh)
    raw = root / "raw_empty"
    raw.mkdir()
    (raw / "events.jsonl").write_text("")
    conf = ref["conf"].replace(warehouse=wh)
    events_before = tables.read(spark, wh, C.T_EVENTS).count()
    day = RUN_DATE + dt.timedelta(days=1)
    logs = _Collect()
    logger = logging.getLogger("vidrec")
    level = logger.level
    logger.addHandler(logs)
    logger.setLevel(logging.INFO)
    try:
        summary = pipeline.run_nightly(spark, conf, day, str(raw), stages=["ingest", "matrix", "popular"])
    finally:
        logger.removeHandler(logs)
        logger.setLevel(level)
    return {"wh": wh, "summary": summary, "events_before": events_before, "day": day, "logs": logs.messages}


@pytest.mark.slow
def test_empty_day_is_a_valid_run(spark, empty_day) -> None:
    s = empty_day["summary"]
    assert s["ingest"]["new_events"] == 0 and s["ingest"]["rejected"].get("events", 0) == 0
    assert tables.read(spark, empty_day["wh"], C.T_EVENTS).count() == empty_day["events_before"]
    assert s["popular"]["rows"] > 0  # the window still holds the days before
    runs = tables.read(spark, empty_day["wh"], C.T_RUNS).where(
        F.col(C.COL_RUN_DATE) == F.lit(empty_day["day"])
    )
    assert {r.status for r in runs.collect()} == {"succeeded"}


@pytest.mark.slow
def test_empty_day_says_so(spark, empty_day) -> None:
    assert empty_day["summary"]["ingest"].get("empty_day") is True
    assert empty_day["summary"]["ingest"]["events_read"] == 0
    said = [m for m in empty_day["logs"] if "EMPTY DAY" in m]
    assert said and said[0].startswith("WARNING") and str(empty_day["day"]) in said[0], empty_day["logs"]
    (row,) = (
        tables.read(spark, empty_day["wh"], C.T_RUNS)
        .where((F.col(C.COL_RUN_DATE) == F.lit(empty_day["day"])) & (F.col("stage") == "ingest"))
        .collect()
    )
    assert json.loads(row.details)["empty_day"] is True


# --- configuration errors: exit 2 at start, nothing written ------------------------------------


def nightly_job(
    tmp_path: Path, *extra: str, raw: str | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    wh = tmp_path / "wh"
    if raw is None:
        raw_dir = tmp_path / "raw"
        raw_dir.mkdir(exist_ok=True)
        (raw_dir / "events.jsonl").write_text("")
        raw = str(raw_dir)
    cmd = [
        sys.executable,
        str(ROOT / "jobs" / "nightly.py"),
        "--raw",
        raw,
        "--warehouse",
        str(wh),
        "--run-date",
        RUN_DATE.isoformat(),
        "--set",
        "spark.shuffle_partitions=2",
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300), wh


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--set", "als.rnak=3"], "als.rnak"),
        (["--set", "als.rank=many"], "als.rank"),
        (["--set", "ingest.max_bad_fraction=2.0"], "ingest.max_bad_fraction"),
        (["--set", "models=[als, nope]"], "nope"),
        (["--conf", "/nonexistent/cluster-typo.yaml"], "cluster-typo.yaml"),
        (["--run-date", "2026-13-45"], "--run-date"),
    ],
)
def test_configuration_error_exits_2_before_any_write(tmp_path, extra, named) -> None:
    res, wh = nightly_job(tmp_path, *extra)
    assert res.returncode == 2, res.stderr[-2000:]
    assert named in res.stderr
    assert not wh.exists()


def test_missing_raw_folder_exits_2_before_any_write(tmp_path) -> None:
    res, wh = nightly_job(tmp_path, raw=str(tmp_path / "no-such-raw"))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "no-such-raw" in res.stderr and "--raw" in res.stderr
    assert not wh.exists()


def test_raw_folder_without_inputs_exits_2_before_any_write(tmp_path) -> None:
    raw = tmp_path / "wrong-folder"
    raw.mkdir()
    (raw / "README.txt").write_text("not an input")
    res, wh = nightly_job(tmp_path, raw=str(raw))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "wrong-folder holds no input" in res.stderr
    assert not wh.exists()


@pytest.mark.parametrize(
    ("make", "extra", "named"),
    [
        # the warehouse is a file, or under one
        (lambda t: (t / "wh").write_text("x"), [], "'warehouse'"),
        (lambda t: (t / "file").write_text("x"), ["--warehouse", "{tmp}/file/wh"], "'warehouse'"),
        (
            lambda t: (t / "cp").write_text("x"),
            ["--set", "spark.checkpoint_dir={tmp}/cp"],
            "spark.checkpoint_dir",
        ),
        (None, ["--stages", "ingest,matrx"], "matrx"),
        (None, ["--until", "2026-03-01"], "end date 2026-03-01 is before start date 2026-03-10"),
        # one day's folder of a backfill is missing
        (None, ["--raw", "{tmp}/raw-{run_date}", "--until", "2026-03-11"], "raw-2026-03-10"),
    ],
    ids=["warehouse-is-a-file", "warehouse-under-a-file", "checkpoint-dir", "stage", "until", "backfill-raw"],
)
def test_bad_paths_exit_2_before_any_write(tmp_path, make, extra, named) -> None:
    if make is not None:
        make(tmp_path)
    (tmp_path / "raw-2026-03-11").mkdir()
    (tmp_path / "raw-2026-03-11" / "events.jsonl").write_text("")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    res, wh = nightly_job(tmp_path, *extra)
    assert res.returncode == 2, res.stderr[-2000:]
    assert named in res.stderr
    assert "configuration error" in res.stderr
    assert not (wh.is_dir() or (tmp_path / "file" / "wh").exists())


def test_console_command_runs_forget_user_and_backfill(tmp_path, capsys) -> None:
    from vidrec import cli

    assert cli.main(["forget_user", "--warehouse", str(tmp_path)]) == 2  # refused before Spark
    assert "give at least one --user-id" in capsys.readouterr().err
    args = [
        "--start",
        "2026-03-10",
        "--end",
        "2026-03-01",
        "--raw",
        str(tmp_path),
        "--warehouse",
        str(tmp_path),
    ]
    assert cli.main(["backfill", *args]) == 2
    assert "end date 2026-03-01 is before start date 2026-03-10" in capsys.readouterr().err


@pytest.mark.slow
def test_unreachable_warehouse_exits_2_naming_it(tmp_path) -> None:
    # the deep models' shard and artifact folders must be POSIX paths: give them, so the warehouse is at fault
    roots = [a for k in ("shard_root", "artifact_root") for a in ("--set", f"deep.launch.{k}={tmp_path / k}")]
    res, _ = nightly_job(tmp_path, "--warehouse", "nosuchfs://bucket/warehouse", *roots)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "'warehouse': cannot reach nosuchfs://bucket/warehouse" in res.stderr


# --- the run log -------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_log_has_counts_bad_records_and_model_versions(spark, ref) -> None:
    wh = ref["conf"].warehouse
    run_id = ref["summary"]["_run"]["run_id"]
    rows = {r.stage: r for r in tables.read(spark, wh, C.T_RUNS).where(F.col("run_id") == run_id).collect()}
    assert list(rows) == pipeline.STAGE_NAMES or set(rows) == set(pipeline.STAGE_NAMES)
    for r in rows.values():
        assert (r.run_date, r.status, r.error) == (RUN_DATE, "succeeded", None)
        assert r.started_at <= r.ended_at and r.seconds >= 0
        assert r.rows_written, r.stage  # every stage wrote something
    ingest_ = rows["ingest"]
    assert ingest_.bad_records == sum(ref["summary"]["ingest"]["rejected"].values())
    assert ingest_.rows_written[tables.catalog_name(C.T_EVENTS)] == ref["summary"]["ingest"]["new_events"]
    assert json.loads(ingest_.details)["new_events"] == ref["summary"]["ingest"]["new_events"]
    for stage, table in (("recommend", C.T_RECOMMENDATIONS), ("evaluate", C.T_MODEL_METRICS)):
        written = {
            (r[0], r[1])
            for r in tables.read(spark, wh, table)
            .where(F.col(C.COL_RUN_DATE) == F.lit(RUN_DATE))
            .select(C.COL_ALGORITHM, C.COL_MODEL_VERSION)
            .distinct()
            .collect()
        }
        assert {a for a, _ in written} == set(ref["conf"].models), stage
        # keyed by model name: the algorithm, or e.g. als-biased (evaluate's rating model)
        assert rows[stage].model_versions == {v.split(f"-{RUN_DATE}-")[0]: v for _, v in written}, stage
    assert rows["recommend"].model_versions["als"].startswith(f"als-{RUN_DATE}-")
    assert "als-biased" in rows["evaluate"].model_versions
    # the first night has no earlier signal: the publish gate lets it through, exit code 0
    assert json.loads(rows["recommend"].details)["publish_gate"]["decision"] == "publish"
    assert pipeline.exit_code([ref["summary"]]) == 0
    assert rows["matrix"].rows_written[tables.catalog_name(C.T_INTERACTIONS)] > 0
    assert rows["matrix"].bad_records is None and rows["matrix"].model_versions == {}


# --- run order: out of order, and a backfill, end like in order ---------------------------------

D_EARLY = RUN_DATE - dt.timedelta(days=1)
#: evaluate left out to keep the test short: it reads bronze up to the run date and the indexes, whose
#: order independence the other stages already show, and writes only gold/model_metrics
ORDER_STAGES = ["ingest", "matrix", "recommend", "popular", "analytics"]
ORDER_TABLES = tuple(t for t in CONTENT_TABLES if t != C.T_MODEL_METRICS) + tuple(
    analytics.ANALYTICS_TABLES.values()
)
ORDER_ARTIFACTS = tuple(
    f"models/{d.isoformat()}/als_{side}_factors" for d in (D_EARLY, RUN_DATE) for side in ("user", "item")
)


@pytest.fixture(scope="module")
def orders(spark, ref, rerun) -> dict[str, Any]:
    """The two last dates of the sample: a backfill (in order), and the same dates in reverse order.

    The reverse order starts from the reference run (the later date on a fresh warehouse), then runs
    the earlier date.
    """
    root = ref["root"]
    in_order = ref["conf"].replace(warehouse=str(root / "in_order"))
    backfill = pipeline.run_backfill(spark, in_order, D_EARLY, RUN_DATE, ref["raw"], ORDER_STAGES)
    reverse = ref["conf"].replace(warehouse=str(root / "reverse"))
    shutil.copytree(ref["conf"].warehouse, reverse.warehouse)
    early_after = pipeline.run_nightly(spark, reverse, D_EARLY, ref["raw"], ORDER_STAGES)
    return {
        "backfill": backfill,
        "early_after": early_after,
        "in_order": snapshot(spark, in_order.warehouse, ORDER_TABLES, ORDER_ARTIFACTS),
        "reverse": snapshot(spark, reverse.warehouse, ORDER_TABLES, ORDER_ARTIFACTS),
        "wh": reverse.warehouse,
    }


@pytest.mark.slow
@pytest.mark.extended
def test_dates_run_in_reverse_order_end_like_a_backfill_in_order(spark, orders) -> None:
    assert list(orders["backfill"]) == [D_EARLY, RUN_DATE]
    # the earlier date, run after the later one, saw its own past and left the latest state alone
    assert orders["early_after"]["matrix"]["interactions_as_of"] == RUN_DATE.isoformat()
    assert orders["early_after"]["ingest"]["new_events"] == 0
    assert all(v != ["<missing>"] for v in orders["in_order"].values()), orders["in_order"].keys()
    assert differences(orders["in_order"], orders["reverse"]) == {}
    items = tables.read(spark, orders["wh"], C.T_ITEMS).select(C.COL_UPDATED_AT).distinct().collect()
    assert [r[0] for r in items] == [RUN_DATE]  # not moved back to the earlier date


# --- a backfill stops at the first failed date ------------------------------------------------


@pytest.mark.slow
def test_backfill_stops_at_the_first_failed_date(spark, conf, tmp_path) -> None:
    days = [RUN_DATE + dt.timedelta(days=i) for i in range(3)]
    rec = {"user_id": "u1", "item_id": "i1", "event_type": "play"}
    for i, day in enumerate(days):
        folder = tmp_path / f"raw-{day}"
        folder.mkdir()
        lines = [json.dumps({"event_id": f"e{i}", "ts": f"{day}T08:00:00Z", **rec})]
        if i == 1:  # the middle day is garbage
            lines += [json.dumps({"event_id": f"x{j}", "ts": "soon", **rec}) for j in range(3)]
        (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / f"raw-{days[0]}" / "items.jsonl").write_text('{"item_id": "i1", "title": "One"}\n')
    with pytest.raises(pipeline.BackfillError) as err:
        pipeline.run_backfill(
            spark, conf, days[0], days[-1], str(tmp_path / "raw-{run_date}"), stages=["ingest"]
        )
    message = str(err.value)
    assert f"stopped at {days[1]} (date 2 of 3)" in message
    assert f"Dates done: {days[0]}..{days[0]}" in message
    assert f"resume with --run-date {days[1]} --until {days[-1]}" in message
    assert isinstance(err.value.__cause__, ingest.BadInputError)
    wh = conf.warehouse
    assert sorted(r.event_id for r in tables.read(spark, wh, C.T_EVENTS).collect()) == ["e0"]
    runs = tables.read(spark, wh, C.T_RUNS).orderBy("started_at").collect()
    assert [(r.run_date, r.status) for r in runs] == [(days[0], "succeeded"), (days[1], "failed")]


# --- late events and catalog corrections --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.extended
def test_late_events_land_in_their_day_and_count_the_next_night(spark, conf, tmp_path) -> None:
    day1, day2 = RUN_DATE, RUN_DATE + dt.timedelta(days=1)
    late_day = day1 - dt.timedelta(days=3)
    rec = {"user_id": "u1", "item_id": "i1"}

    def drop(day: dt.date, events: list[dict], title: str) -> str:
        folder = tmp_path / f"raw-{day}"
        folder.mkdir()
        (folder / "events.jsonl").write_text("\n".join(json.dumps({**rec, **e}) for e in events) + "\n")
        (folder / "items.jsonl").write_text(json.dumps({"item_id": "i1", "title": title}) + "\n")
        return str(folder)

    stages = ["ingest", "matrix"]
    pipeline.run_nightly(
        spark,
        conf,
        day1,
        drop(day1, [{"event_id": "a", "event_type": "play", "ts": f"{day1}T10:00:00Z"}], "One"),
        stages,
    )
    # night two: today's event, and a like from three days ago that reached us only now
    late = {"event_id": "late", "event_type": "like", "ts": f"{late_day}T21:00:00Z"}
    summary = pipeline.run_nightly(
        spark,
        conf,
        day2,
        drop(
            day2, [{"event_id": "b", "event_type": "play", "ts": f"{day2}T10:00:00Z"}, late], "One (restored)"
        ),
        stages,
    )
    assert summary["ingest"]["late_events"] == {late_day.isoformat(): 1}
    wh = conf.warehouse
    bronze = tables.read(spark, wh, C.T_EVENTS).select(
        C.COL_EVENT_ID, C.COL_EVENT_DATE, "_metadata.file_path"
    )
    where = {r[0]: (r[1], Path(r[2]).parent.name) for r in bronze.collect()}
    assert where == {
        "a": (day1, f"event_date={day1}"),
        "b": (day2, f"event_date={day2}"),
        "late": (late_day, f"event_date={late_day}"),
    }
    (pair,) = tables.read(spark, wh, C.T_INTERACTIONS).collect()
    assert (pair.n_play, pair.n_like) == (2, 1)  # the late like counts from the next night on
    items = [(r.item_id, r.title, r.updated_at) for r in tables.read(spark, wh, C.T_ITEMS).collect()]
    assert items == [("i1", "One (restored)", day2)]  # MERGEd: corrected, not duplicated
    # replaying night one afterwards (out of order) does not bring the old title back
    pipeline.run_nightly(spark, conf, day1, str(tmp_path / f"raw-{day1}"), stages)
    items = [(r.item_id, r.title, r.updated_at) for r in tables.read(spark, wh, C.T_ITEMS).collect()]
    assert items == [("i1", "One (restored)", day2)]
    (pair,) = tables.read(spark, wh, C.T_INTERACTIONS).collect()
    assert (pair.n_play, pair.n_like) == (2, 1)


@pytest.mark.parametrize(
    ("metrics", "rows"),
    [
        ({"numOutputRows": "5", "numFiles": "1"}, 5),  # WRITE (append, overwrite, replaceWhere)
        (  # MERGE: its numOutputRows also counts the unchanged rows it copied
            {
                "numOutputRows": "9",
                "numTargetRowsInserted": "3",
                "numTargetRowsUpdated": "2",
                "numTargetRowsDeleted": "0",
                "numTargetRowsCopied": "4",
            },
            5,
        ),
        ({"numUpdatedRows": "2", "numCopiedRows": "7"}, 2),  # UPDATE
        ({"numDeletedRows": "4", "numCopiedRows": "1"}, 4),  # DELETE
        (None, 0),
    ],
)
def test_rows_written_by_a_commit(metrics, rows) -> None:
    assert pipeline.commit_rows(metrics) == rows
