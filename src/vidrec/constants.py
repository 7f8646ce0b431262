"""Names defined once: columns, tables, event types, algorithm names.

Every module imports its column and table names from here, so a rename happens in one place and
the contract in ``docs/contract.md`` and ``docs/tables.md`` maps onto one file.
"""

from __future__ import annotations

# --- input contract: events -------------------------------------------------------------------
COL_EVENT_ID = "event_id"
COL_USER = "user_id"
COL_ITEM = "item_id"
COL_EVENT_TYPE = "event_type"
COL_TS = "ts"
COL_WATCH_SECONDS = "watch_seconds"
COL_RATING = "rating"
COL_SESSION = "session_id"
COL_DEVICE = "device"
COL_POSITION = "position_seconds"

EVENT_TYPES: tuple[str, ...] = (
    "impression",
    "play",
    "progress",
    "complete",
    "like",
    "dislike",
    "favorite",
    "comment",
    "rate",
    "share",
)
#: Event types that may carry ``watch_seconds``.
WATCH_EVENT_TYPES: tuple[str, ...] = ("play", "progress", "complete")
#: Event types that are engagement of a user with an item, whatever the site logs: a play, a
#: completion, a like, a favorite, a share or a rating (popularity and the analytics count these).
ENGAGED_EVENT_TYPES: tuple[str, ...] = ("play", "complete", "like", "favorite", "share", "rate")
RATING_MIN = 0.5
RATING_MAX = 5.0

# --- input contract: items and users ----------------------------------------------------------
COL_TITLE = "title"
COL_GENRES = "genres"
COL_DIRECTORS = "directors"
COL_CAST = "cast"
COL_RELEASE_YEAR = "release_year"
COL_DURATION = "duration_seconds"
COL_DESCRIPTION = "description"
COL_LANGUAGE = "language"
COL_MATURITY = "maturity_rating"
COL_VISUAL_EMB = "visual_embedding"
COL_AUDIO_EMB = "audio_embedding"

COL_SIGNUP_DATE = "signup_date"
COL_COUNTRY = "country"
COL_AGE_BAND = "age_band"
COL_GENDER = "gender"
#: Profile columns ``silver/users`` stores: each feeds a model or an analytics table (signup_date:
#: cohort retention; country, age_band: cold-start segments and the maturity filter).
PROFILE_COLUMNS: tuple[str, ...] = (COL_SIGNUP_DATE, COL_COUNTRY, COL_AGE_BAND)
#: Profile columns of the input contract that nothing uses: read, not stored (data minimisation),
#: unless ``privacy.keep_profile_columns`` names them.
PROFILE_OPTIONAL_COLUMNS: tuple[str, ...] = (COL_GENDER,)

# --- columns the pipeline adds ----------------------------------------------------------------
COL_EVENT_DATE = "event_date"
COL_INGESTED_AT = "ingested_at"
COL_SOURCE_FILE = "source_file"
COL_RAW = "raw"
COL_REASON = "reason"
COL_RUN_DATE = "run_date"
COL_UPDATED_AT = "updated_at"

COL_USER_IDX = "user_idx"
COL_ITEM_IDX = "item_idx"
COL_FIRST_SEEN = "first_seen"

COL_WATCH_RATIO = "watch_ratio"
COL_LAST_TS = "last_ts"
COL_FIRST_TS = "first_ts"
COL_CONFIDENCE = "confidence"
COL_TOTAL_WATCH = "total_watch_seconds"
#: Longest single watch of a pair (the watch ratio is this over the duration).
COL_MAX_WATCH = "max_watch_seconds"
#: Time of the rating ``rating`` holds (the latest one).
COL_RATING_TS = "rating_ts"
#: ``n_<event_type>`` count columns of ``silver/interactions``.
COUNT_COLS: dict[str, str] = {t: f"n_{t}" for t in EVENT_TYPES}

COL_RANK = "rank"
COL_SCORE = "score"
COL_ALGORITHM = "algorithm"
COL_MODEL_VERSION = "model_version"
COL_SIMILAR_ITEM = "similar_item_id"
COL_SEGMENT = "segment"
COL_METRIC = "metric"
COL_K = "k"
COL_VALUE = "value"
COL_SPLIT = "split"

# --- warehouse layers and tables --------------------------------------------------------------
BRONZE = "bronze"
SILVER = "silver"
GOLD = "gold"
OPS = "ops"
MODELS = "models"

T_EVENTS = (BRONZE, "events")
T_QUARANTINE = (BRONZE, "quarantine")
T_ITEMS = (SILVER, "items")
T_USERS = (SILVER, "users")
T_INTERACTIONS = (SILVER, "interactions")
T_USER_INDEX = (SILVER, "user_index")
T_ITEM_INDEX = (SILVER, "item_index")
T_RECOMMENDATIONS = (GOLD, "recommendations")
T_SIMILAR_ITEMS = (GOLD, "similar_items")
T_POPULAR_ITEMS = (GOLD, "popular_items")
T_MODEL_METRICS = (GOLD, "model_metrics")
T_USER_EMBEDDINGS = (GOLD, "user_embeddings")
T_RUNS = (OPS, "runs")
T_LEASE = (OPS, "lease")

# --- algorithms -------------------------------------------------------------------------------
ALGO_POPULARITY = "popularity"
ALGO_ALS = "als"
ALGO_ITEMKNN = "itemknn"
ALGO_CONTENT = "content"
ALGO_EASE = "ease"
ALGO_NCF = "ncf"
ALGO_MULTVAE = "multvae"
ALGO_SEQUENCE = "sequence"
ALGO_GRU = "gru"
ALGO_TEXT = "text"
ALGO_FUSION = "fusion"
ALGO_HYBRID = "hybrid"
ALGORITHMS: tuple[str, ...] = (
    ALGO_POPULARITY,
    ALGO_ALS,
    ALGO_ITEMKNN,
    ALGO_CONTENT,
    ALGO_EASE,
    ALGO_NCF,
    ALGO_MULTVAE,
    ALGO_SEQUENCE,
    ALGO_GRU,
    ALGO_TEXT,
    ALGO_FUSION,
    ALGO_HYBRID,
)

SEGMENT_OVERALL = "overall"
SEGMENT_TRENDING = "trending"
GENRE_SEGMENT_PREFIX = "genre:"
