"""The sample world's vocabularies, output layout, internal columns and model constants."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

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

COL_STYLE = "style"  #: an item's latent taste factor beyond genre (``media_taste`` times standard normals)

COL_STYLE_PREF = "style_pref"  #: a user's preference over the style factor (standard normals)

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

STYLE_DIM = 4  #: dimensions of the latent taste factor beyond genre (``media_taste``)

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


#: Users are drawn in blocks of this many, each from its own generator, so a Spark worker can
#: redraw any block by itself (nothing about users is shipped from the driver).
USERS_PER_BLOCK = 100


#: Users per Spark partition when simulating (about 200k events each at 40 events per user).
USERS_PER_PARTITION = 5000
