"""Spark schemas of the input contract and of the tables the pipeline writes.

The input schemas are what ``ingest`` parses raw records into (every field read as it comes, then
validated); the table schemas are what downstream stages and analysts can rely on.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DateType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from vidrec import constants as C

#: Required event fields (a record missing one is quarantined).
EVENT_REQUIRED = (C.COL_EVENT_ID, C.COL_USER, C.COL_ITEM, C.COL_EVENT_TYPE, C.COL_TS)
ITEM_REQUIRED = (C.COL_ITEM, C.COL_TITLE)
USER_REQUIRED = (C.COL_USER,)

#: bronze/events: one row per accepted event.
BRONZE_EVENTS = StructType(
    [
        StructField(C.COL_EVENT_ID, StringType(), False),
        StructField(C.COL_USER, StringType(), False),
        StructField(C.COL_ITEM, StringType(), False),
        StructField(C.COL_EVENT_TYPE, StringType(), False),
        StructField(C.COL_TS, TimestampType(), False),
        StructField(C.COL_WATCH_SECONDS, DoubleType(), True),
        StructField(C.COL_RATING, DoubleType(), True),
        StructField(C.COL_SESSION, StringType(), True),
        StructField(C.COL_DEVICE, StringType(), True),
        StructField(C.COL_POSITION, DoubleType(), True),
        StructField(C.COL_EVENT_DATE, DateType(), False),
        StructField(C.COL_INGESTED_AT, TimestampType(), False),
        StructField(C.COL_SOURCE_FILE, StringType(), False),
    ]
)

#: bronze/quarantine: one row per rejected record.
QUARANTINE = StructType(
    [
        StructField(C.COL_SOURCE_FILE, StringType(), False),
        StructField(C.COL_RAW, StringType(), True),
        StructField(C.COL_REASON, StringType(), False),
        StructField("entity", StringType(), False),
        StructField(C.COL_RUN_DATE, DateType(), False),
    ]
)

#: silver/items: the latest catalog.
SILVER_ITEMS = StructType(
    [
        StructField(C.COL_ITEM, StringType(), False),
        StructField(C.COL_TITLE, StringType(), True),
        StructField(C.COL_GENRES, ArrayType(StringType()), True),
        StructField(C.COL_DIRECTORS, ArrayType(StringType()), True),
        StructField(C.COL_CAST, ArrayType(StringType()), True),
        StructField(C.COL_RELEASE_YEAR, IntegerType(), True),
        StructField(C.COL_DURATION, DoubleType(), True),
        StructField(C.COL_DESCRIPTION, StringType(), True),
        StructField(C.COL_LANGUAGE, StringType(), True),
        StructField(C.COL_MATURITY, StringType(), True),
        StructField(C.COL_VISUAL_EMB, ArrayType(FloatType()), True),
        StructField(C.COL_AUDIO_EMB, ArrayType(FloatType()), True),
        StructField(C.COL_UPDATED_AT, DateType(), False),
    ]
)

#: silver/users: the latest profiles, the columns stored by default (data minimisation: ``gender`` only
#: with ``privacy.keep_profile_columns``; with ``privacy.pseudonymize`` ``user_id`` is a pseudonym).
SILVER_USERS = StructType(
    [
        StructField(C.COL_USER, StringType(), False),
        StructField(C.COL_SIGNUP_DATE, DateType(), True),
        StructField(C.COL_COUNTRY, StringType(), True),
        StructField(C.COL_AGE_BAND, StringType(), True),
        StructField(C.COL_UPDATED_AT, DateType(), False),
    ]
)
#: silver/users with every optional profile column a configuration may keep.
SILVER_USERS_ALL = StructType(
    [*SILVER_USERS.fields[:-1], StructField(C.COL_GENDER, StringType(), True), SILVER_USERS.fields[-1]]
)

#: silver/user_index and silver/item_index: stable integer ids.
USER_INDEX = StructType(
    [
        StructField(C.COL_USER, StringType(), False),
        StructField(C.COL_USER_IDX, IntegerType(), False),
        StructField(C.COL_FIRST_SEEN, DateType(), False),
    ]
)
ITEM_INDEX = StructType(
    [
        StructField(C.COL_ITEM, StringType(), False),
        StructField(C.COL_ITEM_IDX, IntegerType(), False),
        StructField(C.COL_FIRST_SEEN, DateType(), False),
    ]
)

#: silver/interactions: one row per (user, item) with any event up to the run date.
INTERACTIONS = StructType(
    [
        StructField(C.COL_USER, StringType(), False),
        StructField(C.COL_ITEM, StringType(), False),
        StructField(C.COL_USER_IDX, IntegerType(), False),
        StructField(C.COL_ITEM_IDX, IntegerType(), False),
        *[StructField(c, LongType(), False) for c in C.COUNT_COLS.values()],
        StructField(C.COL_TOTAL_WATCH, DoubleType(), False),
        StructField(C.COL_MAX_WATCH, DoubleType(), True),
        StructField(C.COL_WATCH_RATIO, DoubleType(), True),
        StructField(C.COL_RATING, DoubleType(), True),
        StructField(C.COL_RATING_TS, TimestampType(), True),
        StructField(C.COL_FIRST_TS, TimestampType(), False),
        StructField(C.COL_LAST_TS, TimestampType(), False),
        StructField(C.COL_CONFIDENCE, DoubleType(), False),
    ]
)

#: gold/recommendations.
RECOMMENDATIONS = StructType(
    [
        StructField(C.COL_RUN_DATE, DateType(), False),
        StructField(C.COL_USER, StringType(), False),
        StructField(C.COL_RANK, IntegerType(), False),
        StructField(C.COL_ITEM, StringType(), False),
        StructField(C.COL_SCORE, DoubleType(), False),
        StructField(C.COL_ALGORITHM, StringType(), False),
        StructField(C.COL_MODEL_VERSION, StringType(), False),
        StructField(C.COL_REASON, StringType(), True),
    ]
)

#: gold/model_metrics.
MODEL_METRICS = StructType(
    [
        StructField(C.COL_RUN_DATE, DateType(), False),
        StructField(C.COL_ALGORITHM, StringType(), False),
        StructField(C.COL_MODEL_VERSION, StringType(), False),
        StructField(C.COL_METRIC, StringType(), False),
        StructField(C.COL_K, IntegerType(), True),
        StructField(C.COL_VALUE, DoubleType(), True),
        StructField(C.COL_SPLIT, StringType(), False),
    ]
)
