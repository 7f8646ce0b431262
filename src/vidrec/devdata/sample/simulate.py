"""One user's watch behaviour: sessions, the play -> progress -> complete funnel and explicit feedback."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from vidrec import constants as C
from vidrec.devdata.sample.render import render_event_lines
from vidrec.devdata.sample.users import make_users
from vidrec.devdata.sample.vocab import (
    COL_DEVICE_IDX,
    COL_GENRE_VEC,
    COL_LAST_DAY,
    COL_POPULARITY,
    COL_QUALITY,
    COL_RELEASE_DATE,
    COL_SESSIONS_PER_DAY,
    COL_SIGNUP_DAY,
    COL_STYLE,
    COL_STYLE_PREF,
    COL_TASTE,
    COL_USER_IDX,
    DEVICES,
    POP_DELTA,
    REWATCH_PROB,
    SECONDS_PER_DAY,
    STYLE_DIM,
    TASTE_FLOOR,
    TASTE_GAMMA,
    USERS_PER_BLOCK,
    Span,
    user_id,
)


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
    style : numpy.ndarray
        ``(n_items, STYLE_DIM)`` the latent taste factor (zeros without ``media_taste``).
    """

    item_ids: tuple[str, ...]
    genre_vec: np.ndarray
    popularity: np.ndarray
    quality: np.ndarray
    duration: np.ndarray
    release_day: np.ndarray
    popularity_cdf: np.ndarray
    style: np.ndarray

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
            style=(
                np.stack(catalog[COL_STYLE].to_numpy()).astype(float)
                if COL_STYLE in catalog.columns
                else np.zeros((len(catalog), STYLE_DIM))
            ),
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
    style_pref : numpy.ndarray
        ``(STYLE_DIM,)`` how the user follows the items' latent style.
    """

    user_idx: int
    signup_day: int
    last_day: int
    sessions_per_day: float
    taste: np.ndarray
    device_idx: int
    style_pref: np.ndarray

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
            style_pref=np.asarray(get(COL_STYLE_PREF), dtype=float),
        )


def user_rng(seed: int, user_idx: int, stream: int = 2) -> np.random.Generator:
    """The generator of one user's events (``stream`` 2) or of their garbage lines (``stream`` 3)."""
    return np.random.default_rng([seed, stream, user_idx])


def _draw(cdf: np.ndarray, rng: np.random.Generator) -> int:
    return int(min(cast(int, np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1))


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
    if catalog.style.any():  # the latent taste factor beyond genre (``media_taste``)
        weights = weights * np.exp(catalog.style @ user.style_pref / np.sqrt(STYLE_DIM))
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


def n_user_blocks(n_users: int) -> int:
    """Number of :data:`USERS_PER_BLOCK` blocks of ``n_users`` users."""
    return math.ceil(n_users / USERS_PER_BLOCK)


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
