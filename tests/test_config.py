"""Configuration layering and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from vidrec.config import Config, ConfigError, load_config, parse_override


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


class _Recorder:
    """A stand-in for ``SparkSession.Builder`` that keeps the last value of each setting it is given."""

    def __init__(self) -> None:
        self.settings: dict[str, str] = {}

    def appName(self, name: str) -> _Recorder:  # noqa: N802 (the builder's own name)
        return self.config("spark.app.name", name)

    def master(self, master: str) -> _Recorder:
        return self.config("spark.master", master)

    def config(self, key: str, value: str) -> _Recorder:
        self.settings[key] = value
        return self


def _settings(conf: Config) -> dict[str, str]:
    """The Spark settings :func:`vidrec.pipeline.session.configure_builder` gives a session for ``conf``."""
    from vidrec.pipeline.session import configure_builder

    recorder = _Recorder()
    configure_builder(cast(Any, recorder), conf)
    return recorder.settings


def test_sessions_keep_a_nights_generated_code_compiled(spark: Any) -> None:
    from vidrec.pipeline.session import CODEGEN_CACHE_ENTRIES

    key = "spark.sql.codegen.cache.maxEntries"
    assert spark.conf.get(key) == CODEGEN_CACHE_ENTRIES  # the shared test session: built the same way
    assert int(CODEGEN_CACHE_ENTRIES) > 100  # Spark's default, which a night's ~2,000 classes overflow
    assert _settings(load_config(None, ["spark.jars_dir=''"]))[key] == CODEGEN_CACHE_ENTRIES
    # spark.extra has the last word, as for every setting
    tuned = load_config(None, ["spark.jars_dir=''", f'spark.extra={{"{key}": "500"}}'])
    assert _settings(tuned)[key] == "500"
