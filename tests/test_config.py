"""Configuration layering and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidrec.config import ConfigError, load_config, parse_override


def test_defaults_load() -> None:
    conf = load_config()
    assert conf.recommend.top_n == 50
    assert conf.spark.master == "local[2]"


def test_env_file_and_local_layer(tmp_path: Path) -> None:
    env = tmp_path / "prod.yaml"
    env.write_text("als:\n  rank: 64\n")
    (tmp_path / "prod.local.yaml").write_text("als:\n  alpha: 5\n")
    conf = load_config(env)
    assert (conf.als.rank, conf.als.alpha) == (64, 5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("als:\n  rnak: 3\n", "unknown config key 'als.rnak'"),
        ("als:\n  rank: sixty\n", "'als.rank' must be int"),
        ("als: 3\n", "'als' must be a mapping"),
        ("ingest:\n  max_bad_fraction: 2\n", "ingest.max_bad_fraction must be in [0, 1]"),
        ("models: [als, bogus]\n", "unknown algorithm 'bogus'"),
        ("deep:\n  gru:\n    readout: first\n", "deep.gru.readout must be one of"),
        ("hybrid:\n  new_title_share: 1.5\n", "hybrid.new_title_share must be in [0, 1]"),
        ("- a\n", "must hold a mapping"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert message in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides() -> None:
    assert parse_override("als.rank=64") == {"als": {"rank": 64}}
    conf = load_config(overrides=["als.rank=64", "recommend.exclude_played=true"])
    assert conf.als.rank == 64 and conf.recommend.exclude_played is True
