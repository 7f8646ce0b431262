"""The one error a bad configuration raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file, override or path is invalid; the message names the key or file."""
