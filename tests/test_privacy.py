"""Pseudonymous ids (``privacy.pseudonymize``) and data minimisation (``privacy.keep_profile_columns``).

With pseudonymisation on, a small nightly is scanned file by file for any clear user id (none may be
left, quarantine included), then ``forget_user`` erases a user given by the original id. With it off
(every other test of the suite), ids are stored as received. A missing key fails at start (exit 2).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import scannable_bytes
from pyspark.sql import functions as F

from vidrec import cli, pipeline
from vidrec import constants as C
from vidrec.config import ConfigError, load_config
from vidrec.data import ingest, privacy, tables
from vidrec.devdata import sample

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = dt.date(2026, 3, 10)
KEY = "a-test-key-of-thirty-two-bytes!!"
KEY_ENV = "VIDREC_TEST_PSEUDONYM_KEY"


def pconf(**kw: Any):
    return load_config(overrides={"privacy": {"pseudonymize": True, "key_env": KEY_ENV, **kw}}).privacy


# --- the key ----------------------------------------------------------------------------------


def test_key_comes_from_the_environment_or_a_file_never_from_yaml(tmp_path) -> None:
    assert privacy.load_key(load_config().privacy, {}) is None  # off: no key needed
    assert privacy.load_key(pconf(), {KEY_ENV: f" {KEY}\n"}) == KEY.encode()
    secret = tmp_path / "key.txt"
    secret.write_text(KEY + "\n")
    assert privacy.load_key(pconf(key_file=str(secret)), {}) == KEY.encode()
    with pytest.raises(ConfigError, match=f"no key was given: set the environment variable {KEY_ENV}"):
        privacy.load_key(pconf(), {})
    with pytest.raises(ConfigError, match="key cannot be read: privacy.key_file"):
        privacy.load_key(pconf(key_file=str(tmp_path / "nope")), {})
    with pytest.raises(ConfigError, match="has 5 bytes; want at least 16"):
        privacy.load_key(pconf(), {KEY_ENV: "short"})
    with pytest.raises(ConfigError, match="privacy.keep_profile_columns must be a list of gender"):
        load_config(overrides={"privacy": {"keep_profile_columns": ["country"]}})


def test_pseudonym_is_hmac_sha256_in_python_and_in_spark(spark) -> None:
    ids = ["u1", " u1 ", "ü-ß/é", "x" * 300, "", None]
    long_key = b"k" * 100  # longer than SHA-256's block: hashed first, as RFC 2104 says
    for key in (KEY.encode(), long_key):
        df = spark.createDataFrame([(i, u) for i, u in enumerate(ids)], "n int, user_id string")
        got = {r.n: r.user_id for r in privacy.pseudonymize_ids(df, key).collect()}
        for n, uid in enumerate(ids):
            if uid is None or not uid.strip():
                assert got[n] == uid  # missing ids stay missing (quarantined as such)
            else:
                want = hmac.new(key, uid.strip().encode(), hashlib.sha256).hexdigest()
                assert got[n] == want == privacy.pseudonym(key, uid), uid
    plan = privacy.pseudonymize_ids(df, KEY.encode())._jdf.queryExecution().toString()
    ipad = bytes(b ^ 0x36 for b in KEY.encode().ljust(64, b"\0"))
    assert ipad.hex()[:16].upper() not in plan.upper() and KEY not in plan  # no key bytes in the plan


def test_quarantine_raw_text_holds_pseudonyms_or_nothing(spark) -> None:
    key = KEY.encode()
    p = privacy.pseudonym
    rows = [
        ("events", '{"event_id": "e1", "user_id": "u1", "note": "u1 again", "x": "u10"}'),
        ("events", '{"event_id": "e2", "user_id": 12345, "item_id": "i1"}'),
        ("events", '{"event_id": "e3", "user_id": "u1", "item_id": "i'),  # truncated after the id
        ("events", '{"event_id": "e4", "user_id": "u'),  # truncated inside the id
        ("users", "u7,2026-01-01,FR,25-34"),  # a CSV line with a field too many: no field names
        ("events", '{"event_id": "e5", "item_id": "i1"}'),  # no user id at all
        ("items", '{"item_id": "u1", "title": "u1"}'),  # items carry no user id: kept
        ("events", None),
    ]
    df = spark.createDataFrame(rows, "entity string, raw string").withColumn(
        "n", F.monotonically_increasing_id()
    )
    out = [r.raw for r in privacy.redact_raw(df, key).orderBy("n").collect()]
    assert out == [
        f'{{"event_id": "e1", "user_id": "{p(key, "u1")}", "note": "{p(key, "u1")} again", "x": "u10"}}',
        f'{{"event_id": "e2", "user_id": {p(key, "12345")}, "item_id": "i1"}}',
        f'{{"event_id": "e3", "user_id": "{p(key, "u1")}", "item_id": "i',
        None,
        None,
        '{"event_id": "e5", "item_id": "i1"}',
        '{"item_id": "u1", "title": "u1"}',
        None,
    ]


# --- a pseudonymised warehouse ----------------------------------------------------------------


def write_bad_records(raw: Path, uid: str) -> None:
    item = json.loads((raw / "items.jsonl").read_text().splitlines()[0])["item_id"]
    ts = f"{RUN_DATE.isoformat()}T08:00:00Z"
    lines = [
        json.dumps({"event_id": "bad1", "user_id": uid, "item_id": item, "event_type": "nope", "ts": ts}),
        f'{{"event_id": "bad2", "user_id": "{uid}", "item_id": "{item}"',  # malformed, id complete
        f'{{"event_id": "bad3", "user_id": "{uid[:3]}',  # malformed inside the id: withheld
    ]
    (raw / "events_bad.jsonl").write_text("\n".join(lines) + "\n")


def scan_for_ids(root: str, ids: list[str]) -> list[str]:
    """Every file, path name and Parquet row under ``root`` that holds one of ``ids`` as a token."""
    tok = re.compile(
        rb"(?<![A-Za-z0-9_-])(" + b"|".join(re.escape(i.encode()) for i in ids) + rb")(?![A-Za-z0-9_-])"
    )
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if tok.search(name.encode()):
                found.append(f"path: {os.path.join(dirpath, name)}")
        for name in filenames:
            path = os.path.join(dirpath, name)
            if tok.search(scannable_bytes(path)):  # Parquet: the footer here, the decoded rows below
                found.append(f"bytes: {path}")
            elif name.endswith(".parquet") and not name.startswith("."):
                if any(tok.search(repr(row).encode()) for row in pq.read_table(path).to_pylist()):
                    found.append(f"row: {path}")
    return found


@pytest.fixture(scope="module")
def pseudonymised(spark, base_conf, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("privacy")
    raw = root / "raw"
    sample.generate(spark, str(raw), n_users=30, n_items=20, days=5, end_date=RUN_DATE, seed=3)
    with (raw / "users.csv").open() as fh:
        ids = sorted(r["user_id"] for r in csv.DictReader(fh))
    target = ids[-1]
    write_bad_records(raw, target)
    wh = str(root / "warehouse")
    conf = base_conf.replace(warehouse=wh).override({"privacy": {"pseudonymize": True, "key_env": KEY_ENV}})
    os.environ[KEY_ENV] = KEY
    try:
        summary = pipeline.run_nightly(
            spark, conf, RUN_DATE, str(raw), stages=["ingest", "matrix", "recommend"]
        )
    finally:
        os.environ.pop(KEY_ENV, None)
    return {"root": root, "wh": wh, "conf": conf, "ids": ids, "target": target, "summary": summary}


pytestmark = [pytest.mark.spark]


@pytest.mark.slow
def test_no_clear_id_anywhere_only_pseudonyms(spark, pseudonymised) -> None:
    wh, ids, key = pseudonymised["wh"], pseudonymised["ids"], KEY.encode()
    assert scan_for_ids(wh, ids) == []
    users = {r.user_id for r in tables.read(spark, wh, C.T_USERS).collect()}
    assert users == {privacy.pseudonym(key, u) for u in ids}
    served = {r.user_id for r in tables.read(spark, wh, C.T_RECOMMENDATIONS).collect()}
    assert served and served <= {privacy.pseudonym(key, u) for u in ids}
    q = tables.read(spark, wh, C.T_QUARANTINE).where(F.col("source_file").endswith("events_bad.jsonl"))
    raws = sorted((r.raw or "<withheld>") for r in q.collect())
    mine = privacy.pseudonym(key, pseudonymised["target"])
    assert len(raws) == 3 and sum(mine in r for r in raws) == 2 and "<withheld>" in raws


@pytest.mark.slow
def test_forget_takes_the_original_id_and_erases_its_pseudonym(
    spark, base_conf, pseudonymised, capsys
) -> None:
    wh, key = pseudonymised["wh"], KEY.encode()
    mine = privacy.pseudonym(key, pseudonymised["target"])
    args = [
        "forget_user",
        "--warehouse",
        wh,
        "--user-id",
        pseudonymised["target"],
        "--vacuum-retention-hours",
        "0",
        "--set",
        "privacy.pseudonymize=true",
        "--set",
        f"privacy.key_env={KEY_ENV}",
        "--set",
        "spark.master=local[2]",
        "--set",
        f"spark.shuffle_partitions={base_conf.spark.shuffle_partitions}",
        "--set",
        f"spark.checkpoint_dir={base_conf.spark.checkpoint_dir}",
    ]
    assert cli.main(args) == 2  # the key is missing
    assert KEY_ENV in capsys.readouterr().err
    os.environ[KEY_ENV] = KEY
    try:
        assert cli.main(args) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["unknown_users"] == 0 and report["delta_rows_deleted"]["silver/user_index"] == 1
        assert report["delta_rows_deleted"]["bronze/quarantine"] == 2
        assert scan_for_ids(wh, [mine, pseudonymised["target"]]) == []
        assert cli.main(args) == 5  # a second time: nobody to forget
        assert "1 of 1 user id(s) were in no table" in capsys.readouterr().err
    finally:
        os.environ.pop(KEY_ENV, None)
    others = {privacy.pseudonym(key, u) for u in pseudonymised["ids"][:-1]}
    assert {r.user_id for r in tables.read(spark, wh, C.T_USERS).collect()} == others


def test_a_missing_key_exits_2_before_anything_is_written(tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.jsonl").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "VIDREC_PSEUDONYM_KEY"}
    for job, args in (
        ("nightly.py", ["--raw", str(raw), "--run-date", RUN_DATE.isoformat()]),
        ("forget_user.py", ["--user-id", "u1"]),
    ):
        wh = tmp_path / job
        if job == "forget_user.py":
            wh.mkdir()
        res = subprocess.run(
            [sys.executable, str(ROOT / "jobs" / job), "--warehouse", str(wh), *args]
            + ["--set", "privacy.pseudonymize=true"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert res.returncode == 2, res.stderr[-2000:]
        assert (
            "privacy.pseudonymize is on but no key was given" in res.stderr
            and "VIDREC_PSEUDONYM_KEY" in res.stderr
        )
        assert not any(wh.iterdir()) if wh.exists() else True


# --- data minimisation ------------------------------------------------------------------------


@pytest.mark.slow
def test_profile_columns_nothing_uses_are_not_stored_unless_kept(spark, conf, tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "users.csv").write_text(
        "user_id,signup_date,country,age_band,gender\nu1,2026-01-01,FR,25-34,F\nu2,2026-01-02,DE,18-24,M\n"
    )
    ingest.run(spark, conf, str(raw), RUN_DATE)
    stored = tables.read(spark, conf.warehouse, C.T_USERS)
    assert stored.columns == [C.COL_USER, *C.PROFILE_COLUMNS, C.COL_UPDATED_AT]
    kept = conf.override({"privacy": {"keep_profile_columns": ["gender"]}})
    ingest.run(spark, kept, str(raw), RUN_DATE)
    rows = tables.read(spark, conf.warehouse, C.T_USERS).orderBy(C.COL_USER).collect()
    assert [(r.user_id, r.gender) for r in rows] == [("u1", "F"), ("u2", "M")]
    ingest.run(spark, conf, str(raw), RUN_DATE)  # no longer kept: dropped from the table
    assert C.COL_GENDER not in tables.read(spark, conf.warehouse, C.T_USERS).columns
    assert tables.read(spark, conf.warehouse, C.T_USERS).count() == 2
