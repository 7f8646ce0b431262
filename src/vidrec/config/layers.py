"""Merging configuration layers: each may only override keys the layer below declares, with a value
of a compatible type; anything else fails naming the key's dotted path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from vidrec.config.errors import ConfigError

#: Keys whose value is a free-form mapping (not checked key by key).
FREE_FORM_KEYS = frozenset({"spark.extra"})


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
