"""Right to be forgotten: after ``forget_user`` no file under the warehouse holds a byte of the user.

One small nightly (ingest, matrix, recommend) runs with deletion vectors and change data feed on
by default for new tables (the hardest case: soft deletes and CDF files). A second user whose id
starts with the forgotten id, and quarantined records of both, show that matching is by token.
Deep model files sit beside them: an ``ncf`` ``model.pt`` and epoch checkpoint (user embedding rows)
and a ``multvae`` checkpoint (no per-user row).

The forget is requested while a second nightly holds the warehouse's lease and then fails: a
``forget_user`` job without ``--wait`` is refused (exit 3), one with ``--wait`` waits, the nightly's
stage fails and rolls back, and only then does the waiting job erase the user. So the roll-back can
never bring the user back. Then every file under the warehouse is scanned: Parquet read with
pyarrow, deep models loaded with torch, every other file (``_delta_log`` JSON, checkpoints, ``.crc``,
model metadata) as raw bytes, and every path name.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.parquet as pq
import pytest
import torch
from helpers import scannable_bytes
from pyspark.sql import functions as F

from vidrec import constants as C
from vidrec import pipeline
from vidrec.devdata import sample
from vidrec.models.deep.networks import MODEL_CLASSES, build_model
from vidrec.pipeline import forget, lease, runner

RUN_DATE = dt.date(2026, 3, 10)
#: the longest any one step of the forget-during-a-nightly scenario may take (each takes seconds to a minute)
WAIT_S = 600
ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "true",
    "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "true",
}


def token_re(user_id: str) -> re.Pattern[bytes]:
    """``user_id`` as a whole token (not inside a longer id) in bytes."""
    return re.compile(rb"(?<![A-Za-z0-9_-])" + re.escape(user_id.encode()) + rb"(?![A-Za-z0-9_-])")


def delta_tables(warehouse: str) -> list[str]:
    return sorted(str(p.parent) for p in Path(warehouse).rglob("_delta_log") if p.is_dir())


def rel(warehouse: str, path: str) -> str:
    return os.path.relpath(path, warehouse)


def user_columns(cols: list[str], folder: str) -> list[str]:
    return [c for c in cols if c in (C.COL_USER, C.COL_USER_IDX) or (c == "id" and folder == "userFactors")]


def is_theirs(row: dict[str, Any], folder: str, uid: str, idx: int, tok: re.Pattern[bytes]) -> bool:
    for col in user_columns(list(row), folder):
        if row[col] == (uid if col == C.COL_USER else idx):
            return True
    return C.COL_RAW in row and row[C.COL_RAW] is not None and bool(tok.search(row[C.COL_RAW].encode()))


def artifact_dirs(warehouse: str) -> list[str]:
    out = set()
    for area in ("models", "features"):
        for p in Path(warehouse, area).rglob("*.parquet"):
            if not any(part.startswith(("_", ".")) for part in p.relative_to(warehouse).parts):
                out.add(str(p.parent))
    return sorted(out)


def others_snapshot(spark, warehouse: str, uid: str, idx: int) -> dict[str, list[str]]:
    """Every row of everyone else, per Delta table and per Parquet artifact folder.

    ``ops/`` tables (the run log, the lease) hold no user rows and change with every job: left out.
    """
    tok = token_re(uid)
    snap: dict[str, list[str]] = {}
    for path in delta_tables(warehouse):
        if rel(warehouse, path).startswith("ops/"):
            continue
        df = spark.read.format("delta").load(path)
        snap[rel(warehouse, path)] = sorted(
            repr(r) for r in df.collect() if not is_theirs(r.asDict(), "", uid, idx, tok)
        )
    for folder in artifact_dirs(warehouse):
        files = [str(p) for p in Path(folder).glob("*.parquet")]
        df = spark.read.parquet(*files)
        name = Path(folder).name
        snap[rel(warehouse, folder)] = sorted(
            repr(r) for r in df.collect() if not is_theirs(r.asDict(), name, uid, idx, tok)
        )
    return snap


def write_extra_raw(raw: Path, target: str, neighbour: str) -> None:
    """A user whose id extends the target's, and quarantined records naming each of them."""
    item = json.loads((raw / "items.jsonl").read_text().splitlines()[0])["item_id"]
    ts = f"{RUN_DATE.isoformat()}T08:00:00Z"
    good = [
        {"event_id": f"xn-{i}", "user_id": neighbour, "item_id": item, "event_type": t, "ts": ts}
        for i, t in enumerate(("impression", "like", "share"))
    ]
    lines = [json.dumps(e) for e in good] + [
        f'{{"event_id": "xt-bad1", "user_id": "{target}", "item_id": "{item}"',  # malformed
        json.dumps(
            {"event_id": "xt-bad2", "user_id": target, "item_id": item, "event_type": "nope", "ts": ts}
        ),
        json.dumps(
            {"event_id": "xn-bad1", "user_id": neighbour, "item_id": item, "event_type": "nope", "ts": ts}
        ),
    ]
    (raw / "events_extra.jsonl").write_text("\n".join(lines) + "\n")
    header = "user_id,signup_date,country,age_band,gender"
    (raw / "users_extra.csv").write_text(f"{header}\n{neighbour},2026-01-02,FR,25-34,F\n")


def write_deep_models(wh: str, n_users: int, n_items: int) -> dict[str, Path]:
    """What deep training leaves: model.pt and an epoch checkpoint of ncf, a checkpoint of multvae."""
    day = Path(wh, "models", RUN_DATE.isoformat())
    configs = {
        "ncf": {
            "n_users": n_users,
            "n_items": n_items,
            "embedding_dim": 4,
            "mlp_dim": 4,
            "mlp_layers": [8],
            "dropout": 0.0,
        },
        "multvae": {
            "n_items": n_items,
            "hidden_dim": 8,
            "latent_dim": 4,
            "dropout": 0.1,
            "beta_max": 0.2,
            "anneal_steps": 10,
        },
    }
    out = {}
    for name, config in configs.items():
        model = build_model(name, config)
        folder = day / name
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "spec.json").write_text(json.dumps({"model": name, "model_config": config}))
        state = model.state_dict()
        torch.save({"model": name, "config": config, "state_dict": state, "metrics": {}}, folder / "model.pt")
        ckpt = {"digest": "d", "model": name, "model_state": state, "best_state": state, "optimizer": {}}
        torch.save(ckpt, folder / "checkpoints" / "epoch-0001.pt")
        out[f"{name}/model.pt"] = folder / "model.pt"
        out[f"{name}/checkpoint"] = folder / "checkpoints" / "epoch-0001.pt"
    return out


def forget_job(wh: str, checkpoints: Path, user_id: str, *extra: str) -> list[str]:
    sets = [
        "spark.master=local[2]",
        "spark.shuffle_partitions=2",
        "spark.driver_memory=2g",
        f"spark.checkpoint_dir={checkpoints}",
    ]
    return [
        sys.executable,
        str(ROOT / "jobs" / "forget_user.py"),
        "--warehouse",
        wh,
        "--user-id",
        user_id,
        "--vacuum-retention-hours",
        "0",
        *[a for s in sets for a in ("--set", s)],
        *extra,
    ]


def forget_during_a_failing_nightly(spark, conf, raw: str, target: str, root: Path) -> dict[str, Any]:
    """A nightly holds the lease; forget jobs come; the nightly's stage fails; the waiting forget runs."""
    wh = conf.warehouse
    started, go = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def failing_popular(rc: pipeline.RunContext) -> dict[str, Any]:
        started.set()
        go.wait(WAIT_S)
        raise RuntimeError("injected failure after the forget was requested")

    stages = [(n, failing_popular if n == "popular" else f) for n, f in runner.STAGES]

    def nightly() -> None:
        try:
            with (
                lease.hold(spark, wh, "nightly", conf.lease) as held,
                mock.patch.object(runner, "STAGES", stages),
            ):
                # a full refold rewrites silver/interactions, so the failed run has tables to roll back
                runner.run_nightly(
                    spark,
                    conf,
                    RUN_DATE,
                    raw,
                    stages=["matrix", "popular"],
                    guard=held.check,
                    full_refresh=True,
                )
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcome["nightly_error"] = exc

    thread = threading.Thread(target=nightly, daemon=True)
    thread.start()
    assert started.wait(WAIT_S), "the nightly never reached its failing stage"
    waiting = subprocess.Popen(
        forget_job(wh, root / "cp_wait", target, "--wait", "1800"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log_lines: list[str] = []
    said_waiting = threading.Event()

    def read_log() -> None:
        assert waiting.stderr is not None
        for line in waiting.stderr:
            log_lines.append(line.rstrip())
            if "is busy" in line and "waiting" in line:
                said_waiting.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    refused = subprocess.run(
        forget_job(wh, root / "cp_refused", target), cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S
    )
    outcome["waited_before_the_failure"] = said_waiting.wait(WAIT_S) and waiting.poll() is None
    go.set()
    thread.join(timeout=WAIT_S)
    outcome["nightly_ended_at"] = time.time()
    stdout = waiting.stdout.read() if waiting.stdout else ""
    waiting.wait(timeout=WAIT_S)
    reader.join(timeout=60)
    outcome.update(refused=refused, waiting_rc=waiting.returncode, waiting_log=log_lines, stdout=stdout)
    return outcome


@pytest.fixture(scope="module")
def forgotten(spark, base_conf, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("forget")
    raw = root / "raw"
    sample.generate(spark, str(raw), n_users=60, n_items=40, days=10, end_date=RUN_DATE, seed=11)
    with (raw / "users.csv").open() as fh:
        target = max(r["user_id"] for r in csv.DictReader(fh))  # the largest id: a max in every file's stats
    neighbour = target + "0"
    write_extra_raw(raw, target, neighbour)
    wh = str(root / "warehouse")
    conf = base_conf.replace(warehouse=wh)
    for k, v in DEFAULTS.items():
        spark.conf.set(k, v)
    try:
        pipeline.run_nightly(spark, conf, RUN_DATE, str(raw), stages=["ingest", "matrix", "recommend"])
        # an UPDATE with deletion vectors: the previous profile rows stay soft-deleted in live files
        who = f"'{target}', '{neighbour}'"
        spark.sql(f"UPDATE delta.`{wh}/silver/users` SET country = 'ZZ' WHERE user_id IN ({who})")
        # artifacts a deep model would leave: Parquet feature shards by user_idx, a user embedding table
        index = spark.read.format("delta").load(f"{wh}/silver/user_index")
        index.select(
            C.COL_USER_IDX, (F.col(C.COL_USER_IDX) % 3).alias("bucket"), F.lit(1.0).alias("label")
        ).write.partitionBy("bucket").parquet(f"{wh}/features/{RUN_DATE.isoformat()}/shards")
        index.select(
            C.COL_USER, C.COL_USER_IDX, F.array(F.lit(0.1), F.lit(0.2)).alias("embedding")
        ).write.format("delta").save(f"{wh}/gold/user_embeddings")
    finally:
        for k in DEFAULTS:
            spark.conf.unset(k)
    idx = index.where(F.col(C.COL_USER) == target).first()[C.COL_USER_IDX]
    n_users = index.agg(F.max(C.COL_USER_IDX)).first()[0] + 1
    deep = write_deep_models(wh, n_users, 40)
    deep_before = {k: torch.load(p, weights_only=False) for k, p in deep.items()}
    before = others_snapshot(spark, wh, target, idx)
    quarantine_before = spark.read.format("delta").load(f"{wh}/bronze/quarantine").collect()
    runs_before = spark.read.format("delta").load(f"{wh}/ops/runs").count()
    during = forget_during_a_failing_nightly(spark, conf, str(raw), target, root)
    assert during["waiting_rc"] == 0, "\n".join(during["waiting_log"][-40:])
    return {
        "wh": wh,
        "target": target,
        "neighbour": neighbour,
        "idx": idx,
        "before": before,
        "quarantine_before": quarantine_before,
        "runs_before": runs_before,
        "deep": deep,
        "deep_before": deep_before,
        "during": during,
        "report": json.loads(during["stdout"]),
        "spark": spark,
    }


pytestmark = [pytest.mark.spark]


@pytest.mark.slow
def test_report_covers_every_place(forgotten) -> None:
    r = forgotten["report"]
    assert set(r["delta_rows_deleted"]) >= {
        "bronze/events",
        "bronze/quarantine",
        "silver/users",
        "silver/interactions",
        "silver/user_index",
        "gold/recommendations",
        "gold/user_embeddings",
    }
    assert r["delta_rows_deleted"]["bronze/quarantine"] == 2  # malformed + unknown event_type
    assert r["delta_rows_deleted"]["silver/user_index"] == 1
    arts = set(r["artifact_rows_deleted"])
    assert f"models/{RUN_DATE.isoformat()}/als_user_factors" in arts
    assert f"models/{RUN_DATE.isoformat()}/als_model/userFactors" in arts
    assert any(a.startswith(f"features/{RUN_DATE.isoformat()}/shards/bucket=") for a in arts)
    assert "silver/users" in r["purged_deletion_vectors"]
    assert set(r["vacuumed"]) == set(r["log_truncated"]) >= set(r["delta_rows_deleted"])
    assert r["model_rows_zeroed"] == {f"models/{RUN_DATE.isoformat()}/ncf/model.pt": 1}
    assert r["deleted_checkpoints"] == [f"models/{RUN_DATE.isoformat()}/ncf/checkpoints/epoch-0001.pt"]
    assert r["unknown_users"] == 0 and r["users"] == 1
    assert not [f for f in r["unhandled_files"] if "models/" in f], r["unhandled_files"]
    assert not token_re(forgotten["target"]).search(json.dumps(r).encode())  # the report names no one


@pytest.mark.slow
def test_a_forget_during_a_nightly_waits_or_is_refused_and_the_failed_nightly_brings_no_one_back(
    forgotten,
) -> None:
    during, spark, wh = forgotten["during"], forgotten["spark"], forgotten["wh"]
    refused = during["refused"]
    assert refused.returncode == 3, refused.stderr[-3000:]
    assert f"warehouse {wh} is busy" in refused.stderr and "job 'nightly' (run " in refused.stderr
    assert during["waited_before_the_failure"], "\n".join(during["waiting_log"][-40:])
    assert isinstance(during["nightly_error"], RuntimeError) and "injected" in str(during["nightly_error"])
    # the nightly failed and rolled back while the forget waited; the forget ran after it
    runs = spark.read.format("delta").load(f"{wh}/ops/runs").orderBy("started_at").collect()
    runs = runs[forgotten["runs_before"] :]
    assert [(r.stage, r.status) for r in runs] == [("matrix", "succeeded"), ("popular", "failed")]
    assert "silver.interactions" in runs[-1].details
    assert lease.read_holder(spark, wh) is None  # both jobs gave the lease back


@pytest.mark.slow
def test_no_byte_of_the_user_survives(forgotten) -> None:
    wh, uid, idx = forgotten["wh"], forgotten["target"], forgotten["idx"]
    tok = token_re(uid)
    found: list[str] = []
    n_files = n_parquet = 0
    for dirpath, dirnames, filenames in os.walk(wh):
        for name in dirnames + filenames:
            if tok.search(name.encode()):
                found.append(f"path name: {os.path.join(dirpath, name)}")
        for name in filenames:
            path = os.path.join(dirpath, name)
            n_files += 1
            parquet = name.endswith(".parquet") and not name.startswith(".")
            if tok.search(scannable_bytes(path)):  # Parquet: the footer here, the decoded rows below
                found.append(f"bytes: {rel(wh, path)}")
            if parquet:
                n_parquet += 1
                table = pq.read_table(path)
                folder = Path(dirpath).name
                for row in table.to_pylist():
                    if tok.search(repr(row).encode()) or any(
                        row[c] == idx for c in user_columns(list(row), folder) if c != C.COL_USER
                    ):
                        found.append(f"row: {rel(wh, path)}: {row}")
                        break
    assert n_parquet > 20 and n_files > n_parquet
    assert any("_change_data" in d for d, _, _ in os.walk(wh)), "CDF was on: its folders must exist"
    assert found == []


@pytest.mark.slow
def test_deep_models_keep_no_row_of_the_user_and_every_other_row(forgotten) -> None:
    deep, before, idx = forgotten["deep"], forgotten["deep_before"], forgotten["idx"]
    models = sorted(Path(forgotten["wh"]).rglob("model.pt"))
    assert models == sorted(p for k, p in deep.items() if k.endswith("model.pt"))
    for key in ("ncf/model.pt", "multvae/model.pt"):
        name = key.split("/")[0]
        after = torch.load(deep[key], weights_only=False)["state_dict"]
        old = before[key]["state_dict"]
        assert after.keys() == old.keys()
        for param, weight in after.items():
            if param in MODEL_CLASSES[name].USER_PARAMETERS:
                assert torch.count_nonzero(weight[idx]) == 0, (key, param)
                keep = [i for i in range(weight.shape[0]) if i != idx]
                assert torch.equal(weight[keep], old[param][keep]), (key, param)
                assert torch.count_nonzero(old[param][idx]) > 0  # there was something to erase
            else:
                assert torch.equal(weight, old[param]), (key, param)
    assert not deep["ncf/checkpoint"].exists()  # ncf checkpoints held user rows: deleted
    assert deep["multvae/checkpoint"].exists()  # multvae's hold none: kept


def test_declared_user_parameters_are_exactly_the_rows_per_user() -> None:
    """Every deep model lists in USER_PARAMETERS exactly its parameters with one row per user."""
    from vidrec.config import load_config
    from vidrec.models.deep.networks import model_config
    from vidrec.models.deep.params import model_params

    deep = load_config().deep
    sizes = {"n_users": 37, "n_items": 23, "visual_dim": 0, "audio_dim": 0}
    for name, cls in MODEL_CLASSES.items():
        model = build_model(name, model_config(name, model_params(deep, name), sizes))
        per_user = {k for k, v in model.state_dict().items() if v.dim() >= 1 and v.shape[0] == 37}
        assert per_user == set(cls.USER_PARAMETERS), name


@pytest.mark.slow
def test_everyone_else_is_untouched(forgotten) -> None:
    spark, wh = forgotten["spark"], forgotten["wh"]
    after = others_snapshot(spark, wh, forgotten["target"], forgotten["idx"])
    assert after.keys() == forgotten["before"].keys()
    for name, rows in forgotten["before"].items():
        assert after[name] == rows, name
    # the neighbour (an id that starts with the forgotten one) keeps every row, quarantine included
    n = forgotten["neighbour"]
    q_after = spark.read.format("delta").load(f"{wh}/bronze/quarantine").collect()
    assert sum(f'"{n}"' in r.raw for r in q_after) == 1
    assert len(q_after) == len(forgotten["quarantine_before"]) - 2
    assert spark.read.format("delta").load(f"{wh}/bronze/events").where(F.col(C.COL_USER) == n).count() == 3


@pytest.mark.slow
def test_tables_stay_usable_and_forget_again_is_a_no_op(forgotten) -> None:
    spark, wh = forgotten["spark"], forgotten["wh"]
    for path in delta_tables(wh):
        spark.read.format("delta").load(path).count()
        spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    again = forget.forget_users(spark, wh, [forgotten["target"]], vacuum_retention_hours=None)
    assert again["delta_rows_deleted"] == {} and again["artifact_rows_deleted"] == {}
    assert again["user_idx_found"] == 0 and again["model_rows_zeroed"] == {}
    assert again["unknown_users"] == 1  # the command line exits 5 for it


def test_token_pattern_matches_whole_ids_only(spark) -> None:
    texts = [
        '{"user_id": "u1", "item_id": "i1"}',
        '{"user_id":"u10"}',
        "u1,2026-01-01,FR",
        "x,u1",
        "xu1,2026",
        '{"user_id": "au1"}',
        '{"user_id": "u1-2"}',
    ]
    df = spark.createDataFrame([(t,) for t in texts], "raw string")
    hits = [r.raw for r in df.where(F.col("raw").rlike(forget.token_pattern("u1"))).collect()]
    assert sorted(hits) == sorted([texts[0], texts[2], texts[3]])
    assert df.where(F.col("raw").rlike(forget.token_pattern("a.b"))).count() == 0  # regex chars quoted


def run_job(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "forget_user.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_job_refuses_bad_arguments_before_spark(tmp_path) -> None:
    res = run_job("--warehouse", str(tmp_path))
    assert res.returncode == 2 and "--user-id" in res.stderr
    res = run_job("--warehouse", str(tmp_path / "nope"), "--user-id", "u1")
    assert res.returncode == 2 and "nope" in res.stderr
    res = run_job("--warehouse", str(tmp_path), "--user-ids-file", str(tmp_path / "ids.txt"))
    assert res.returncode == 2 and "ids.txt" in res.stderr
    res = run_job("--warehouse", str(tmp_path), "--user-id", "u1", "--set", "spark.nope=1")
    assert res.returncode == 2 and "spark.nope" in res.stderr
    res = run_job("--warehouse", str(tmp_path), "--user-id", "u1", "--wait", "-1")
    assert res.returncode == 2 and "--wait" in res.stderr
    assert not (tmp_path / "_checkpoints").exists()


def test_ids_file(tmp_path) -> None:
    f = tmp_path / "ids.txt"
    f.write_text("u1\n# a comment\n\n u2  # trailing\n")
    assert forget.read_ids_file(str(f)) == ["u1", "u2"]
    with pytest.raises(ValueError):
        forget._validate_ids([" ", ""])
    with pytest.raises(TypeError):
        forget._validate_ids("u1")  # type: ignore[arg-type]
