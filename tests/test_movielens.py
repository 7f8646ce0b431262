"""MovieLens adapters: each format's hand-written fixture converts to the raw input contract.

The fixtures under ``tests/fixtures/movielens/`` are a few lines of each format (ML-100k with a
latin-1 title, ML-1M with ``::`` and a colon in a title, ML-latest with a quoted title, a year range and
``(no genres listed)``, RecBole atomic files). The converted files are read back as ``ingest`` reads
them and compared with the rows written out here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

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
from vidrec.devdata.movielens import (
    EVENT_COLUMNS,
    FORMAT_ML1M,
    FORMAT_ML100K,
    FORMAT_ML_LATEST,
    FORMAT_RECBOLE,
    USER_COLUMNS,
    age_band,
    clean_genres,
    convert_movielens,
    detect_format,
    read_movielens,
    strip_title_year,
    write_raw,
)

FIXTURES = Path(__file__).parent / "fixtures" / "movielens"


def _events(path: Path) -> list[tuple]:
    """Events as (event_id, user, item, type, ts, rating) tuples; watch_seconds must be null."""
    rows = (
        pq.read_table(path).to_pylist()
        if path.suffix == ".parquet"
        else [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    )
    assert all(r[COL_WATCH_SECONDS] is None for r in rows)
    return [
        (r[COL_EVENT_ID], r[COL_USER], r[COL_ITEM], r[COL_EVENT_TYPE], r[COL_TS], r[COL_RATING]) for r in rows
    ]


def _items(path: Path) -> list[tuple]:
    """Items as (item_id, title, genres, release_year); the fields MovieLens lacks must be empty."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for r in rows:
        assert (r[COL_DIRECTORS], r[COL_CAST]) == ([], [])
        assert (r[COL_DURATION], r[COL_DESCRIPTION], r[COL_LANGUAGE]) == (None, None, None)
    return [(r[COL_ITEM], r[COL_TITLE], r[COL_GENRES], r[COL_RELEASE_YEAR]) for r in rows]


def _users(path: Path) -> list[tuple]:
    """Users as (user_id, age_band, gender) with '' for null; signup_date and country are null."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == USER_COLUMNS
        rows = list(reader)
    assert all((r[COL_SIGNUP_DATE], r[COL_COUNTRY]) == ("", "") for r in rows)
    return [(r[COL_USER], r[COL_AGE_BAND], r[COL_GENDER]) for r in rows]


@pytest.mark.parametrize(
    ("folder", "fmt"),
    [
        ("ml-100k", FORMAT_ML100K),
        ("ml-1m", FORMAT_ML1M),
        ("ml-latest", FORMAT_ML_LATEST),
        ("recbole", FORMAT_RECBOLE),
    ],
)
def test_detect_format(folder: str, fmt: str) -> None:
    assert detect_format(FIXTURES / folder) == fmt


def test_detect_format_refuses_a_folder_without_movielens_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=r"no MovieLens files.*notes\.txt"):
        detect_format(tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        detect_format(tmp_path / "missing")


def test_detect_format_refuses_two_recbole_datasets(tmp_path: Path) -> None:
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.inter").write_text("user_id:token\n")
    with pytest.raises(ValueError, match="more than one RecBole dataset"):
        detect_format(tmp_path)


def test_ml100k(tmp_path: Path) -> None:
    summary = convert_movielens(FIXTURES / "ml-100k", tmp_path)
    assert (summary.fmt, summary.n_events, summary.n_users, summary.n_items) == (FORMAT_ML100K, 4, 4, 4)
    assert _events(tmp_path / "events.parquet") == [
        ("ml-1-10-881250949", "1", "10", "rate", "1997-12-04T15:55:49Z", 4.0),
        ("ml-1-20-881250950", "1", "20", "rate", "1997-12-04T15:55:50Z", 3.0),
        ("ml-2-10-891717742", "2", "10", "rate", "1998-04-04T19:22:22Z", 5.0),
        ("ml-4-30-874965758", "4", "30", "rate", "1997-09-22T22:02:38Z", 1.0),
    ]
    assert _items(tmp_path / "items.jsonl") == [
        ("10", "Cinema Paradiso", ["Comedy", "Drama", "Romance"], 1988),
        ("20", "Café au lait (Métisse)", ["Comedy"], 1993),  # latin-1 source
        ("30", "unknown", [], None),  # the 'unknown' genre flag and no date
        ("40", "Nadja", ["Drama"], 1994),  # year from the release date
    ]
    # user 3 has a profile but no rating; user 4 rated without a profile
    assert _users(tmp_path / "users.csv") == [
        ("1", "18-24", "M"),
        ("2", "45-54", "F"),
        ("3", "<18", "M"),
        ("4", "", ""),
    ]


def test_ml1m(tmp_path: Path) -> None:
    convert_movielens(FIXTURES / "ml-1m", tmp_path)
    assert _events(tmp_path / "events.parquet") == [
        ("ml-1-1193-978300760", "1", "1193", "rate", "2000-12-31T22:12:40Z", 5.0),
        ("ml-1-661-978302109", "1", "661", "rate", "2000-12-31T22:35:09Z", 3.0),
        ("ml-2-1193-978298413", "2", "1193", "rate", "2000-12-31T21:33:33Z", 4.0),
    ]
    assert _items(tmp_path / "items.jsonl") == [
        ("2", "Jumanji: The Game", ["Adventure", "Children's", "Fantasy"], 1995),
        ("661", "James and the Giant Peach", ["Animation", "Children's", "Musical"], 1996),
        ("1193", "One Flew Over the Cuckoo's Nest", ["Drama"], 1975),
    ]
    # ML-1M age codes 1 ("Under 18") and 56 ("56+")
    assert _users(tmp_path / "users.csv") == [("1", "<18", "F"), ("2", "55+", "M")]


def test_ml_latest(tmp_path: Path) -> None:
    convert_movielens(FIXTURES / "ml-latest", tmp_path, events_format="jsonl")
    assert _events(tmp_path / "events.jsonl") == [
        ("ml-1-1-964982703", "1", "1", "rate", "2000-07-30T18:45:03Z", 4.0),
        ("ml-1-3-964981247", "1", "3", "rate", "2000-07-30T18:20:47Z", 4.5),
        ("ml-7-6-1106635946", "7", "6", "rate", "2005-01-25T06:52:26Z", 0.5),
    ]
    assert _items(tmp_path / "items.jsonl") == [
        ("1", "Toy Story", ["Adventure", "Animation", "Children", "Comedy", "Fantasy"], 1995),
        ("3", "American President, The", ["Comedy", "Drama", "Romance"], 1995),
        ("6", "Babylon 5", [], None),
        ("9", "Fawlty Towers", ["Comedy"], 1975),  # in the catalog with no rating
    ]
    assert _users(tmp_path / "users.csv") == [("1", "", ""), ("7", "", "")]  # no users file


def test_recbole(tmp_path: Path) -> None:
    convert_movielens(FIXTURES / "recbole", tmp_path)
    assert _events(tmp_path / "events.parquet") == [
        ("ml-196-242-881250949", "196", "242", "rate", "1997-12-04T15:55:49Z", 3.0),
        ("ml-186-302-891717742", "186", "302", "rate", "1998-04-04T19:22:22Z", 3.0),
        ("ml-196-267-878887116", "196", "267", "rate", "1997-11-07T07:18:36Z", 1.0),
    ]
    assert _items(tmp_path / "items.jsonl") == [
        ("242", "Kolya", ["Comedy"], 1996),
        ("267", "unkonwn", [], None),  # RecBole's spelling of ML-100k's unknown item
        ("302", "L.A. Confidential", ["Crime", "Film-Noir", "Mystery", "Thriller"], 1997),
    ]
    assert _users(tmp_path / "users.csv") == [("186", "35-44", "F"), ("196", "45-54", "M")]


def test_events_parquet_has_the_contract_columns(tmp_path: Path) -> None:
    convert_movielens(FIXTURES / "ml-1m", tmp_path)
    schema = pq.read_schema(tmp_path / "events.parquet")
    assert tuple(schema.names) == EVENT_COLUMNS
    assert [str(schema.field(c).type) for c in (COL_TS, COL_WATCH_SECONDS, COL_RATING)] == [
        "string",
        "double",
        "double",
    ]


def test_repeated_rating_gets_distinct_event_ids(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.0,100\n1,2,4.0,100\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n2,Heat (1995),Action\n")
    data = read_movielens(tmp_path)
    assert data.events.column(COL_EVENT_ID).to_pylist() == ["ml-1-2-100", "ml-1-2-100-1"]


def test_unknown_format_and_events_format_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown MovieLens format 'ml-2k'"):
        read_movielens(FIXTURES / "ml-1m", fmt="ml-2k")
    with pytest.raises(ValueError, match="events_format must be one of parquet, jsonl"):
        write_raw(read_movielens(FIXTURES / "ml-1m"), tmp_path, events_format="csv")


def test_recbole_without_rating_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t100\n")
    with pytest.raises(ValueError, match=r"x\.inter: missing field\(s\) rating"):
        read_movielens(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Usual Suspects, The (1995) ", ("Usual Suspects, The", 1995)),
        ("Scream of Stone (Schrei aus Stein) (1991)", ("Scream of Stone (Schrei aus Stein)", 1991)),
        ("Fawlty Towers (1975-1979)", ("Fawlty Towers", 1975)),
        ("Stranger Things (2016-)", ("Stranger Things", 2016)),
        ("Babylon 5", ("Babylon 5", None)),
        ("1984 (1984)", ("1984", 1984)),
        ("(1995)", ("(1995)", 1995)),
    ],
)
def test_strip_title_year(raw: str, expected: tuple[str, int | None]) -> None:
    assert strip_title_year(raw) == expected


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (None, None),
        (-1, None),
        (1, "<18"),
        (17, "<18"),
        (18, "18-24"),
        (24, "18-24"),
        (25, "25-34"),
        (44, "35-44"),
        (50, "45-54"),
        (55, "55+"),
        (56, "55+"),
        (73, "55+"),
    ],
)
def test_age_band(age: int | None, band: str | None) -> None:
    assert age_band(age) == band


def test_clean_genres_drops_placeholders_and_repeats() -> None:
    assert clean_genres(["Drama", "unknown", " ", "Drama", "(no genres listed)", "War"]) == ["Drama", "War"]
