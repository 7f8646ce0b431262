"""User profiles: taste over genres, activity, sign-up and churn."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from vidrec import constants as C
from vidrec.devdata.sample.catalog import _genre_prior
from vidrec.devdata.sample.vocab import (
    ACTIVITY_SIGMA,
    AGE_BANDS,
    AGE_DEVICE_WEIGHTS,
    AGE_GENRE_TILT,
    AGE_WEIGHTS,
    CHURN_FRACTION,
    CHURN_MEAN_DAYS,
    COL_DEVICE_IDX,
    COL_LAST_DAY,
    COL_SESSIONS_PER_DAY,
    COL_SIGNUP_DAY,
    COL_STYLE_PREF,
    COL_TASTE,
    COL_USER_IDX,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DEVICES,
    EVENTS_PER_SESSION,
    GENDER_WEIGHTS,
    GENDERS,
    GENRES,
    SIGNUP_IN_SPAN_FRACTION,
    STYLE_DIM,
    Span,
    user_id,
)


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
        ``sessions_per_day``, ``taste`` (array over :data:`GENRES`), ``device_idx`` and
        ``style_pref`` (array of :data:`STYLE_DIM`: how the user follows the items' latent style,
        which matters only in a catalog made with ``media_taste > 0``).
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

    style_pref = rng.normal(size=(n_users, STYLE_DIM))  # drawn last: every other column is unchanged by it
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
            COL_STYLE_PREF: list(style_pref),
        }
    )
