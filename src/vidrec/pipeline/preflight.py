"""Checks a job makes at start, before Spark starts and before anything is written.

A nightly that fails after an hour because a path was mistyped wastes the night; these checks turn
such mistakes into an immediate :class:`vidrec.config.ConfigError` that names the flag or key:

- ``--raw`` (local): the folder exists and holds at least one ``events*``, ``items*`` or ``users*``
  input (an empty *file* is a valid empty day; no input at all is a wrong path);
- ``warehouse``, ``spark.checkpoint_dir``, ``deep.launch.shard_root``, ``deep.launch.artifact_root``
  (local): a folder, or creatable under a writable folder; nothing is created here;
- ``--stages``: known stage names;
- ``deep.launch.shard_root``/``artifact_root`` (when a deep model runs): not an object store;
- GPU requests on a local master (:func:`check_schedulable`, called by
  :func:`vidrec.pipeline.session.build_spark` just before the session starts): tasks that ask for a
  GPU never start there, and Spark would wait forever without a word;
- ``privacy.pseudonymize`` (a run that ingests): its key is given, by environment variable or file;
- ``warehouse`` (any URI, once Spark is up: :func:`check_warehouse_reachable`): its file system
  answers.

Paths with a scheme (``s3a://``, ``abfss://``...) are checked only by
:func:`check_warehouse_reachable`, which needs the session's Hadoop configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vidrec import constants as C
from vidrec.config import Config, ConfigError, scheduling

#: Conf keys that name local folders the pipeline writes into (``None``/empty: derived default).
WRITABLE_KEYS = (
    ("warehouse",),
    ("spark", "checkpoint_dir"),
    ("deep", "launch", "shard_root"),
    ("deep", "launch", "artifact_root"),
)


def _is_uri(path: str) -> bool:
    return "://" in path


def _strip_file_scheme(path: str) -> str:
    return path[len("file:") :] if path.startswith("file:") else path


def check_writable_dir(key: str, path: str) -> None:
    """Raise when local ``path`` is not a folder we could write into (without creating anything).

    Raises
    ------
    ConfigError
        Naming ``key`` when ``path`` is a file, or its nearest existing ancestor is not a writable
        folder.
    """
    if _is_uri(path) and not path.startswith("file:"):
        return
    p = Path(_strip_file_scheme(path)).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"'{key}': {p} exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"'{key}': folder {p} is not writable")
        return
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"'{key}': cannot create {p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"'{key}': cannot create {p}: {parent} is not writable")


def check_raw_dir(raw_dir: str | None, flag: str = "--raw") -> None:
    """Raise unless local ``raw_dir`` is a folder holding at least one raw input.

    Raises
    ------
    ConfigError
        Naming ``flag`` and the path: missing, not a folder, no ``events*``/``items*``/``users*``
        input, or an input whose format is unknown.
    """
    from vidrec.data import raw as rawio

    if raw_dir is None or not str(raw_dir).strip():
        raise ConfigError(f"{flag} is required (the folder of raw events*/items*/users* files)")
    if _is_uri(raw_dir) and not raw_dir.startswith("file:"):
        return
    path = Path(_strip_file_scheme(raw_dir))
    if not path.exists():
        raise ConfigError(f"{flag}: input folder {path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{flag}: {path} is not a folder")
    try:
        sources = rawio.discover(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if not sources:
        raise ConfigError(
            f"{flag}: {path} holds no input: want files or folders named events*, items* or users* "
            f"({', '.join(sorted(rawio.FORMATS))}); an empty events file is a valid empty day"
        )


def check_stages(stages: Sequence[str] | None, known: Sequence[str]) -> None:
    """Raise when ``stages`` names a stage that does not exist."""
    unknown = [s for s in stages or () if s not in known]
    if unknown:
        raise ConfigError(f"--stages: unknown stage(s) {', '.join(unknown)} (stages: {', '.join(known)})")


def check_schedulable(master: str, settings: Mapping[str, str]) -> None:
    """Refuse tasks that ask for a resource (a GPU) on a local master, which offers none.

    Parameters
    ----------
    master : str
        The master the session will get (``local[2]``, ``yarn``, ``spark://...``).
    settings : mapping
        The Spark settings it will get (``spark-submit --conf`` and ``spark.extra``).

    Raises
    ------
    ConfigError
        Naming the setting, the master and the configuration layer to use instead.
    """
    if scheduling.local_task_slots(master) is None:
        return  # a cluster: the first-job watchdog (vidrec.pipeline.session) covers it
    requests = scheduling.task_resource_requests(settings)
    if requests:
        key, value = next(iter(requests.items()))
        name = scheduling.resource_name(key)
        raise ConfigError(
            f"'{key}: {value}' (spark.extra or spark-submit --conf) asks every task for a {name}, and the "
            f"local master {master} offers none: the first Spark job would wait forever; "
            f"{scheduling.CPU_LAYER_ADVICE}"
        )


def _get(conf: Config, keys: tuple[str, ...]) -> Any:
    node: Any = conf
    for k in keys:
        node = getattr(node, k, None)
    return node


def check_run(
    conf: Config,
    raw_dirs: Iterable[str | None] = (),
    stages: Sequence[str] | None = None,
    known_stages: Sequence[str] = (),
) -> None:
    """Everything a run can check before Spark starts (see the module docstring).

    Parameters
    ----------
    conf : Config
        The loaded configuration.
    raw_dirs : iterable of str
        The raw folders the run will read (one per date for a backfill with ``{run_date}``); empty
        when no stage reads raw input (then no pseudonymisation key is needed either).
    stages, known_stages : sequence of str
        The stages asked for, and the stages that exist.

    Raises
    ------
    ConfigError
        The first problem, naming the key or flag.
    """
    if stages is not None:
        check_stages(stages, known_stages)
    for keys in WRITABLE_KEYS:
        value = _get(conf, keys)
        if value:
            check_writable_dir(".".join(keys), str(value))
    check_deep_roots(conf)
    raws = list(raw_dirs)
    for raw in raws:
        check_raw_dir(raw)
    if raws:
        check_privacy_key(conf)


def check_privacy_key(conf: Config) -> None:
    """Raise when ``privacy.pseudonymize`` is on and its key cannot be read (:mod:`vidrec.data.privacy`)."""
    from vidrec.data import privacy

    privacy.load_key(conf.privacy)


def check_deep_roots(conf: Config) -> None:
    """Refuse object-store folders for the deep models' shards and artifacts: the training processes
    read and write them with plain file I/O (a shared POSIX mount on a cluster).

    Raises
    ------
    ConfigError
        Naming ``deep.launch.shard_root`` or ``artifact_root`` (their default follows the warehouse).
    """
    from vidrec.models.deep.params import MODEL_NAMES

    if not set(conf.models) & set(MODEL_NAMES):
        return
    wh = str(conf.warehouse).rstrip("/")
    launch = conf.deep.launch
    for key, value, default in (
        ("shard_root", launch.shard_root, f"{wh}/features"),
        ("artifact_root", launch.artifact_root, f"{wh}/{C.MODELS}"),
    ):
        root = value or default
        if _is_uri(root) and not root.startswith("file:"):
            given = "" if value else f" (null: under the warehouse {wh})"
            raise ConfigError(
                f"'deep.launch.{key}': {root}{given} is not a local path, and the deep models' training "
                "processes read and write it with file I/O: set deep.launch.shard_root and artifact_root "
                "to a shared POSIX mount on every node (NFS, Lustre, a FUSE-mounted bucket)"
            )


def check_warehouse_reachable(spark: Any, warehouse: str) -> None:
    """Ask the warehouse's file system (through the session's Hadoop configuration) whether it answers.

    Raises
    ------
    ConfigError
        Naming ``warehouse`` when the file system cannot be reached (unknown scheme, missing
        credentials, no such bucket...) or the path is a file.
    """
    try:
        jvm_path = spark._jvm.org.apache.hadoop.fs.Path(str(warehouse))
        fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
        if fs.exists(jvm_path) and not fs.getFileStatus(jvm_path).isDirectory():
            raise ConfigError(f"'warehouse': {warehouse} exists and is not a folder")
        parent = jvm_path.getParent()
        if parent is not None:
            fs.exists(parent)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"'warehouse': cannot reach {warehouse}: {java_error(exc)}") from exc


def java_error(exc: BaseException) -> str:
    """The line of a py4j error that names the Java exception (what helps an operator)."""
    text = str(exc).strip().splitlines()
    return next((line for line in text if "Exception" in line), text[0] if text else repr(exc)).strip()
