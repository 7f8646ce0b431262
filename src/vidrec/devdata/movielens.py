"""Adapters from the MovieLens formats to vidrec's raw input contract (docs/contract.md).

A MovieLens folder becomes a raw folder that ``ingest`` reads like a day of the video site's logs:

- ``events.parquet`` (or ``events.jsonl``): one ``rate`` event per rating, with a deterministic
  ``event_id`` (``ml-<user>-<item>-<epoch seconds>``), ``ts`` as ISO-8601 UTC with ``Z`` and the
  ``rating``;
- ``items.jsonl``: the catalog, ``title`` without its ``(year)`` suffix, ``release_year``, ``genres``
  as a list, empty ``directors``/``cast``, null ``description``/``language``/``duration_seconds``;
- ``users.csv``: ``user_id``, ``age_band`` bucketed from the age, ``gender``, null
  ``signup_date``/``country`` (every rating user is listed, with nulls where the source has no
  profile).

Formats, detected from the files present (see :func:`detect_format`):

==============  ==============================================================================
``recbole``     RecBole atomic files ``<name>.inter`` / ``.item`` / ``.user``: tab-separated, typed
                headers (``user_id:token``), ``token_seq`` fields separated by spaces, UTF-8
``ml-100k``     ``u.data`` (tab), ``u.item`` and ``u.user`` (``|``), latin-1; 19 genre flags
``ml-1m``       ``ratings.dat`` / ``movies.dat`` / ``users.dat`` (``::``), latin-1; also ML-10M,
                which has no ``users.dat``
``ml-latest``   ``ratings.csv`` / ``movies.csv`` (ML-latest, ML-20M, ML-25M), UTF-8, no users
==============  ==============================================================================

Genre placeholders (ML-100k's ``unknown`` flag, ML-latest's ``(no genres listed)``) become an empty
list. Everything here is pandas/pyarrow: the MovieLens files fit in a driver's memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vidrec.constants import (
    COL_AGE_BAND,
    COL_CAST,
    COL_COUNTRY,
    COL_DESCRIPTION,
    COL_DIRECTORS,
    COL_DURATION,
    COL_EVENT_ID,
    COL_EVENT_TYPE,
    COL_GENDER,
    COL_GENRES,
    COL_ITEM,
    COL_LANGUAGE,
    COL_RATING,
    COL_RELEASE_YEAR,
    COL_SIGNUP_DATE,
    COL_TITLE,
    COL_TS,
    COL_USER,
    COL_WATCH_SECONDS,
)

FORMAT_RECBOLE = "recbole"
FORMAT_ML100K = "ml-100k"
FORMAT_ML1M = "ml-1m"
FORMAT_ML_LATEST = "ml-latest"
#: Formats in detection order: the first whose marker file is present wins.
FORMATS: tuple[str, ...] = (FORMAT_RECBOLE, FORMAT_ML100K, FORMAT_ML1M, FORMAT_ML_LATEST)

EVENTS_FILE_STEM = "events"
ITEMS_FILE = "items.jsonl"
USERS_FILE = "users.csv"
EVENTS_FORMATS: tuple[str, ...] = ("parquet", "jsonl")

#: The only event type MovieLens produces.
RATE_EVENT = "rate"
EVENT_ID_PREFIX = "ml"
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: Genres of ML-100k's 19 binary flags, in ``u.item`` column order (as in its ``u.genre``).
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: Source genre values that mean "no genre".
GENRE_PLACEHOLDERS: frozenset[str] = frozenset({"unknown", "(no genres listed)"})

#: ``(lowest age, band)`` in increasing order; an age gets the last band whose lowest age it reaches.
#: ML-1M's age codes (1, 18, 25, 35, 45, 50, 56) are lower bounds of its own groups and land in the
#: matching band when read as ages.
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "<18"),
    (18, "18-24"),
    (25, "25-34"),
    (35, "35-44"),
    (45, "45-54"),
    (55, "55+"),
)

_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
_DOUBLE_COLON = b"::"
_UNIT_SEP = "\x1f"

EVENT_COLUMNS: tuple[str, ...] = (
    COL_EVENT_ID,
    COL_USER,
    COL_ITEM,
    COL_EVENT_TYPE,
    COL_TS,
    COL_WATCH_SECONDS,
    COL_RATING,
)
ITEM_COLUMNS: tuple[str, ...] = (
    COL_ITEM,
    COL_TITLE,
    COL_GENRES,
    COL_DIRECTORS,
    COL_CAST,
    COL_RELEASE_YEAR,
    COL_DURATION,
    COL_DESCRIPTION,
    COL_LANGUAGE,
)
USER_COLUMNS: tuple[str, ...] = (COL_USER, COL_SIGNUP_DATE, COL_COUNTRY, COL_AGE_BAND, COL_GENDER)

# Private names of the normalised ratings frame every reader returns.
_R_USER, _R_ITEM, _R_RATING, _R_SECONDS = "user", "item", "rating", "seconds"


@dataclass
class MovieLensData:
    """One MovieLens dataset in the shape of the raw input contract.

    Attributes
    ----------
    fmt : str
        The source format (one of :data:`FORMATS`).
    events : pyarrow.Table
        Columns :data:`EVENT_COLUMNS`, one ``rate`` event per rating.
    items : pandas.DataFrame
        Columns :data:`ITEM_COLUMNS`, one row per catalog item.
    users : pandas.DataFrame
        Columns :data:`USER_COLUMNS`, one row per user (profile or rating user).
    """

    fmt: str
    events: pa.Table
    items: pd.DataFrame
    users: pd.DataFrame


@dataclass
class ConversionSummary:
    """What :func:`convert_movielens` wrote."""

    fmt: str
    n_events: int
    n_users: int
    n_items: int
    paths: dict[str, Path] = field(default_factory=dict)


# --- small pure helpers ------------------------------------------------------------------------


def strip_title_year(title: str) -> tuple[str, int | None]:
    """Split MovieLens' ``"Title (1995)"`` into the title and the year.

    A trailing year range (``"(2006-2007)"``, ``"(2007-)"``) gives its first year; a title with no
    year suffix comes back stripped, with ``None``.

    Examples
    --------
    >>> strip_title_year("Usual Suspects, The (1995)")
    ('Usual Suspects, The', 1995)
    >>> strip_title_year("Babylon 5")
    ('Babylon 5', None)
    """
    text = title.strip()
    match = _YEAR_SUFFIX.search(text)
    if match is None:
        return text, None
    stripped = text[: match.start()].strip()
    return (stripped or text), int(match.group(1))


def age_band(age: float | int | None) -> str | None:
    """The band of :data:`AGE_BANDS` that ``age`` falls in; ``None`` for a missing or negative age.

    Examples
    --------
    >>> age_band(24), age_band(56), age_band(None)
    ('18-24', '55+', None)
    """
    if age is None or pd.isna(age) or age < 0:
        return None
    band = None
    for lowest, name in AGE_BANDS:
        if age >= lowest:
            band = name
    return band


def clean_genres(genres: list[str]) -> list[str]:
    """Drop empty names and placeholders (:data:`GENRE_PLACEHOLDERS`), keep order, drop repeats."""
    out: list[str] = []
    for g in genres:
        g = g.strip()
        if g and g not in GENRE_PLACEHOLDERS and g not in out:
            out.append(g)
    return out


def _year_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _age_or_none(text: str) -> int | None:
    return _year_or_none(text)


# --- detection -----------------------------------------------------------------------------------


def _recbole_stem(src: Path) -> str | None:
    stems = sorted(p.stem for p in src.glob("*.inter"))
    if not stems:
        return None
    if len(stems) > 1:
        raise ValueError(f"{src}: more than one RecBole dataset ({', '.join(stems)}); keep one per folder")
    return stems[0]


#: Marker file of each non-RecBole format, in detection order.
_MARKERS: tuple[tuple[str, str], ...] = (
    (FORMAT_ML100K, "u.data"),
    (FORMAT_ML1M, "ratings.dat"),
    (FORMAT_ML_LATEST, "ratings.csv"),
)


def detect_format(src: str | Path) -> str:
    """The MovieLens format of the files in folder ``src``.

    Marker files, checked in this order: ``*.inter`` (RecBole), ``u.data`` (ML-100k),
    ``ratings.dat`` (ML-1M/10M), ``ratings.csv`` (ML-latest/20M/25M).

    Raises
    ------
    ValueError
        When ``src`` is not a folder or holds none of the marker files.
    """
    folder = Path(src)
    if not folder.is_dir():
        raise ValueError(f"MovieLens source {folder} is not a folder")
    if _recbole_stem(folder) is not None:
        return FORMAT_RECBOLE
    for fmt, marker in _MARKERS:
        if (folder / marker).is_file():
            return fmt
    present = ", ".join(sorted(p.name for p in folder.iterdir())[:20]) or "(empty)"
    raise ValueError(
        f"{folder}: no MovieLens files found (expected *.inter, u.data, ratings.dat or ratings.csv); "
        f"found: {present}"
    )


# --- readers: each returns (ratings, items, users) in private normalised frames ---------------------


def _read_table(
    source: Path | io.BytesIO, sep: str, encoding: str, header: int | None = None
) -> pd.DataFrame:
    """Every field as a string, nothing parsed as NA, quotes taken literally."""
    return pd.read_csv(
        source,
        sep=sep,
        header=header,
        dtype=str,
        keep_default_na=False,
        encoding=encoding,
        quoting=csv.QUOTE_NONE,
        engine="c",
    )


def _read_double_colon(path: Path) -> pd.DataFrame:
    """Read a ``::``-separated ``.dat`` file (latin-1) with the fast C parser."""
    text = path.read_bytes().replace(_DOUBLE_COLON, _UNIT_SEP.encode())
    return _read_table(io.BytesIO(text), _UNIT_SEP, "latin-1")


def _ratings(user: pd.Series, item: pd.Series, rating: pd.Series, seconds: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            _R_USER: user.astype(str).str.strip(),
            _R_ITEM: item.astype(str).str.strip(),
            _R_RATING: pd.to_numeric(rating, errors="raise").astype("float64"),
            _R_SECONDS: pd.to_numeric(seconds, errors="raise").astype("float64").round().astype("int64"),
        }
    )
    return out


def _items(
    item_ids: pd.Series, titles: pd.Series, genres: list[list[str]], years: list[int | None]
) -> pd.DataFrame:
    """Build the catalog: year from the title suffix, else from ``years``."""
    rows = []
    for item_id, raw_title, item_genres, year_hint in zip(item_ids, titles, genres, years, strict=True):
        title, year = strip_title_year(str(raw_title))
        rows.append(
            {
                COL_ITEM: str(item_id).strip(),
                COL_TITLE: title,
                COL_GENRES: clean_genres(item_genres),
                COL_DIRECTORS: [],
                COL_CAST: [],
                COL_RELEASE_YEAR: year if year is not None else year_hint,
                COL_DURATION: None,
                COL_DESCRIPTION: None,
                COL_LANGUAGE: None,
            }
        )
    items = pd.DataFrame(rows, columns=list(ITEM_COLUMNS))
    items[COL_RELEASE_YEAR] = items[COL_RELEASE_YEAR].astype("Int64")
    return items


def _users(user_ids: pd.Series, ages: list[int | None], genders: pd.Series) -> pd.DataFrame:
    nulls = [None] * len(user_ids)
    return pd.DataFrame(
        {
            COL_USER: user_ids.astype(str).str.strip().to_numpy(),
            COL_SIGNUP_DATE: nulls,
            COL_COUNTRY: nulls,
            COL_AGE_BAND: [age_band(a) for a in ages],
            COL_GENDER: [g.strip() or None for g in genders.astype(str)],
        },
        columns=list(USER_COLUMNS),
    )


_Frames = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]


def _read_ml100k(src: Path) -> _Frames:
    data = _read_table(src / "u.data", "\t", "latin-1")
    ratings = _ratings(data[0], data[1], data[2], data[3])
    raw = _read_table(src / "u.item", "|", "latin-1")
    n_flags = len(ML100K_GENRES)
    if raw.shape[1] != 5 + n_flags:
        raise ValueError(f"{src / 'u.item'}: expected {5 + n_flags} '|'-separated fields, got {raw.shape[1]}")
    flags = raw.iloc[:, 5:].to_numpy() == "1"
    genres = [[g for g, on in zip(ML100K_GENRES, row, strict=True) if on] for row in flags]
    # Release date is "01-Jan-1995": its year is the fallback when the title has none.
    years = [_year_or_none(d[-4:]) for d in raw[2]]
    items = _items(raw[0], raw[1], genres, years)
    users = None
    if (src / "u.user").is_file():
        u = _read_table(src / "u.user", "|", "latin-1")
        users = _users(u[0], [_age_or_none(a) for a in u[1]], u[2])
    return ratings, items, users


def _read_ml1m(src: Path) -> _Frames:
    data = _read_double_colon(src / "ratings.dat")
    ratings = _ratings(data[0], data[1], data[2], data[3])
    raw = _read_double_colon(src / "movies.dat")
    items = _items(raw[0], raw[1], [g.split("|") for g in raw[2]], [None] * len(raw))
    users = None
    if (src / "users.dat").is_file():
        u = _read_double_colon(src / "users.dat")  # UserID::Gender::Age::Occupation::Zip-code
        users = _users(u[0], [_age_or_none(a) for a in u[2]], u[1])
    return ratings, items, users


def _read_ml_latest(src: Path) -> _Frames:
    data = pd.read_csv(src / "ratings.csv", dtype={"userId": str, "movieId": str}, encoding="utf-8")
    ratings = _ratings(data["userId"], data["movieId"], data["rating"], data["timestamp"])
    raw = pd.read_csv(src / "movies.csv", dtype=str, keep_default_na=False, encoding="utf-8")
    items = _items(raw["movieId"], raw["title"], [g.split("|") for g in raw["genres"]], [None] * len(raw))
    return ratings, items, None


def _read_recbole_file(path: Path) -> pd.DataFrame:
    """Read an atomic file, naming columns without their ``:type`` suffix."""
    frame = _read_table(path, "\t", "utf-8", header=0)
    frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
    return frame


def _require(frame: pd.DataFrame, path: Path, *names: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)} (has {', '.join(frame.columns)})")


def _first_present(frame: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def _token_seq(text: str) -> list[str]:
    # "(no genres listed)" holds spaces, the token_seq separator: take it out before splitting.
    return text.replace("(no genres listed)", " ").split()


def _read_recbole(src: Path) -> _Frames:
    stem = _recbole_stem(src)
    inter_path, item_path, user_path = (src / f"{stem}.{ext}" for ext in ("inter", "item", "user"))
    inter = _read_recbole_file(inter_path)
    _require(inter, inter_path, "user_id", "item_id", "rating", "timestamp")
    ratings = _ratings(inter["user_id"], inter["item_id"], inter["rating"], inter["timestamp"])
    if not item_path.is_file():
        raise ValueError(f"{src}: RecBole dataset '{stem}' has no {item_path.name} (titles are required)")
    raw = _read_recbole_file(item_path)
    title_col = _first_present(raw, "movie_title", "title")
    if title_col is None:
        raise ValueError(f"{item_path}: no movie_title or title field (has {', '.join(raw.columns)})")
    _require(raw, item_path, "item_id")
    genre_col = _first_present(raw, "genre", "class", "genres")
    genres = [_token_seq(g) for g in raw[genre_col]] if genre_col else [[] for _ in range(len(raw))]
    year_col = _first_present(raw, "release_year", "year")
    years: list[int | None] = [_year_or_none(y) for y in raw[year_col]] if year_col else [None] * len(raw)
    items = _items(raw["item_id"], raw[title_col], genres, years)
    users = None
    if user_path.is_file():
        u = _read_recbole_file(user_path)
        _require(u, user_path, "user_id")
        ages: list[int | None] = (
            [_age_or_none(a) for a in u["age"]] if "age" in u.columns else [None] * len(u)
        )
        genders = u["gender"] if "gender" in u.columns else pd.Series([""] * len(u))
        users = _users(u["user_id"], ages, genders)
    return ratings, items, users


_READERS = {
    FORMAT_RECBOLE: _read_recbole,
    FORMAT_ML100K: _read_ml100k,
    FORMAT_ML1M: _read_ml1m,
    FORMAT_ML_LATEST: _read_ml_latest,
}


# --- contract frames ----------------------------------------------------------------------------------


def _event_table(ratings: pd.DataFrame) -> pa.Table:
    """``rate`` events from the normalised ratings, built column-wise in Arrow."""
    user = pa.array(ratings[_R_USER].to_numpy(), type=pa.string())
    item = pa.array(ratings[_R_ITEM].to_numpy(), type=pa.string())
    seconds = ratings[_R_SECONDS].to_numpy()
    # A repeated (user, item, second) would repeat the event id: number the repeats (-1, -2, ...).
    repeat = ratings.groupby([_R_USER, _R_ITEM, _R_SECONDS], sort=False).cumcount().to_numpy()
    sec_str = pc.cast(pa.array(seconds), pa.string())
    event_id = pc.binary_join_element_wise(EVENT_ID_PREFIX, user, item, sec_str, "-")
    if repeat.any():
        suffix = pa.array([f"-{r}" if r else "" for r in repeat], type=pa.string())
        event_id = pc.binary_join_element_wise(event_id, suffix, "")
    ts = pc.strftime(pa.array(seconds, type=pa.timestamp("s")), format=TS_FORMAT)
    n = len(ratings)
    return pa.table(
        {
            COL_EVENT_ID: event_id,
            COL_USER: user,
            COL_ITEM: item,
            COL_EVENT_TYPE: pa.array([RATE_EVENT] * n, type=pa.string()),
            COL_TS: ts,
            COL_WATCH_SECONDS: pa.nulls(n, type=pa.float64()),
            COL_RATING: pa.array(ratings[_R_RATING].to_numpy(), type=pa.float64()),
        }
    )


def _all_users(ratings: pd.DataFrame, users: pd.DataFrame | None) -> pd.DataFrame:
    """Profiles, plus a row of nulls for every rating user without one; sorted by id."""
    rating_users = pd.Series(ratings[_R_USER].unique())
    if users is None:
        users = _users(rating_users, [None] * len(rating_users), pd.Series([""] * len(rating_users)))
    else:
        users = users.drop_duplicates(COL_USER, keep="last")
        extra = rating_users[~rating_users.isin(users[COL_USER])]
        if len(extra):
            users = pd.concat([users, _users(extra, [None] * len(extra), pd.Series([""] * len(extra)))])
    return _sort_by_id(users, COL_USER)


def _sort_by_id(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    """Numeric ids in numeric order, others after them in text order."""
    numeric = pd.to_numeric(frame[col], errors="coerce")
    # lexsort's last key is the primary one: numeric ids first, by value, then the others by text.
    keys = (frame[col].to_numpy(dtype=str), numeric.fillna(0).to_numpy(), numeric.isna().to_numpy())
    order = np.lexsort(keys)
    return frame.iloc[order].reset_index(drop=True)


def read_movielens(src: str | Path, fmt: str | None = None) -> MovieLensData:
    """Read the MovieLens dataset in folder ``src`` into the raw input contract.

    Parameters
    ----------
    src : str or Path
        Folder with the dataset's files.
    fmt : str, optional
        One of :data:`FORMATS`; detected with :func:`detect_format` when omitted.

    Returns
    -------
    MovieLensData

    Raises
    ------
    ValueError
        On an unknown format, a folder without MovieLens files or a malformed file.
    """
    folder = Path(src)
    if fmt is None:
        fmt = detect_format(folder)
    if fmt not in _READERS:
        raise ValueError(f"unknown MovieLens format '{fmt}' (known: {', '.join(FORMATS)})")
    ratings, items, users = _READERS[fmt](folder)
    if ratings[_R_RATING].isna().any():
        raise ValueError(f"{folder}: {int(ratings[_R_RATING].isna().sum())} rating(s) without a value")
    items = _sort_by_id(items.drop_duplicates(COL_ITEM, keep="last"), COL_ITEM)
    return MovieLensData(fmt=fmt, events=_event_table(ratings), items=items, users=_all_users(ratings, users))


# --- writers -------------------------------------------------------------------------------------------


def _jsonable(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return value


def write_raw(data: MovieLensData, out: str | Path, events_format: str = "parquet") -> dict[str, Path]:
    """Write ``data`` as the raw files ``ingest`` reads: events, ``items.jsonl``, ``users.csv``.

    Parameters
    ----------
    data : MovieLensData
    out : str or Path
        Folder to write into (created if missing); existing files of the same names are replaced.
    events_format : {"parquet", "jsonl"}

    Returns
    -------
    dict
        ``{"events": path, "items": path, "users": path}``.

    Raises
    ------
    ValueError
        On an unknown ``events_format``.
    """
    if events_format not in EVENTS_FORMATS:
        raise ValueError(f"events_format must be one of {', '.join(EVENTS_FORMATS)}, got '{events_format}'")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    events_path = folder / f"{EVENTS_FILE_STEM}.{events_format}"
    if events_format == "parquet":
        pq.write_table(data.events, events_path)
    else:
        data.events.to_pandas().to_json(events_path, orient="records", lines=True, force_ascii=False)
    items_path = folder / ITEMS_FILE
    with items_path.open("w", encoding="utf-8") as fh:
        for record in data.items.to_dict(orient="records"):
            fh.write(json.dumps({k: _jsonable(v) for k, v in record.items()}, ensure_ascii=False) + "\n")
    users_path = folder / USERS_FILE
    data.users.to_csv(users_path, index=False, encoding="utf-8")
    return {"events": events_path, "items": items_path, "users": users_path}


def convert_movielens(
    src: str | Path, out: str | Path, fmt: str | None = None, events_format: str = "parquet"
) -> ConversionSummary:
    """Convert the MovieLens dataset in ``src`` into a raw folder ``out``.

    Parameters
    ----------
    src : str or Path
        Folder with the MovieLens files (format detected unless ``fmt`` is given).
    out : str or Path
        Raw folder to write (see :func:`write_raw`).
    fmt : str, optional
        One of :data:`FORMATS`.
    events_format : {"parquet", "jsonl"}

    Returns
    -------
    ConversionSummary
        Format, counts of events, users and items, and the paths written.
    """
    data = read_movielens(src, fmt)
    paths = write_raw(data, out, events_format)
    return ConversionSummary(
        fmt=data.fmt,
        n_events=data.events.num_rows,
        n_users=len(data.users),
        n_items=len(data.items),
        paths=paths,
    )
