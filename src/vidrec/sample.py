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
Fields the input contract (``DESIGN.md``, "Input") does not have, such as an item's release date,
stay internal: they are columns of the frames the helpers return and are never written.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from vidrec import constants as C

log = logging.getLogger(__name__)

# --- output layout ----------------------------------------------------------------------------
ITEMS_FILE = "items.jsonl"
USERS_FILE = "users.csv"
#: A directory of Spark-written JSON-lines part files, read as one source by ``ingest``.
EVENTS_DIR = "events.jsonl"

# --- vocabularies -----------------------------------------------------------------------------
#: The genres, most common first (the order sets each genre's share of the catalog and of tastes).
GENRES: tuple[str, ...] = (
    "Drama",
    "Comedy",
    "Action",
    "Thriller",
    "Romance",
    "Documentary",
    "Crime",
    "Adventure",
    "Sci-Fi",
    "Horror",
    "Animation",
    "Family",
    "Fantasy",
    "Mystery",
    "Kids",
    "History",
    "Music",
    "Sport",
    "War",
    "Western",
)
#: Words titles and descriptions draw from, per genre (text models can learn genre from them).
GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "Drama": ("family", "secret", "promise", "letters", "winter", "inheritance"),
    "Comedy": ("wedding", "roommates", "mixup", "holiday", "neighbours", "road trip"),
    "Action": ("heist", "agent", "explosion", "chase", "mercenary", "showdown"),
    "Thriller": ("conspiracy", "witness", "hostage", "stranger", "betrayal", "deadline"),
    "Romance": ("love", "summer", "reunion", "letters", "first date", "heart"),
    "Documentary": ("nature", "investigation", "archive", "interviews", "planet", "truth"),
    "Crime": ("detective", "murder", "gang", "robbery", "corruption", "precinct"),
    "Adventure": ("expedition", "treasure", "island", "journey", "jungle", "map"),
    "Sci-Fi": ("starship", "android", "galaxy", "time travel", "colony", "signal"),
    "Horror": ("haunted", "curse", "ritual", "cabin", "possession", "nightmare"),
    "Animation": ("cartoon", "talking animals", "magic", "toys", "kingdom", "robot"),
    "Family": ("grandparents", "puppy", "camp", "siblings", "holiday", "backyard"),
    "Fantasy": ("dragon", "sorcerer", "prophecy", "elves", "sword", "realm"),
    "Mystery": ("clue", "disappearance", "manor", "riddle", "suspect", "diary"),
    "Kids": ("school", "friendship", "adventure club", "pets", "playground", "songs"),
    "History": ("empire", "revolution", "dynasty", "battle", "queen", "century"),
    "Music": ("band", "tour", "concert", "record", "singer", "rhythm"),
    "Sport": ("championship", "coach", "underdog", "marathon", "league", "comeback"),
    "War": ("soldiers", "front line", "resistance", "occupation", "squadron", "trenches"),
    "Western": ("outlaw", "sheriff", "frontier", "ranch", "gold rush", "saloon"),
}
TITLE_ADJECTIVES: tuple[str, ...] = (
    "Silent", "Last", "Broken", "Hidden", "Golden", "Dark", "Lost", "Wild", "Crimson", "Distant",
    "Endless", "Frozen", "Burning", "Little", "Secret", "Final", "Midnight", "Electric", "Quiet", "Iron",
)  # fmt: skip
FIRST_NAMES: tuple[str, ...] = (
    "Ana", "Ben", "Chloe", "David", "Elena", "Felix", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam",
    "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Yara",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kim", "Lopez", "Moreau", "Novak", "Okafor", "Petrov", "Quint", "Rossi", "Singh", "Tanaka",
    "Ueda", "Varga", "Weber", "Young",
)  # fmt: skip
LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "de", "ja", "ko", "hi", "it")
LANGUAGE_WEIGHTS: tuple[float, ...] = (0.62, 0.09, 0.06, 0.05, 0.06, 0.06, 0.03, 0.03)
MATURITY_RATINGS: tuple[str, ...] = ("G", "PG", "PG-13", "R", "TV-MA")
#: Genres whose items are rated for children, and genres rated for adults.
CHILD_GENRES: frozenset[str] = frozenset({"Animation", "Family", "Kids"})
ADULT_GENRES: frozenset[str] = frozenset({"Horror", "Crime", "War", "Thriller"})
DEVICES: tuple[str, ...] = ("tv", "mobile", "web", "tablet")
COUNTRIES: tuple[str, ...] = ("US", "GB", "CA", "DE", "FR", "ES", "BR", "MX", "IN", "JP", "KR", "AU")
COUNTRY_WEIGHTS: tuple[float, ...] = (0.30, 0.08, 0.05, 0.07, 0.06, 0.05, 0.09, 0.05, 0.10, 0.06, 0.05, 0.04)
AGE_BANDS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_WEIGHTS: tuple[float, ...] = (0.06, 0.18, 0.27, 0.21, 0.14, 0.09, 0.05)
GENDERS: tuple[str, ...] = ("F", "M", "X")
GENDER_WEIGHTS: tuple[float, ...] = (0.48, 0.48, 0.04)
#: Genres an age band likes more than the population does (a signal for segment cold start).
AGE_GENRE_TILT: dict[str, tuple[str, ...]] = {
    "13-17": ("Animation", "Action", "Fantasy", "Kids", "Comedy"),
    "18-24": ("Action", "Horror", "Sci-Fi", "Comedy"),
    "25-34": ("Thriller", "Sci-Fi", "Crime", "Romance"),
    "35-44": ("Drama", "Family", "Crime", "Kids"),
    "45-54": ("Drama", "Documentary", "Mystery"),
    "55-64": ("Documentary", "History", "Drama", "Western"),
    "65+": ("History", "War", "Western", "Documentary"),
}
#: Primary device probabilities per age band, in the order of :data:`DEVICES`.
AGE_DEVICE_WEIGHTS: dict[str, tuple[float, ...]] = {
    "13-17": (0.15, 0.55, 0.10, 0.20),
    "18-24": (0.20, 0.55, 0.15, 0.10),
    "25-34": (0.40, 0.35, 0.15, 0.10),
    "35-44": (0.50, 0.25, 0.15, 0.10),
    "45-54": (0.55, 0.20, 0.15, 0.10),
    "55-64": (0.55, 0.15, 0.15, 0.15),
    "65+": (0.60, 0.10, 0.10, 0.20),
}

# --- internal columns (not part of the input contract, never written) -------------------------
COL_ITEM_IDX = "item_idx"
COL_RELEASE_DATE = "release_date"  #: first day the item can be watched
COL_POPULARITY = "popularity"  #: Zipf-like share of attention, sums to 1 over the catalog
COL_QUALITY = "quality"  #: standard-normal quality (more completions, better ratings)
COL_GENRE_VEC = "genre_vec"  #: latent genre weights, sums to 1
COL_USER_IDX = "user_idx"
COL_SIGNUP_DAY = "signup_day"  #: sign-up day relative to the span's first day (negative: before)
COL_LAST_DAY = "last_day"  #: last active day relative to the span's first day (churn)
COL_SESSIONS_PER_DAY = "sessions_per_day"
COL_TASTE = "taste"  #: latent taste over genres, sums to 1
COL_DEVICE_IDX = "device_idx"  #: index of the user's primary device in :data:`DEVICES`

ITEM_COLUMNS: tuple[str, ...] = (
    C.COL_ITEM, C.COL_TITLE, C.COL_GENRES, C.COL_DIRECTORS, C.COL_CAST, C.COL_RELEASE_YEAR,
    C.COL_DURATION, C.COL_DESCRIPTION, C.COL_LANGUAGE, C.COL_MATURITY, C.COL_VISUAL_EMB, C.COL_AUDIO_EMB,
)  # fmt: skip
USER_COLUMNS: tuple[str, ...] = (C.COL_USER, C.COL_SIGNUP_DATE, C.COL_COUNTRY, C.COL_AGE_BAND, C.COL_GENDER)
EVENT_COLUMNS: tuple[str, ...] = (
    C.COL_EVENT_ID, C.COL_USER, C.COL_ITEM, C.COL_EVENT_TYPE, C.COL_TS, C.COL_WATCH_SECONDS,
    C.COL_RATING, C.COL_SESSION, C.COL_DEVICE, C.COL_POSITION,
)  # fmt: skip

#: Kinds of garbage lines written when ``bad_fraction > 0``.
BAD_KINDS: tuple[str, ...] = (
    "malformed_json",
    "missing_user_id",
    "unknown_event_type",
    "negative_watch_seconds",
    "rating_out_of_range",
    "ts_far_future",
    "unknown_item_id",
    "duplicate_event_id",
)
UNKNOWN_EVENT_TYPES: tuple[str, ...] = ("pause", "seek", "buffering", "click", "scroll")

# --- model constants --------------------------------------------------------------------------
EMBEDDING_DIM = 16
ZIPF_EXPONENT = 1.0  #: item popularity ~ 1 / rank ** ZIPF_EXPONENT
NEW_ITEM_FRACTION = 0.2  #: share of items released during the span
EMBEDDING_FRACTION = 0.9  #: share of items with visual and audio embeddings
SIGNUP_IN_SPAN_FRACTION = 0.3  #: share of users who sign up during the span
CHURN_FRACTION = 0.25  #: share of users who stop watching during the span
CHURN_MEAN_DAYS = 15.0
ACTIVITY_SIGMA = 1.0  #: sigma of the lognormal per-user activity (long tail)
TASTE_GAMMA = 3.0  #: choice weight ~ (match + TASTE_FLOOR) ** TASTE_GAMMA * popularity ** POP_DELTA
TASTE_FLOOR = 0.02
POP_DELTA = 0.5
REWATCH_PROB = 0.05  #: chance a drawn, already completed item is watched again
#: Mean events one session produces with the constants above (calibrates ``events_per_user_mean``).
EVENTS_PER_SESSION = 9.6
SECONDS_PER_DAY = 86_400


def item_id(idx: int) -> str:
    """The catalog id of item number ``idx`` (``i00042``)."""
    return f"i{idx:05d}"


def user_id(idx: int) -> str:
    """The id of user number ``idx`` (``u000123``)."""
    return f"u{idx:06d}"


@dataclass(frozen=True)
class Span:
    """The days events cover: ``days`` days ending at ``end_date`` (inclusive).

    Attributes
    ----------
    end_date : datetime.date
        Last day with events.
    days : int
        Number of days, at least 1.
    """

    end_date: dt.date
    days: int

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")

    @property
    def start_date(self) -> dt.date:
        """First day with events."""
        return self.end_date - dt.timedelta(days=self.days - 1)

    @property
    def start_epoch(self) -> int:
        """Epoch seconds (UTC) of the first day's midnight."""
        return int(dt.datetime.combine(self.start_date, dt.time(), tzinfo=dt.UTC).timestamp())

    @property
    def end_epoch(self) -> int:
        """Epoch seconds (UTC) of the midnight after ``end_date`` (exclusive bound of every ts)."""
        return self.start_epoch + self.days * SECONDS_PER_DAY

    def day(self, offset: int) -> dt.date:
        """The date ``offset`` days after the first day (negative: before the span)."""
        return self.start_date + dt.timedelta(days=int(offset))


def _genre_prior(n_genres: int) -> np.ndarray:
    weights = 1.0 / (np.arange(n_genres) + 3.0)
    return weights / weights.sum()


def _person_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct person names in a random order."""
    names: list[str] = []
    for k in rng.permutation(n):
        first = FIRST_NAMES[k % len(FIRST_NAMES)]
        last = LAST_NAMES[(k // len(FIRST_NAMES)) % len(LAST_NAMES)]
        r = int(k) // (len(FIRST_NAMES) * len(LAST_NAMES))
        if r == 0:
            names.append(f"{first} {last}")
        else:
            suffix = f" {(r - 1) // 26 + 1}" if r > 26 else ""
            names.append(f"{first} {chr(65 + (r - 1) % 26)}. {last}{suffix}")
    return names


def _embeddings(rng: np.random.Generator, genre_vec: np.ndarray, noise: float) -> np.ndarray:
    projection = rng.normal(size=(genre_vec.shape[1], EMBEDDING_DIM))
    emb = genre_vec @ projection + noise * rng.normal(size=(genre_vec.shape[0], EMBEDDING_DIM))
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    return np.round(emb, 5)


def make_catalog(
    rng: np.random.Generator,
    n_items: int,
    span: Span,
    new_item_fraction: float = NEW_ITEM_FRACTION,
    embedding_fraction: float = EMBEDDING_FRACTION,
) -> pd.DataFrame:
    """Draw the item catalog.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every draw.
    n_items : int
        Number of items, at least 1; ids are ``item_id(0) .. item_id(n_items - 1)``.
    span : Span
        The event span; ``new_item_fraction`` of the items are released during it (never on its first
        day), the others before it.
    new_item_fraction : float
        Share of items released during the span.
    embedding_fraction : float
        Share of items that carry ``visual_embedding`` and ``audio_embedding``.

    Returns
    -------
    pandas.DataFrame
        One row per item: the contract columns :data:`ITEM_COLUMNS` (``genres``, ``directors``,
        ``cast`` and the embeddings as Python lists, embeddings ``None`` where absent) and the
        internal columns ``item_idx``, ``release_date``, ``popularity``, ``quality`` and
        ``genre_vec``.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    n_genres = len(GENRES)
    prior = _genre_prior(n_genres)

    # genres: 1-3 distinct per item (Gumbel top-k from the genre prior), weights 1, .6, .4 in order
    n_per_item = rng.choice([1, 2, 3], size=n_items, p=[0.35, 0.45, 0.20])
    keys = np.log(prior)[None, :] + rng.gumbel(size=(n_items, n_genres))
    order = np.argsort(-keys, axis=1)[:, :3]
    genre_vec = np.zeros((n_items, n_genres))
    rank_weights = np.array([1.0, 0.6, 0.4])
    for k in range(3):
        has = n_per_item > k
        genre_vec[np.flatnonzero(has), order[has, k]] = rank_weights[k]
    genre_vec /= genre_vec.sum(axis=1, keepdims=True)
    primary = order[:, 0]

    popularity = (rng.permutation(n_items) + 1.0) ** -ZIPF_EXPONENT
    popularity /= popularity.sum()
    quality = np.clip(rng.normal(size=n_items), -2.5, 2.5)

    # availability: new items from day 1 of the span on, catalog items up to three years before it
    is_new = rng.random(n_items) < (new_item_fraction if span.days >= 2 else 0.0)
    release_day = np.where(
        is_new, rng.integers(1, max(span.days, 2), n_items), -rng.integers(1, 3 * 365, n_items)
    )
    title_lag = np.floor(rng.exponential(4.0, n_items)).astype(int)

    # duration: episodes (~40 min) and films (~105 min, shorter for children's genres)
    episode = rng.random(n_items) < 0.3
    child = np.isin(primary, [GENRES.index(g) for g in CHILD_GENRES])
    minutes = np.where(
        episode,
        rng.lognormal(np.log(40.0), 0.3, n_items),
        rng.lognormal(np.log(np.where(child, 85.0, 105.0)), 0.2),
    )
    duration = np.round(np.clip(minutes, 5.0, 240.0) * 60.0)

    n_directors = max(5, n_items // 3)
    n_actors = max(20, 2 * n_items)
    director_names = _person_names(rng, n_directors)
    actor_names = _person_names(rng, n_actors)
    director_home = rng.choice(n_genres, size=n_directors, p=prior)
    actor_home = rng.choice(n_genres, size=n_actors, p=prior)
    directors_by_genre = [np.flatnonzero(director_home == g) for g in range(n_genres)]
    actors_by_genre = [np.flatnonzero(actor_home == g) for g in range(n_genres)]

    visual = _embeddings(rng, genre_vec, noise=0.35)
    audio = _embeddings(rng, genre_vec, noise=0.5)
    has_embedding = rng.random(n_items) < embedding_fraction
    language = rng.choice(len(LANGUAGES), size=n_items, p=LANGUAGE_WEIGHTS)

    rows: list[dict[str, Any]] = []
    for i in range(n_items):
        genres = [GENRES[g] for g in order[i, : n_per_item[i]]]
        words = [w for g in genres for w in GENRE_WORDS[g]]
        g0 = int(primary[i])

        pool = directors_by_genre[g0]
        n_dir = 1 + int(rng.random() < 0.1)
        directors = [
            director_names[
                int(rng.choice(pool)) if len(pool) and rng.random() < 0.8 else int(rng.integers(n_directors))
            ]
            for _ in range(n_dir)
        ]
        cast: list[str] = []
        pool = actors_by_genre[g0]
        n_cast = int(rng.integers(3, 7))
        while len(cast) < n_cast:  # n_actors >= 20 > n_cast distinct names exist
            a = int(rng.choice(pool)) if len(pool) and rng.random() < 0.7 else int(rng.integers(n_actors))
            if actor_names[a] not in cast:
                cast.append(actor_names[a])

        adjective = TITLE_ADJECTIVES[int(rng.integers(len(TITLE_ADJECTIVES)))]
        noun = str(rng.choice(GENRE_WORDS[GENRES[g0]])).title()
        title = f"The {adjective} {noun}" if rng.random() < 0.4 else f"{adjective} {noun}"
        if rng.random() < 0.08:
            title += f" {int(rng.integers(2, 4))}"
        w1, w2 = rng.choice(words, size=2, replace=False)
        form = "series episode" if episode[i] else "film"
        description = (
            f"A {adjective.lower()} {' and '.join(g.lower() for g in genres)} {form} about {w1} and {w2}, "
            f"directed by {directors[0]}."
        )

        if set(genres) & CHILD_GENRES:
            maturity = MATURITY_RATINGS[int(rng.integers(0, 2))]
        elif set(genres) & ADULT_GENRES:
            maturity = MATURITY_RATINGS[int(rng.integers(2, 5))]
        else:
            maturity = MATURITY_RATINGS[int(rng.integers(1, 4))]

        release_date = span.day(int(release_day[i]))
        rows.append(
            {
                C.COL_ITEM: item_id(i),
                C.COL_TITLE: title,
                C.COL_GENRES: genres,
                C.COL_DIRECTORS: directors,
                C.COL_CAST: cast,
                C.COL_RELEASE_YEAR: int(
                    release_date.year if is_new[i] else max(1950, release_date.year - title_lag[i])
                ),
                C.COL_DURATION: float(duration[i]),
                C.COL_DESCRIPTION: description,
                C.COL_LANGUAGE: LANGUAGES[int(language[i])],
                C.COL_MATURITY: maturity,
                C.COL_VISUAL_EMB: [float(x) for x in visual[i]] if has_embedding[i] else None,
                C.COL_AUDIO_EMB: [float(x) for x in audio[i]] if has_embedding[i] else None,
                COL_ITEM_IDX: i,
                COL_RELEASE_DATE: release_date,
                COL_POPULARITY: float(popularity[i]),
                COL_QUALITY: float(quality[i]),
                COL_GENRE_VEC: genre_vec[i].tolist(),
            }
        )
    return pd.DataFrame(rows)


def _lifecycle(rng: np.random.Generator, n: int, span: Span) -> tuple[np.ndarray, np.ndarray]:
    """Sign-up day (before the span, up to three years, or during it) and last active day (churn)."""
    joins_in_span = rng.random(n) < (SIGNUP_IN_SPAN_FRACTION if span.days >= 2 else 0.0)
    signup_day = np.where(joins_in_span, rng.integers(0, span.days, n), -rng.integers(1, 3 * 365, n))
    churns = rng.random(n) < CHURN_FRACTION
    lifetime = np.floor(rng.exponential(CHURN_MEAN_DAYS, n)).astype(np.int64)
    first_day = np.maximum(signup_day, 0)
    last_day = np.where(churns, np.minimum(first_day + lifetime, span.days - 1), span.days - 1)
    return signup_day.astype(np.int64), last_day.astype(np.int64)


@functools.lru_cache(maxsize=16)
def mean_active_days(span: Span) -> float:
    """Expected active days per user over ``span`` (a fixed-seed estimate, the same everywhere)."""
    signup_day, last_day = _lifecycle(np.random.default_rng(0), 20_000, span)
    return float((last_day - np.maximum(signup_day, 0) + 1).mean())


def make_users(
    rng: np.random.Generator,
    n_users: int,
    span: Span,
    events_per_user_mean: float = 40.0,
    first_idx: int = 0,
) -> pd.DataFrame:
    """Draw user profiles and their latent behaviour.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every draw.
    n_users : int
        Number of users, at least 1; ids are ``user_id(first_idx) .. user_id(first_idx + n_users - 1)``.
    span : Span
        The event span; a share of users signs up during it and a share churns before its end.
    events_per_user_mean : float
        Target mean number of events per user over the span; sets the scale of
        ``sessions_per_day`` (activity is lognormal, so most users have fewer events and a few far
        more).
    first_idx : int
        Index of the first user drawn.

    Returns
    -------
    pandas.DataFrame
        One row per user: the contract columns :data:`USER_COLUMNS` (``signup_date`` a
        ``datetime.date``) and the internal columns ``user_idx``, ``signup_day``, ``last_day``,
        ``sessions_per_day``, ``taste`` (array over :data:`GENRES`) and ``device_idx``.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    if events_per_user_mean <= 0:
        raise ValueError(f"events_per_user_mean must be > 0, got {events_per_user_mean}")
    n_genres = len(GENRES)
    age = rng.choice(len(AGE_BANDS), size=n_users, p=AGE_WEIGHTS)
    country = rng.choice(len(COUNTRIES), size=n_users, p=COUNTRY_WEIGHTS)
    gender = rng.choice(len(GENDERS), size=n_users, p=GENDER_WEIGHTS)

    # taste: 2-4 favourite genres (Gumbel top-k from the prior tilted by age band), then a
    # Dirichlet concentrated on them
    tilt = np.ones((len(AGE_BANDS), n_genres))
    for a, band in enumerate(AGE_BANDS):
        tilt[a, [GENRES.index(g) for g in AGE_GENRE_TILT[band]]] = 3.0
    log_prior = np.log(_genre_prior(n_genres))[None, :] + np.log(tilt[age])
    favourite_order = np.argsort(-(log_prior + rng.gumbel(size=(n_users, n_genres))), axis=1)
    n_favourite = rng.integers(2, 5, n_users)
    favourite = np.zeros((n_users, n_genres), dtype=bool)
    for k in range(4):
        has = n_favourite > k
        favourite[np.flatnonzero(has), favourite_order[has, k]] = True
    taste = np.maximum(rng.gamma(np.where(favourite, 2.5, 0.05)), 1e-12)
    taste /= taste.sum(axis=1, keepdims=True)

    signup_day, last_day = _lifecycle(rng, n_users, span)
    activity = rng.lognormal(-0.5 * ACTIVITY_SIGMA**2, ACTIVITY_SIGMA, n_users)  # mean 1
    base_rate = events_per_user_mean / (EVENTS_PER_SESSION * mean_active_days(span))
    device_cdf = np.cumsum(np.array([AGE_DEVICE_WEIGHTS[b] for b in AGE_BANDS]), axis=1)[age]
    device = np.minimum((rng.random(n_users)[:, None] > device_cdf).sum(axis=1), len(DEVICES) - 1)

    idx = np.arange(first_idx, first_idx + n_users, dtype=np.int64)
    return pd.DataFrame(
        {
            C.COL_USER: [user_id(u) for u in idx],
            C.COL_SIGNUP_DATE: [span.day(d) for d in signup_day],
            C.COL_COUNTRY: [COUNTRIES[c] for c in country],
            C.COL_AGE_BAND: [AGE_BANDS[a] for a in age],
            C.COL_GENDER: [GENDERS[g] for g in gender],
            COL_USER_IDX: idx,
            COL_SIGNUP_DAY: signup_day,
            COL_LAST_DAY: last_day,
            COL_SESSIONS_PER_DAY: activity * base_rate,
            COL_TASTE: list(taste),
            COL_DEVICE_IDX: device.astype(np.int64),
        }
    )


#: Users are drawn in blocks of this many, each from its own generator, so a Spark worker can
#: redraw any block by itself (nothing about users is shipped from the driver).
USERS_PER_BLOCK = 100


def user_block(
    seed: int, block: int, n_users: int, span: Span, events_per_user_mean: float = 40.0
) -> pd.DataFrame:
    """Users ``block * USERS_PER_BLOCK ..`` (at most :data:`USERS_PER_BLOCK`, fewer at the end).

    Drawn by :func:`make_users` with the generator ``default_rng([seed, 1, block])``.
    """
    first = block * USERS_PER_BLOCK
    if not 0 <= first < n_users:
        raise ValueError(f"block {block} is outside 0..{(n_users - 1) // USERS_PER_BLOCK}")
    size = min(USERS_PER_BLOCK, n_users - first)
    return make_users(
        np.random.default_rng([seed, 1, block]), size, span, events_per_user_mean, first_idx=first
    )


@dataclass(frozen=True)
class CatalogArrays:
    """The catalog as arrays, what :func:`simulate_user` needs (broadcast to Spark's workers).

    Attributes
    ----------
    item_ids : tuple of str
    genre_vec : numpy.ndarray
        ``(n_items, n_genres)`` latent genre weights.
    popularity, quality, duration : numpy.ndarray
        ``(n_items,)`` each.
    release_day : numpy.ndarray
        ``(n_items,)`` first watchable day relative to the span's first day.
    popularity_cdf : numpy.ndarray
        Cumulative popularity, for drawing what the site promotes.
    """

    item_ids: tuple[str, ...]
    genre_vec: np.ndarray
    popularity: np.ndarray
    quality: np.ndarray
    duration: np.ndarray
    release_day: np.ndarray
    popularity_cdf: np.ndarray

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame, span: Span) -> CatalogArrays:
        """Build from the frame :func:`make_catalog` returns."""
        popularity = catalog[COL_POPULARITY].to_numpy(dtype=float)
        cdf = np.cumsum(popularity)
        return cls(
            item_ids=tuple(catalog[C.COL_ITEM]),
            genre_vec=np.stack(catalog[COL_GENRE_VEC].to_numpy()).astype(float),
            popularity=popularity,
            quality=catalog[COL_QUALITY].to_numpy(dtype=float),
            duration=catalog[C.COL_DURATION].to_numpy(dtype=float),
            release_day=np.array(
                [(d - span.start_date).days for d in catalog[COL_RELEASE_DATE]], dtype=np.int64
            ),
            popularity_cdf=cdf / cdf[-1],
        )


@dataclass(frozen=True)
class UserParams:
    """One user's latent behaviour, as :func:`make_users` draws it.

    Attributes
    ----------
    user_idx : int
    signup_day, last_day : int
        First and last possible active day relative to the span's first day.
    sessions_per_day : float
        Mean sessions per active day.
    taste : numpy.ndarray
        ``(n_genres,)`` taste over genres.
    device_idx : int
        Primary device (index into :data:`DEVICES`).
    """

    user_idx: int
    signup_day: int
    last_day: int
    sessions_per_day: float
    taste: np.ndarray
    device_idx: int

    @classmethod
    def from_row(cls, row: Any) -> UserParams:
        """Build from a row (mapping or namedtuple-like) with the internal user columns."""
        get = row.__getitem__
        return cls(
            user_idx=int(get(COL_USER_IDX)),
            signup_day=int(get(COL_SIGNUP_DAY)),
            last_day=int(get(COL_LAST_DAY)),
            sessions_per_day=float(get(COL_SESSIONS_PER_DAY)),
            taste=np.asarray(get(COL_TASTE), dtype=float),
            device_idx=int(get(COL_DEVICE_IDX)),
        )


def user_rng(seed: int, user_idx: int, stream: int = 2) -> np.random.Generator:
    """The generator of one user's events (``stream`` 2) or of their garbage lines (``stream`` 3)."""
    return np.random.default_rng([seed, stream, user_idx])


def _draw(cdf: np.ndarray, rng: np.random.Generator) -> int:
    return int(min(np.searchsorted(cdf, rng.random(), side="right"), len(cdf) - 1))


def simulate_user(
    user: UserParams, catalog: CatalogArrays, span: Span, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Simulate one user's events over the span.

    Sessions fall on active days (weekends busier, evenings likelier), one after another. In a
    session the site shows a few items (impressions); the user plays one or a few items chosen by taste
    (dominant) and popularity among released items, watches them to the end with a probability
    that grows with the taste match and the item's quality, and then may like, favorite, rate,
    share or comment (more often on good matches) or dislike (abandoned poor matches).

    Parameters
    ----------
    user : UserParams
    catalog : CatalogArrays
    span : Span
    rng : numpy.random.Generator
        The user's own generator (:func:`user_rng`), so the result does not depend on other users.

    Returns
    -------
    list of dict
        Events in time order, each with the keys :data:`EVENT_COLUMNS` (``ts`` an ISO-8601 string in
        UTC with a ``Z``; ``watch_seconds`` only on play/progress/complete, ``rating`` only on rate,
        ``position_seconds`` only on play/progress/complete, otherwise ``None``). Every ``ts`` lies
        in the span, on or after the user's sign-up day and the item's release day.
    """
    first_day = max(user.signup_day, 0)
    last_day = min(user.last_day, span.days - 1)
    if last_day < first_day:
        return []
    n_days = last_day - first_day + 1
    n_sessions = int(rng.poisson(user.sessions_per_day * n_days))
    if n_sessions == 0:
        return []

    days = np.arange(first_day, last_day + 1)
    weekday = (span.start_date.weekday() + days) % 7
    day_weight = np.where(weekday >= 5, 1.3, 1.0)
    session_days = np.sort(rng.choice(days, size=n_sessions, p=day_weight / day_weight.sum()))
    evening = rng.random(n_sessions) < 0.7
    time_of_day = np.where(
        evening, rng.normal(20.5 * 3600, 2.0 * 3600, n_sessions), rng.uniform(0, SECONDS_PER_DAY, n_sessions)
    )
    end_epoch = span.end_epoch
    starts = span.start_epoch + session_days * SECONDS_PER_DAY + np.clip(time_of_day, 0, SECONDS_PER_DAY - 1)
    order = np.argsort(starts, kind="stable")
    starts, session_days = starts[order], session_days[order]

    affinity = catalog.genre_vec @ user.taste
    match = affinity / max(float(affinity.max()), 1e-12)
    weights = (match + TASTE_FLOOR) ** TASTE_GAMMA * catalog.popularity**POP_DELTA
    taste_cdf = np.cumsum(weights)
    taste_cdf /= taste_cdf[-1]

    uid = user_id(user.user_idx)
    completed: set[int] = set()
    resume_at: dict[int, float] = {}
    # (epoch seconds, event type, item, watch_seconds, rating, session, device, position)
    raw: list[tuple[float, str, int, float | None, float | None, str, str, float | None]] = []
    t_free = -math.inf

    for s in range(n_sessions):
        day = int(session_days[s])
        t = max(float(starts[s]), t_free + 60.0)
        if t >= end_epoch:
            break
        session = f"s{user.user_idx:07d}-{s:04d}"
        device = DEVICES[user.device_idx] if rng.random() < 0.75 else DEVICES[int(rng.integers(len(DEVICES)))]

        # the items the user plays this session: released, not twice, rarely a completed one again
        n_watch = 1 + int(rng.poisson(0.5))
        chosen: list[int] = []
        for _ in range(12 * n_watch):
            if len(chosen) == n_watch:
                break
            i = _draw(taste_cdf, rng)
            if catalog.release_day[i] > day or i in chosen:
                continue
            if i in completed and rng.random() >= REWATCH_PROB:
                continue
            chosen.append(i)
        if not chosen:
            continue

        # the row the site shows first: promoted (popular) and personalised items, then the first pick
        shown: list[int] = []
        for _ in range(int(rng.poisson(1.5))):
            cdf = catalog.popularity_cdf if rng.random() < 0.5 else taste_cdf
            i = _draw(cdf, rng)
            if catalog.release_day[i] <= day and i not in chosen and i not in shown:
                shown.append(i)
        for i in shown:
            raw.append((t, "impression", i, None, None, session, device, None))
            t += float(rng.uniform(0.5, 3.0))

        for i in chosen:
            duration = float(catalog.duration[i])
            m = float(match[i])
            q = float(catalog.quality[i])
            if rng.random() < 0.9:  # found in a row; otherwise from search or "continue watching"
                raw.append((t, "impression", i, None, None, session, device, None))
                t += float(rng.uniform(2.0, 30.0))
            start = resume_at.get(i, 0.0) if rng.random() < 0.7 else 0.0
            p_complete = min(0.95, max(0.02, 0.05 + 0.75 * m**1.5 + 0.06 * q))
            complete = rng.random() < p_complete
            if complete:
                end = max(start, duration * float(rng.uniform(0.96, 1.0)))
            else:
                frac = float(rng.beta(1.0 + 2.0 * m, 3.0))
                end = start + frac * max(0.0, 0.95 * duration - start)
            t_play = t
            raw.append((t_play, "play", i, 0.0, None, session, device, round(start, 1)))
            for quartile in (0.25, 0.5, 0.75):
                position = quartile * duration
                if start < position <= end:
                    watched = round(position - start, 1)
                    raw.append(
                        (t_play + watched, "progress", i, watched, None, session, device, round(position, 1))
                    )
            watched = round(end - start, 1)
            t = t_play + watched + float(rng.uniform(1.0, 20.0))
            raw.append(
                (t, "complete" if complete else "progress", i, watched, None, session, device, round(end, 1))
            )
            if complete:
                completed.add(i)
                resume_at.pop(i, None)
            else:
                resume_at[i] = end

            # explicit feedback, right after watching
            engaged = 1.0 if complete else 0.35
            feedback: list[tuple[str, float | None]] = []
            if rng.random() < 0.45 * m**2 * engaged:
                feedback.append(("like", None))
            elif not complete and rng.random() < 0.5 * (1.0 - m) ** 3:
                feedback.append(("dislike", None))
            if complete and rng.random() < 0.15 * m**2:
                feedback.append(("favorite", None))
            if rng.random() < (0.18 if complete else 0.05):
                score = 0.8 + 3.4 * m + 0.35 * q + 0.3 * complete + float(rng.normal(0.0, 0.5))
                feedback.append(("rate", min(C.RATING_MAX, max(C.RATING_MIN, round(score * 2.0) / 2.0))))
            if complete and rng.random() < 0.05 * m:
                feedback.append(("share", None))
            if rng.random() < 0.03 * engaged:
                feedback.append(("comment", None))
            for event_type, rating in feedback:
                t += float(rng.uniform(2.0, 40.0))
                raw.append((t, event_type, i, None, rating, session, device, None))
            t += float(rng.exponential(90.0)) + 5.0
        t_free = t

    raw = [r for r in raw if r[0] < end_epoch]
    if not raw:
        return []
    stamps = np.datetime_as_string(
        np.array([int(r[0]) for r in raw], dtype="datetime64[s]"), unit="s"
    ).tolist()
    return [
        {
            C.COL_EVENT_ID: f"e{user.user_idx:07d}-{n:05d}",
            C.COL_USER: uid,
            C.COL_ITEM: catalog.item_ids[r[2]],
            C.COL_EVENT_TYPE: r[1],
            C.COL_TS: f"{stamps[n]}Z",
            C.COL_WATCH_SECONDS: r[3],
            C.COL_RATING: r[4],
            C.COL_SESSION: r[5],
            C.COL_DEVICE: r[6],
            C.COL_POSITION: r[7],
        }
        for n, r in enumerate(raw)
    ]


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def corrupt_event(
    event: dict[str, Any],
    kind: str,
    rng: np.random.Generator,
    n_items: int,
    span: Span,
    earlier_id: str | None = None,
) -> str:
    """One garbage JSON line made from ``event`` (a dict of :func:`simulate_user`).

    Parameters
    ----------
    event : dict
        A valid event; not modified.
    kind : str
        One of :data:`BAD_KINDS`.
    rng : numpy.random.Generator
    n_items : int
        Catalog size (an unknown item id is one past it).
    span : Span
        A far-future ts lies a year or more after it.
    earlier_id : str, optional
        For ``duplicate_event_id``: the id of an earlier valid event to repeat.

    Returns
    -------
    str
        The line, without a newline.
    """
    rec = dict(event)
    if kind == "malformed_json":
        text = _dumps(rec)
        u = rng.random()
        if u < 0.5:
            return text[: int(rng.integers(5, len(text) - 1))]  # a cut-off write
        if u < 0.75:
            return repr(rec)  # a Python dict where JSON was expected (single quotes, None)
        return f"{rec[C.COL_TS]} ERROR player: {rec[C.COL_EVENT_TYPE]} beacon lost for {rec[C.COL_USER]}"
    if kind == "missing_user_id":
        if rng.random() < 0.5:
            del rec[C.COL_USER]
        else:
            rec[C.COL_USER] = None
    elif kind == "unknown_event_type":
        rec[C.COL_EVENT_TYPE] = str(rng.choice(UNKNOWN_EVENT_TYPES))
    elif kind == "negative_watch_seconds":
        if rec[C.COL_EVENT_TYPE] not in C.WATCH_EVENT_TYPES:
            rec[C.COL_EVENT_TYPE] = "progress"
        rec[C.COL_WATCH_SECONDS] = -round(float(rng.uniform(1.0, 600.0)), 1)
    elif kind == "rating_out_of_range":
        rec.update(
            {C.COL_EVENT_TYPE: "rate", C.COL_RATING: 7.0, C.COL_WATCH_SECONDS: None, C.COL_POSITION: None}
        )
    elif kind == "ts_far_future":
        future = (
            span.end_epoch
            + int(rng.integers(365, 3650)) * SECONDS_PER_DAY
            + int(rng.integers(SECONDS_PER_DAY))
        )
        rec[C.COL_TS] = f"{np.datetime_as_string(np.datetime64(future, 's'), unit='s')}Z"
    elif kind == "unknown_item_id":
        rec[C.COL_ITEM] = item_id(n_items + int(rng.integers(0, 1000)))
    elif kind == "duplicate_event_id":
        if earlier_id is None:
            raise ValueError("duplicate_event_id needs earlier_id")
        rec[C.COL_EVENT_ID] = earlier_id
    else:
        raise ValueError(f"unknown bad kind {kind!r} (known: {', '.join(BAD_KINDS)})")
    return _dumps(rec)


def render_event_lines(
    events: Sequence[dict[str, Any]],
    bad_fraction: float,
    rng: np.random.Generator,
    n_items: int,
    span: Span,
) -> tuple[list[str], int]:
    """JSON lines of ``events``, with about ``bad_fraction`` of them replaced by garbage.

    Each line is bad independently with probability ``bad_fraction``; its kind is drawn uniformly
    from :data:`BAD_KINDS` (a duplicate id repeats the id of an earlier valid line of the same user;
    with none yet, the line loses its user id instead).

    Parameters
    ----------
    events : sequence of dict
        One user's events from :func:`simulate_user`.
    bad_fraction : float
        In ``[0, 1]``.
    rng : numpy.random.Generator
        The user's garbage generator (``user_rng(seed, user_idx, stream=3)``).
    n_items : int
    span : Span

    Returns
    -------
    lines : list of str
    n_bad : int
        How many lines are garbage.
    """
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"bad_fraction must be in [0, 1], got {bad_fraction}")
    if bad_fraction == 0.0:
        return [_dumps(e) for e in events], 0
    bad = rng.random(len(events)) < bad_fraction
    kinds = rng.integers(0, len(BAD_KINDS), len(events))
    lines: list[str] = []
    last_valid_id: str | None = None
    for event, is_bad, k in zip(events, bad, kinds, strict=True):
        if not is_bad:
            lines.append(_dumps(event))
            last_valid_id = event[C.COL_EVENT_ID]
            continue
        kind = BAD_KINDS[k]
        if kind == "duplicate_event_id" and last_valid_id is None:
            kind = "missing_user_id"
        lines.append(corrupt_event(event, kind, rng, n_items, span, earlier_id=last_valid_id))
    return lines, int(bad.sum())


def n_user_blocks(n_users: int) -> int:
    """Number of :data:`USERS_PER_BLOCK` blocks of ``n_users`` users."""
    return math.ceil(n_users / USERS_PER_BLOCK)


def build_world(
    seed: int, n_users: int, n_items: int, span: Span, events_per_user_mean: float = 40.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The catalog and users :func:`generate` writes for these arguments (with internal columns).

    Returns
    -------
    catalog : pandas.DataFrame
        From :func:`make_catalog` with the generator ``default_rng([seed, 0])``.
    users : pandas.DataFrame
        The blocks of :func:`user_block`, in order.
    """
    catalog = make_catalog(np.random.default_rng([seed, 0]), n_items, span)
    users = pd.concat(
        [user_block(seed, b, n_users, span, events_per_user_mean) for b in range(n_user_blocks(n_users))],
        ignore_index=True,
    )
    return catalog, users


def simulate_users_batch(
    users: pd.DataFrame,
    catalog: CatalogArrays,
    span: Span,
    seed: int,
    bad_fraction: float = 0.0,
) -> tuple[list[str], int]:
    """Event lines of a batch of users (rows with the internal user columns), user after user.

    Returns
    -------
    lines : list of str
    n_bad : int
    """
    lines: list[str] = []
    n_bad = 0
    n_items = len(catalog.item_ids)
    for row in users.itertuples(index=False):
        params = UserParams.from_row(row._asdict())
        events = simulate_user(params, catalog, span, user_rng(seed, params.user_idx))
        user_lines, user_bad = render_event_lines(
            events, bad_fraction, user_rng(seed, params.user_idx, stream=3), n_items, span
        )
        lines.extend(user_lines)
        n_bad += user_bad
    return lines, n_bad


#: Users per Spark partition when simulating (about 200k events each at 40 events per user).
USERS_PER_PARTITION = 5000


def default_partitions(spark: SparkSession, n_users: int) -> int:
    """Partitions for simulating ``n_users``: one per :data:`USERS_PER_PARTITION` users, at least
    the default parallelism, at most one per block of :data:`USERS_PER_BLOCK` users."""
    wanted = max(spark.sparkContext.defaultParallelism, math.ceil(n_users / USERS_PER_PARTITION))
    return max(1, min(n_user_blocks(n_users), wanted))


def _write_items(catalog: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: never read as input
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in catalog[list(ITEM_COLUMNS)].to_dict(orient="records"):
            fh.write(_dumps(rec) + "\n")
    tmp.replace(path)


def _write_users(users: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: never read as input
    out = users[list(USER_COLUMNS)].copy()
    out[C.COL_SIGNUP_DATE] = [d.isoformat() for d in out[C.COL_SIGNUP_DATE]]
    out.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


def _rename_parts(spark: SparkSession, directory: str, suffix: str) -> int:
    """Rename Spark's ``part-*.txt`` files in ``directory`` to ``part-*<suffix>`` (checksums follow)."""
    jvm = spark._jvm  # type: ignore[attr-defined]
    path = jvm.org.apache.hadoop.fs.Path(directory)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    renamed = 0
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if name.startswith("part-") and name.endswith(".txt"):
            fs.rename(status.getPath(), jvm.org.apache.hadoop.fs.Path(path, name[: -len(".txt")] + suffix))
            renamed += 1
    return renamed


def generate(
    spark: SparkSession,
    out_dir: str,
    n_users: int,
    n_items: int,
    days: int,
    end_date: dt.date,
    seed: int = 42,
    bad_fraction: float = 0.0,
    events_per_user_mean: float = 40.0,
    num_partitions: int | None = None,
) -> dict[str, int]:
    """Write a synthetic sample into ``out_dir``: ``items.jsonl``, ``users.csv``, ``events.jsonl/``.

    The catalog and users are drawn on the driver and written there. Events are simulated on
    Spark's workers: a DataFrame of user-block numbers (consecutive blocks per partition) goes
    through ``mapInPandas``, which redraws each block's users (:func:`user_block`, nothing about
    users is shipped) and simulates them against the broadcast catalog; Spark writes the lines to
    ``events.jsonl/part-*.json``, users in index order, each user's events in time order. Existing
    outputs are replaced.

    Parameters
    ----------
    spark : SparkSession
    out_dir : str
        A local directory (created if needed).
    n_users, n_items : int
        Sizes, at least 1 each.
    days : int
        Days of events, ending at ``end_date`` (inclusive); at least 1.
    end_date : datetime.date
    seed : int
        Same arguments, same rows (whatever ``num_partitions``).
    bad_fraction : float
        Share of event lines replaced by garbage (:data:`BAD_KINDS`), in ``[0, 1]``; 0 writes only
        valid records.
    events_per_user_mean : float
        Target mean events per user (> 0); the measured mean lands near it.
    num_partitions : int, optional
        Spark partitions of the simulation; default :func:`default_partitions`.

    Returns
    -------
    dict of str to int
        ``items``, ``users``, ``events`` (lines written, garbage included), ``bad_events``.

    Raises
    ------
    ValueError
        On an argument out of range, before any work.
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("days", days)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if events_per_user_mean <= 0:
        raise ValueError(f"events_per_user_mean must be > 0, got {events_per_user_mean}")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"bad_fraction must be in [0, 1], got {bad_fraction}")
    if num_partitions is not None and num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    span = Span(end_date=end_date, days=days)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    catalog, users = build_world(seed, n_users, n_items, span, events_per_user_mean)
    _write_items(catalog, out / ITEMS_FILE)
    _write_users(users, out / USERS_FILE)
    n_new = int((catalog[COL_RELEASE_DATE] > span.start_date).sum())
    log.info(
        "sample: %d items (%d released during the span) and %d users written to %s in %.1f s",
        n_items,
        n_new,
        n_users,
        out,
        time.perf_counter() - t0,
    )

    t1 = time.perf_counter()
    parts = num_partitions or default_partitions(spark, n_users)
    arrays = spark.sparkContext.broadcast(CatalogArrays.from_catalog(catalog, span))
    bad_counter = spark.sparkContext.accumulator(0)

    def simulate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cat = arrays.value
        for batch in batches:
            for block in batch["id"]:
                users_of_block = user_block(seed, int(block), n_users, span, events_per_user_mean)
                lines, n_bad = simulate_users_batch(users_of_block, cat, span, seed, bad_fraction)
                bad_counter.add(n_bad)
                if lines:
                    yield pd.DataFrame({"value": lines})

    blocks = spark.range(0, n_user_blocks(n_users), numPartitions=parts)  # consecutive blocks per partition
    events_path = out / EVENTS_DIR
    if events_path.is_file():
        events_path.unlink()
    log.info("sample: simulating events of %d users in %d partitions", n_users, parts)
    blocks.mapInPandas(simulate, schema="value string").write.mode("overwrite").text(str(events_path))
    _rename_parts(spark, str(events_path), ".json")
    arrays.unpersist()
    n_events = spark.read.text(str(events_path)).count()
    log.info(
        "sample: %d event lines (%d garbage) written to %s in %.1f s",
        n_events,
        bad_counter.value,
        events_path,
        time.perf_counter() - t1,
    )
    return {"items": n_items, "users": n_users, "events": int(n_events), "bad_events": int(bad_counter.value)}
