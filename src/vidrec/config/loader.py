"""Layered YAML configuration: ``conf/base.yaml`` -> environment file -> git-ignored local file -> ``--set``.

``conf/base.yaml`` declares every key with its default. Later layers may only override keys that
exist there, with a value of a compatible type (:func:`vidrec.config.layers.merge`); the merged
result becomes the typed :class:`~vidrec.config.sections.Config`, whose sections check their value
ranges. Anything wrong fails at start with the key's dotted name, before any Spark work is done.
The package carries ``base.yaml`` (``src/vidrec/base.yaml`` links to ``conf/base.yaml``), so a wheel
shipped to a cluster finds its defaults without the source tree.

An environment file may start from another one: ``extends: cluster-cpu.yaml`` (a path relative to
the extending file's folder) applies that file first, then this one (``conf/cluster.yaml`` is the GPU
layer over ``conf/cluster-cpu.yaml``). Relative paths in the configuration, and a relative ``--conf``,
are read from the release home (:mod:`vidrec.config.paths`), never from the current folder.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vidrec.config import paths
from vidrec.config.errors import ConfigError
from vidrec.config.layers import merge, parse_override
from vidrec.config.sections import Config, from_mapping

BASE_FILE = "base.yaml"
#: The environment file when ``--conf`` is not given: ``<release home>/conf/local.yaml``.
DEFAULT_ENV_FILE = "local.yaml"
#: The key of an environment file that names the file it builds on.
EXTENDS = "extends"


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


def env_file_path(path: str | Path | None, home: Path | None = None) -> Path:
    """The environment file :func:`load_config` reads for ``path``, as an absolute path.

    ``None``: ``<home>/conf/local.yaml``. Relative: ``<home>/<path>``, else ``<home>/conf/<path>``
    (``conf/cluster.yaml`` and ``cluster.yaml`` name the same file). ``home`` defaults to the
    release home (:func:`vidrec.config.paths.find_home`).

    Raises
    ------
    ConfigError
        When the file does not exist (naming the absolute path looked at), or ``path`` is relative
        and there is no release home.
    """
    given = Path(path).expanduser() if path is not None else None
    if given is not None and given.is_absolute():
        if not given.is_file():
            raise ConfigError(f"config file not found: {given}")
        return given
    home = paths.find_home() if home is None else home
    if home is None:
        raise ConfigError(paths.no_home_message(f"--conf {given or 'default (conf/local.yaml)'}"))
    tried = [home / given, home / "conf" / given] if given is not None else [home / "conf" / DEFAULT_ENV_FILE]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    also = f" (nor {tried[1]})" if len(tried) > 1 and tried[1] != tried[0] else ""
    raise ConfigError(
        f"config file not found: {tried[0]}{also}; a relative --conf is read from the release home {home}"
    )


def env_layers(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The environment file ``path`` and the files it ``extends``, the first one applied first.

    Raises
    ------
    ConfigError
        On a missing or invalid file, an ``extends`` that is not a file name, or a loop.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    current = path
    while True:
        data = read_yaml(current)
        chain.append((current, data))
        parent = data.pop(EXTENDS, None)
        if parent is None:
            break
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(f"{current}: '{EXTENDS}' must name an environment file, got {parent!r}")
        target = Path(parent).expanduser()
        target = target if target.is_absolute() else current.parent / target
        target = Path(os.path.normpath(target))
        if any(target == seen for seen, _ in chain):
            loop = " -> ".join(str(p) for p, _ in chain) + f" -> {target}"
            raise ConfigError(f"{current}: '{EXTENDS}: {parent}' makes a loop: {loop}")
        if not target.is_file():
            raise ConfigError(f"{current}: '{EXTENDS}: {parent}': config file not found: {target}")
        current = target
    return chain[::-1]


def env_layer(path: str | Path | None) -> dict[str, Any]:
    """The environment file of ``path`` with the files it ``extends`` merged in (no ``extends`` key left):
    one complete layer, as written (paths not resolved)."""
    out: dict[str, Any] = {}
    for _, data in env_layers(env_file_path(path)):
        out = _deep_merge(out, data)
    return out


def _deep_merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def build(data: Mapping[str, Any]) -> Config:
    """The typed configuration of merged YAML data (every key of ``base.yaml`` present)."""
    return from_mapping(Config, data)


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | list[str] | None = None,
) -> Config:
    """Load ``base.yaml``, then ``path`` (default ``conf/local.yaml``) after the files it ``extends``,
    then ``<path>.local.yaml``; relative paths in the result are made absolute from the release home.

    Parameters
    ----------
    path : str or Path, optional
        Environment file. Relative paths are read from the release home, then its ``conf/``.
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
    home = paths.find_home()
    env_path = env_file_path(path, home)
    for source, layer in env_layers(env_path):
        data = merge(data, layer, str(source))
    local_path = env_path.with_name(env_path.stem + ".local.yaml")
    if local_path.is_file():
        data = merge(data, read_yaml(local_path), str(local_path))
    if overrides:
        layers = [parse_override(o) for o in overrides] if isinstance(overrides, list) else [dict(overrides)]
        for layer in layers:
            data = merge(data, layer, "overrides")
    paths.resolve_paths(data, home)
    return build(data)
