"""The rating model (vidrec.models.rating): biases recovered, and RMSE below the item mean."""

from __future__ import annotations

import math
import random

import pytest

from vidrec import constants as C
from vidrec.config import ConfigError
from vidrec.evaluation.evaluate import rating_metrics
from vidrec.models.rating import fit_biases, fit_rating_model

pytestmark = pytest.mark.spark

SCHEMA = f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int, {C.COL_RATING} double"
USER_BIAS = [-1.0, -0.5, 0.0, 0.5, 1.0]
ITEM_BIAS = [-0.6, -0.2, 0.2, 0.6]


def test_biases_recovered_exactly_on_an_additive_matrix(spark, conf) -> None:
    """rating = 3 + b_u + b_i on a full matrix (centred biases), no shrinkage: the fit finds them."""
    rows = [(u, i, 3.0 + bu + bi) for u, bu in enumerate(USER_BIAS) for i, bi in enumerate(ITEM_BIAS)]
    params = conf.override({"rating": {"bias_reg_item": 0.0, "bias_reg_user": 0.0, "bias_iter": 3}}).rating
    mu, users, items = fit_biases(spark.createDataFrame(rows, SCHEMA), params)
    assert mu == pytest.approx(3.0)
    got_u = {r[C.COL_USER_IDX]: r["_b_u"] for r in users.collect()}
    got_i = {r[C.COL_ITEM_IDX]: r["_b_i"] for r in items.collect()}
    assert got_u == pytest.approx(dict(enumerate(USER_BIAS)))
    assert got_i == pytest.approx(dict(enumerate(ITEM_BIAS)))


def test_shrinkage_pulls_a_rarely_rated_item_towards_the_mean(spark, conf) -> None:
    rows = [(u, 0, 4.0) for u in range(20)] + [(u, 1, 2.0) for u in range(20)] + [(0, 2, 5.0)]
    params = conf.override({"rating": {"bias_reg_item": 5.0, "bias_reg_user": 0.0}}).rating
    mu, _, items = fit_biases(spark.createDataFrame(rows, SCHEMA), params)
    got = {r[C.COL_ITEM_IDX]: r["_b_i"] for r in items.collect()}
    assert 0.0 < got[2] < (5.0 - mu) / 2  # one rating of 5: a small positive bias, not the full gap


def test_predictions_cover_unknown_users_and_items_and_stay_in_range(spark, conf) -> None:
    rows = [(u, i, 3.0 + bu + bi) for u, bu in enumerate(USER_BIAS) for i, bi in enumerate(ITEM_BIAS)]
    params = conf.override({"rating": {"rank": 2, "max_iter": 3}}).rating
    model = fit_rating_model(spark.createDataFrame(rows, SCHEMA), params, num_blocks=1)
    pairs = spark.createDataFrame(
        [(0, 0), (99, 0), (0, 99), (99, 99)], f"{C.COL_USER_IDX} int, {C.COL_ITEM_IDX} int"
    )
    got = {(r[0], r[1]): r["prediction"] for r in model.predict(pairs).collect()}
    model.release()
    assert len(got) == 4 and all(model.low <= p <= model.high for p in got.values())
    assert got[(99, 99)] == pytest.approx(model.mu)  # nothing known: the global mean


def test_rmse_below_the_item_mean_when_users_differ(spark, conf) -> None:
    """Strong user biases: the item mean cannot see them, the rating model does."""
    rnd = random.Random(3)
    user_bias = [rnd.uniform(-1.2, 1.2) for _ in range(40)]
    item_bias = [rnd.uniform(-0.8, 0.8) for _ in range(25)]
    rows = []
    for u, bu in enumerate(user_bias):
        for i, bi in enumerate(item_bias):
            if rnd.random() < 0.5:
                r = min(5.0, max(1.0, round(3.5 + bu + bi + rnd.gauss(0.0, 0.3))))
                rows.append((u, i, float(r)))
    rnd.shuffle(rows)
    cut = int(len(rows) * 0.8)
    train = spark.createDataFrame(rows[:cut], SCHEMA)
    test = spark.createDataFrame(rows[cut:], SCHEMA)
    params = conf.override({"rating": {"rank": 2, "max_iter": 5}}).rating
    got = rating_metrics(train, test, params, num_blocks=1)
    assert set(got) == {"als", "item_mean", "global_mean"}
    assert got["als"]["n"] == got["item_mean"]["n"] == len(rows) - cut  # every held-out pair predicted
    assert got["als"]["rmse"] < got["item_mean"]["rmse"] < got["global_mean"]["rmse"]
    assert got["als"]["mae"] < got["item_mean"]["mae"]
    assert not math.isnan(got["als"]["rmse"])


def test_rating_settings_are_checked(conf) -> None:
    with pytest.raises(ConfigError, match=r"rating.rank must be >= 0, got -1"):
        conf.override({"rating": {"rank": -1}})
    with pytest.raises(ConfigError, match=r"rating.bias_iter must be >= 1, got 0"):
        conf.override({"rating": {"bias_iter": 0}})
