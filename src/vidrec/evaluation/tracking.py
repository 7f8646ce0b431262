"""Experiment tracking with MLflow: one parent run per tuning job, one nested run per trial.

What a trial logs: its parameters, its validation metrics, the per-epoch history of a deep model
(``train_loss``, ``val_loss``, ``rows_per_s_per_process`` with the epoch as the step) and the files
of its model (a deep model's ``model.pt`` and ``metrics.json``, the saved ALS model). The parent run
logs the job's settings, the chosen values and the tuned configuration file.

Where it goes: ``tracking.uri`` from the configuration; ``null`` is a local file store in ``mlruns/``
of the release home (git-ignored; :func:`vidrec.config.load_config` fills it in), the usual choice on
one machine; a cluster sets a tracking server (``http://…``) or ``databricks``. MLflow 3.13+ refuses
a file store unless ``MLFLOW_ALLOW_FILE_STORE=true``: :func:`tracking_uri` sets that variable (only
when it is unset and only for a file store), because the file store is what a single machine without
a database needs.

MLflow is imported lazily (it takes seconds), so modules that only define trials stay cheap to import.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vidrec.config.paths import TRACKING_NAMES
from vidrec.config.sections import TrackingConf

log = logging.getLogger(__name__)

#: Folder of the default local file store (relative to the working directory).
DEFAULT_STORE = "mlruns"
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
#: MLflow limits a parameter value's length; longer values are cut with this marker.
MAX_PARAM_CHARS = 6000


def is_file_store(uri: str) -> bool:
    """True for a local path or a ``file:`` URI (MLflow's file store); ``databricks`` is not one."""
    if uri.split(":")[0] in TRACKING_NAMES:
        return False
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and uri[1:2] == ":")  # C:\\ on Windows


def tracking_uri(uri: str | None) -> str:
    """The URI to log to: ``uri``, or ``file:<cwd>/mlruns`` when it is ``None`` (a configuration built
    without :func:`vidrec.config.load_config`, which fills in ``<release home>/mlruns``).

    For a file store the folder is made absolute (MLflow resolves relative paths against the
    process's working directory, which differs between a driver and ``spark-submit``) and
    ``MLFLOW_ALLOW_FILE_STORE`` is set to ``true`` unless already set.
    """
    if uri is None or not str(uri).strip():
        uri = DEFAULT_STORE
    uri = str(uri)
    if is_file_store(uri):
        path = Path(uri[len("file:") :] if uri.startswith("file:") else uri)
        uri = path.expanduser().resolve().as_uri()
        os.environ.setdefault(ALLOW_FILE_STORE, "true")
    return uri


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``: nested parameters as MLflow parameter strings."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = _param_text(value)
    return out


def finite_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, finite entries of ``values`` as floats (MLflow refuses NaN and strings)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


class Tracker:
    """Logs to MLflow, or does nothing when tracking is disabled (``tracking.enabled: false``).

    Use :meth:`run` as a context manager for the parent run and again, inside it, for each nested
    trial run; the ``log_*`` methods write to the innermost active run.

    Parameters
    ----------
    tc : TrackingConf
        The ``tracking`` section.
    """

    def __init__(self, tc: TrackingConf) -> None:
        self.enabled = bool(tc.enabled)
        self.experiment = str(tc.experiment)
        self.uri = tracking_uri(tc.uri) if self.enabled else None
        self._mlflow: Any = None
        if self.enabled:
            import mlflow

            assert self.uri is not None, "set when tracking is enabled"
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_experiment(self.experiment)
            self._mlflow = mlflow
            log.info(
                "tracking: MLflow %s, experiment '%s' at %s", mlflow.__version__, self.experiment, self.uri
            )

    @contextmanager
    def run(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[str | None]:
        """Start a run (nested when one is active); yields its run id (``None`` when disabled)."""
        if not self.enabled:
            yield None
            return
        nested = self._mlflow.active_run() is not None
        with self._mlflow.start_run(run_name=name, nested=nested, tags=dict(tags or {})) as active:
            yield active.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) parameters, flattened to ``a.b`` names."""
        if self.enabled and params:
            self._mlflow.log_params(flat_params(params))

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log the finite numeric ``values`` (others are skipped)."""
        metrics = finite_metrics(values)
        if self.enabled and metrics:
            self._mlflow.log_metrics(metrics, step=step)

    def log_history(self, history: Sequence[Mapping[str, Any]], step_key: str = "epoch") -> None:
        """Log one metric set per record of ``history`` with ``record[step_key]`` as the step."""
        for record in history:
            step = int(record.get(step_key, 0))
            self.log_metrics({k: v for k, v in record.items() if k != step_key}, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a folder (a folder's files under ``artifact_path``); missing paths are skipped."""
        if not self.enabled:
            return
        p = Path(path)
        if p.is_dir():
            self._mlflow.log_artifacts(str(p), artifact_path=artifact_path)
        elif p.is_file():
            self._mlflow.log_artifact(str(p), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tag the active run."""
        if self.enabled and tags:
            self._mlflow.set_tags({k: str(v) for k, v in tags.items()})
