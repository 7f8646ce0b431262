"""The generator sections of conf/base.yaml: defaults mirror the modules, bad values fail at load."""

from __future__ import annotations

import pytest

from vidrec import content, hybrid, itemknn
from vidrec.config import ConfigError, load_config


def test_base_yaml_mirrors_the_module_defaults() -> None:
    conf = load_config()
    assert conf["content"] == content.DEFAULTS
    assert conf["itemknn"] == itemknn.DEFAULTS
    # base.yaml names a weight for every generator (0: unused); the rest equals the module defaults
    assert set(conf["hybrid"]) == set(hybrid.DEFAULTS)
    for key, value in hybrid.DEFAULTS.items():
        if key not in ("weights", "cold_weights"):
            assert conf["hybrid"][key] == value, key
    assert set(conf["hybrid"]["weights"]) | {"hybrid"} == set(conf["hybrid"]["cold_weights"]) | {"hybrid"}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("hybrid.mmr_lambda=1.5", "hybrid.mmr_lambda"),
        ("hybrid.score_norm=zscore", "hybrid.score_norm"),
        ("hybrid.weights.als=-1", "hybrid.weights"),
        ("content.dim=0", "content.dim"),
        ("itemknn.neighbours=0", "itemknn.neighbours"),
        ("hybrid.weights.bogus=1", "hybrid.weights.bogus"),
    ],
)
def test_bad_generator_settings_fail_at_load(override: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert named in str(err.value)
