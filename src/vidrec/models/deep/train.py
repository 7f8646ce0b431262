"""The one training loop of every deep model: DDP over Parquet shards (TorchDistributor or torchrun).

:func:`train_worker` takes a plain dictionary (the *spec*: paths and hyper-parameters, JSON-able,
no Spark) and runs in every process of the job. It reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (set by ``torchrun``, which TorchDistributor uses too), joins the process group
(gloo on CPU, NCCL on GPU), wraps the model in ``DistributedDataParallel`` and, per epoch:

1. reseeds (same seed, epoch and rank: same run, so a resumed run repeats an uninterrupted one);
2. streams this rank's shard through :func:`vidrec.models.deep.loader.iter_batches`; at every step the
   ranks all-reduce whether any of them still has a batch, and a rank whose shard is exhausted
   steps with an empty batch (zero loss, zero gradient), so uneven or empty shards never leave a
   peer waiting and every rank applies the same averaged gradients;
3. checks that the ranks together read exactly the rows the shard writer wrote (Petastorm's
   thread pool has returned silently empty epochs; an epoch that loses rows fails loudly);
4. evaluates the validation shard on every rank and all-reduces the loss (early stopping);
5. saves a checkpoint (rank 0; model, optimizer, scaler, early-stopping state).

On start it resumes from the newest checkpoint in ``checkpoint_dir`` if one exists. Rank 0 writes
the best weights (``state_dict`` + config) to ``<artifact_dir>/model.pt`` and returns the metrics.
Gradients are clipped; on CUDA, autocast (bf16, else fp16 with a GradScaler) when ``amp``.

Spec keys (see :func:`vidrec.models.deep.launch.build_spec`): ``model``, ``model_config``, ``train_path``,
``val_path`` (or null), ``items_path`` (or null), ``artifact_dir``, ``checkpoint_dir``,
``batch_size``, ``max_epochs``, ``lr``, ``weight_decay``, ``grad_clip``, ``patience``,
``min_delta``, ``seed``, ``amp``, ``use_gpu``, ``num_threads``, ``shuffle_buffer``, ``loader``,
``keep_checkpoints``, ``expected_train_rows``, ``expected_val_rows``, ``diagnostics``,
``data_digest`` (a checkpoint is resumed only for the same model configuration, training settings and
data digest: :func:`config_digest`).

Command line (a GPU box without Spark)::

    torchrun --standalone --nproc_per_node=4 -m vidrec.models.deep.train --spec spec.json --use-gpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import random
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from vidrec.models.deep import loader
from vidrec.models.deep.checkpoints import (  # also read as train.config_digest...
    SCORING_ONLY,
    TRAINING_KEYS,
    _atomic_save,
    _cpu_state,
    checkpoint_files,
    cleanup_checkpoint_nights,
    config_digest,
    param_checksum,
    training_settings,
)
from vidrec.models.deep.networks import RecModel, build_model
from vidrec.models.deep.schema import (  # the artifact file names, also read as train.MODEL_FILE...
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    DIAGNOSTICS_DIR,
    METRICS_FILE,
    MODEL_FILE,
    SPEC_FILE,
)

__all__ = [
    "CHECKPOINT_PREFIX",
    "CHECKPOINTS_DIR",
    "DIAGNOSTICS_DIR",
    "METRICS_FILE",
    "MODEL_FILE",
    "SCORING_ONLY",
    "SPEC_FILE",
    "TRAINING_KEYS",
    "checkpoint_files",
    "cleanup_checkpoint_nights",
    "config_digest",
    "train_worker",
    "training_settings",
]

REQUIRED_KEYS = ("model", "model_config", "train_path", "artifact_dir", "batch_size", "max_epochs", "lr")
DEFAULT_SPEC: dict[str, Any] = {
    "val_path": None,
    "items_path": None,
    "checkpoint_dir": None,
    "weight_decay": 0.0,
    "grad_clip": 5.0,
    "patience": 2,
    "min_delta": 0.0,
    "seed": 42,
    "amp": True,
    "use_gpu": False,
    "num_threads": 0,
    "shuffle_buffer": 0,
    "loader": loader.DEFAULT_READER,
    "keep_checkpoints": 1,
    "expected_train_rows": None,
    "expected_val_rows": None,
    "diagnostics": False,
    "diagnostics_key": None,
    "eval_batch_size": None,
    "data_digest": None,
    "warm_from": None,
}


def complete_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with defaults filled in; checks required keys and ranges.

    Raises
    ------
    ValueError
        Naming the missing or invalid key.
    """
    missing = [k for k in REQUIRED_KEYS if spec.get(k) is None]
    if missing:
        raise ValueError(f"train spec lacks required key(s) {missing}")
    out = {**DEFAULT_SPEC, **dict(spec)}
    for key in ("batch_size", "max_epochs"):
        if int(out[key]) < 1:
            raise ValueError(f"train spec: '{key}' must be >= 1, got {out[key]}")
    if out["checkpoint_dir"] is None:
        out["checkpoint_dir"] = str(Path(out["artifact_dir"]) / CHECKPOINTS_DIR)
    return out


# --- process set-up ---------------------------------------------------------------------------


def dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the environment (a lone process is rank 0 of 1)."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _logger(rank: int, artifact_dir: str) -> logging.Logger:
    log = logging.getLogger(f"vidrec.models.deep.train.rank{rank}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter(f"%(asctime)s [deep rank {rank}] %(levelname)s: %(message)s")
    stream = logging.StreamHandler(sys.stdout)  # TorchDistributor relays the processes' stdout
    stream.setFormatter(fmt)
    # the ranks log the same epochs: the job's log gets rank 0's lines and any rank's warnings; every
    # rank's full log stays in <artifacts>/logs/rank-<n>.log
    stream.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    log.addHandler(stream)
    try:
        logs = Path(artifact_dir) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(logs / f"rank-{rank}.log")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    except OSError as exc:  # a read-only or remote artifact folder: stdout only
        log.warning("cannot write logs under %s: %s", artifact_dir, exc)
    return log


def _device(use_gpu: bool, local_rank: int) -> torch.device:
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("use_gpu=True but torch sees no CUDA device")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _num_threads(requested: int, world: int) -> int:
    if requested and requested > 0:
        return int(requested)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return max(1, (os.cpu_count() or 1) // max(local_world, 1))


def seed_everything(seed: int, epoch: int | None = None, rank: int = 0) -> None:
    """Seed torch, NumPy and ``random``: ``seed`` alone for initialisation, plus epoch and rank per epoch."""
    value = int(seed) if epoch is None else int(seed) * 1_000_003 + (epoch + 1) * 7_919 + rank * 104_729
    value %= 2**31 - 1
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


# --- the loop ---------------------------------------------------------------------------------


def warm_start(model: torch.nn.Module, path: str) -> tuple[int, int, int]:
    """Load the parameters of the model saved at ``path`` into ``model``, growing tables for new ids.

    Ids are stable across nights (a known id keeps its index), so row ``i`` of an embedding table
    means the same user or item in both models: a parameter of the same shape is copied; one where
    a single dimension grew (users or items added since: the rows of an embedding table, the columns
    of Mult-VAE's first layer) gets the old slice copied into its start, the new part keeps its
    fresh initialisation; anything else stays fresh. Buffers (the catalog's
    side tables) are not copied: they are attached from tonight's data. Returns the counts
    (copied, grown, fresh).
    """
    payload = torch.load(path, map_location="cpu", weights_only=False)
    old = payload["state_dict"]
    copied = grown = fresh = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            prev = old.get(name)
            if prev is None or prev.dim() != param.dim():
                fresh += 1
            elif prev.shape == param.shape:
                param.copy_(prev.to(param.dtype))
                copied += 1
            else:
                differ = [d for d in range(param.dim()) if prev.shape[d] != param.shape[d]]
                if len(differ) == 1 and prev.shape[differ[0]] < param.shape[differ[0]]:
                    param.narrow(differ[0], 0, prev.shape[differ[0]]).copy_(prev.to(param.dtype))
                    grown += 1
                else:
                    fresh += 1
    return copied, grown, fresh


class _Trainer:
    def __init__(
        self, spec: dict[str, Any], rank: int, world: int, device: torch.device, log: logging.Logger
    ):
        self.spec, self.rank, self.world, self.device, self.log = spec, rank, world, device, log
        self.use_amp = bool(spec["amp"]) and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.seen: dict[int, list[list[int]]] = {}

    def _autocast(self) -> Any:
        if not self.use_amp:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _to_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _all_reduce(self, values: Sequence[float]) -> list[float]:
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def run(self) -> dict[str, Any]:
        spec, log = self.spec, self.log
        started = time.perf_counter()
        seed_everything(spec["seed"])
        model = build_model(spec["model"], spec["model_config"])
        if model.side_columns:
            if not spec["items_path"]:
                raise ValueError(
                    f"model '{spec['model']}' needs an items side table: spec 'items_path' is empty"
                )
            model.attach_side_table(loader.read_table(spec["items_path"], model.side_columns))
        model.to(self.device)
        self.columns = list(model.train_columns)
        n_params = sum(p.numel() for p in model.parameters())
        log.info(
            "model %s: %d parameters, config %s",
            spec["model"],
            n_params,
            json.dumps(model.config, default=str),
        )
        opt = torch.optim.AdamW(
            model.parameters(), lr=float(spec["lr"]), weight_decay=float(spec["weight_decay"])
        )
        scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        state: dict[str, Any] = {
            "epochs_done": 0,
            "best_val": math.inf,
            "best_epoch": 0,
            "bad_epochs": 0,
            "global_step": 0,
            "stopped": False,
            "history": [],
        }
        best_state: dict[str, torch.Tensor] | None = None
        digest = config_digest(spec["model"], model.config, spec["data_digest"], training_settings(spec))
        resumed_from = None
        stale: list[Path] = []
        ckpts = checkpoint_files(spec["checkpoint_dir"])
        if ckpts:
            ck = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
            if ck.get("digest") != digest:
                log.warning(
                    "checkpoint %s is of another model configuration or data: starting from scratch "
                    "and deleting the %d checkpoint(s) of that run",
                    ckpts[-1],
                    len(ckpts),
                )
                stale = ckpts
            else:
                model.load_state_dict(ck["model_state"])
                opt.load_state_dict(ck["optimizer"])
                scaler.load_state_dict(ck["scaler"])
                state.update(ck["state"])
                best_state = ck["best_state"]
                resumed_from = str(ckpts[-1])
                log.info(
                    "resuming from %s: %d epoch(s) done, best val %.5f at epoch %d",
                    ckpts[-1],
                    state["epochs_done"],
                    state["best_val"],
                    state["best_epoch"],
                )
        dist.barrier()  # every rank has read the checkpoint before any is deleted
        if self.rank == 0:
            for old in stale:  # never resumable: this run's own checkpoints replace them
                old.unlink(missing_ok=True)
        warm_from = None
        if resumed_from is None and spec["warm_from"]:
            warm_from = str(spec["warm_from"])
            copied, grown, fresh = warm_start(model, warm_from)
            # last night's weights (grown for new ids) are the model to beat: an epoch of fine-tuning
            # replaces them only when it improves their validation loss on tonight's data
            start_val = self._validate(model, math.inf)
            if math.isfinite(start_val):
                state.update(best_val=start_val, best_epoch=0)
                best_state = _cpu_state(model)
            log.info(
                "warm start from %s: %d parameter(s) copied, %d grown for new ids, %d fresh; "
                "val loss %.5f before fine-tuning",
                warm_from,
                copied,
                grown,
                fresh,
                start_val,
            )
        start_epoch = state["epochs_done"]
        ddp = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None
        )
        template = loader.peek_batch(spec["train_path"], self.columns)
        empty = loader.empty_like(template)
        last_rps: list[float] = []
        for epoch in range(start_epoch, int(spec["max_epochs"])):
            if state["stopped"]:
                log.info("early stopping was reached before (epoch %d): no more epochs", state["epochs_done"])
                break
            train = self._train_epoch(ddp, model, opt, scaler, epoch, empty, state)
            val_loss = self._validate(model, train["loss"])
            improved = val_loss < state["best_val"] - float(spec["min_delta"])
            if improved:
                state.update(best_val=val_loss, best_epoch=epoch + 1, bad_epochs=0)
                best_state = _cpu_state(model)
            else:
                state["bad_epochs"] += 1
            state["epochs_done"] = epoch + 1
            state["stopped"] = state["bad_epochs"] >= int(spec["patience"])
            last_rps = train["rows_per_s_by_rank"]
            record = {
                "epoch": epoch + 1,
                "train_loss": train["loss"],
                "val_loss": val_loss,
                "rows": train["rows"],
                "steps": train["steps"],
                "seconds": train["seconds"],
                "rows_per_s_per_process": train["rows_per_s"],
                "rows_per_s_by_rank": train["rows_per_s_by_rank"],
            }
            state["history"].append(record)
            log.info(
                "epoch %d/%d: train loss %.5f, val loss %.5f%s, %d rows in %d steps, %.1f s, "
                "%.0f rows/s per process (this rank %.0f rows/s, %d rows)",
                epoch + 1,
                spec["max_epochs"],
                train["loss"],
                val_loss,
                " (best)" if improved else f" (no improvement for {state['bad_epochs']})",
                train["rows"],
                train["steps"],
                train["seconds"],
                train["rows_per_s"],
                train["local_rows_per_s"],
                train["local_rows"],
            )
            if self.rank == 0:
                self._save_checkpoint(epoch, model, opt, scaler, state, best_state, digest)
            dist.barrier()
            if state["stopped"]:
                log.info("early stopping after epoch %d (best epoch %d)", epoch + 1, state["best_epoch"])
                break
        final_state = best_state if best_state is not None else _cpu_state(model)
        seconds = time.perf_counter() - started
        trained = [h for h in state["history"] if h["epoch"] > start_epoch]
        result = {
            "model": spec["model"],
            "world_size": self.world,
            "device": str(self.device),
            "start_epoch": start_epoch,
            "epochs_run": len(trained),
            "epochs_done": state["epochs_done"],
            "best_epoch": state["best_epoch"],
            "best_val_loss": state["best_val"],
            "stopped_early": state["stopped"],
            "resumed_from": resumed_from,
            "warm_from": warm_from,
            "rows_per_s_per_process": (
                float(np.mean([h["rows_per_s_per_process"] for h in trained])) if trained else 0.0
            ),
            "rows_per_s_by_rank": last_rps,
            "train_seconds": float(sum(h["seconds"] for h in trained)),
            "seconds": seconds,
            "history": state["history"],
            "model_path": str(Path(spec["artifact_dir"]) / MODEL_FILE),
        }
        if self.rank == 0:
            payload = {
                "model": spec["model"],
                "config": model.config,
                "state_dict": final_state,
                "metrics": result,
            }
            _atomic_save(payload, Path(spec["artifact_dir"]) / MODEL_FILE)
            (Path(spec["artifact_dir"]) / METRICS_FILE).write_text(json.dumps(result, indent=2, default=str))
            log.info(
                "saved %s (best epoch %d) in %.1f s total", result["model_path"], state["best_epoch"], seconds
            )
        if spec["diagnostics"]:
            self._write_diagnostics(model)
        dist.barrier()
        return result

    def _key_rows(self, batch: Mapping[str, torch.Tensor]) -> list[list[int]]:
        key = self.spec["diagnostics_key"] or self.columns[:1]
        cols = [batch[k].reshape(batch[k].shape[0], -1)[:, 0].long() for k in key]
        return torch.stack(cols, dim=1).tolist() if cols else []

    def _train_epoch(
        self,
        ddp: DistributedDataParallel,
        model: RecModel,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        epoch: int,
        empty: dict[str, torch.Tensor],
        state: dict[str, Any],
    ) -> dict[str, Any]:
        spec = self.spec
        seed_everything(spec["seed"], epoch, self.rank)
        ddp.train()
        batches: Iterator[dict[str, torch.Tensor]] = loader.iter_batches(
            spec["train_path"],
            self.rank,
            self.world,
            int(spec["batch_size"]),
            epoch,
            self.columns,
            seed=int(spec["seed"]),
            shuffle=True,
            shuffle_buffer=int(spec["shuffle_buffer"]),
            reader=str(spec["loader"]),
        )
        flag = torch.zeros(1, device=self.device)
        rows = steps = idle_steps = 0
        loss_sum = 0.0
        seen: list[list[int]] = []
        clip = float(spec["grad_clip"] or 0.0)
        t0 = time.perf_counter()
        try:
            while True:
                batch = next(batches, None)
                flag.fill_(0.0 if batch is None else 1.0)
                dist.all_reduce(flag)  # how many ranks still have data
                if flag.item() == 0:
                    break
                if batch is None:
                    idle_steps += 1
                elif spec["diagnostics"]:
                    seen.extend(self._key_rows(batch))
                b = self._to_device(batch if batch is not None else empty)
                n = model.rows(b)
                model.on_train_step(state["global_step"])
                opt.zero_grad(set_to_none=True)
                with self._autocast():
                    loss = ddp(b)
                scaler.scale(loss).backward()
                if clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                scaler.step(opt)
                scaler.update()
                state["global_step"] += 1
                steps += 1
                rows += n
                loss_sum += float(loss.detach()) * n
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        seconds = time.perf_counter() - t0
        total_rows, total_loss, total_steps = self._all_reduce([rows, loss_sum, steps])
        by_rank = [0.0] * self.world
        by_rank[self.rank] = rows / seconds if seconds > 0 else 0.0
        by_rank = self._all_reduce(by_rank)
        expected = spec["expected_train_rows"]
        if total_rows == 0 or (expected is not None and int(total_rows) != int(expected)):
            raise RuntimeError(
                f"epoch {epoch + 1}: the ranks read {int(total_rows)} training rows, expected "
                f"{expected if expected is not None else '> 0'} (a loader returned a short or empty epoch)"
            )
        if idle_steps:
            self.log.info(
                "epoch %d: this rank's shard ran out %d step(s) before its peers'", epoch + 1, idle_steps
            )
        if spec["diagnostics"]:
            self.seen[epoch + 1] = seen
        return {
            "loss": total_loss / total_rows,
            "rows": int(total_rows),
            "steps": int(total_steps / self.world),
            "seconds": seconds,
            "local_rows": rows,
            "local_rows_per_s": by_rank[self.rank],
            "rows_per_s": float(np.mean(by_rank)),
            "rows_per_s_by_rank": by_rank,
        }

    @torch.no_grad()
    def _validate(self, model: RecModel, train_loss: float) -> float:
        spec = self.spec
        if not spec["val_path"]:
            return train_loss
        model.eval()
        loss_sum, rows = 0.0, 0
        batches = loader.iter_batches(
            spec["val_path"],
            self.rank,
            self.world,
            int(spec["eval_batch_size"] or spec["batch_size"]),
            0,
            self.columns,
            shuffle=False,
            reader=str(spec["loader"]),
        )
        for batch in batches:
            b = self._to_device(batch)
            n = model.rows(b)
            with self._autocast():
                loss_sum += float(model(b)) * n
            rows += n
        model.train()
        total_loss, total_rows = self._all_reduce([loss_sum, rows])
        expected = spec["expected_val_rows"]
        if expected is not None and int(total_rows) != int(expected):
            raise RuntimeError(f"validation: the ranks read {int(total_rows)} rows, expected {expected}")
        return total_loss / total_rows if total_rows else train_loss

    def _save_checkpoint(
        self,
        epoch: int,
        model: RecModel,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        state: dict[str, Any],
        best_state: dict[str, torch.Tensor] | None,
        digest: str,
    ) -> None:
        path = Path(self.spec["checkpoint_dir"]) / f"{CHECKPOINT_PREFIX}{epoch + 1:04d}.pt"
        _atomic_save(
            {
                "digest": digest,
                "model": self.spec["model"],
                "model_state": _cpu_state(model),
                "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(),
                "state": state,
                "best_state": best_state,
            },
            path,
        )
        keep = max(int(self.spec["keep_checkpoints"]), 1)
        for old in checkpoint_files(self.spec["checkpoint_dir"])[:-keep]:
            old.unlink(missing_ok=True)
        self.log.info("checkpoint %s", path)

    def _write_diagnostics(self, model: RecModel) -> None:
        folder = Path(self.spec["artifact_dir"]) / DIAGNOSTICS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": self.rank,
            "world_size": self.world,
            "param_checksum": param_checksum(model),
            "param_sum": float(sum(p.detach().double().sum() for p in model.parameters())),
            "seen": {str(k): v for k, v in self.seen.items()},
        }
        (folder / f"rank-{self.rank}.json").write_text(json.dumps(record))


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one model data-parallel in this process (one of ``WORLD_SIZE``); see the module docstring.

    Picklable (a top-level function) and Spark-free: TorchDistributor and ``torchrun`` start it
    the same way.

    Parameters
    ----------
    spec : dict
        Paths and hyper-parameters (:func:`complete_spec` lists the keys).

    Returns
    -------
    dict
        ``model, world_size, device, start_epoch, epochs_run, epochs_done, best_epoch,
        best_val_loss, stopped_early, resumed_from, rows_per_s_per_process, rows_per_s_by_rank,
        train_seconds, seconds, history, model_path``.

    Raises
    ------
    ValueError
        On an invalid spec.
    RuntimeError
        When an epoch's rows across ranks differ from what the shard writer wrote, or a GPU was
        asked for and none is visible.
    """
    spec = complete_spec(spec)
    rank, world, local_rank = dist_env()
    log = _logger(rank, spec["artifact_dir"])
    threads = _num_threads(int(spec["num_threads"] or 0), world)
    torch.set_num_threads(threads)  # TorchDistributor sets OMP_NUM_THREADS=1
    own_group = not dist.is_initialized()
    try:
        device = _device(bool(spec["use_gpu"]), local_rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        log.info(
            "start: model %s, rank %d/%d (local %d), device %s, backend %s, %d torch thread(s), pid %d, "
            "train %s, val %s",
            spec["model"],
            rank,
            world,
            local_rank,
            device,
            backend,
            threads,
            os.getpid(),
            spec["train_path"],
            spec["val_path"],
        )
        if own_group:
            if world == 1:
                os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
                os.environ.setdefault("MASTER_PORT", str(_free_port()))
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=dt.timedelta(minutes=30))
        return _Trainer(spec, rank, world, device, log).run()
    except BaseException:
        log.exception("train_worker failed on rank %d", rank)
        raise
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()
        for h in list(log.handlers):
            h.flush()


def train_many(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Train several models one after the other in this process, in one process group.

    What TorchDistributor runs for a night's deep models: the processes start, import torch and
    join the group once instead of once a model. Each model is :func:`train_worker` of its spec
    (same checks, checkpoints and metrics); returns their metrics in order.
    """
    if not specs:
        return []
    first = complete_spec(specs[0])
    rank, world, local_rank = dist_env()
    device = _device(bool(first["use_gpu"]), local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    own_group = not dist.is_initialized()
    if own_group:
        if world == 1:
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=dt.timedelta(minutes=30))
    try:
        return [train_worker(spec) for spec in specs]
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=JSON, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vidrec.models.deep.train --spec spec.json`` (under ``torchrun`` for several processes)."""
    parser = argparse.ArgumentParser(prog="python -m vidrec.models.deep.train", description=main.__doc__)
    parser.add_argument(
        "--spec", required=True, help="spec JSON written by vidrec.models.deep.launch (spec.json)"
    )
    parser.add_argument("--use-gpu", action="store_true", help="train on CUDA (NCCL, AMP)")
    parser.add_argument("--artifact-dir", help="override the spec's artifact_dir (checkpoints go under it)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a spec key")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    spec.update(_parse_set(args.set))
    if args.use_gpu:
        spec["use_gpu"] = True
    if args.artifact_dir:
        spec["artifact_dir"] = args.artifact_dir
        spec["checkpoint_dir"] = str(Path(args.artifact_dir) / "checkpoints")
    result = train_worker(spec)
    if dist_env()[0] == 0:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
