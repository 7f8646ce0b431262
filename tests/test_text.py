"""The one tokenizer of text features: Chinese, English and mixed titles, in Python and in Spark."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from vidrec.data.text import is_cjk, tokenize, tokens_column

CASES = [
    # English: lower-cased words, punctuation and hyphens split
    ("The Silent Heist 2", ["the", "silent", "heist", "2"]),
    ("Sci-Fi: Galaxy's END", ["sci", "fi", "galaxy", "s", "end"]),
    # Chinese: characters interleaved with their bigrams, punctuation splits runs
    ("爱情故事", ["爱", "爱情", "情", "情故", "故", "故事", "事"]),
    ("龙，魔法", ["龙", "魔", "魔法", "法"]),
    # mixed: no language tag needed
    ("iPhone手机 Sci-Fi", ["iphone", "手", "手机", "机", "sci", "fi"]),
    ("第2季 Season 2", ["第", "2", "季", "season", "2"]),
    # Japanese kana and Korean Hangul are CJK runs too; accented Latin stays one word
    ("東京ラブ 사랑 Café", ["東", "東京", "京", "京ラ", "ラ", "ラブ", "ブ", "사", "사랑", "랑", "café"]),
    (None, []),
    ("", []),
    ("  ,.!  ", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_tokenize_latin_words_and_cjk_unigrams_with_bigrams(text: str | None, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_two_chinese_descriptions_that_share_a_word_share_its_tokens() -> None:
    # an unsegmented phrase would be one token each: nothing shared
    a = set(tokenize("一部关于巨龙与预言的奇幻电影"))
    b = set(tokenize("巨龙守护着古老的宝藏"))
    assert {"巨龙", "巨", "龙"} <= a & b


def test_short_latin_words_and_stop_words_drop_but_cjk_tokens_stay() -> None:
    got = tokenize("A 的 cat and 电影 of war", min_word_length=3, stop_words={"and", "的"})
    assert got == ["cat", "电", "电影", "影", "war"]
    assert is_cjk("电影") and is_cjk("ラ") and not is_cjk("café") and not is_cjk("")


@pytest.mark.spark
def test_the_spark_expression_gives_the_python_tokens(spark: SparkSession) -> None:
    texts = [t for t, _ in CASES] + ["一部关于巨龙与预言的奇幻电影，由王伟执导。", "x 的 a_b", "ÜBER über"]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "i int, t string")
    for length, stops in ((1, ()), (3, ("the", "的", "一部"))):
        got = {
            r.i: list(r.tokens)
            for r in df.select("i", tokens_column("t", length, stops).alias("tokens")).collect()
        }
        assert got == {i: tokenize(t, length, stops) for i, t in enumerate(texts)}
