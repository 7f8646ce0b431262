"""Finding and reading raw input files (JSON lines, CSV, Parquet) into string-typed records.

Every reader returns the same shape, whatever the format: one string column per contract field
(list fields as ``array<string>``), the record's ``raw`` text, its ``source_file``, and
``_malformed`` (the record could not be parsed at all). Typing and validation happen in ``ingest``,
so a bad value becomes a quarantine row with a reason, never a failed job or a silent null.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from vidrec import constants as C

log = logging.getLogger(__name__)

ENTITIES = ("events", "items", "users")
FORMATS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".parquet": "parquet"}
COL_MALFORMED = "_malformed"
_CORRUPT = "_corrupt_record"

#: Contract fields per entity: name -> "scalar" (read as string) or "list" (array<string>).
FIELDS: dict[str, dict[str, str]] = {
    "events": {
        c: "scalar"
        for c in (
            C.COL_EVENT_ID,
            C.COL_USER,
            C.COL_ITEM,
            C.COL_EVENT_TYPE,
            C.COL_TS,
            C.COL_WATCH_SECONDS,
            C.COL_RATING,
            C.COL_SESSION,
            C.COL_DEVICE,
            C.COL_POSITION,
        )
    },
    "items": {
        C.COL_ITEM: "scalar",
        C.COL_TITLE: "scalar",
        C.COL_GENRES: "list",
        C.COL_DIRECTORS: "list",
        C.COL_CAST: "list",
        C.COL_RELEASE_YEAR: "scalar",
        C.COL_DURATION: "scalar",
        C.COL_DESCRIPTION: "scalar",
        C.COL_LANGUAGE: "scalar",
        C.COL_MATURITY: "scalar",
        C.COL_VISUAL_EMB: "list",
        C.COL_AUDIO_EMB: "list",
    },
    "users": {
        c: "scalar" for c in (C.COL_USER, C.COL_SIGNUP_DATE, C.COL_COUNTRY, C.COL_AGE_BAND, C.COL_GENDER)
    },
}


@dataclass(frozen=True)
class Source:
    """One raw input: a file, or a folder of part files, of one entity in one format."""

    entity: str
    path: str
    fmt: str


def discover(raw_dir: str | Path) -> list[Source]:
    """List the inputs in ``raw_dir``: names starting with ``events``, ``items`` or ``users``.

    A name's extension gives its format (``.jsonl/.json/.ndjson``, ``.csv``, ``.parquet``); a folder
    so named (e.g. Spark's ``events.jsonl/part-*.json``) is read whole in that format.

    Raises
    ------
    FileNotFoundError
        When ``raw_dir`` does not exist.
    ValueError
        When an input file has an extension no reader knows, naming the file.
    """
    root = Path(raw_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--raw: input folder {root} does not exist")
    out: list[Source] = []
    for path in sorted(root.iterdir()):
        entity = next((e for e in ENTITIES if path.name.startswith(e)), None)
        if entity is None or path.name.startswith((".", "_")):
            continue
        suffix = "".join(path.suffixes[-1:]).lower()
        if suffix == ".gz" and len(path.suffixes) >= 2:
            suffix = path.suffixes[-2].lower()
        if suffix not in FORMATS:
            raise ValueError(
                f"--raw: cannot tell the format of {path} (known extensions: {', '.join(sorted(FORMATS))})"
            )
        out.append(Source(entity, str(path.resolve()), FORMATS[suffix]))
    return out


def _struct(fields: dict[str, str], with_corrupt: bool) -> StructType:
    cols = [
        StructField(name, ArrayType(StringType()) if kind == "list" else StringType(), True)
        for name, kind in fields.items()
    ]
    if with_corrupt:
        cols.append(StructField(_CORRUPT, StringType(), True))
    return StructType(cols)


def _split_list(col: F.Column) -> F.Column:
    """A list field given as text: a JSON array, or values separated by ``|``."""
    as_json = F.from_json(col, ArrayType(StringType()))
    return F.when(col.isNull() | (F.trim(col) == ""), F.lit(None).cast("array<string>")).otherwise(
        F.when(F.trim(col).startswith("["), as_json).otherwise(F.split(col, r"\|"))
    )


def read_source(spark: SparkSession, source: Source) -> DataFrame:
    """Read ``source`` into string-typed contract columns plus ``raw``, ``source_file``, ``_malformed``."""
    fields = FIELDS[source.entity]
    file_col = F.col("_metadata.file_path")
    if source.fmt == "json":
        text = spark.read.text(source.path)
        parsed = F.from_json(
            "value",
            _struct(fields, with_corrupt=True),
            {"columnNameOfCorruptRecord": _CORRUPT, "mode": "PERMISSIVE"},
        )
        df = text.select(
            F.col("value").alias(C.COL_RAW), file_col.alias(C.COL_SOURCE_FILE), parsed.alias("p")
        )
        df = df.where(F.trim(C.COL_RAW) != "")  # blank lines carry nothing
        return df.select(
            *[F.col(f"p.{name}").alias(name) for name in fields],
            C.COL_RAW,
            C.COL_SOURCE_FILE,
            F.col(f"p.{_CORRUPT}").isNotNull().alias(COL_MALFORMED),
        )
    if source.fmt == "csv":
        scalar = {name: "scalar" for name in fields}
        df = (
            spark.read.option("header", "true")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", _CORRUPT)
            .option("enforceSchema", "false")
            .schema(_struct(scalar, with_corrupt=True))
            .csv(source.path)
        )
        raw = F.coalesce(F.col(_CORRUPT), F.to_json(F.struct(*[F.col(n) for n in fields])))
        return df.select(
            *[(_split_list(F.col(n)) if kind == "list" else F.col(n)).alias(n) for n, kind in fields.items()],
            raw.alias(C.COL_RAW),
            file_col.alias(C.COL_SOURCE_FILE),
            F.col(_CORRUPT).isNotNull().alias(COL_MALFORMED),
        )
    if source.fmt == "parquet":
        df = spark.read.parquet(source.path)
        present = {f.name: f.dataType for f in df.schema.fields}
        cols = []
        for name, kind in fields.items():
            if name not in present:
                cols.append(F.lit(None).cast("array<string>" if kind == "list" else "string").alias(name))
            elif kind == "list":
                cols.append(F.col(name).cast("array<string>").alias(name))
            elif present[name].typeName() == "timestamp":
                cols.append(F.date_format(F.col(name), "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias(name))
            else:
                cols.append(F.col(name).cast("string").alias(name))
        raw = F.to_json(F.struct(*[F.col(n) for n in present]))
        return df.select(
            *cols, raw.alias(C.COL_RAW), file_col.alias(C.COL_SOURCE_FILE), F.lit(False).alias(COL_MALFORMED)
        )
    raise ValueError(f"unknown format '{source.fmt}' for {source.path}")


def read_entity(spark: SparkSession, sources: list[Source], entity: str) -> DataFrame | None:
    """Union of every source of ``entity``; ``None`` when there is none."""
    frames = [read_source(spark, s) for s in sources if s.entity == entity]
    if not frames:
        return None
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out
