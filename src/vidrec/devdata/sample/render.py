"""Events as JSON lines, with a share of realistic garbage for the quarantine to catch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidrec import constants as C
from vidrec.devdata.sample.vocab import BAD_KINDS, SECONDS_PER_DAY, UNKNOWN_EVENT_TYPES, Span, item_id


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
