"""The text tokenizer measured: Spark expression against a pandas UDF, and against a dictionary segmenter.

    .venv/bin/python bench/tokenizer.py [--items 600] [--repeat 50] [--jieba-path DIR]

1. **Speed** (Spark, ``local[2]``): :func:`vidrec.data.text.tokens_column` (a pure column expression)
   against :func:`vidrec.data.text.tokenize_pandas_udf` (the same rules in Python through Arrow), on the
   descriptions of the generated catalog (English and Chinese, ``--items`` items) repeated ``--repeat``
   times; each timed as the best of three full passes (``count`` of the exploded tokens).
2. **Quality** (driver, NumPy): on the Chinese catalog with genres known only from the descriptions,
   the share of each item's 10 nearest TF-IDF neighbours (cosine over description tokens) that share
   a genre with it, for character unigrams + bigrams (ours), unigrams alone, and jieba 0.42.1's
   dictionary segmentation (``--jieba-path``: a folder where ``pip install --target`` put jieba; it
   is not a dependency). Random pairs give the baseline.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable

import numpy as np


def _catalog(n_items: int, lang: str) -> list[dict]:
    from vidrec.devdata.sample import Span, make_catalog

    cat = make_catalog(np.random.default_rng([42, 0]), n_items, Span(dt.date(2026, 3, 31), 60), lang=lang)
    return cat.to_dict(orient="records")


def neighbour_genre_share(docs: list[list[str]], genres: list[set[str]], k: int = 10) -> float:
    """Mean share of each item's ``k`` nearest TF-IDF neighbours that share a genre with it."""
    n = len(docs)
    df = Counter(t for d in docs for t in set(d))
    vocab = {t: i for i, t in enumerate(df)}
    x = np.zeros((n, len(vocab)))
    for r, d in enumerate(docs):
        for t, c in Counter(d).items():
            x[r, vocab[t]] = c * math.log((n + 1) / (df[t] + 1))
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1)[:, :k]
    return float(np.mean([[bool(genres[i] & genres[j]) for j in top[i]] for i in range(n)]))


def random_genre_share(genres: list[set[str]], seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    n = len(genres)
    a, b = rng.integers(0, n, 20_000), rng.integers(0, n, 20_000)
    keep = a != b
    return float(np.mean([bool(genres[i] & genres[j]) for i, j in zip(a[keep], b[keep], strict=True)]))


def quality(jieba_path: str | None, n_items: int) -> dict[str, float]:
    from vidrec.data.text import is_cjk, tokenize

    rows = _catalog(n_items, "zh")
    texts = [r["description"] for r in rows]
    genres = [set(r["genres"]) for r in rows]
    tokenizers: dict[str, Callable[[str], list[str]]] = {
        "unigrams_bigrams": tokenize,
        "unigrams_only": lambda t: [x for x in tokenize(t) if len(x) == 1 or not is_cjk(x)],
    }
    seconds: dict[str, float] = {}
    if jieba_path:
        sys.path.insert(0, jieba_path)
        import jieba

        jieba.setLogLevel(60)
        t0 = time.perf_counter()
        jieba.initialize()
        seconds["jieba_initialize"] = time.perf_counter() - t0
        tokenizers["jieba"] = lambda t: [
            w for w in jieba.lcut(t) if w.strip() and any(c.isalnum() for c in w)
        ]
    out = {"random_pairs": random_genre_share(genres)}
    for name, tok in tokenizers.items():
        t0 = time.perf_counter()
        docs = [tok(t) for t in texts]
        seconds[name] = time.perf_counter() - t0
        out[name] = neighbour_genre_share(docs, genres)
    return {**out, **{f"seconds_{k}": v for k, v in seconds.items()}}


def speed(n_items: int, repeat: int) -> dict[str, float]:
    import os

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from vidrec.data.text import tokenize_pandas_udf, tokens_column

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers need this venv's pandas
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    out: dict[str, float] = {}
    for lang in ("en", "zh"):
        texts = [r["description"] for r in _catalog(n_items, lang)] * repeat
        df = spark.createDataFrame([(t,) for t in texts], "description string").repartition(2).cache()
        df.count()
        udf = tokenize_pandas_udf()
        for name, col in (("expression", tokens_column("description")), ("pandas_udf", udf("description"))):
            best = math.inf
            tokens = 0
            for _ in range(3):
                t0 = time.perf_counter()
                tokens = df.select(F.explode(col)).count()
                best = min(best, time.perf_counter() - t0)
            out[f"{lang}_{name}_seconds"] = best
            out[f"{lang}_tokens"] = tokens
        out[f"{lang}_rows"] = len(texts)
        df.unpersist()
    spark.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=50, help="copies of the catalog's descriptions (speed)")
    parser.add_argument("--jieba-path", default=None, help="a folder holding jieba (pip install --target)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)
    result = {} if args.skip_quality else {"quality": quality(args.jieba_path, args.items)}
    if not args.skip_speed:
        result["speed"] = speed(args.items, args.repeat)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
