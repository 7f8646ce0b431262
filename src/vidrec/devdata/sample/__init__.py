"""Deterministic synthetic sample data of a video site: catalog, users and watch events.

The generator builds a small world on the driver with NumPy and simulates each user's watch
behaviour in parallel on Spark:

- :func:`make_catalog` draws items with 1-3 of :data:`GENRES` (a latent genre vector per item), a
  Zipf-like popularity, a quality, a duration, a release date (some items are released during the
  span) and text and embedding fields correlated with genre;
- :func:`make_users` draws profiles with a concentrated Dirichlet taste over genres (most users like
  2-4 genres, tilted by age band), a long-tailed activity rate, a sign-up date and a churn date;
- :func:`simulate_user` plays one user's sessions: impressions, the funnel
  play -> progress -> complete (``watch_seconds`` consistent with ``duration_seconds``, completion
  more likely when the item matches the user's taste) and explicit feedback (like, favorite, rate,
  share, comment; dislike after an abandoned poor match) correlated with taste;
- :func:`render_event_lines` turns events into JSON lines and, for ``bad_fraction > 0``, replaces that
  share of lines with realistic garbage (see :data:`BAD_KINDS`) for the quarantine to catch;
- :func:`generate` writes ``items.jsonl``, ``users.csv`` and the directory ``events.jsonl/`` of
  Spark-written ``part-*.json`` files.

Every random draw comes from a NumPy generator seeded by ``seed`` and a stream number (and, for
events, the user index), so the same arguments give the same rows whatever the partitioning.
Fields the input contract (``docs/contract.md``) does not have, such as an item's release date,
stay internal: they are columns of the frames the helpers return and are never written.

Modules: :mod:`.vocab` (vocabularies, layout, constants), :mod:`.catalog`, :mod:`.users`,
:mod:`.simulate` (one user's behaviour), :mod:`.render` (JSON lines, garbage), :mod:`.generate`.
"""

from __future__ import annotations

from vidrec.devdata.sample.catalog import (
    make_catalog,
)
from vidrec.devdata.sample.generate import (
    build_world,
    default_partitions,
    generate,
)
from vidrec.devdata.sample.render import (
    corrupt_event,
    render_event_lines,
)
from vidrec.devdata.sample.simulate import (
    CatalogArrays,
    UserParams,
    n_user_blocks,
    simulate_user,
    simulate_users_batch,
    user_block,
    user_rng,
)
from vidrec.devdata.sample.users import (
    make_users,
    mean_active_days,
)
from vidrec.devdata.sample.vocab import (
    ACTIVITY_SIGMA,
    ADULT_GENRES,
    AGE_BANDS,
    AGE_DEVICE_WEIGHTS,
    AGE_GENRE_TILT,
    AGE_WEIGHTS,
    BAD_KINDS,
    CHILD_GENRES,
    CHURN_FRACTION,
    CHURN_MEAN_DAYS,
    COL_DEVICE_IDX,
    COL_GENRE_VEC,
    COL_ITEM_IDX,
    COL_LAST_DAY,
    COL_POPULARITY,
    COL_QUALITY,
    COL_RELEASE_DATE,
    COL_SESSIONS_PER_DAY,
    COL_SIGNUP_DAY,
    COL_TASTE,
    COL_USER_IDX,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DEVICES,
    EMBEDDING_DIM,
    EMBEDDING_FRACTION,
    EVENT_COLUMNS,
    EVENTS_DIR,
    EVENTS_PER_SESSION,
    FIRST_NAMES,
    GENDER_WEIGHTS,
    GENDERS,
    GENRE_WORDS,
    GENRES,
    ITEM_COLUMNS,
    ITEMS_FILE,
    LANGUAGE_WEIGHTS,
    LANGUAGES,
    LAST_NAMES,
    MATURITY_RATINGS,
    NEW_ITEM_FRACTION,
    POP_DELTA,
    REWATCH_PROB,
    SECONDS_PER_DAY,
    SIGNUP_IN_SPAN_FRACTION,
    TASTE_FLOOR,
    TASTE_GAMMA,
    TITLE_ADJECTIVES,
    UNKNOWN_EVENT_TYPES,
    USER_COLUMNS,
    USERS_FILE,
    USERS_PER_BLOCK,
    USERS_PER_PARTITION,
    ZIPF_EXPONENT,
    Span,
    item_id,
    user_id,
)

__all__ = [
    "ACTIVITY_SIGMA",
    "ADULT_GENRES",
    "AGE_BANDS",
    "AGE_DEVICE_WEIGHTS",
    "AGE_GENRE_TILT",
    "AGE_WEIGHTS",
    "BAD_KINDS",
    "CHILD_GENRES",
    "CHURN_FRACTION",
    "CHURN_MEAN_DAYS",
    "COL_DEVICE_IDX",
    "COL_GENRE_VEC",
    "COL_ITEM_IDX",
    "COL_LAST_DAY",
    "COL_POPULARITY",
    "COL_QUALITY",
    "COL_RELEASE_DATE",
    "COL_SESSIONS_PER_DAY",
    "COL_SIGNUP_DAY",
    "COL_TASTE",
    "COL_USER_IDX",
    "COUNTRIES",
    "COUNTRY_WEIGHTS",
    "CatalogArrays",
    "DEVICES",
    "EMBEDDING_DIM",
    "EMBEDDING_FRACTION",
    "EVENTS_DIR",
    "EVENTS_PER_SESSION",
    "EVENT_COLUMNS",
    "FIRST_NAMES",
    "GENDERS",
    "GENDER_WEIGHTS",
    "GENRES",
    "GENRE_WORDS",
    "ITEMS_FILE",
    "ITEM_COLUMNS",
    "LANGUAGES",
    "LANGUAGE_WEIGHTS",
    "LAST_NAMES",
    "MATURITY_RATINGS",
    "NEW_ITEM_FRACTION",
    "POP_DELTA",
    "REWATCH_PROB",
    "SECONDS_PER_DAY",
    "SIGNUP_IN_SPAN_FRACTION",
    "Span",
    "TASTE_FLOOR",
    "TASTE_GAMMA",
    "TITLE_ADJECTIVES",
    "UNKNOWN_EVENT_TYPES",
    "USERS_FILE",
    "USERS_PER_BLOCK",
    "USERS_PER_PARTITION",
    "USER_COLUMNS",
    "UserParams",
    "ZIPF_EXPONENT",
    "build_world",
    "corrupt_event",
    "default_partitions",
    "generate",
    "item_id",
    "make_catalog",
    "make_users",
    "mean_active_days",
    "n_user_blocks",
    "render_event_lines",
    "simulate_user",
    "simulate_users_batch",
    "user_block",
    "user_id",
    "user_rng",
]
