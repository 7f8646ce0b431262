"""The catalog: genres, popularity, quality, durations, release dates, text and media embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vidrec import constants as C
from vidrec.devdata.sample.vocab import (
    ADULT_GENRES,
    CHILD_GENRES,
    COL_GENRE_VEC,
    COL_ITEM_IDX,
    COL_POPULARITY,
    COL_QUALITY,
    COL_RELEASE_DATE,
    COL_STYLE,
    EMBEDDING_DIM,
    EMBEDDING_FRACTION,
    FIRST_NAMES,
    GENRE_WORDS,
    GENRES,
    LANGUAGE_WEIGHTS,
    LANGUAGES,
    LAST_NAMES,
    MATURITY_RATINGS,
    NEW_ITEM_FRACTION,
    STYLE_DIM,
    TITLE_ADJECTIVES,
    ZIPF_EXPONENT,
    Span,
    item_id,
)
from vidrec.devdata.sample.vocab_zh import (
    CATALOG_LANGUAGES,
    GENRE_NAMES_ZH,
    GENRE_WORDS_ZH,
    LANGUAGE_WEIGHTS_ZH,
    LANGUAGES_ZH,
    description_zh,
    person_name_zh,
    title_zh,
)


def _genre_prior(n_genres: int) -> np.ndarray:
    weights = 1.0 / (np.arange(n_genres) + 3.0)
    return weights / weights.sum()


def _person_names(rng: np.random.Generator, n: int, lang: str = "en") -> list[str]:
    """``n`` distinct person names in a random order (Chinese names for ``lang`` ``zh``)."""
    names: list[str] = []
    for k in rng.permutation(n):
        if lang == "zh":
            names.append(person_name_zh(int(k)))
            continue
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


def _with_style(rng: np.random.Generator, emb: np.ndarray, style: np.ndarray) -> np.ndarray:
    """``emb`` (unit rows) plus an equal-length random projection of ``style``, unit rows again."""
    part = style @ rng.normal(size=(style.shape[1], emb.shape[1]))
    part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-9)
    out = emb + part
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return np.round(out, 5)


def make_catalog(
    rng: np.random.Generator,
    n_items: int,
    span: Span,
    new_item_fraction: float = NEW_ITEM_FRACTION,
    embedding_fraction: float = EMBEDDING_FRACTION,
    lang: str = "en",
    media_taste: float = 0.0,
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
    lang : str
        ``en``, or ``zh``: Chinese genre names, titles, descriptions (naming the genres) and person
        names; the same draws, so the same world in the other language.
    media_taste : float
        Strength (>= 0) of a latent taste factor beyond genre: each item gets a ``style`` vector
        (:data:`STYLE_DIM` standard normals) that its media embeddings carry (an equal share of their
        direction) and users follow (:func:`vidrec.devdata.sample.simulate.simulate_user`). 0: media
        embeddings carry genre only and users ignore style (the draws of every other field are the
        same either way).

    Returns
    -------
    pandas.DataFrame
        One row per item: the contract columns :data:`ITEM_COLUMNS` (``genres``, ``directors``,
        ``cast`` and the embeddings as Python lists, embeddings ``None`` where absent) and the
        internal columns ``item_idx``, ``release_date``, ``popularity``, ``quality``,
        ``genre_vec`` and ``style`` (zeros without ``media_taste``).
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if lang not in CATALOG_LANGUAGES:
        raise ValueError(f"lang must be one of {CATALOG_LANGUAGES}, got {lang!r}")
    if media_taste < 0:
        raise ValueError(f"media_taste must be >= 0, got {media_taste}")
    zh = lang == "zh"
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
    director_names = _person_names(rng, n_directors, lang)
    actor_names = _person_names(rng, n_actors, lang)
    director_home = rng.choice(n_genres, size=n_directors, p=prior)
    actor_home = rng.choice(n_genres, size=n_actors, p=prior)
    directors_by_genre = [np.flatnonzero(director_home == g) for g in range(n_genres)]
    actors_by_genre = [np.flatnonzero(actor_home == g) for g in range(n_genres)]

    visual = _embeddings(rng, genre_vec, noise=0.35)
    audio = _embeddings(rng, genre_vec, noise=0.5)
    has_embedding = rng.random(n_items) < embedding_fraction
    languages, weights = (LANGUAGES_ZH, LANGUAGE_WEIGHTS_ZH) if zh else (LANGUAGES, LANGUAGE_WEIGHTS)
    language = rng.choice(len(languages), size=n_items, p=weights)

    rows: list[dict[str, Any]] = []
    for i in range(n_items):
        genres = [GENRES[g] for g in order[i, : n_per_item[i]]]
        vocab = GENRE_WORDS_ZH if zh else GENRE_WORDS
        words = [w for g in genres for w in vocab[g]]
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

        a_idx = int(rng.integers(len(TITLE_ADJECTIVES)))
        adjective = TITLE_ADJECTIVES[a_idx]
        noun = str(rng.choice(vocab[GENRES[g0]]))
        the = rng.random() < 0.4
        sequel = int(rng.integers(2, 4)) if rng.random() < 0.08 else None
        w1, w2 = rng.choice(words, size=2, replace=False)
        if zh:
            title = title_zh(a_idx, noun, sequel)
            description = description_zh(a_idx, genres, str(w1), str(w2), bool(episode[i]), directors[0])
        else:
            title = f"The {adjective} {noun.title()}" if the else f"{adjective} {noun.title()}"
            if sequel:
                title += f" {sequel}"
            form = "series episode" if episode[i] else "film"
            description = (
                f"A {adjective.lower()} {' and '.join(g.lower() for g in genres)} {form} about {w1} and "
                f"{w2}, directed by {directors[0]}."
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
                C.COL_GENRES: [GENRE_NAMES_ZH[g] for g in genres] if zh else genres,
                C.COL_DIRECTORS: directors,
                C.COL_CAST: cast,
                C.COL_RELEASE_YEAR: int(
                    release_date.year if is_new[i] else max(1950, release_date.year - title_lag[i])
                ),
                C.COL_DURATION: float(duration[i]),
                C.COL_DESCRIPTION: description,
                C.COL_LANGUAGE: languages[int(language[i])],
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
    catalog = pd.DataFrame(rows)
    # drawn after every other field, so those are the same with or without the taste factor
    style = (
        media_taste * rng.normal(size=(n_items, STYLE_DIM))
        if media_taste > 0
        else np.zeros((n_items, STYLE_DIM))
    )
    if media_taste > 0:
        for col, emb in ((C.COL_VISUAL_EMB, visual), (C.COL_AUDIO_EMB, audio)):
            styled = _with_style(rng, emb, style)
            catalog[col] = [
                [float(x) for x in styled[i]] if has_embedding[i] else None for i in range(n_items)
            ]
    catalog[COL_STYLE] = list(style)
    return catalog
