"""Typed configuration: one frozen dataclass per section of ``conf/base.yaml``.

``conf/base.yaml`` is the only source of defaults: no field here has a default value, so a key that
the YAML lacks, or a field the YAML does not declare, fails when the configuration is loaded
(:func:`from_mapping`; a test keeps the two trees equal). Each section checks its value ranges in
``__post_init__``, naming the dotted key, so a bad value fails at start, before Spark does anything.
Generators receive their typed section (``ctx.conf.als``), never a dictionary to merge.

Field names equal the YAML keys, except ``lambda`` (a Python keyword), which is ``lambda_``.
Lists are tuples (immutable), free-form mappings are plain dictionaries.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vidrec import constants as C
from vidrec.config.errors import ConfigError
from vidrec.config.layers import merge, parse_override


def _check(ok: bool, key: str, want: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {want}, got {value!r}")


def _unknown_algorithms(names: Any, key: str, allowed: tuple[str, ...] = C.ALGORITHMS) -> None:
    bad = [n for n in names if n not in allowed]
    if bad:
        listed = ", ".join(repr(b) for b in bad)
        raise ConfigError(f"{key} lists unknown algorithm {listed} (known: {', '.join(allowed)})")


@dataclass(frozen=True)
class SparkConf:
    master: str | None
    app_name: str
    jars_dir: str
    shuffle_partitions: int
    driver_memory: str
    checkpoint_dir: str | None
    schedule_timeout_s: int
    extra: dict[str, str]

    def __post_init__(self) -> None:
        _check(self.shuffle_partitions >= 1, "spark.shuffle_partitions", ">= 1", self.shuffle_partitions)
        _check(self.schedule_timeout_s >= 0, "spark.schedule_timeout_s", ">= 0", self.schedule_timeout_s)


@dataclass(frozen=True)
class IngestConf:
    max_bad_fraction: float
    future_tolerance_hours: int
    min_event_date: str
    max_watch_seconds: int
    max_line_bytes: int
    check_item_ids: bool

    def __post_init__(self) -> None:
        _check(
            0.0 <= self.max_bad_fraction <= 1.0, "ingest.max_bad_fraction", "in [0, 1]", self.max_bad_fraction
        )


@dataclass(frozen=True)
class MatrixConf:
    weights: dict[str, float]


@dataclass(frozen=True)
class RecommendConf:
    top_n: int
    exclude_played: bool
    user_block_size: int

    def __post_init__(self) -> None:
        _check(self.top_n >= 1, "recommend.top_n", ">= 1", self.top_n)
        _check(self.user_block_size >= 1, "recommend.user_block_size", ">= 1", self.user_block_size)


@dataclass(frozen=True)
class AlsConf:
    implicit: bool
    rank: int
    max_iter: int
    reg_param: float
    alpha: float
    seed: int
    checkpoint_interval: int
    num_blocks: int
    native_blas: str
    storage_level: str

    def __post_init__(self) -> None:
        _check(self.rank >= 1, "als.rank", ">= 1", self.rank)
        _check(self.max_iter >= 1, "als.max_iter", ">= 1", self.max_iter)
        _check(self.num_blocks >= 1, "als.num_blocks", ">= 1", self.num_blocks)


@dataclass(frozen=True)
class RatingConf:
    bias_reg_item: float
    bias_reg_user: float
    bias_iter: int
    rank: int
    max_iter: int
    reg_param: float
    seed: int

    def __post_init__(self) -> None:
        _check(self.bias_reg_item >= 0, "rating.bias_reg_item", ">= 0", self.bias_reg_item)
        _check(self.bias_reg_user >= 0, "rating.bias_reg_user", ">= 0", self.bias_reg_user)
        _check(self.bias_iter >= 1, "rating.bias_iter", ">= 1", self.bias_iter)
        _check(self.rank >= 0, "rating.rank", ">= 0", self.rank)
        _check(self.max_iter >= 1, "rating.max_iter", ">= 1", self.max_iter)
        _check(self.reg_param >= 0, "rating.reg_param", ">= 0", self.reg_param)


@dataclass(frozen=True)
class EaseConf:
    lambda_: float
    max_items: int
    device: str | None

    def __post_init__(self) -> None:
        _check(self.lambda_ > 0, "ease.lambda", "> 0", self.lambda_)
        _check(self.max_items >= 1, "ease.max_items", ">= 1", self.max_items)


@dataclass(frozen=True)
class ContentConf:
    dim: int
    field_weights: dict[str, float]
    year_bucket: int
    min_token_length: int
    embedding_weight: float
    half_life_days: float

    def __post_init__(self) -> None:
        _check(self.dim >= 1, "content.dim", ">= 1", self.dim)
        _check(self.year_bucket >= 1, "content.year_bucket", ">= 1", self.year_bucket)
        _check(self.half_life_days > 0, "content.half_life_days", "> 0", self.half_life_days)
        bad = {f"content.field_weights.{k}": v for k, v in self.field_weights.items() if float(v) < 0}
        if self.embedding_weight < 0:
            bad["content.embedding_weight"] = self.embedding_weight
        _check(not bad, "content weights", ">= 0", bad)


SIMILARITIES = ("cosine", "rp3beta")


@dataclass(frozen=True)
class ItemKnnConf:
    similarity: str
    neighbours: int
    max_items_per_user: int
    shrink: float
    min_co_users: int
    alpha: float
    beta: float
    blocked_max_pairs: int

    def __post_init__(self) -> None:
        _check(
            self.similarity in SIMILARITIES, "itemknn.similarity", f"one of {SIMILARITIES}", self.similarity
        )
        for key, low in (
            ("neighbours", 1),
            ("max_items_per_user", 1),
            ("min_co_users", 1),
            ("shrink", 0),
            ("beta", 0),
            ("blocked_max_pairs", 0),
        ):
            value = getattr(self, key)
            _check(float(value) >= low, f"itemknn.{key}", f">= {low}", value)
        _check(self.alpha > 0, "itemknn.alpha", "> 0", self.alpha)


@dataclass(frozen=True)
class SimilarItemsConf:
    top_n: int

    def __post_init__(self) -> None:
        _check(self.top_n >= 1, "similar_items.top_n", ">= 1", self.top_n)


SCORE_NORMS = ("rrf", "minmax")
#: Keys of ``hybrid.weights`` / ``cold_weights`` besides the generators: each user's best new titles.
HYBRID_EXTRA_COMPONENTS = ("new_items",)


@dataclass(frozen=True)
class HybridConf:
    weights: dict[str, float]
    cold_weights: dict[str, float]
    cold_start_max_events: int
    score_norm: str
    rrf_k: int
    pool_n: int
    mmr_lambda: float
    rerank_pool: int
    max_per_genre: int
    min_segment_users: int
    restricted_age_bands: tuple[str, ...]
    restricted_ratings: tuple[str, ...]
    new_release_years: int
    reason_history: int
    tune_weights: bool
    weight_grid: tuple[float, ...]
    rrf_k_grid: tuple[int, ...]
    validation_fraction: float
    tune_rounds: int
    new_item_max_users: int
    new_item_slots: int
    new_title_share: float
    new_title_rank: int

    def __post_init__(self) -> None:
        for key in ("weights", "cold_weights"):  # their names are base.yaml's (checked when merged)
            weights = getattr(self, key)
            negative = {k: v for k, v in weights.items() if float(v) < 0}
            _check(not negative, f"hybrid.{key}", ">= 0", negative)
        _check(self.score_norm in SCORE_NORMS, "hybrid.score_norm", f"one of {SCORE_NORMS}", self.score_norm)
        _check(0.0 <= self.mmr_lambda <= 1.0, "hybrid.mmr_lambda", "in [0, 1]", self.mmr_lambda)
        share = self.new_title_share
        _check(0.0 <= share <= 1.0, "hybrid.new_title_share", "in [0, 1]", share)
        for key in (
            "cold_start_max_events",
            "max_per_genre",
            "min_segment_users",
            "new_release_years",
            "rrf_k",
            "new_item_max_users",
        ):
            _check(getattr(self, key) >= 0, f"hybrid.{key}", ">= 0", getattr(self, key))
        for key in (
            "pool_n",
            "rerank_pool",
            "reason_history",
            "new_item_slots",
            "tune_rounds",
            "new_title_rank",
        ):
            _check(getattr(self, key) >= 1, f"hybrid.{key}", ">= 1", getattr(self, key))
        _check(
            0.0 < self.validation_fraction < 1.0,
            "hybrid.validation_fraction",
            "in (0, 1)",
            self.validation_fraction,
        )
        _check(
            bool(self.weight_grid) and min(self.weight_grid) >= 0,
            "hybrid.weight_grid",
            "non-empty and >= 0",
            self.weight_grid,
        )
        _check(
            bool(self.rrf_k_grid) and min(self.rrf_k_grid) >= 0,
            "hybrid.rrf_k_grid",
            "non-empty and >= 0",
            self.rrf_k_grid,
        )

    def components(self) -> list[str]:
        """Generators the hybrid needs: those with a positive warm or cold weight (sorted)."""
        names = {a for a, w in self.weights.items() if w > 0} | {
            a for a, w in self.cold_weights.items() if w > 0
        }
        return sorted(names - {C.ALGO_HYBRID, *HYBRID_EXTRA_COMPONENTS})


@dataclass(frozen=True)
class PopularityConf:
    window_days: int
    trending_days: int
    top_n: int

    def __post_init__(self) -> None:
        for key in ("window_days", "trending_days", "top_n"):
            _check(getattr(self, key) >= 1, f"popularity.{key}", ">= 1", getattr(self, key))


PROTOCOLS = ("time", "chrono", "random")


@dataclass(frozen=True)
class EvaluationConf:
    protocol: str
    k: int
    test_fraction: float
    seed: int
    min_train_events: int
    slices: bool
    every_days: int

    def __post_init__(self) -> None:
        _check(self.every_days >= 0, "evaluation.every_days", ">= 0", self.every_days)
        _check(self.protocol in PROTOCOLS, "evaluation.protocol", f"one of {PROTOCOLS}", self.protocol)
        _check(self.k >= 1, "evaluation.k", ">= 1", self.k)
        _check(0.0 < self.test_fraction < 1.0, "evaluation.test_fraction", "in (0, 1)", self.test_fraction)
        _check(self.min_train_events >= 0, "evaluation.min_train_events", ">= 0", self.min_train_events)


@dataclass(frozen=True)
class PublishGateConf:
    enabled: bool
    algorithm: str
    metric: str
    tolerance: float
    nights: int
    min_nights: int
    min_users: int

    def __post_init__(self) -> None:
        _check(
            self.algorithm in C.ALGORITHMS, "publish_gate.algorithm", f"one of {C.ALGORITHMS}", self.algorithm
        )
        metrics = ("precision", "recall", "ndcg", "hit_rate")
        _check(self.metric in metrics, "publish_gate.metric", f"one of {metrics}", self.metric)
        _check(0.0 < self.tolerance < 1.0, "publish_gate.tolerance", "in (0, 1)", self.tolerance)
        _check(self.nights >= 1, "publish_gate.nights", ">= 1", self.nights)
        _check(1 <= self.min_nights <= self.nights, "publish_gate.min_nights", "in [1, publish_gate.nights]",
               self.min_nights)  # fmt: skip
        _check(self.min_users >= 1, "publish_gate.min_users", ">= 1", self.min_users)


@dataclass(frozen=True)
class TuneConf:
    validation_fraction: float
    seed: int
    rounds: int
    algorithms: tuple[str, ...]
    blend_grid: tuple[float, ...]
    blend_rounds: int
    spaces: dict[str, dict[str, list[Any]]]

    def __post_init__(self) -> None:
        _check(
            0.0 < self.validation_fraction < 1.0,
            "tune.validation_fraction",
            "in (0, 1)",
            self.validation_fraction,
        )
        _check(self.rounds >= 1, "tune.rounds", ">= 1", self.rounds)
        _check(self.blend_rounds >= 1, "tune.blend_rounds", ">= 1", self.blend_rounds)
        _check(
            bool(self.blend_grid) and min(self.blend_grid) >= 0,
            "tune.blend_grid",
            "non-empty and >= 0",
            self.blend_grid,
        )
        _unknown_algorithms(self.algorithms, "tune.algorithms")
        _unknown_algorithms(self.spaces, "tune.spaces")
        for algo, space in self.spaces.items():
            for param, values in (space or {}).items():
                _check(
                    isinstance(values, list) and bool(values),
                    f"tune.spaces.{algo}.{param}",
                    "a non-empty list",
                    values,
                )


@dataclass(frozen=True)
class TrackingConf:
    enabled: bool
    uri: str | None
    experiment: str

    def __post_init__(self) -> None:
        _check(
            bool(str(self.experiment or "").strip()),
            "tracking.experiment",
            "a non-empty name",
            self.experiment,
        )


@dataclass(frozen=True)
class LeaseConf:
    heartbeat_s: float
    stale_after_s: float
    poll_s: float

    def __post_init__(self) -> None:
        _check(self.heartbeat_s > 0, "lease.heartbeat_s", "> 0", self.heartbeat_s)
        _check(
            self.stale_after_s >= 3 * self.heartbeat_s,
            "lease.stale_after_s",
            f">= 3 x lease.heartbeat_s ({3 * self.heartbeat_s:g})",
            self.stale_after_s,
        )
        _check(self.poll_s > 0, "lease.poll_s", "> 0", self.poll_s)


@dataclass(frozen=True)
class AnalyticsConf:
    days: int

    def __post_init__(self) -> None:
        _check(self.days >= 1, "analytics.days", ">= 1", self.days)


#: Readers of the deep models' shards (``vidrec.models.deep.loader.READERS``).
LOADERS = ("pyarrow", "petastorm")


@dataclass(frozen=True)
class LaunchConf:
    num_processes: int
    local_mode: bool
    use_gpu: bool
    num_threads: int
    rows_per_row_group: int
    min_row_groups_per_process: int
    keep_shards: int
    shard_root: str | None
    artifact_root: str | None
    score_block_size: int
    loader: str

    def __post_init__(self) -> None:
        for key in (
            "num_processes",
            "rows_per_row_group",
            "min_row_groups_per_process",
            "keep_shards",
            "score_block_size",
        ):
            _check(getattr(self, key) >= 1, f"deep.launch.{key}", ">= 1", getattr(self, key))
        _check(self.num_threads >= 0, "deep.launch.num_threads", ">= 0", self.num_threads)
        _check(self.loader in LOADERS, "deep.launch.loader", f"one of {', '.join(LOADERS)}", self.loader)


@dataclass(frozen=True)
class TrainConf:
    seed: int
    patience: int
    min_delta: float
    grad_clip: float
    weight_decay: float
    val_fraction: float
    amp: bool
    shuffle_buffer: int
    warm_start: bool
    warm_from_evaluation: bool
    warm_from_carve: bool
    warm_epochs: int
    warm_lr_scale: float

    def __post_init__(self) -> None:
        _check(self.warm_epochs >= 1, "deep.train.warm_epochs", ">= 1", self.warm_epochs)
        _check(0.0 < self.warm_lr_scale <= 1.0, "deep.train.warm_lr_scale", "in (0, 1]", self.warm_lr_scale)
        _check(0.0 < self.val_fraction < 1.0, "deep.train.val_fraction", "in (0, 1)", self.val_fraction)


@dataclass(frozen=True)
class _ModelConf:
    """What every deep model's section has (its own keys come first in the subclasses)."""

    if typing.TYPE_CHECKING:  # declared (as fields) by every subclass; here for the checker only
        SECTION: typing.ClassVar[str]
        lr: float

    def __post_init__(self) -> None:
        name = type(self).SECTION
        for key in ("batch_size", "max_epochs", "patience", "warm_epochs"):  # the last two: where overridden
            _check(getattr(self, key, 1) >= 1, f"deep.{name}.{key}", ">= 1", getattr(self, key, 1))
        _check(self.lr > 0, f"deep.{name}.lr", "> 0", self.lr)


@dataclass(frozen=True)
class NcfConf(_ModelConf):
    SECTION: typing.ClassVar[str] = C.ALGO_NCF
    embedding_dim: int
    mlp_dim: int
    mlp_layers: tuple[int, ...]
    dropout: float
    num_negatives: int
    batch_size: int
    max_epochs: int
    lr: float


@dataclass(frozen=True)
class MultVaeConf(_ModelConf):
    SECTION: typing.ClassVar[str] = C.ALGO_MULTVAE
    hidden_dim: int
    latent_dim: int
    dropout: float
    beta_max: float
    anneal_steps: int
    max_items: int
    batch_size: int
    max_epochs: int
    lr: float


#: ``deep.sequence.readout`` / ``deep.gru.readout``: ``auto`` (:func:`resolve_readout`) or one of the
#: networks' ``READOUTS``.
SEQUENCE_READOUTS = ("auto", "last", "mean", "mix")


def resolve_readout(readout: str, protocol: str) -> str:
    """The readout a sequence model scores with when fitted under evaluation protocol ``protocol``.

    ``auto`` follows what is to be predicted: the state after the last item when it is what comes
    next (``time`` and ``chrono``, and so the served lists, which predict the coming days), the mean
    state over the history when the withheld items are spread over the whole history (``random``);
    any other value is returned as it is."""
    if readout != "auto":
        return readout
    return "mean" if protocol == "random" else "last"


def _check_readout(conf: Any, name: str) -> None:
    ok = conf.readout in SEQUENCE_READOUTS
    _check(ok, f"deep.{name}.readout", f"one of {SEQUENCE_READOUTS}", conf.readout)


@dataclass(frozen=True)
class SequenceConf(_ModelConf):
    SECTION: typing.ClassVar[str] = C.ALGO_SEQUENCE
    max_len: int
    hidden_dim: int
    num_blocks: int
    num_heads: int
    dropout: float
    target_window: int
    readout: str
    batch_size: int
    max_epochs: int
    lr: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.target_window >= 1, "deep.sequence.target_window", ">= 1", self.target_window)
        _check_readout(self, "sequence")


@dataclass(frozen=True)
class GruConf(_ModelConf):
    SECTION: typing.ClassVar[str] = C.ALGO_GRU
    max_len: int
    hidden_dim: int
    num_layers: int
    dropout: float
    target_window: int
    logq_correction: bool
    readout: str
    patience: int  # overrides deep.train.patience: its validation loss has long plateaus
    batch_size: int
    max_epochs: int
    lr: float

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("max_len", "hidden_dim", "num_layers", "target_window"):
            _check(getattr(self, key) >= 1, f"deep.gru.{key}", ">= 1", getattr(self, key))
        _check(0.0 <= self.dropout < 1.0, "deep.gru.dropout", "in [0, 1)", self.dropout)
        _check_readout(self, "gru")


#: ``deep.text.encoder`` / ``deep.fusion.encoder``: a bag of tokens, or a bag of metadata plus a TextCNN.
TEXT_ENCODERS = ("bag", "cnn")


def _check_encoder(conf: Any, name: str) -> None:
    _check(conf.encoder in TEXT_ENCODERS, f"deep.{name}.encoder", f"one of {TEXT_ENCODERS}", conf.encoder)
    _check(conf.max_text_len >= 1, f"deep.{name}.max_text_len", ">= 1", conf.max_text_len)
    _check(conf.channels >= 1, f"deep.{name}.channels", ">= 1", conf.channels)
    ks = conf.kernel_sizes
    ok = bool(ks) and all(1 <= k <= conf.max_text_len for k in ks)
    _check(ok, f"deep.{name}.kernel_sizes", "non-empty widths in [1, max_text_len]", ks)


@dataclass(frozen=True)
class TextConf(_ModelConf):
    SECTION: typing.ClassVar[str] = C.ALGO_TEXT
    num_buckets: int
    max_tokens: int
    embedding_dim: int
    window: int
    temperature: float
    recent: int
    logq_correction: bool
    history_len: int
    encoder: str
    max_text_len: int
    kernel_sizes: tuple[int, ...]
    channels: int
    warm_epochs: int  # overrides deep.train.warm_epochs: its epochs cost the most
    batch_size: int
    max_epochs: int
    lr: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_encoder(self, "text")


@dataclass(frozen=True)
class FusionConf(_ModelConf):
    SECTION: typing.ClassVar[str] = C.ALGO_FUSION
    embedding_dim: int
    num_buckets: int
    max_tokens: int
    num_negatives: int
    id_dropout: float
    encoder: str
    max_text_len: int
    kernel_sizes: tuple[int, ...]
    channels: int
    batch_size: int
    max_epochs: int
    lr: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_encoder(self, "fusion")


@dataclass(frozen=True)
class DeepConf:
    keep_checkpoints: int
    launch: LaunchConf
    train: TrainConf
    ncf: NcfConf
    multvae: MultVaeConf
    sequence: SequenceConf
    gru: GruConf
    text: TextConf
    fusion: FusionConf

    def __post_init__(self) -> None:
        _check(self.keep_checkpoints >= 1, "deep.keep_checkpoints", ">= 1", self.keep_checkpoints)


@dataclass(frozen=True)
class PrivacyConf:
    pseudonymize: bool
    key_env: str
    key_file: str | None
    keep_profile_columns: tuple[str, ...]

    def __post_init__(self) -> None:
        _check(
            bool(str(self.key_env or "").strip()),
            "privacy.key_env",
            "an environment variable name",
            self.key_env,
        )
        bad = [c for c in self.keep_profile_columns if c not in C.PROFILE_OPTIONAL_COLUMNS]
        _check(
            not bad,
            "privacy.keep_profile_columns",
            f"a list of {', '.join(C.PROFILE_OPTIONAL_COLUMNS)} (profile columns no model or table needs)",
            list(self.keep_profile_columns),
        )


@dataclass(frozen=True)
class LoggingConf:
    level: str


@dataclass(frozen=True)
class Config:
    """The whole configuration, typed. Build it with :func:`vidrec.config.load_config`."""

    warehouse: str
    spark: SparkConf
    ingest: IngestConf
    matrix: MatrixConf
    recommend: RecommendConf
    als: AlsConf
    rating: RatingConf
    ease: EaseConf
    content: ContentConf
    itemknn: ItemKnnConf
    similar_items: SimilarItemsConf
    hybrid: HybridConf
    popularity: PopularityConf
    evaluation: EvaluationConf
    publish_gate: PublishGateConf
    tune: TuneConf
    tracking: TrackingConf
    lease: LeaseConf
    privacy: PrivacyConf
    analytics: AnalyticsConf
    deep: DeepConf
    models: tuple[str, ...]
    logging: LoggingConf

    def __post_init__(self) -> None:
        _check(bool(str(self.warehouse or "").strip()), "warehouse", "a non-empty path", self.warehouse)
        _unknown_algorithms(self.models, "models")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain YAML data (mappings, lists, scalars), keys as in ``base.yaml``."""
        return to_mapping(self)

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level fields replaced (e.g. ``conf.replace(warehouse=path)``)."""
        return dataclasses.replace(self, **changes)

    def override(self, overrides: Mapping[str, Any] | list[str]) -> Config:
        """A copy with ``overrides`` merged in as a checked layer (``{"als": {"rank": 8}}`` or
        ``["als.rank=8"]``); see :func:`vidrec.config.loader.override`."""
        return override(self, overrides)


def override(conf: Config, overrides: Mapping[str, Any] | list[str]) -> Config:
    """``conf`` with ``overrides`` applied (a mapping, or ``key.path=value`` strings), checked as a layer.

    Raises ``ConfigError`` on an unknown key, a wrong type or a value out of range, naming the key.
    """
    data = conf.to_dict()
    layers = [parse_override(o) for o in overrides] if isinstance(overrides, list) else [dict(overrides)]
    for layer in layers:
        data = merge(data, layer, "overrides")
    return from_mapping(Config, data)


def yaml_key(field: dataclasses.Field[Any]) -> str:
    """The YAML key of a dataclass field (``lambda_`` -> ``lambda``)."""
    return field.name[:-1] if field.name.endswith("_") else field.name


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {type(value).__name__}")
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        return tuple(float(v) if item is float else v for v in value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, key)
    return value


def from_mapping(cls: type[Any], data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from ``data`` (YAML keys), recursively.

    Raises
    ------
    ConfigError
        On a key of ``data`` that ``cls`` lacks, a field that ``data`` lacks (``base.yaml`` declares
        every key), or a section's range check.
    """
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    keys = {yaml_key(f): f for f in fields}
    extra = sorted(set(data) - set(keys))
    if extra:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ConfigError(f"unknown config key(s) {extra} in {where} (known: {', '.join(sorted(keys))})")
    missing = sorted(set(keys) - set(data))
    if missing:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ConfigError(f"config lacks key(s) {missing} in {where} (conf/base.yaml declares every key)")
    values = {
        f.name: _convert(hints[f.name], data[k], f"{prefix}.{k}" if prefix else k) for k, f in keys.items()
    }
    return cls(**values)


def to_mapping(obj: Any) -> Any:
    """A dataclass tree as plain YAML data (tuples become lists, ``lambda_`` becomes ``lambda``)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {yaml_key(f): to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj
