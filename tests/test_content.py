"""Content-based generator: tokens, TF-IDF, hashed vectors with embeddings, profiles, lists.

The fixture catalog is chosen so the expected neighbours are obvious: two Horror items, two
Comedy items, a Kids/Animation item, an item with no metadata at all, and a Horror item nobody has
watched (a new item must still be recommended).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pytest
from helpers import assert_candidates

from vidrec.config import Config, load_config
from vidrec.config.sections import ContentConf
from vidrec.constants import (
    COL_CONFIDENCE,
    COL_ITEM_IDX,
    COL_LAST_TS,
    COL_RANK,
    COL_SCORE,
    COL_USER_IDX,
)
from vidrec.models.base import FitContext
from vidrec.models.content import (
    COL_NEIGHBOUR_IDX,
    content_neighbours,
    generate_content,
    item_tokens,
    item_vectors,
    segment_sums,
    tfidf,
    user_profiles,
)
from vidrec.models.topn import COL_FEATURES

T0 = dt.datetime(2026, 3, 30, 12, 0)
ITEM_SCHEMA = (
    "item_idx int, item_id string, title string, genres array<string>, cast array<string>, "
    "directors array<string>, release_year int, language string, description string, "
    "visual_embedding array<float>"
)
#: 0, 1 Horror; 2, 3 Comedy; 4 Kids; 5 nothing usable; 6 Horror nobody watched.
ITEMS = [
    (
        0,
        "i0",
        "Scream",
        ["Horror"],
        ["Ana Costa"],
        ["Wei Kim"],
        2010,
        "en",
        "A haunted cabin curse.",
        [1.0, 0.0],
    ),
    (
        1,
        "i1",
        "Haunt",
        ["Horror"],
        ["Ben Berg"],
        ["Wei Kim"],
        2011,
        "en",
        "A haunted manor ritual.",
        [1.0, 0.1],
    ),
    (2, "i2", "Laughs", ["Comedy"], ["Ana Costa"], ["Liam Ito"], 2015, "es", "A wedding mixup.", [0.0, 1.0]),
    (3, "i3", "Giggles", ["Comedy"], ["Olga Rossi"], ["Liam Ito"], 2016, "es", "Roommates on holiday.", None),
    (4, "i4", "Toons", ["Kids", "Animation"], None, None, 2020, "fr", "Talking animals.", [0.0, 1.0, 0.0]),
    (5, "i5", "Blank", None, None, None, None, None, None, None),
    (
        6,
        "i6",
        "Fresh Fear",
        ["Horror"],
        ["Kira Young"],
        ["Wei Kim"],
        2026,
        "en",
        "A cursed haunted ritual.",
        None,
    ),
]


def content_conf(**section: Any) -> ContentConf:
    """The ``content`` section of base.yaml with ``section`` merged in."""
    return load_config(overrides={"content": section}).content


def items_df(spark: Any) -> Any:
    return spark.createDataFrame(ITEMS, ITEM_SCHEMA)


def vectors_of(df: Any) -> dict[int, np.ndarray]:
    return {r[COL_ITEM_IDX]: np.array(r[COL_FEATURES], dtype=np.float64) for r in df.collect()}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"dim": 0}, "content.dim must be >= 1"),
        ({"year_bucket": 0}, "content.year_bucket must be >= 1"),
        ({"half_life_days": 0}, "content.half_life_days must be > 0"),
        ({"field_weights": {"genres": -1.0}}, "content weights must be >= 0"),
    ],
)
def test_conf_refuses_bad_values(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides={"content": override})


def test_conf_merges_field_weights() -> None:
    cc = content_conf(dim=64, field_weights={"genres": 3.0})
    assert cc.dim == 64
    assert cc.field_weights["genres"] == 3.0 and cc.field_weights["cast"] == 0.3


@pytest.mark.spark
def test_item_tokens(spark: Any) -> None:
    got = sorted(tuple(r) for r in item_tokens(items_df(spark).where("item_idx IN (0, 5)")).collect())
    assert got == [
        (0, "cast", "ana costa", 1),
        (0, "description", "cabin", 1),
        (0, "description", "curse", 1),
        (0, "description", "haunted", 1),
        (0, "directors", "wei kim", 1),
        (0, "genres", "horror", 1),
        (0, "language", "en", 1),
        (0, "year", "2010", 1),
    ]  # "A" is too short; item 5 has no usable field: no token, no error


@pytest.mark.spark
def test_item_tokens_without_metadata_columns(spark: Any) -> None:
    bare = spark.createDataFrame([(0,), (1,)], "item_idx int")
    assert item_tokens(bare).collect() == []
    assert item_vectors(bare, content_conf()).collect() == []


@pytest.mark.spark
def test_tfidf_per_field_l2_times_weight(spark: Any) -> None:
    tokens = spark.createDataFrame(
        [(0, "genres", "a", 1), (1, "genres", "a", 1), (1, "genres", "b", 1), (2, "genres", "c", 1)],
        "item_idx int, _field string, _token string, _tf long",
    )
    got = {(r[0], r[2]): r[3] for r in tfidf(tokens, 3, {"genres": 2.0}).collect()}
    ia, ib = math.log(4 / 3), math.log(4 / 2)  # idf = ln((N + 1) / (df + 1))
    expected = {
        (0, "a"): 2.0,
        (1, "a"): 2.0 * ia / math.hypot(ia, ib),
        (1, "b"): 2.0 * ib / math.hypot(ia, ib),
        (2, "c"): 2.0,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    # a token in every item weighs 0 and is dropped; a field without weight too
    assert tfidf(tokens.where("_token = 'a'").where("item_idx = 0"), 1, {"genres": 1.0}).collect() == []
    assert tfidf(tokens, 3, {"cast": 1.0}).collect() == []


@pytest.mark.spark
def test_item_vectors_unit_length_with_embeddings(spark: Any) -> None:
    vecs = vectors_of(item_vectors(items_df(spark), content_conf(dim=64)))
    assert sorted(vecs) == [0, 1, 2, 3, 4, 6]  # item 5 has no metadata: left out
    for v in vecs.values():
        assert v.shape == (64 + 2,)  # text slots + the visual embedding (length 2)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(vecs[3][64:], [0.0, 0.0])  # null embedding: zeros
    np.testing.assert_array_equal(vecs[4][64:], [0.0, 0.0])  # wrong length: zeros
    cos = {j: float(vecs[0] @ vecs[j]) for j in vecs if j != 0}
    assert max(cos, key=cos.get) == 1  # the other Horror item with a similar embedding
    assert cos[1] > cos[6] > cos[2]  # the unwatched Horror item beats the Comedy one


@pytest.mark.spark
def test_item_vectors_without_embedding_columns(spark: Any) -> None:
    text_only = items_df(spark).drop("visual_embedding")
    vecs = vectors_of(item_vectors(text_only, content_conf(dim=32, embedding_weight=0.5)))
    assert {v.shape for v in vecs.values()} == {(32,)}
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2])


@pytest.mark.spark
def test_profiles_weigh_recent_items_more(spark: Any) -> None:
    vectors = item_vectors(items_df(spark), content_conf(dim=64)).cache()
    inter = spark.createDataFrame(
        [
            (0, 2, 1.0, T0 - dt.timedelta(days=60)),  # old comedy
            (0, 0, 1.0, T0),  # recent horror
            (1, 0, 0.0, T0),  # impression only: no profile
            (2, 5, 2.0, T0),  # an item without a vector: no profile
        ],
        f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_CONFIDENCE} double, {COL_LAST_TS} timestamp",
    )
    profiles = {
        r[COL_USER_IDX]: np.array(r[COL_FEATURES]) for r in user_profiles(inter, vectors, 7.0).collect()
    }
    assert sorted(profiles) == [0]
    vecs = vectors_of(vectors)
    assert np.linalg.norm(profiles[0]) == pytest.approx(1.0, abs=1e-5)
    assert profiles[0] @ vecs[1] > profiles[0] @ vecs[3]  # horror-like beats comedy-like


def test_segment_sums_equal_a_scatter_add_across_chunks() -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(9, 4)).astype(np.float32)
    rows = np.sort(rng.integers(0, 6, 40))
    pos, weights = rng.integers(0, 9, 40), rng.random(40)
    expected = np.zeros((7, 4))
    np.add.at(expected, rows, weights[:, None] * vecs[pos].astype(np.float64))
    for chunk in (1, 3, 7, 40, 100):  # runs of one row cut by the chunk boundaries
        assert np.allclose(segment_sums(rows, pos, weights, vecs, 7, chunk=chunk), expected, atol=1e-12)


@pytest.mark.spark
def test_profiles_are_the_normalised_weighted_mean_of_item_vectors(spark: Any) -> None:
    """Against the definition, computed here in NumPy: weights confidence x 0.5 ** (age / half-life),
    items without a vector skipped, users with no positive item left out, the ``users`` filter kept."""
    rng = np.random.default_rng(11)
    vectors = item_vectors(items_df(spark), content_conf(dim=16)).cache()
    vecs = vectors_of(vectors)
    rows = [
        (
            int(u),
            int(i),
            float(rng.choice([0.0, 0.5, 1.0, 3.0])),
            T0 - dt.timedelta(days=int(rng.integers(0, 90))),
        )
        for u in range(12)
        for i in rng.choice(8, int(rng.integers(1, 6)), replace=False)  # 5 (no metadata) and 7 have no vector
    ]
    inter = spark.createDataFrame(
        rows, f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_CONFIDENCE} double, {COL_LAST_TS} timestamp"
    )
    latest = max(r[3] for r in rows if r[2] > 0)
    expected = {}
    for u in range(12):
        total = sum(
            c * 0.5 ** ((latest - ts).total_seconds() / 86400 / 7.0) * vecs[i].astype(np.float64)
            for uu, i, c, ts in rows
            if uu == u and c > 0 and i in vecs
        )
        if isinstance(total, np.ndarray) and np.linalg.norm(total) > 0:
            expected[u] = total / np.linalg.norm(total)
    wanted = spark.createDataFrame([(u,) for u in range(0, 12, 2)], f"{COL_USER_IDX} int")
    for users, keep in ((None, set(expected)), (wanted, {u for u in expected if u % 2 == 0})):
        got = {
            r[COL_USER_IDX]: np.array(r[COL_FEATURES])
            for r in user_profiles(inter, vectors, 7.0, users).collect()
        }
        assert set(got) == keep and keep
        for u in keep:
            assert got[u] == pytest.approx(expected[u], abs=1e-6)


@pytest.mark.spark
def test_content_neighbours_cover_unwatched_items(spark: Any) -> None:
    vectors = item_vectors(items_df(spark), content_conf(dim=64))
    got = {
        (r[COL_ITEM_IDX], r[COL_RANK]): r[COL_NEIGHBOUR_IDX]
        for r in content_neighbours(spark, vectors, 2).collect()
    }
    assert got[(0, 1)] == 1 and got[(2, 1)] == 3
    assert got[(6, 1)] in (0, 1)  # nobody watched item 6, it has Horror neighbours anyway
    assert all(item != nb for (item, _), nb in got.items())


@pytest.mark.spark
def test_generate_content(spark: Any, base_conf: Config, tmp_path: Any) -> None:
    inter = spark.createDataFrame(
        [
            (0, 0, 2.0, T0),  # user 0 watched a Horror item
            (1, 2, 3.0, T0),  # user 1 a Comedy item ...
            (1, 4, 0.0, T0),  # ... and was shown the Kids item
            (2, 3, 0.0, T0),  # user 2: impressions only -> no list
            (3, 5, 1.0, T0),  # user 3: only an item without metadata -> no list
        ],
        f"{COL_USER_IDX} int, {COL_ITEM_IDX} int, {COL_CONFIDENCE} double, {COL_LAST_TS} timestamp",
    )
    seen = inter.where("confidence > 0").select(COL_USER_IDX, COL_ITEM_IDX)
    targets = spark.createDataFrame([(u,) for u in range(5)], f"{COL_USER_IDX} int")  # user 4: no events
    ctx = FitContext(
        spark=spark,
        conf=base_conf.override({"content": {"dim": 64}}),
        interactions=inter,
        events=inter,
        items=items_df(spark),
        users=targets,
        target_users=targets,
        seen=seen,
        n=3,
        work_dir=str(tmp_path),
        run_date="2026-03-31",
    )
    out = generate_content(ctx)
    assert out.model_version.startswith("content-2026-03-31-")
    assert out.recs.columns == [COL_USER_IDX, COL_ITEM_IDX, COL_SCORE, COL_RANK]
    rows = [tuple(r) for r in out.recs.collect()]
    top = {u: i for u, i, _, k in rows if k == 1}
    assert top == {0: 1, 1: 3}  # the other Horror item; the other Comedy item
    assert {i for u, i, _, _ in rows if u == 0} >= {6}  # the unwatched Horror item is in user 0's list
    assert_candidates(spark, rows, {tuple(r) for r in seen.collect()}, 3)
    assert set(out.artifacts) == {"item_vectors", "user_profiles"}


@pytest.mark.spark
def test_chinese_catalog_neighbours_share_genres_from_descriptions_alone(spark, base_conf: Config) -> None:
    # generate_sample --lang zh: genres appear only in the Chinese descriptions here (the genre, cast
    # and director columns are left out), so the neighbours come from the CJK unigrams and bigrams
    import datetime as dt

    from vidrec.devdata.sample import Span, make_catalog

    cat = make_catalog(np.random.default_rng([5, 0]), 200, Span(dt.date(2026, 3, 31), 30), lang="zh")
    assert cat["description"].str.contains("执导").all() and not cat["title"].str.contains("[a-z]").any()
    items = spark.createDataFrame(
        [(int(r.item_idx), r.description) for r in cat.itertuples()], "item_idx int, description string"
    )
    vectors = item_vectors(items, base_conf.content)
    pairs = content_neighbours(spark, vectors, 10).select(COL_ITEM_IDX, COL_NEIGHBOUR_IDX).collect()
    genres = {int(r.item_idx): set(r.genres) for r in cat.itertuples()}
    assert len(pairs) == 200 * 10
    shared = np.mean([bool(genres[a] & genres[b]) for a, b in pairs])
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 200, 5000), rng.integers(0, 200, 5000)
    random_share = np.mean([bool(genres[i] & genres[j]) for i, j in zip(a, b, strict=True) if i != j])
    # measured: 0.75 of the neighbours share a genre against 0.22 of random pairs (content.dim 256)
    assert shared > 0.6 and shared > 2.5 * random_share, (shared, random_share)
