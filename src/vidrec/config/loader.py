"""Layered YAML configuration: ``conf/base.yaml`` -> environment file -> git-ignored local file -> ``--set``.

``conf/base.yaml`` declares every key with its default. Later layers may only override keys that
exist there, with a value of a compatible type (:func:`vidrec.config.layers.merge`); the merged
result becomes the typed :class:`~vidrec.config.sections.Config`, whose sections check their value
ranges. Anything wrong fails at start with the key's dotted name, before any Spark work is done.
The package carries ``base.yaml`` (``src/vidrec/base.yaml`` links to ``conf/base.yaml``), so a wheel
shipped to a cluster finds its defaults without the source tree.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vidrec.config.errors import ConfigError
from vidrec.config.layers import merge, parse_override
from vidrec.config.sections import Config, from_mapping

#: Folder that holds ``base.yaml``, ``local.yaml`` and ``cluster.yaml`` in a source tree or release.
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
BASE_FILE = "base.yaml"
DEFAULT_ENV_FILE = "local.yaml"


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {source} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {source} must hold a mapping at top level, got {type(data).__name__}")
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path``; :class:`ConfigError` naming it when missing or invalid."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return _parse_yaml(path.read_text(encoding="utf-8"), str(path))


def read_defaults() -> dict[str, Any]:
    """``base.yaml`` as packaged with :mod:`vidrec` (in the source tree: ``conf/base.yaml`` itself).

    Read through :mod:`importlib.resources`, so it works from a wheel on ``sys.path`` (zip import)
    as well as from ``src/``.
    """
    resource = importlib.resources.files("vidrec") / BASE_FILE
    if not resource.is_file():
        raise ConfigError(f"config defaults not found: {resource} (the vidrec package must carry base.yaml)")
    return _parse_yaml(resource.read_text(encoding="utf-8"), str(resource))


def env_file_path(path: str | Path | None) -> Path:
    """The environment file :func:`load_config` reads for ``path`` (relative: as given, else in ``conf/``)."""
    env_path = Path(path) if path is not None else CONF_DIR / DEFAULT_ENV_FILE
    if not env_path.is_file() and not env_path.is_absolute() and (CONF_DIR / env_path).is_file():
        env_path = CONF_DIR / env_path
    return env_path


def build(data: Mapping[str, Any]) -> Config:
    """The typed configuration of merged YAML data (every key of ``base.yaml`` present)."""
    return from_mapping(Config, data)


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | list[str] | None = None,
) -> Config:
    """Load ``base.yaml``, then ``path`` (default ``conf/local.yaml``), then ``<path>.local.yaml``.

    Parameters
    ----------
    path : str or Path, optional
        Environment file. Relative paths are tried as given, then inside ``conf/``.
    overrides : mapping or list of ``key.path=value`` strings, optional
        Applied last (command-line ``--set``).

    Returns
    -------
    Config
        The merged, typed configuration.

    Raises
    ------
    ConfigError
        Naming the file or key at fault.
    """
    data = read_defaults()
    env_path = env_file_path(path)
    data = merge(data, read_yaml(env_path), str(env_path))
    local_path = env_path.with_name(env_path.stem + ".local.yaml")
    if local_path.is_file():
        data = merge(data, read_yaml(local_path), str(local_path))
    if overrides:
        layers = [parse_override(o) for o in overrides] if isinstance(overrides, list) else [dict(overrides)]
        for layer in layers:
            data = merge(data, layer, "overrides")
    return build(data)
