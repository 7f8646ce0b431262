"""Tuning: the search, the driver-side metrics and blend, the outputs, and a tuning run that never reads
the test split (its result does not change when the test events are altered)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from vidrec import constants as C
from vidrec.config import ConfigError, load_config
from vidrec.config.loader import build
from vidrec.config.sections import Config, TrackingConf
from vidrec.data import tables
from vidrec.data.schemas import ITEM_INDEX, SILVER_ITEMS, SILVER_USERS, USER_INDEX
from vidrec.evaluation import metrics
from vidrec.evaluation.metrics import ranking_metrics_local
from vidrec.evaluation.search import LocalBlend, blend_search, coordinate_search
from vidrec.evaluation.tracking import Tracker, flat_params, tracking_uri
from vidrec.evaluation.trials import TRIALS_TABLE, TuneResult, layer_for, write_tuned_conf
from vidrec.evaluation.tuning import canonical, current_params, run, with_params

U, IT, R, S = C.COL_USER_IDX, C.COL_ITEM_IDX, C.COL_RANK, C.COL_SCORE


# --- search ------------------------------------------------------------------------------------


def test_coordinate_search_finds_the_best_and_fits_each_configuration_once() -> None:
    calls: list[tuple[int, int]] = []

    def objective(p: dict[str, Any]) -> float:
        calls.append((p["a"], p["b"]))
        return -((p["a"] - 3) ** 2) - (p["b"] - 1) ** 2

    best, value = coordinate_search({"a": [1, 2, 3, 4], "b": [0, 1, 2]}, {"a": 1, "b": 0}, objective, 3)
    assert best == {"a": 3, "b": 1} and value == 0.0
    assert len(calls) == len(set(calls))  # every configuration scored once
    # round 1 improves a then b; round 2 finds nothing better and stops
    assert sorted(calls) == sorted({(1, 0), (2, 0), (3, 0), (4, 0), (3, 1), (3, 2), (1, 1), (2, 1), (4, 1)})


def test_coordinate_search_canonicalises_unused_parameters() -> None:
    seen: list[dict[str, Any]] = []
    space = {"similarity": ["cosine", "rp3beta"], "shrink": [0.0, 5.0], "beta": [0.3, 0.5]}
    start = {"similarity": "cosine", "shrink": 5.0, "beta": 0.5}

    def objective(p: dict[str, Any]) -> float:
        seen.append(canonical("itemknn", p))
        if p["similarity"] == "rp3beta":
            return 1.0 if p["beta"] == 0.3 else 0.6
        return 0.5

    best, value = coordinate_search(space, start, objective, 2, lambda p: canonical("itemknn", p))
    assert value == 1.0 and best["similarity"] == "rp3beta" and best["beta"] == 0.3
    keys = [json.dumps(p, sort_keys=True) for p in seen]
    assert len(keys) == len(set(keys))  # rp3beta with another shrink is not refitted
    assert canonical("itemknn", best) == {"similarity": "rp3beta", "beta": 0.3}


# --- driver-side metrics and blend ---------------------------------------------------------------


RECS = pd.DataFrame(
    [(0, 10, 3.0, 1), (0, 11, 2.0, 2), (0, 12, 1.0, 3), (1, 12, 5.0, 1), (1, 13, 4.0, 2), (3, 10, 1.0, 1)],
    columns=[U, IT, S, R],
)
RELEVANT = pd.DataFrame([(0, 11), (0, 14), (1, 12), (1, 13), (2, 10)], columns=[U, IT])


def test_ranking_metrics_local_by_hand() -> None:
    got = ranking_metrics_local(RECS, RELEVANT, k=2)
    # user 0: [10, 11] hits at rank 2 of 2 relevant; user 1: both hit; user 2: no list; user 3: not relevant
    d = 1 / math.log2(3)
    assert got["users"] == 3
    assert got["precision"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert got["recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert got["ndcg"] == pytest.approx((d / (1 + d) + 1.0 + 0.0) / 3)
    assert got["map"] == pytest.approx((0.5 / 2 + 1.0 + 0.0) / 3)
    assert got["hit_rate"] == pytest.approx(2 / 3)
    assert got["mrr"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


@pytest.mark.spark
@pytest.mark.parametrize("k", [1, 2, 3])
def test_ranking_metrics_local_equals_the_spark_metrics(spark: Any, k: int) -> None:
    recs = spark.createDataFrame(RECS)
    rel = spark.createDataFrame(RELEVANT)
    expected = metrics.ranking_metrics(recs, rel, k)
    got = ranking_metrics_local(RECS, RELEVANT, k)
    assert got == pytest.approx(expected)


def test_local_blend_by_hand() -> None:
    a = pd.DataFrame([(0, 1, 9.0, 1), (0, 2, 5.0, 2), (0, 3, 1.0, 3)], columns=[U, IT, S, R])
    b = pd.DataFrame([(0, 3, 0.9, 1), (0, 4, 0.8, 2)], columns=[U, IT, S, R])
    relevant = pd.DataFrame([(0, 3)], columns=[U, IT])
    blend = LocalBlend({"a": a, "b": b}, relevant, k=2)
    # rrf, k=1: a gives 1, 2/3, 1/2; b gives 1 (item 3), 2/3 (item 4)
    rrf = blend.recs({"a": 1.0, "b": 1.0}, "rrf", 1)
    assert list(rrf[IT]) == [3, 1] and list(rrf[S]) == pytest.approx([1.5, 1.0])
    # min-max: a gives 1, 0.5, 0; b gives 1, 0 -> item 1: 1, item 3: 0 + 2 * 1 = 2 with b weighted 2
    mm = blend.recs({"a": 1.0, "b": 2.0}, "minmax", 60)
    assert list(mm[IT]) == [3, 1] and list(mm[S]) == pytest.approx([2.0, 1.0])
    # a weight of 0 drops the list's items (as the Spark blend, which joins on positive weights)
    only_a = blend.recs({"a": 1.0, "b": 0.0}, "rrf", 60)
    assert list(only_a[IT]) == [1, 2]
    assert blend.metrics({"a": 1.0, "b": 1.0}, "rrf", 1)["ndcg"] == pytest.approx(1.0)
    params, value = blend_search(blend, {"a": 1.0}, "rrf", 60, ["rrf", "minmax"], [1, 60], [0.0, 1.0], 2)
    assert value == pytest.approx(1.0) and params["weights"]["b"] > 0


def test_blend_search_also_starts_from_equal_weights() -> None:
    """From a alone, adding b or c alone never lifts item 9 to the top: coordinate ascent stops there."""
    a = pd.DataFrame([(0, 7, 1.0, 1)], columns=[U, IT, S, R])
    b = pd.DataFrame([(0, 5, 2.0, 1), (0, 9, 1.0, 2)], columns=[U, IT, S, R])
    c = pd.DataFrame([(0, 6, 2.0, 1), (0, 9, 1.0, 2)], columns=[U, IT, S, R])
    blend = LocalBlend({"a": a, "b": b, "c": c}, pd.DataFrame([(0, 9)], columns=[U, IT]), k=1)
    space = {n: [0.0, 1.0] for n in "abc"}

    def objective(w: dict) -> float:
        return blend.metrics(w, "rrf", 1)["ndcg"] if any(w.values()) else -1.0

    assert coordinate_search(space, {"a": 1.0, "b": 0.0, "c": 0.0}, objective, 2)[1] == 0.0
    trials: list[dict] = []
    params, value = blend_search(
        blend, {"a": 1.0}, "rrf", 1, ["rrf"], [1], [0.0, 1.0], 2, lambda p, m: trials.append(p)
    )
    assert value == pytest.approx(1.0) and params["weights"]["b"] == params["weights"]["c"] == 1.0
    assert len(trials) == len({str(sorted(t["weights"].items())) for t in trials})  # each blend scored once


def test_blend_search_drops_a_list_that_changes_nothing() -> None:
    """z's item never reaches the top (it ties with a's at best and loses on item order): z is dropped.

    Coordinate ascent keeps its start on a tie, so without the pruning z would keep its configured
    1.0 and be served on no evidence (the ML-100k new-items list did: 0.008 NDCG@10 on the test side).
    """
    a = pd.DataFrame([(0, 3, 2.0, 1), (0, 1, 1.0, 2), (1, 4, 1.0, 1)], columns=[U, IT, S, R])
    z = pd.DataFrame([(0, 8, 1.0, 1), (1, 9, 1.0, 1)], columns=[U, IT, S, R])
    blend = LocalBlend({"a": a, "z": z}, pd.DataFrame([(0, 3), (1, 4)], columns=[U, IT]), k=1)
    assert blend.metrics({"a": 1.0, "z": 1.0}, "rrf", 60)["ndcg"] == pytest.approx(1.0)
    trials: list[dict] = []
    params, value = blend_search(
        blend,
        {"a": 1.0, "z": 1.0},
        "rrf",
        60,
        ["rrf"],
        [60],
        [0.0, 0.5, 1.0],
        2,
        lambda p, m: trials.append(p),
    )
    assert value == pytest.approx(1.0) and params["weights"] == {"a": 1.0, "z": 0.0}
    # the chosen blend is among the reported trials (the tuning report marks it), each reported once
    assert params in trials and len(trials) == len({str(sorted(t["weights"].items())) for t in trials})


def _random_lists(
    rng: np.random.Generator, n_users: int, n_items: int, n_lists: int
) -> dict[str, pd.DataFrame]:
    """Lists of a few users with coarse scores (many ties), some users without a list, some lists short."""
    lists = {}
    for g in range(n_lists):
        rows = []
        for u in range(n_users):
            if rng.random() < 0.15:
                continue
            items = rng.choice(n_items, int(rng.integers(0, min(n_items, 8) + 1)), replace=False)
            scores = np.round(rng.random(len(items)) * 3) / 3
            for r, j in enumerate(np.lexsort((items, -scores))):
                rows.append((u, int(items[j]), float(scores[j]), r + 1))
        frame = pd.DataFrame(rows, columns=[U, IT, S, R])
        lists[f"l{g}"] = frame.astype({U: "int64", IT: "int64", R: "int64"})
    return lists


def test_local_blend_metrics_equal_the_metrics_of_its_ranked_lists() -> None:
    """The vectorised metrics rank exactly as the pandas blend does: ties by lower item, short lists,
    relevant users without any candidate and relevant items no list holds included."""
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(25):
        n_users, n_items, k = int(rng.integers(1, 20)), int(rng.integers(2, 15)), int(rng.integers(1, 9))
        lists = _random_lists(rng, n_users, n_items, int(rng.integers(1, 4)))
        relevant = pd.DataFrame(
            {U: rng.integers(0, n_users + 2, 2 * n_users), IT: rng.integers(0, n_items + 2, 2 * n_users)}
        )
        blend = LocalBlend(lists, relevant, k)
        for _ in range(4):
            weights = {name: float(rng.choice([0.0, 0.25, 1.0])) for name in lists}
            for method, rrf_k in (("rrf", 1), ("rrf", 60), ("minmax", 60)):
                expected = ranking_metrics_local(blend.recs(weights, method, rrf_k), relevant, k)
                assert blend.metrics(weights, method, rrf_k) == pytest.approx(expected, abs=1e-12)
                checked += 1
    assert checked == 300


# --- configuration ------------------------------------------------------------------------------


def test_with_params_and_layer() -> None:
    conf = load_config()
    als = with_params(conf, "als", {"rank": 16, "alpha": 2.0})
    assert (als.als.rank, als.als.alpha) == (16, 2.0) and conf.als.rank == 96
    deep = with_params(conf, "multvae", {"hidden_dim": 128})
    assert deep.deep.multvae.hidden_dim == 128 and deep.deep.multvae.dropout == 0.5
    assert current_params(deep, "multvae", ["hidden_dim", "lr"]) == {"hidden_dim": 128, "lr": 0.002}
    layer = layer_for({"ease": {"lambda": 500.0}, "ncf": {"dropout": 0.2}, "content": {}})
    assert layer == {"ease": {"lambda": 500.0}, "deep": {"ncf": {"dropout": 0.2}}}
    with pytest.raises(ValueError, match=r"tune.spaces.als names unknown parameter\(s\) \['bogus'\]"):
        current_params(conf, "als", ["bogus"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tune.validation_fraction=1.0", r"tune.validation_fraction must be in \(0, 1\)"),
        ("tune.rounds=0", "tune.rounds must be >= 1"),
        ("tune.blend_grid=[-1.0]", "tune.blend_grid must be non-empty and >= 0"),
        ("tune.spaces.ease.lambda=[]", "tune.spaces.ease.lambda must be a non-empty list"),
        ("tune.algorithms=[bogus]", "unknown algorithm"),
    ],
)
def test_tune_conf_refuses_bad_values(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides=[override])


def _result(layer: dict[str, Any]) -> TuneResult:
    return TuneResult(
        protocol="random",
        validation="per-user random 20% of training events, seed 7",
        metric="ndcg@10",
        trials=[],
        chosen={"ease": {"lambda": 500.0}},
        chosen_metrics={"ease": {"ndcg": 0.25}},
        layer=layer,
    )


def test_write_tuned_conf_is_a_loadable_layer(tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text("warehouse: /tmp/wh-ml\ningest:\n  min_event_date: '1995-01-01'\n")
    out = write_tuned_conf(
        tmp_path / "tuned" / "ml.yaml", env, _result({"ease": {"lambda": 500.0}}), dt.date(1998, 4, 30)
    )
    text = out.read_text()
    assert text.startswith("# Tuned by jobs/tune.py") and "ease 0.2500" in text
    conf = load_config(out)
    assert conf.ease.lambda_ == 500.0
    assert conf.ingest.min_event_date == "1995-01-01" and conf.warehouse == "/tmp/wh-ml"
    with pytest.raises(ConfigError, match="ease.bogus"):
        write_tuned_conf(tmp_path / "bad.yaml", env, _result({"ease": {"bogus": 1}}), dt.date(1998, 4, 30))
    assert not (tmp_path / "bad.yaml").exists()


def test_tuned_conf_of_an_extending_layer_stands_alone(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text("warehouse: /tmp/wh-parent\nals:\n  rank: 16\n")
    env = tmp_path / "env.yaml"
    env.write_text("extends: parent.yaml\nals:\n  alpha: 3\n")
    out = write_tuned_conf(
        tmp_path / "elsewhere" / "ml.yaml", env, _result({"ease": {"lambda": 500.0}}), dt.date(1998, 4, 30)
    )
    assert "extends" not in out.read_text()  # the parent's values are written in: no path to break
    conf = load_config(out)
    assert (conf.warehouse, conf.als.rank, conf.als.alpha, conf.ease.lambda_) == (
        "/tmp/wh-parent",
        16,
        3.0,
        500.0,
    )


# --- tracking -----------------------------------------------------------------------------------


def test_tracker_logs_runs_that_read_back(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    tracker = Tracker(TrackingConf(enabled=True, uri=str(store), experiment="t"))
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    with tracker.run("parent") as parent:
        tracker.log_params({"protocol": "random"})
        with tracker.run("child") as child:
            tracker.log_params({"als": {"rank": 8}})
            tracker.log_history([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
            tracker.log_metrics({"ndcg": 0.4, "note": "skipped", "nan": float("nan")})
            tracker.log_artifact(model, "model")
    client = MlflowClient(tracking_uri(str(store)))
    run = client.get_run(child)
    assert run.data.params == {"als.rank": "8"}
    assert run.data.metrics == {"train_loss": 0.5, "ndcg": 0.4}
    history = client.get_metric_history(child, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.5)]
    assert [f.path for f in client.list_artifacts(child, "model")] == ["model/model.pt"]
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert Tracker(TrackingConf(enabled=False, uri=None, experiment="t")).uri is None


def test_trials_log_no_per_user_rows_to_mlflow(tmp_path: Path) -> None:
    """A deep model's model.pt (user embeddings) and ALS's userFactors never reach the tracking store."""
    from vidrec.evaluation.tuning import _log_model_files

    for rel in ("ncf/model.pt", "ncf/metrics.json", "ncf/spec.json", "ncf/checkpoints/epoch-0001.pt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    for part in ("metadata", "userFactors", "itemFactors"):
        (tmp_path / "als_model" / part).mkdir(parents=True)
        (tmp_path / "als_model" / part / "part-00000.parquet").write_text("x")

    class Recorder:
        logged: list[tuple[str, str | None]] = []

        def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
            if Path(path).exists():
                self.logged.append((str(Path(path).relative_to(tmp_path)), artifact_path))

    rec = Recorder()
    _log_model_files(rec, str(tmp_path), "ncf")  # type: ignore[arg-type]
    _log_model_files(rec, str(tmp_path), "als")  # type: ignore[arg-type]
    assert rec.logged == [
        ("ncf/metrics.json", "model"),
        ("ncf/spec.json", "model"),
        ("als_model/metadata", "model/als_model/metadata"),
        ("als_model/itemFactors", "model/als_model/itemFactors"),
    ]


def test_flat_params_and_default_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert flat_params({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": "1", "a.c": "[1, 2]", "d": "x"}
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert tracking_uri(None) == (tmp_path / "mlruns").resolve().as_uri()
    import os

    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    assert tracking_uri("http://mlflow:5000") == "http://mlflow:5000"


# --- a tuning run on a tiny warehouse ----------------------------------------------------------

N_USERS, N_ITEMS = 40, 24
T0 = dt.datetime(2026, 1, 1)


def _ratings() -> list[tuple[str, str, str, dt.datetime, float]]:
    """Two taste groups: even users like items 0-11, odd users items 12-23; 9 ratings per user."""
    rng = np.random.default_rng(3)
    out = []
    for u in range(N_USERS):
        pool = np.arange(12) + (0 if u % 2 == 0 else 12)
        popular = pool[:4]
        chosen = list(popular) + list(rng.choice(pool[4:], 5, replace=False))
        for j, item in enumerate(chosen):
            ts = T0 + dt.timedelta(days=int(rng.integers(0, 60)), minutes=j)
            out.append((f"e{u}-{item}", f"u{u:02d}", f"i{item:02d}", ts, float(rng.integers(3, 6))))
    return out


def _write_warehouse(spark: Any, wh: str, ratings: list[tuple[str, str, str, dt.datetime, float]]) -> None:
    run_date = dt.date(2026, 3, 31)
    events = pd.DataFrame(ratings, columns=[C.COL_EVENT_ID, C.COL_USER, C.COL_ITEM, C.COL_TS, C.COL_RATING])
    events[C.COL_EVENT_TYPE] = "rate"
    events[C.COL_EVENT_DATE] = events[C.COL_TS].dt.date
    events[C.COL_WATCH_SECONDS] = np.nan
    cols = f"{C.COL_EVENT_ID} string, {C.COL_USER} string, {C.COL_ITEM} string, {C.COL_TS} timestamp, "
    cols += f"{C.COL_RATING} double, {C.COL_EVENT_TYPE} string, {C.COL_EVENT_DATE} date, "
    cols += f"{C.COL_WATCH_SECONDS} double"
    tables.overwrite(spark.createDataFrame(events, cols), wh, C.T_EVENTS)
    items = [
        (f"i{i:02d}", f"Title {i}", ["Drama" if i < 12 else "Comedy"], [], [], 1990 + i, 5400.0, None, "en",
         None, None, None, run_date)
        for i in range(N_ITEMS)
    ]  # fmt: skip
    tables.overwrite(spark.createDataFrame(items, SILVER_ITEMS), wh, C.T_ITEMS)
    users = [(f"u{u:02d}", None, "US", "25-34", run_date) for u in range(N_USERS)]
    tables.overwrite(spark.createDataFrame(users, SILVER_USERS), wh, C.T_USERS)
    tables.overwrite(
        spark.createDataFrame([(f"u{u:02d}", u, run_date) for u in range(N_USERS)], USER_INDEX),
        wh,
        C.T_USER_INDEX,
    )
    tables.overwrite(
        spark.createDataFrame([(f"i{i:02d}", i, run_date) for i in range(N_ITEMS)], ITEM_INDEX),
        wh,
        C.T_ITEM_INDEX,
    )


def _tiny_conf(base_conf: Config, wh: str, store: Path) -> Config:
    conf = base_conf.to_dict()  # the sections below are replaced whole, not merged key by key
    conf["warehouse"] = wh
    conf["evaluation"] = {**conf["evaluation"], "test_fraction": 0.25, "k": 3}
    conf["hybrid"] = {**conf["hybrid"], "pool_n": 6}
    conf["ease"] = {**conf["ease"], "lambda": 50.0}  # the search starts here
    conf["tracking"] = {"enabled": True, "uri": str(store), "experiment": "tiny"}
    conf["tune"] = {
        **conf["tune"],
        "validation_fraction": 0.25,
        "rounds": 1,
        "blend_grid": [0.0, 0.5, 1.0],
        "blend_rounds": 1,
        "spaces": {
            "popularity": {"window_days": [7, 3650]},
            "ease": {"lambda": [1.0, 50.0]},
            "itemknn": {"similarity": ["cosine", "rp3beta"], "shrink": [0.0]},
            "hybrid": {"score_norm": ["rrf"], "rrf_k": [60]},
        },
    }
    return build(conf)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.extended
def test_tuning_run_writes_trials_conf_and_runs_and_never_reads_the_test_split(
    spark: Any, base_conf: Config, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from vidrec.evaluation.splits import per_user_random_split

    ratings = _ratings()
    wh = str(tmp_path / "wh")
    _write_warehouse(spark, wh, ratings)
    conf = _tiny_conf(base_conf, wh, tmp_path / "mlruns")
    env = tmp_path / "env.yaml"
    env.write_text(yaml.safe_dump({"warehouse": wh}))
    algos = ["popularity", "ease", "itemknn", "hybrid"]
    run_date = dt.date(2026, 3, 31)
    result = run(spark, conf, run_date, "random", algos, tmp_path / "tuned.yaml", env)

    # trials: one Delta row each, exactly one chosen per algorithm, and it is the best one
    rows = tables.read(spark, wh, TRIALS_TABLE).collect()
    assert len(rows) == len(result.trials) and {r["protocol"] for r in rows} == {"random"}
    for algo in algos:
        mine = [r for r in rows if r[C.COL_ALGORITHM] == algo]
        assert sum(r["chosen"] for r in mine) == 1, algo
        best = max(r[C.COL_VALUE] for r in mine)
        assert next(r for r in mine if r["chosen"])[C.COL_VALUE] == pytest.approx(best), algo
        assert all(r[C.COL_METRIC] == "ndcg@3" for r in mine)
    assert {r[C.COL_ALGORITHM] for r in rows if r[C.COL_ALGORITHM] != "hybrid"} == set(algos) - {"hybrid"}
    assert len([r for r in rows if r[C.COL_ALGORITHM] == "ease"]) == 2

    # the chosen values are a loadable conf layer
    tuned = load_config(result.conf_path)
    chosen_ease = next(json.loads(r["params"]) for r in rows if r[C.COL_ALGORITHM] == "ease" and r["chosen"])
    assert tuned.ease.lambda_ == chosen_ease["lambda"]
    assert tuned.hybrid.weights == pytest.approx(
        {**{a: 0.0 for a in conf.hybrid.weights}, **result.chosen["hybrid"]["weights"]}
    )

    # MLflow: a parent run with a nested run per fitted trial, readable back
    client = MlflowClient(tracking_uri(str(tmp_path / "mlruns")))
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.mlflow_run_id]
    fitted = [t for t in result.trials if t.algorithm != "hybrid"]
    assert len(children) == len(fitted) + 1  # + the hybrid's blend run
    assert all("ndcg" in r.data.metrics for r in children)

    # the guard: alter every test-side event (other item, other rating), tune again: same trials
    events = spark.createDataFrame(
        [(e, u, i, ts) for e, u, i, ts, _ in ratings],
        "event_id string, user_id string, item_id string, ts timestamp",
    )
    _, test = per_user_random_split(events, 0.75, seed=int(conf.evaluation.seed))
    test_ids = {r[0] for r in test.select(C.COL_EVENT_ID).collect()}
    assert test_ids
    altered = [
        (e, u, f"i{(int(i[1:]) + 7) % N_ITEMS:02d}" if e in test_ids else i, ts, 1.0 if e in test_ids else r)
        for e, u, i, ts, r in ratings
    ]
    wh2 = str(tmp_path / "wh2")
    _write_warehouse(spark, wh2, altered)
    conf2 = _tiny_conf(base_conf, wh2, tmp_path / "mlruns2")
    again = run(spark, conf2, run_date, "random", algos, None, env)
    assert [(t.algorithm, t.params, t.metrics) for t in again.trials] == [
        (t.algorithm, t.params, pytest.approx(t.metrics)) for t in result.trials
    ]
    assert again.chosen == result.chosen
