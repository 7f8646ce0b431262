"""Configuration: layered YAML (:mod:`.loader`, :mod:`.layers`) read into typed sections (:mod:`.sections`);
relative paths resolved from the release home (:mod:`.paths`).

``conf/base.yaml`` is the one source of defaults; :func:`load_config` returns a frozen
:class:`Config` whose sections (``conf.als``, ``conf.hybrid``, ``conf.deep.launch``...) are typed
dataclasses that check their ranges when built.
"""

from __future__ import annotations

from vidrec.config.errors import ConfigError
from vidrec.config.layers import parse_override
from vidrec.config.loader import DEFAULT_ENV_FILE, env_file_path, env_layer, load_config, read_defaults
from vidrec.config.paths import find_home
from vidrec.config.sections import Config, override

__all__ = [
    "DEFAULT_ENV_FILE",
    "Config",
    "ConfigError",
    "env_file_path",
    "env_layer",
    "find_home",
    "load_config",
    "override",
    "parse_override",
    "read_defaults",
]
