"""The synthetic sample generator: contract, invariants, determinism, garbage lines, learnable taste.

Pure tests drive the NumPy helpers directly; ``spark`` tests run :func:`vidrec.devdata.sample.generate` on a
tiny world (50 users, 40 items, 10 days) and check the files it writes line by line.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from vidrec import constants as C
from vidrec.devdata import sample as S

# The embedded session's Python workers must run this interpreter (mapInPandas needs pandas/pyarrow).

END = dt.date(2026, 3, 31)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TINY = {"n_users": 200, "n_items": 60, "days": 10, "end_date": END, "seed": 7, "events_per_user_mean": 15.0}


def make_checker(catalog: pd.DataFrame, users: pd.DataFrame, span: S.Span) -> Callable[[str], str | None]:
    """A validator of event lines against the contract and the world's hidden facts.

    It returns the first problem of a line (``None`` when valid) and remembers the ids it has seen,
    so a repeated ``event_id`` is a problem.
    """
    items = {
        r[C.COL_ITEM]: (r[C.COL_DURATION], r[S.COL_RELEASE_DATE])
        for r in catalog[[C.COL_ITEM, C.COL_DURATION, S.COL_RELEASE_DATE]].to_dict("records")
    }
    signup = dict(zip(users[C.COL_USER], users[C.COL_SIGNUP_DATE], strict=True))
    seen: set[str] = set()

    def check(line: str) -> str | None:
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            return "malformed"
        if not isinstance(e, dict) or set(e) != set(S.EVENT_COLUMNS):
            return "fields"
        for col in (C.COL_EVENT_ID, C.COL_USER, C.COL_ITEM, C.COL_EVENT_TYPE, C.COL_TS, C.COL_SESSION):
            if not isinstance(e[col], str) or not e[col]:
                return f"missing {col}"
        if e[C.COL_EVENT_ID] in seen:
            return "duplicate id"
        seen.add(e[C.COL_EVENT_ID])
        if e[C.COL_USER] not in signup:
            return "unknown user"
        if e[C.COL_ITEM] not in items:
            return "unknown item"
        if e[C.COL_EVENT_TYPE] not in C.EVENT_TYPES:
            return "event type"
        if not TS_RE.match(e[C.COL_TS]):
            return "ts format"
        ts = dt.datetime.fromisoformat(e[C.COL_TS].replace("Z", "+00:00"))
        if not span.start_epoch <= ts.timestamp() < span.end_epoch:
            return "ts outside span"
        duration, released = items[e[C.COL_ITEM]]
        if ts.date() < signup[e[C.COL_USER]]:
            return "before signup"
        if ts.date() < released:
            return "before release"
        watch, rating, position = e[C.COL_WATCH_SECONDS], e[C.COL_RATING], e[C.COL_POSITION]
        if e[C.COL_EVENT_TYPE] in C.WATCH_EVENT_TYPES:
            if not isinstance(watch, float) or not 0.0 <= watch <= duration:
                return "watch_seconds"
            if not isinstance(position, float) or not 0.0 <= position <= duration:
                return "position_seconds"
        elif watch is not None or position is not None:
            return "watch on a non-watch event"
        if e[C.COL_EVENT_TYPE] == "rate":
            if not isinstance(rating, float) or not C.RATING_MIN <= rating <= C.RATING_MAX or rating * 2 % 1:
                return "rating"
        elif rating is not None:
            return "rating on a non-rate event"
        if e[C.COL_DEVICE] not in S.DEVICES:
            return "device"
        return None

    return check


def simulate(catalog: pd.DataFrame, users: pd.DataFrame, span: S.Span, seed: int = 1) -> list[dict[str, Any]]:
    arrays = S.CatalogArrays.from_catalog(catalog, span)
    events: list[dict[str, Any]] = []
    for row in users.to_dict("records"):
        params = S.UserParams.from_row(row)
        events.extend(S.simulate_user(params, arrays, span, S.user_rng(seed, params.user_idx)))
    return events


# --- pure helpers -------------------------------------------------------------------------------


def test_make_catalog_shape() -> None:
    span = S.Span(END, 30)
    cat = S.make_catalog(np.random.default_rng(0), 300, span)
    assert list(cat[C.COL_ITEM]) == [S.item_id(i) for i in range(300)]
    assert all(1 <= len(g) == len(set(g)) <= 3 and set(g) <= set(S.GENRES) for g in cat[C.COL_GENRES])
    assert all(len(d) >= 1 for d in cat[C.COL_DIRECTORS]) and all(3 <= len(c) <= 6 for c in cat[C.COL_CAST])
    assert cat[C.COL_DURATION].between(300, 4 * 3600).all()
    with_emb = cat[C.COL_VISUAL_EMB].notna()
    assert 0.8 < with_emb.mean() < 1.0
    assert all(len(v) == S.EMBEDDING_DIM for v in cat.loc[with_emb, C.COL_VISUAL_EMB])
    assert (cat[C.COL_AUDIO_EMB].notna() == with_emb).all()
    # Zipf-like popularity: the top 10% of items hold far more than 10% of the attention
    pop = np.sort(cat[S.COL_POPULARITY].to_numpy())[::-1]
    assert math.isclose(pop.sum(), 1.0) and pop[:30].sum() > 0.5
    # some items are released during the span (never on its first day), the rest before it
    released = cat[S.COL_RELEASE_DATE]
    in_span = (released > span.start_date) & (released <= span.end_date)
    assert 0.1 < in_span.mean() < 0.3 and (in_span | (released < span.start_date)).all()
    assert (cat[C.COL_RELEASE_YEAR] <= pd.Series([d.year for d in released])).all()


def test_embeddings_correlate_with_genre() -> None:
    cat = S.make_catalog(np.random.default_rng(0), 300, S.Span(END, 30), embedding_fraction=1.0)
    emb = np.stack(cat[C.COL_VISUAL_EMB].to_numpy())
    primary = np.array([g[0] for g in cat[C.COL_GENRES]])
    sim = emb @ emb.T
    same = primary[:, None] == primary[None, :]
    off_diagonal = ~np.eye(len(cat), dtype=bool)
    assert sim[same & off_diagonal].mean() > sim[~same].mean() + 0.3


def test_make_users_taste_and_signup() -> None:
    span = S.Span(END, 30)
    users = S.make_users(np.random.default_rng(0), 500, span, events_per_user_mean=40.0)
    assert list(users[C.COL_USER]) == [S.user_id(u) for u in range(500)]
    taste = np.stack(users[S.COL_TASTE].to_numpy())
    assert np.allclose(taste.sum(axis=1), 1.0)
    top4 = np.sort(taste, axis=1)[:, ::-1][:, :4].sum(axis=1)
    assert np.median(top4) > 0.85  # concentrated: most users like 2-4 genres
    signup = users[C.COL_SIGNUP_DATE]
    assert (signup <= span.end_date).all() and 0.15 < (signup >= span.start_date).mean() < 0.45
    assert (users[S.COL_LAST_DAY] <= span.days - 1).all() and (users[S.COL_SESSIONS_PER_DAY] > 0).all()
    assert set(users[C.COL_AGE_BAND]) <= set(S.AGE_BANDS) and set(users[C.COL_GENDER]) <= set(S.GENDERS)


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame, S.Span]:
    span = S.Span(END, 30)
    catalog, users = S.build_world(3, 300, 250, span, events_per_user_mean=60.0)
    return catalog, users, span


def test_simulated_events_are_valid_and_ordered(world: tuple[pd.DataFrame, pd.DataFrame, S.Span]) -> None:
    catalog, users, span = world
    events = simulate(catalog, users.head(120), span)
    check = make_checker(catalog, users, span)
    problems = Counter(check(json.dumps(e)) for e in events)
    assert problems == Counter({None: len(events)})
    by_user: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_user.setdefault(e[C.COL_USER], []).append(e)
    for evs in by_user.values():
        assert [e[C.COL_TS] for e in evs] == sorted(e[C.COL_TS] for e in evs)
        played: set[tuple[str, str]] = set()
        for e in evs:  # the funnel: nothing is completed or progressed before it is played
            key = (e[C.COL_SESSION], e[C.COL_ITEM])
            if e[C.COL_EVENT_TYPE] == "play":
                played.add(key)
            elif e[C.COL_EVENT_TYPE] in ("progress", "complete"):
                assert key in played
    types = Counter(e[C.COL_EVENT_TYPE] for e in events)
    assert set(types) == set(C.EVENT_TYPES)
    assert types["impression"] > types["play"] > types["complete"] > types["like"] > types["dislike"]


def test_simulate_user_is_deterministic(world: tuple[pd.DataFrame, pd.DataFrame, S.Span]) -> None:
    catalog, users, span = world
    arrays = S.CatalogArrays.from_catalog(catalog, span)
    params = S.UserParams.from_row(users.iloc[int(users[S.COL_SESSIONS_PER_DAY].idxmax())].to_dict())
    first = S.simulate_user(params, arrays, span, S.user_rng(9, params.user_idx))
    assert first and first == S.simulate_user(params, arrays, span, S.user_rng(9, params.user_idx))
    assert first != S.simulate_user(params, arrays, span, S.user_rng(10, params.user_idx))


def test_taste_is_learnable(world: tuple[pd.DataFrame, pd.DataFrame, S.Span]) -> None:
    catalog, users, span = world
    events = pd.DataFrame(simulate(catalog, users, span))
    genre_vec = np.stack(catalog[S.COL_GENRE_VEC].to_numpy())
    taste = np.stack(users[S.COL_TASTE].to_numpy())
    u = events[C.COL_USER].str[1:].astype(int).to_numpy()
    i = events[C.COL_ITEM].str[1:].astype(int).to_numpy()
    events["match"] = (genre_vec[i] * taste[u]).sum(axis=1) / (genre_vec @ taste.T).max(axis=0)[u]

    # a user's top genre by watch time is their latent top genre far more often than chance (1/20)
    watched = events.groupby([C.COL_USER, C.COL_ITEM])[C.COL_WATCH_SECONDS].max().dropna().reset_index()
    watched = watched[watched[C.COL_WATCH_SECONDS] > 0]
    hits = []
    for uid, g in watched.groupby(C.COL_USER):
        if len(g) >= 3:
            by_genre = g[C.COL_WATCH_SECONDS].to_numpy() @ genre_vec[g[C.COL_ITEM].str[1:].astype(int)]
            hits.append(np.argmax(by_genre) == np.argmax(taste[int(uid[1:])]))
    assert len(hits) > 100 and np.mean(hits) > 0.5

    # completion, likes and ratings follow the match; dislikes fall on poor matches
    plays = events[events[C.COL_EVENT_TYPE] == "play"]
    completes = events[events[C.COL_EVENT_TYPE] == "complete"]
    good = plays["match"] > 0.6
    done = plays.merge(completes[[C.COL_SESSION, C.COL_ITEM]].drop_duplicates(), how="left", indicator=True)
    finished = (done["_merge"] == "both").to_numpy()
    assert finished[good.to_numpy()].mean() > 2 * finished[~good.to_numpy()].mean()
    rated = events[events[C.COL_EVENT_TYPE] == "rate"]
    assert np.corrcoef(rated["match"], rated[C.COL_RATING])[0, 1] > 0.5
    match_of = events.groupby(C.COL_EVENT_TYPE)["match"].mean()
    assert match_of["dislike"] < 0.4 and match_of["dislike"] < match_of["play"] - 0.25
    assert match_of["like"] > 0.8 and match_of["favorite"] > 0.8
    # the choice mixes taste (dominant) with popularity: most plays are good matches
    assert good.mean() > 0.6


@pytest.mark.parametrize("kind", S.BAD_KINDS)
def test_each_garbage_kind_breaks_the_contract(
    world: tuple[pd.DataFrame, pd.DataFrame, S.Span], kind: str
) -> None:
    catalog, users, span = world
    events = simulate(catalog, users.head(20), span)
    rng = np.random.default_rng(5)
    for n in range(1, 30):
        check = make_checker(catalog, users, span)
        assert check(json.dumps(events[0])) is None
        line = S.corrupt_event(events[n], kind, rng, len(catalog), span, earlier_id=events[0][C.COL_EVENT_ID])
        assert check(line) is not None, line


def test_render_event_lines_fraction(world: tuple[pd.DataFrame, pd.DataFrame, S.Span]) -> None:
    catalog, users, span = world
    events = simulate(catalog, users.head(60), span)
    lines, n_bad = S.render_event_lines(events, 0.0, np.random.default_rng(0), len(catalog), span)
    assert n_bad == 0 and lines == [json.dumps(e, separators=(",", ":")) for e in events]
    lines, n_bad = S.render_event_lines(events, 0.1, np.random.default_rng(0), len(catalog), span)
    check = make_checker(catalog, users, span)
    assert sum(check(line) is not None for line in lines) == n_bad
    assert abs(n_bad / len(lines) - 0.1) < 0.03


# --- Spark: generate() -------------------------------------------------------------------------


def world_of(args: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    span = S.Span(args["end_date"], args["days"])
    return S.build_world(args["seed"], args["n_users"], args["n_items"], span, args["events_per_user_mean"])


def read_lines(out: Path) -> list[str]:
    parts = sorted((out / S.EVENTS_DIR).glob("part-*"))
    assert parts and all(p.suffix == ".json" for p in parts)
    return [line for p in parts for line in p.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def tiny(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("sample")
    return out, S.generate(spark, str(out), **TINY)


@pytest.mark.spark
def test_generate_layout_and_counts(tiny: tuple[Path, dict[str, int]]) -> None:
    out, counts = tiny
    assert sorted(p.name for p in out.iterdir()) == [S.EVENTS_DIR, S.ITEMS_FILE, S.USERS_FILE]
    assert (out / S.EVENTS_DIR).is_dir()
    lines = read_lines(out)
    assert counts == {"items": 60, "users": 200, "events": len(lines), "bad_events": 0}
    assert 1500 < len(lines) < 4500  # about 15 per user


@pytest.mark.spark
def test_generate_items_and_users_follow_contract(tiny: tuple[Path, dict[str, int]]) -> None:
    out, _ = tiny
    items = [json.loads(line) for line in (out / S.ITEMS_FILE).read_text(encoding="utf-8").splitlines()]
    assert len(items) == 60 and len({it[C.COL_ITEM] for it in items}) == 60
    for it in items:
        assert tuple(it) == S.ITEM_COLUMNS
        assert re.fullmatch(r"i\d{5}", it[C.COL_ITEM]) and it[C.COL_TITLE]
        for col in (C.COL_GENRES, C.COL_DIRECTORS, C.COL_CAST):
            assert isinstance(it[col], list) and all(isinstance(x, str) for x in it[col])
        assert isinstance(it[C.COL_RELEASE_YEAR], int) and 1950 <= it[C.COL_RELEASE_YEAR] <= END.year
        assert isinstance(it[C.COL_DURATION], float) and it[C.COL_DURATION] > 0
        assert it[C.COL_LANGUAGE] in S.LANGUAGES and it[C.COL_MATURITY] in S.MATURITY_RATINGS
        assert isinstance(it[C.COL_DESCRIPTION], str) and it[C.COL_DESCRIPTION]
        for col in (C.COL_VISUAL_EMB, C.COL_AUDIO_EMB):
            assert it[col] is None or (len(it[col]) == 16 and all(isinstance(x, float) for x in it[col]))
    with (out / S.USERS_FILE).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 200 and tuple(rows[0]) == S.USER_COLUMNS
    for r in rows:
        assert re.fullmatch(r"u\d{6}", r[C.COL_USER])
        assert dt.date.fromisoformat(r[C.COL_SIGNUP_DATE]) <= END
        assert r[C.COL_COUNTRY] in S.COUNTRIES and r[C.COL_AGE_BAND] in S.AGE_BANDS
        assert r[C.COL_GENDER] in S.GENDERS


@pytest.mark.spark
def test_generate_events_follow_contract(tiny: tuple[Path, dict[str, int]]) -> None:
    out, _ = tiny
    catalog, users = world_of(TINY)
    check = make_checker(catalog, users, S.Span(END, TINY["days"]))
    lines = read_lines(out)
    assert Counter(check(line) for line in lines) == Counter({None: len(lines)})  # ids unique too
    events = [json.loads(line) for line in lines]
    assert {e[C.COL_EVENT_TYPE] for e in events} >= {"impression", "play", "progress", "complete", "like"}
    assert min(e[C.COL_TS] for e in events) >= "2026-03-22T00:00:00Z"
    assert max(e[C.COL_TS] for e in events) <= "2026-03-31T23:59:59Z"


@pytest.mark.spark
def test_generate_same_rows_whatever_partitioning(
    spark: Any, tiny: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    out, counts = tiny
    assert len(list((out / S.EVENTS_DIR).glob("part-*.json"))) == 2  # one per block of 100 users
    again = S.generate(spark, str(tmp_path), **TINY, num_partitions=1)
    assert again == counts
    assert len(list((tmp_path / S.EVENTS_DIR).glob("part-*.json"))) == 1
    assert read_lines(tmp_path) == read_lines(out)  # same lines, same order
    for name in (S.ITEMS_FILE, S.USERS_FILE):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


@pytest.mark.spark
def test_generate_bad_fraction(spark: Any, tmp_path: Path) -> None:
    counts = S.generate(spark, str(tmp_path), **{**TINY, "bad_fraction": 0.2})
    span = S.Span(END, TINY["days"])
    catalog, users = world_of(TINY)
    check = make_checker(catalog, users, span)
    lines = read_lines(tmp_path)
    problems = Counter(check(line) for line in lines)
    n_bad = len(lines) - problems[None]
    assert counts["events"] == len(lines) and counts["bad_events"] == n_bad
    assert 0.15 < n_bad / len(lines) < 0.25
    assert len(problems) - 1 >= 6  # most garbage kinds show up


@pytest.mark.spark
def test_malformed_lines_are_corrupt_for_spark(
    spark: Any, world: tuple[pd.DataFrame, pd.DataFrame, S.Span]
) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    catalog, users, span = world
    events = simulate(catalog, users.head(10), span)
    rng = np.random.default_rng(1)
    lines = [S.corrupt_event(e, "malformed_json", rng, len(catalog), span) for e in events[:40]]
    schema = StructType([StructField(c, StringType()) for c in (*S.EVENT_COLUMNS, "_corrupt")])
    parsed = spark.createDataFrame([(line,) for line in lines], "value string").select(
        F.from_json("value", schema, {"columnNameOfCorruptRecord": "_corrupt"}).alias("p")
    )
    assert parsed.where(F.col("p._corrupt").isNull()).count() == 0


@pytest.mark.spark
def test_generate_rejects_bad_arguments(spark: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        S.generate(spark, str(tmp_path), **{**TINY, "days": 0})
    with pytest.raises(ValueError, match="bad_fraction"):
        S.generate(spark, str(tmp_path), **{**TINY, "bad_fraction": 1.5})
    with pytest.raises(ValueError, match="n_users"):
        S.generate(spark, str(tmp_path), **{**TINY, "n_users": 0})
