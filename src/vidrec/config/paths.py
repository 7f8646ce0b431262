"""The release home: the one folder every relative path in the configuration is resolved from.

A release (an unpacked deployment, or the source tree itself) is a folder holding ``conf/`` and
``jobs/``, with the wheel in ``dist/``, Delta's jars in ``.cache/jars`` and the native BLAS in
``.cache/native``. The home is, in this order:

1. ``VIDREC_HOME`` when set (it must hold ``conf/``; anything else fails, naming the absolute path);
2. the release of the running job: the folder above the script (``<home>/jobs/nightly.py``,
   ``<home>/pipelines/backfill.py``; ``spark-submit`` gives the script's absolute path);
3. the source tree the package is imported from (``<home>/src/vidrec``: an editable install, or
   ``PYTHONPATH=src``).

Never the current folder, and never the folder of an installed package (``site-packages``, or a wheel
under ``dist/`` on ``--py-files``). Relative paths in the configuration (:data:`PATH_KEYS`) and a
relative ``--conf`` are read from the home; paths given as command-line flags (``--raw``,
``--warehouse``) are the caller's and keep meaning the current folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from vidrec.config.errors import ConfigError

HOME_ENV = "VIDREC_HOME"
#: Keys of ``base.yaml`` that name local files or folders (``None``/``""`` keep their meaning).
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("warehouse",),
    ("spark", "jars_dir"),
    ("spark", "checkpoint_dir"),
    ("als", "native_blas"),
    ("deep", "launch", "shard_root"),
    ("deep", "launch", "artifact_root"),
    ("tracking", "uri"),
)
#: ``tracking.uri: null`` is a file store in this folder of the home.
TRACKING_STORE = "mlruns"
#: Tracking URIs MLflow knows without a ``scheme://`` (not file stores).
TRACKING_NAMES = ("databricks", "databricks-uc", "uc")
#: Where the source tree keeps this module: ``<home>/src/vidrec/config/paths.py``.
_SOURCE_HOME = Path(__file__).resolve().parents[3]


def is_home(folder: Path) -> bool:
    """True for a folder holding ``conf/`` and ``jobs/``."""
    return (folder / "conf").is_dir() and (folder / "jobs").is_dir()


def is_source_tree(home: Path | None) -> bool:
    """True when ``home`` is a source tree (``make setup`` applies there), not an unpacked release."""
    return home is not None and (home / "Makefile").is_file() and (home / "src" / "vidrec").is_dir()


def find_home(env: Mapping[str, str] | None = None, argv0: str | None = None) -> Path | None:
    """The release home (see the module docstring), or ``None`` when there is none.

    Raises
    ------
    ConfigError
        When ``VIDREC_HOME`` is set to a folder without ``conf/``.
    """
    env = os.environ if env is None else env
    given = env.get(HOME_ENV, "").strip()
    if given:
        home = Path(given).expanduser().absolute()
        if not (home / "conf").is_dir():
            what = "does not exist" if not home.exists() else "holds no conf/ folder"
            raise ConfigError(
                f"{HOME_ENV}={given}: {home} {what}; it must be the release home, the folder holding "
                "conf/ and jobs/ (the unpacked release, or the source tree)"
            )
        return home
    script = sys.argv[0] if argv0 is None else argv0
    if script and script not in ("-c", "-m", "-"):
        candidate = Path(script).expanduser().absolute().parent.parent
        if is_home(candidate):
            return candidate
    if is_home(_SOURCE_HOME) and (_SOURCE_HOME / "src" / "vidrec").is_dir():
        return _SOURCE_HOME
    return None


def no_home_message(what: str) -> str:
    return (
        f"{what} is relative, and there is no release home to read it from: set {HOME_ENV} to the "
        "folder holding conf/ and jobs/, or give an absolute path"
    )


def is_uri(value: str) -> bool:
    """True for ``scheme://...`` (``s3a://``, ``http://``, ``file:///``) and ``file:`` paths."""
    return "://" in value or value.startswith("file:")


def resolve(value: str, home: Path | None, key: str) -> str:
    """``value`` as an absolute path: relative ones from ``home``; URIs and absolute paths unchanged.

    Raises
    ------
    ConfigError
        Naming ``key`` when ``value`` is relative and there is no home.
    """
    if is_uri(value):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    if home is None:
        raise ConfigError(no_home_message(f"'{key}' ({value})"))
    return str(home / path)


def resolve_paths(data: MutableMapping[str, Any], home: Path | None) -> None:
    """Make every :data:`PATH_KEYS` value of merged configuration ``data`` absolute, in place.

    ``None`` and ``""`` keep their meaning (a derived default, or "none"), except ``tracking.uri``:
    ``None`` becomes the file store ``<home>/mlruns`` (kept ``None`` without a home).
    """
    for keys in PATH_KEYS:
        node: Any = data
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, Mapping) else None
        if not isinstance(node, MutableMapping) or keys[-1] not in node:
            continue
        value = node[keys[-1]]
        dotted = ".".join(keys)
        if dotted == "tracking.uri" and (value is None or str(value).split(":")[0] in TRACKING_NAMES):
            if value is None and home is not None:
                node[keys[-1]] = str(home / TRACKING_STORE)
        elif isinstance(value, str) and value.strip():
            node[keys[-1]] = resolve(value.strip(), home, dotted)


def setup_advice(home: Path | None, files: str) -> str:
    """How to get missing ``files`` (e.g. "Delta's jars"): ``make setup`` where the home is a source
    tree, else copy them into the folder named in the same message (an unpacked release)."""
    if is_source_tree(home):
        return f"run `make setup` in {home} to fetch {files}"
    return f"copy {files} into it (a source tree's `make setup` fetches them)"
