"""The typed configuration: base.yaml is the one source of defaults, bad values fail at load."""

from __future__ import annotations

import dataclasses

import pytest

from vidrec.config import ConfigError, load_config, read_defaults
from vidrec.config.loader import build
from vidrec.config.sections import Config


def test_base_yaml_and_the_typed_sections_declare_the_same_keys() -> None:
    # every key of base.yaml is a typed field and every field a key of base.yaml: building base.yaml
    # alone and writing it back gives base.yaml (a field without a key, or a key without a field, fails)
    defaults = read_defaults()
    assert build(defaults).to_dict() == defaults
    assert not any(f.default is not dataclasses.MISSING for f in dataclasses.fields(Config))
    conf = load_config()
    assert set(conf.hybrid.weights) | {"hybrid"} == set(conf.hybrid.cold_weights) | {"hybrid"}


def test_a_missing_or_unknown_key_fails() -> None:
    defaults = read_defaults()
    del defaults["als"]["rank"]
    with pytest.raises(ConfigError, match=r"config lacks key\(s\) \['rank'\] in 'als'"):
        build(defaults)
    defaults = read_defaults()
    defaults["als"]["bogus"] = 1
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['bogus'\] in 'als'"):
        build(defaults)


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
