"""Layered YAML configuration: ``conf/base.yaml`` -> environment file -> git-ignored local file.

``conf/base.yaml`` declares every key with its default. Later layers may only override keys that
exist there, with a value of a compatible type; anything else fails at start with the key's dotted
name, before any Spark work is done. The package carries ``base.yaml`` (``src/vidrec/base.yaml`` links
to ``conf/base.yaml``), so a wheel shipped to a cluster finds its defaults without the source tree.
"""

from __future__ import annotations

import copy
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: Folder that holds ``base.yaml``, ``local.yaml`` and ``cluster.yaml``.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
BASE_FILE = "base.yaml"
DEFAULT_ENV_FILE = "local.yaml"
#: Keys whose value is a free-form mapping (not checked key by key).
FREE_FORM_KEYS = frozenset({"spark.extra"})


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


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


def _read_yaml(path: Path) -> dict[str, Any]:
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


def _compatible(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def merge(
    base: Mapping[str, Any], override: Mapping[str, Any], source: str, prefix: str = ""
) -> dict[str, Any]:
    """Return ``base`` updated by ``override``, refusing unknown keys and wrong types.

    Parameters
    ----------
    base : Mapping
        The configuration so far (its keys are the allowed keys).
    override : Mapping
        The layer to apply.
    source : str
        Where ``override`` came from, for error messages.

    Raises
    ------
    ConfigError
        On a key absent from ``base`` or a value whose type does not match the default.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in out:
            known = ", ".join(sorted(out)) or "(none)"
            raise ConfigError(f"{source}: unknown config key '{dotted}' (known at this level: {known})")
        default = out[key]
        if dotted in FREE_FORM_KEYS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {type(value).__name__}")
            out[key] = {**default, **{str(k): str(v) for k, v in value.items()}}
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {type(value).__name__}")
            out[key] = merge(default, value, source, prefix=f"{dotted}.")
        elif not _compatible(default, value):
            raise ConfigError(
                f"{source}: '{dotted}' must be {type(default).__name__}, "
                f"got {type(value).__name__} ({value!r})"
            )
        else:
            out[key] = float(value) if isinstance(default, float) and value is not None else value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"als.rank=64"`` into ``{"als": {"rank": 64}}`` (the value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | list[str] | None = None,
) -> dict[str, Any]:
    """Load ``base.yaml``, then ``path`` (default ``conf/local.yaml``), then ``<path>.local.yaml``.

    Parameters
    ----------
    path : str or Path, optional
        Environment file. Relative paths are tried as given, then inside ``conf/``.
    overrides : mapping or list of ``key.path=value`` strings, optional
        Applied last (command-line ``--set``).

    Returns
    -------
    dict
        The merged configuration.
    """
    conf = read_defaults()
    env_path = Path(path) if path is not None else CONF_DIR / DEFAULT_ENV_FILE
    if not env_path.is_file() and not env_path.is_absolute() and (CONF_DIR / env_path).is_file():
        env_path = CONF_DIR / env_path
    conf = merge(conf, _read_yaml(env_path), str(env_path))
    local_path = env_path.with_name(env_path.stem + ".local.yaml")
    if local_path.is_file():
        conf = merge(conf, _read_yaml(local_path), str(local_path))
    if overrides:
        layers = [parse_override(o) for o in overrides] if isinstance(overrides, list) else [dict(overrides)]
        for layer in layers:
            conf = merge(conf, layer, "overrides")
    validate(conf)
    return conf


def validate(conf: Mapping[str, Any]) -> None:
    """Check value ranges that types alone do not catch.

    Raises
    ------
    ConfigError
        Naming the first offending key.
    """
    from vidrec.constants import ALGORITHMS

    checks: list[tuple[str, bool, str]] = [
        ("ingest.max_bad_fraction", 0.0 <= conf["ingest"]["max_bad_fraction"] <= 1.0, "in [0, 1]"),
        ("recommend.top_n", conf["recommend"]["top_n"] >= 1, ">= 1"),
        ("recommend.user_block_size", conf["recommend"]["user_block_size"] >= 1, ">= 1"),
        ("als.rank", conf["als"]["rank"] >= 1, ">= 1"),
        ("als.max_iter", conf["als"]["max_iter"] >= 1, ">= 1"),
        ("evaluation.k", conf["evaluation"]["k"] >= 1, ">= 1"),
        ("evaluation.test_fraction", 0.0 < conf["evaluation"]["test_fraction"] < 1.0, "in (0, 1)"),
        ("spark.shuffle_partitions", conf["spark"]["shuffle_partitions"] >= 1, ">= 1"),
        ("warehouse", bool(str(conf["warehouse"] or "").strip()), "a non-empty path"),
    ]
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"config key '{key}' must be {want}")
    for name in conf["models"]:
        if name not in ALGORITHMS:
            raise ConfigError(
                f"config key 'models' lists unknown algorithm '{name}' (known: {', '.join(ALGORITHMS)})"
            )
    # generator sections with range rules of their own (their messages name the key)
    from vidrec.content import content_conf
    from vidrec.hybrid import hybrid_conf
    from vidrec.itemknn import itemknn_conf

    for check in (content_conf, itemknn_conf, hybrid_conf):
        try:
            check(conf)
        except ValueError as exc:
            raise ConfigError(f"invalid configuration: {exc}") from exc
