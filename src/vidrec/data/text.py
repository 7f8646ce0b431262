"""The one tokenizer of every text feature (titles, descriptions): Chinese, Japanese, Korean and Latin text.

Rules (the same in Python, :func:`tokenize`, and in Spark, :func:`tokens_column`):

- a *Latin* word is a run of letters and digits (any script but CJK), lower-cased: ``"Sci-Fi 2"`` gives
  ``sci``, ``fi``, ``2``; words shorter than ``min_word_length`` and words of ``stop_words`` are dropped;
- a *CJK run* (Han ideographs, kana, Hangul syllables: :data:`CJK_CLASS`) gives its characters and
  every pair of adjacent characters, interleaved in reading order: ``"爱情故事"`` gives ``爱``, ``爱情``,
  ``情``, ``情故``, ``故``, ``故事``, ``事``. Unigrams and bigrams are the dictionary-free indexing of
  Lucene's ``CJKBigramFilter`` (with ``outputUnigrams``): two descriptions that share a word share its
  bigram, whatever the segmentation, and nothing is downloaded at run time. The interleaved order keeps
  neighbours next to each other, so a convolution over the tokens sees them together. CJK tokens are
  never dropped for their length; ``stop_words`` applies to them too.

The Spark form is a pure column expression (``regexp_extract_all`` + higher-order functions): no
Python worker, no serialisation, measured faster than the same rules as a pandas UDF
(``bench/tokenizer.py``; docs/models.md gives the numbers). Mixed text needs no language tag:
``"iPhone手机"`` gives ``iphone``, ``手``, ``手机``, ``机``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

#: The CJK characters, as a regex character-class body valid in both Python's ``re`` and Java's regex:
#: CJK Unified Ideographs and Extension A, Compatibility Ideographs, Hiragana, Katakana, Hangul syllables.
CJK_CLASS = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff\uac00-\ud7af"

_PY_TOKEN = re.compile(rf"[{CJK_CLASS}]+|(?:(?![{CJK_CLASS}])[^\W_])+")
_PY_CJK = re.compile(rf"[{CJK_CLASS}]")
#: Java regex of a token: a CJK run, or a run of letters and digits that are not CJK.
JAVA_TOKEN = rf"[{CJK_CLASS}]+|[\p{{L}}\p{{N}}&&[^{CJK_CLASS}]]+"
_JAVA_CJK_START = rf"^[{CJK_CLASS}]"


def is_cjk(token: str) -> bool:
    """Whether ``token`` starts with a CJK character (a unigram or bigram of a CJK run)."""
    return bool(token) and _PY_CJK.match(token) is not None


def _cjk_grams(run: str) -> list[str]:
    out: list[str] = []
    for i, ch in enumerate(run):
        out.append(ch)
        if i + 1 < len(run):
            out.append(run[i : i + 2])
    return out


def tokenize(text: str | None, min_word_length: int = 1, stop_words: Iterable[str] = ()) -> list[str]:
    """Tokens of ``text`` in reading order (see the module docstring); ``[]`` for None or blank text.

    Parameters
    ----------
    text : str or None
    min_word_length : int
        Latin words shorter than this are dropped (CJK tokens never are).
    stop_words : iterable of str
        Tokens dropped (compared after lower-casing).
    """
    if not text:
        return []
    stops = frozenset(stop_words)
    out: list[str] = []
    for run in _PY_TOKEN.findall(text.lower()):
        if _PY_CJK.match(run):
            out.extend(t for t in _cjk_grams(run) if t not in stops)
        elif len(run) >= min_word_length and run not in stops:
            out.append(run)
    return out


def tokens_column(text: Column | str, min_word_length: int = 1, stop_words: Iterable[str] = ()) -> Column:
    """``array<string>``: :func:`tokenize` of a string column as a Spark expression (empty for null).

    Parameters
    ----------
    text : Column or str
        A string column (or its name).
    min_word_length, stop_words
        As in :func:`tokenize`.
    """
    col = F.col(text) if isinstance(text, str) else text
    runs = F.regexp_extract_all(F.lower(F.coalesce(col, F.lit(""))), F.lit(JAVA_TOKEN), 0)

    def grams(run: Column) -> Column:
        # k = 1 .. 2n - 1: odd k the character (k + 1) / 2, even k the pair starting at k / 2
        ks = F.sequence(F.lit(1), F.length(run) * 2 - 1)
        return F.transform(
            ks,
            lambda k: F.when(k % 2 == 1, run.substr(F.shiftright(k + 1, 1), F.lit(1))).otherwise(
                run.substr(F.shiftright(k, 1), F.lit(2))
            ),
        )

    expanded = F.flatten(
        F.transform(
            runs,
            lambda r: F.when(r.rlike(_JAVA_CJK_START), grams(r)).otherwise(
                F.when(F.length(r) >= F.lit(int(min_word_length)), F.array(r)).otherwise(
                    F.array().cast("array<string>")
                )
            ),
        )
    )
    stops = sorted(set(stop_words))
    if stops:
        expanded = F.filter(expanded, lambda t: ~t.isin(*stops))
    return expanded


def tokenize_pandas_udf(min_word_length: int = 1, stop_words: Iterable[str] = ()) -> object:
    """The same rules as a pandas UDF (``array<string>``): the alternative ``bench/tokenizer.py`` times."""
    stops = tuple(stop_words)

    @F.pandas_udf("array<string>")  # type: ignore[call-overload]
    def _tok(texts: pd.Series) -> pd.Series:
        return texts.map(lambda t: tokenize(t, min_word_length, stops))

    return _tok
