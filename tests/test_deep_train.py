"""The training loop in one process (a DDP job of world size 1): checkpoints, resume, guards, params."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from vidrec.config import load_config, read_defaults
from vidrec.models.deep import schema as S
from vidrec.models.deep import train
from vidrec.models.deep.params import model_params

N_USERS, N_ITEMS = 30, 20


def write_pairs(folder: Path, rows: int, groups: int, seed: int) -> int:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, rows).astype(np.int32)
    items = rng.integers(0, N_ITEMS, rows).astype(np.int32)
    labels = ((users + items) % 3 == 0).astype(np.float32)
    for g, idx in enumerate(np.array_split(np.arange(rows), groups)):
        table = pa.table({S.COL_USER_IDX: users[idx], S.COL_ITEM_IDX: items[idx], S.COL_LABEL: labels[idx]})
        pq.write_table(table, folder / f"part-{g:05d}.parquet")
    return rows


@pytest.fixture()
def data(tmp_path: Path) -> dict[str, str]:
    write_pairs(tmp_path / "train", 600, 3, seed=0)
    write_pairs(tmp_path / "val", 100, 2, seed=1)
    return {"train": str(tmp_path / "train"), "val": str(tmp_path / "val")}


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)


def spec_for(data: dict[str, str], artifact_dir: Path, max_epochs: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": "ncf",
        "model_config": {
            "n_users": N_USERS,
            "n_items": N_ITEMS,
            "embedding_dim": 4,
            "mlp_dim": 4,
            "mlp_layers": [8],
            "dropout": 0.1,
        },
        "train_path": data["train"],
        "val_path": data["val"],
        "artifact_dir": str(artifact_dir),
        "batch_size": 64,
        "max_epochs": max_epochs,
        "lr": 0.01,
        "patience": 10,
        "expected_train_rows": 600,
        "expected_val_rows": 100,
        "num_threads": 1,
        **extra,
    }


def weights(artifact_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(artifact_dir / train.MODEL_FILE, weights_only=False)["state_dict"]


def test_a_crashed_run_resumes_at_the_next_epoch_and_matches_an_uninterrupted_run(
    data: dict[str, str], tmp_path: Path
) -> None:
    straight = train.train_worker(spec_for(data, tmp_path / "straight", 3))
    assert straight["epochs_run"] == 3 and straight["start_epoch"] == 0

    first = train.train_worker(spec_for(data, tmp_path / "resumed", 2, keep_checkpoints=2))  # then it "dies"
    assert first["epochs_done"] == 2
    assert [p.name for p in train.checkpoint_files(str(tmp_path / "resumed" / "checkpoints"))] == [
        "epoch-0001.pt",
        "epoch-0002.pt",
    ]
    again = train.train_worker(spec_for(data, tmp_path / "resumed", 3, keep_checkpoints=2))
    assert again["start_epoch"] == 2 and again["epochs_run"] == 1 and again["epochs_done"] == 3
    assert again["resumed_from"].endswith("epoch-0002.pt")
    assert [h["epoch"] for h in again["history"]] == [1, 2, 3]
    assert [h["train_loss"] for h in again["history"]] == pytest.approx(
        [h["train_loss"] for h in straight["history"]]
    )
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic: same seeds, same data order


def test_result_metrics_and_saved_model(data: dict[str, str], tmp_path: Path) -> None:
    result = train.train_worker(spec_for(data, tmp_path / "art", 2, keep_checkpoints=1))
    assert result["world_size"] == 1 and result["device"] == "cpu"
    assert result["rows_per_s_per_process"] > 0 and len(result["rows_per_s_by_rank"]) == 1
    assert result["best_epoch"] in (1, 2) and np.isfinite(result["best_val_loss"])
    assert all(h["rows"] == 600 for h in result["history"])
    payload = torch.load(tmp_path / "art" / train.MODEL_FILE, weights_only=False)
    assert payload["model"] == "ncf" and payload["config"]["n_items"] == N_ITEMS
    assert (tmp_path / "art" / train.METRICS_FILE).is_file()
    assert (tmp_path / "art" / "logs" / "rank-0.log").read_text().count("epoch 2/2") == 1
    assert len(train.checkpoint_files(str(tmp_path / "art" / "checkpoints"))) == 1


def test_early_stopping_is_remembered_by_the_checkpoint(data: dict[str, str], tmp_path: Path) -> None:
    # patience 0: stop after the first epoch that does not improve by min_delta (here: any)
    first = train.train_worker(spec_for(data, tmp_path / "art", 5, patience=1, min_delta=1e9))
    assert first["stopped_early"] and first["epochs_done"] == 2 and first["best_epoch"] == 1
    again = train.train_worker(spec_for(data, tmp_path / "art", 5, patience=1, min_delta=1e9))
    assert again["epochs_run"] == 0 and again["epochs_done"] == 2


def test_an_epoch_that_loses_rows_fails_loudly(data: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="read 600 training rows, expected 601"):
        train.train_worker(spec_for(data, tmp_path / "art", 1, expected_train_rows=601))


def test_spec_validation_names_the_key(data: dict[str, str], tmp_path: Path) -> None:
    spec = spec_for(data, tmp_path / "art", 1)
    del spec["train_path"]
    with pytest.raises(ValueError, match="train_path"):
        train.complete_spec(spec)
    with pytest.raises(ValueError, match="'max_epochs' must be >= 1"):
        train.complete_spec(spec_for(data, tmp_path / "art", 0))


def test_cli_runs_a_spec_file(
    data: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_for(data, tmp_path / "ignored", 1)))
    assert (
        train.main(["--spec", str(spec_file), "--artifact-dir", str(tmp_path / "cli"), "--set", "lr=0.02"])
        == 0
    )
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("\n{\n") + 1 :])  # the result, after the log lines
    assert printed["epochs_done"] == 1 and "history" not in printed
    assert (tmp_path / "cli" / train.MODEL_FILE).is_file()


def test_model_params_layer_train_model_and_conf() -> None:
    defaults = read_defaults()["deep"]
    conf = load_config(
        overrides={"deep": {"train": {"seed": 7}, "ncf": {"lr": 0.5}, "launch": {"num_processes": 4}}}
    )
    p = model_params(conf.deep, "ncf")
    assert p["seed"] == 7 and p["lr"] == 0.5 and p["num_negatives"] == defaults["ncf"]["num_negatives"]
    assert p == {**defaults["train"], **defaults["ncf"], "seed": 7, "lr": 0.5}
    assert model_params(load_config().deep, "ncf")["lr"] == defaults["ncf"]["lr"]
    assert conf.deep.launch.num_processes == 4 and load_config().deep.launch.use_gpu is False
    with pytest.raises(ValueError, match="deep.ncf.nope"):
        load_config(overrides={"deep": {"ncf": {"nope": 1}}})
    with pytest.raises(ValueError, match="unknown deep model"):
        model_params(conf.deep, "als")


def test_gru_has_its_own_patience_over_the_shared_one() -> None:
    defaults = read_defaults()["deep"]
    conf = load_config(overrides={"deep": {"train": {"patience": 1}}})
    assert (
        model_params(conf.deep, "gru")["patience"]
        == defaults["gru"]["patience"]
        > defaults["train"]["patience"]
    )
    assert model_params(conf.deep, "sequence")["patience"] == 1  # the others keep the shared value
    assert (
        model_params(load_config(overrides={"deep": {"gru": {"patience": 3}}}).deep, "gru")["patience"] == 3
    )
    with pytest.raises(ValueError, match="deep.gru.patience"):
        load_config(overrides={"deep": {"gru": {"patience": 0}}})


def test_text_fine_tunes_fewer_epochs_than_the_others() -> None:
    from vidrec.models.deep.launch import warm_params

    deep = load_config().deep
    text, ncf = warm_params(model_params(deep, "text")), warm_params(model_params(deep, "ncf"))
    assert text["max_epochs"] == read_defaults()["deep"]["text"]["warm_epochs"] < ncf["max_epochs"]
    with pytest.raises(ValueError, match="deep.text.warm_epochs"):
        load_config(overrides={"deep": {"text": {"warm_epochs": 0}}})


@pytest.mark.parametrize("name", ["sequence", "gru"])
def test_readout_auto_follows_what_the_protocol_predicts(name: str) -> None:
    assert read_defaults()["deep"][name]["readout"] == "auto"
    deep = load_config().deep
    assert model_params(deep, name)["readout"] == "last"  # the nightly predicts the coming days
    assert model_params(deep, name, "chrono")["readout"] == "last"
    assert model_params(deep, name, "time")["readout"] == "last"
    assert model_params(deep, name, "random")["readout"] == "mean"  # withheld from the whole history
    fixed = load_config(overrides={"deep": {name: {"readout": "mix"}}}).deep
    assert {model_params(fixed, name, p)["readout"] for p in ("time", "chrono", "random")} == {"mix"}


@pytest.mark.slow
def test_torchrun_starts_the_same_training_without_spark(data: dict[str, str], tmp_path: Path) -> None:
    # what a GPU box without Java runs: torchrun -m vidrec.models.deep.train --spec spec.json
    import json
    import subprocess
    import sys

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_for(data, tmp_path / "art", 2)))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vidrec.models.deep.train",
        "--spec",
        str(spec_file),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = json.loads((tmp_path / "art" / train.METRICS_FILE).read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_done"] == 2
    assert all(h["rows"] == 600 for h in metrics["history"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_uses_nccl_and_autocast(data: dict[str, str], tmp_path: Path) -> None:
    result = train.train_worker(spec_for(data, tmp_path / "art", 2, use_gpu=True, amp=True))
    assert result["device"].startswith("cuda") and result["epochs_done"] == 2
    assert np.isfinite(result["best_val_loss"])


def test_a_checkpoint_of_other_data_is_not_resumed_and_is_deleted(
    data: dict[str, str], tmp_path: Path
) -> None:
    train.train_worker(spec_for(data, tmp_path / "art", 3, data_digest="night-1"))
    again = train.train_worker(spec_for(data, tmp_path / "art", 1, data_digest="night-2"))
    assert again["start_epoch"] == 0 and again["resumed_from"] is None and again["epochs_run"] == 1
    # night 1's epoch-0003 would sort after night 2's epoch-0001: it is gone, night 2's is kept
    (kept,) = train.checkpoint_files(str(tmp_path / "art" / "checkpoints"))
    assert kept.name == "epoch-0001.pt"
    digest = torch.load(kept, weights_only=False)["digest"]
    spec = train.complete_spec(spec_for(data, tmp_path, 1))
    assert digest == train.config_digest(
        "ncf", spec["model_config"], "night-2", train.training_settings(spec)
    )


def test_a_run_with_other_training_settings_trains_afresh(data: dict[str, str], tmp_path: Path) -> None:
    """A rerun with another learning rate does not reuse the finished run; more epochs resume it."""
    first = train.train_worker(spec_for(data, tmp_path / "art", 2, data_digest="d"))
    assert first["epochs_run"] == 2
    other_lr = train.train_worker(spec_for(data, tmp_path / "art", 2, data_digest="d", lr=0.02))
    assert other_lr["resumed_from"] is None and other_lr["start_epoch"] == 0 and other_lr["epochs_run"] == 2
    longer = train.train_worker(spec_for(data, tmp_path / "art", 3, data_digest="d", lr=0.02))
    assert longer["resumed_from"] is not None and longer["start_epoch"] == 2 and longer["epochs_run"] == 1
    base = train.complete_spec(spec_for(data, tmp_path, 1))
    digest = train.config_digest("ncf", base["model_config"], "d", train.training_settings(base))
    for key, value in [("batch_size", 32), ("seed", 7), ("weight_decay", 0.1), ("warm_from", "/night/1")]:
        changed = train.training_settings({**base, key: value})
        assert train.config_digest("ncf", base["model_config"], "d", changed) != digest, key
    for key, value in [("max_epochs", 9), ("patience", 1), ("num_threads", 2), ("loader", "petastorm")]:
        same = train.training_settings({**base, key: value})
        assert train.config_digest("ncf", base["model_config"], "d", same) == digest, key


def test_checkpoints_are_kept_for_deep_keep_checkpoints_nights(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for day in ("2026-03-08", "2026-03-09", "2026-03-10"):
        for sub in ("ncf", "eval/ncf", "tune/random/ncf"):
            folder = root / day / sub / "checkpoints"
            folder.mkdir(parents=True)
            (folder / "epoch-0001.pt").write_bytes(b"x")
            (root / day / sub / train.MODEL_FILE).write_bytes(b"m")
    assert train.cleanup_checkpoint_nights(str(root), "2026-03-10", 2) == [
        str(root / "2026-03-08" / sub / "checkpoints") for sub in ("eval/ncf", "ncf", "tune/random/ncf")
    ]
    # a rerun of an earlier date keeps its own night, and with 1 night only that one
    train.cleanup_checkpoint_nights(str(root), "2026-03-09", 1)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("epoch-*.pt"))
    assert left == [
        f"2026-03-09/{sub}/checkpoints/epoch-0001.pt" for sub in ("eval/ncf", "ncf", "tune/random/ncf")
    ]
    assert len(list(root.rglob(train.MODEL_FILE))) == 9  # models stay
    assert train.cleanup_checkpoint_nights(str(tmp_path / "none"), "2026-03-10", 1) == []


def test_warm_start_copies_known_rows_and_grows_tables_for_new_ids(tmp_path: Path) -> None:
    from vidrec.models.deep.networks import build_model

    small = {"n_users": 5, "n_items": 4, "embedding_dim": 3, "mlp_dim": 3, "mlp_layers": [4], "dropout": 0.0}
    old = build_model("ncf", small)
    torch.save({"model": "ncf", "config": small, "state_dict": old.state_dict()}, tmp_path / "model.pt")
    new = build_model("ncf", {**small, "n_users": 7, "n_items": 6})  # two new users and items since
    fresh_before = {k: v.clone() for k, v in new.state_dict().items()}
    copied, grown, fresh = train.warm_start(new, str(tmp_path / "model.pt"))
    assert grown > 0 and copied > 0 and fresh == 0
    for name, param in new.named_parameters():
        prev = old.state_dict()[name]
        if prev.shape == param.shape:
            assert torch.equal(param, prev), name
        else:  # the known ids' rows are last night's, the new ids' rows keep their fresh values
            assert torch.equal(param[: prev.shape[0]], prev), name
            assert torch.equal(param[prev.shape[0] :], fresh_before[name][prev.shape[0] :]), name


def test_a_warm_start_trains_from_the_saved_model(data: dict[str, str], tmp_path: Path) -> None:
    first = train.train_worker(spec_for(data, tmp_path / "night1", 2))
    warm = train.train_worker(spec_for(data, tmp_path / "night2", 1, warm_from=first["model_path"]))
    cold = train.train_worker(spec_for(data, tmp_path / "cold", 1))
    assert warm["warm_from"] == first["model_path"] and cold["warm_from"] is None
    # one more epoch from last night's weights is further along than one epoch from scratch
    assert warm["history"][0]["train_loss"] < cold["history"][0]["train_loss"]
    assert "warm start from" in (tmp_path / "night2" / "logs" / "rank-0.log").read_text()


def test_a_warm_start_keeps_last_nights_weights_unless_an_epoch_beats_them(
    data: dict[str, str], tmp_path: Path
) -> None:
    first = train.train_worker(spec_for(data, tmp_path / "night1", 2))
    # steps too small to move the validation loss by min_delta: no epoch beats the start
    warm = train.train_worker(
        spec_for(data, tmp_path / "night2", 2, warm_from=first["model_path"], lr=1e-9, min_delta=1e-3)
    )
    assert warm["best_epoch"] == 0 and warm["epochs_run"] == 2
    saved, start = weights(tmp_path / "night2"), weights(tmp_path / "night1")
    assert all(torch.equal(saved[k], start[k]) for k in start)
    assert "val loss" in (tmp_path / "night2" / "logs" / "rank-0.log").read_text()


def test_warm_params_fine_tune_at_a_share_of_the_learning_rate() -> None:
    from vidrec.models.deep.launch import warm_params

    params = model_params(load_config().deep, "ncf")
    given = {**params, "max_epochs": 30, "warm_epochs": 3, "warm_lr_scale": 0.5}
    warm = warm_params(given)
    assert warm["max_epochs"] == 3 and warm["lr"] == pytest.approx(params["lr"] * 0.5)
    assert given["max_epochs"] == 30 and given["lr"] == params["lr"]  # the input is not changed
    with pytest.raises(ValueError, match="warm_lr_scale"):
        load_config(overrides=["deep.train.warm_lr_scale=0"])


def test_the_checkpoint_digest_ignores_scoring_only_settings() -> None:
    """A checkpoint trained with one readout is resumed for another; a change of architecture is not."""
    conf = {"max_len": 50, "hidden_dim": 64, "readout": "last"}
    digest = train.config_digest("gru", conf, "d")
    assert train.config_digest("gru", {**conf, "readout": "mix"}, "d") == digest
    assert train.config_digest("gru", {**conf, "hidden_dim": 32}, "d") != digest
    assert train.config_digest("sequence", conf, "d") != digest


def test_a_readout_change_still_warm_starts_from_last_nights_model(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from vidrec.models.deep.launch import previous_model

    conf = load_config()
    params = model_params(conf.deep, "gru")  # readout last (the nightly's)
    saved = tmp_path / "models" / "2026-03-09" / "gru" / "model.pt"
    saved.parent.mkdir(parents=True)
    torch.save({"config": {**params, "readout": "mean"}}, saved)
    ctx = SimpleNamespace(
        conf=conf, work_dir=str(tmp_path / "models" / "2026-03-10"), run_date="2026-03-10", warm_root=None
    )
    assert previous_model(ctx, "gru", params) == str(saved)  # type: ignore[arg-type]
    other = {**params, "hidden_dim": params["hidden_dim"] * 2}
    assert previous_model(ctx, "gru", other) is None  # type: ignore[arg-type]


def test_the_evaluation_night_starts_from_its_own_evaluation_fit_only(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from vidrec.models.deep.launch import previous_model
    from vidrec.pipeline.stages import warm_plan

    conf = load_config()
    params = model_params(conf.deep, "gru")
    earlier = tmp_path / "models" / "2026-03-09" / "gru" / "model.pt"
    earlier.parent.mkdir(parents=True)
    torch.save({"config": params}, earlier)
    run_date = dt.date(2026, 3, 10)
    warm, root, _ = warm_plan(conf, str(tmp_path), run_date, evaluation_night=True)
    assert warm and root == str(tmp_path / "models" / "2026-03-10" / "eval")
    ctx = SimpleNamespace(
        conf=conf, work_dir=str(tmp_path / "models" / "2026-03-10"), run_date="2026-03-10", warm_root=root
    )
    # no evaluation fit of tonight: from scratch, never last week's chain
    assert previous_model(ctx, "gru", params) is None  # type: ignore[arg-type]
    tonight = tmp_path / "models" / "2026-03-10" / "eval" / "gru" / "model.pt"
    tonight.parent.mkdir(parents=True)
    torch.save({"config": params}, tonight)
    assert previous_model(ctx, "gru", params) == str(tonight)  # type: ignore[arg-type]
    # the switches: off, an evaluation night fits from scratch; other nights follow warm_start
    off = dataclasses.replace(
        conf, deep=dataclasses.replace(conf.deep, train=dataclasses.replace(
            conf.deep.train, warm_from_evaluation=False, warm_start=False
        ))
    )  # fmt: skip
    assert warm_plan(off, str(tmp_path), run_date, evaluation_night=True)[:2] == (False, None)
    assert warm_plan(off, str(tmp_path), run_date, evaluation_night=False)[:2] == (False, None)
    assert warm_plan(conf, str(tmp_path), run_date, evaluation_night=False)[:2] == (True, None)
