"""``docs/tables.md``, generated: every warehouse table with its grain, partitioning and columns.

The columns come from the Spark schemas of :mod:`vidrec.data.schemas` (``StructType`` objects are plain
Python: no SparkSession is started), the tables from the ``T_*`` names of :mod:`vidrec.constants` and
of :mod:`vidrec.analytics.common`; grain, partitioning and notes are the hand-written :data:`TABLE_DOCS`
below. A table ``(layer, name)`` takes the schema named ``NAME`` or ``LAYER_NAME`` (upper case) in
:mod:`vidrec.data.schemas`, so adding a schema there is enough to have its columns generated.

Usage::

    python -m vidrec.cli.docs           # (make docs) writes docs/tables.md
    python -m vidrec.cli.docs --check   # exit 1 when docs/tables.md differs from the rendering
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql.types import StructType

from vidrec import constants as C
from vidrec.analytics import common as analytics_common
from vidrec.data import schemas

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TABLES_MD = PROJECT_ROOT / "docs" / "tables.md"
Table = tuple[str, str]
LAYER_ORDER = (C.BRONZE, C.SILVER, C.GOLD, C.OPS)


@dataclass(frozen=True)
class TableDoc:
    """What a schema cannot say about a table: its grain, partitioning, writer and rules.

    A table whose schema is declared outside :mod:`vidrec.data.schemas` names it in ``schema_source``
    (``module.attribute``): a ``StructType`` there is rendered from the code; otherwise (a DDL string,
    or a schema a function builds) ``columns`` (name, type) gives the columns, rendered as given.
    """

    grain: str
    partitioned_by: tuple[str, ...]
    written: str
    notes: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    schema_source: str = ""
    constant: str = ""


TUNING_TRIALS: Table = (C.OPS, "tuning_trials")
BLEND_WEIGHTS: Table = (C.OPS, "blend_weights")

#: Hand-written: grain, partitioning, how each table is written, and its rules.
TABLE_DOCS: dict[Table, TableDoc] = {
    C.T_EVENTS: TableDoc(
        grain="one row per accepted event; `event_id` unique",
        partitioned_by=(C.COL_EVENT_DATE,),
        written="`ingest`: appends the events whose `event_id` it did not find in bronze "
        "(one read of bronze per night; a replayed event is skipped)",
        notes="`event_type` is one of "
        + ", ".join(f"`{t}`" for t in C.EVENT_TYPES)
        + "; `ts` is UTC; `watch_seconds` only on "
        + "/".join(f"`{t}`" for t in C.WATCH_EVENT_TYPES)
        + ", `rating` only on `rate`; `event_date` is the date of `ts`, `ingested_at` the ingestion time "
        "and `source_file` the raw file. Late events land in their own `event_date` partition. "
        "What is accepted: [contract.md](contract.md).",
    ),
    C.T_QUARANTINE: TableDoc(
        grain="one row per rejected record",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`ingest`, first: replaces the run date's partition",
        notes="`raw` is the record's text (invalid UTF-8 bytes kept as U+FFFD), `reason` the first contract "
        "rule it broke (every reason is listed in [contract.md](contract.md)), `entity` one of `events`, "
        "`items`, `users`. The rows of a run refused for bad input are kept for the operator. With "
        "`privacy.pseudonymize`, the user id in `raw` is replaced by its pseudonym, and `raw` is null for "
        "an `events`/`users` record whose user id cannot be found in it ([privacy.md](privacy.md)).",
    ),
    C.T_ITEMS: TableDoc(
        grain="one row per `item_id`: the latest catalog",
        partitioned_by=(),
        written="`ingest`: MERGE on `item_id` of the new and changed rows only (an unchanged input makes no "
        "commit); a row is replaced only by one from a run date at least as recent (`updated_at`)",
        notes="The contract columns; list columns (`genres`, `directors`, `cast`) are never null (an absent "
        "list is empty); `updated_at` is the run date that last changed the row.",
    ),
    C.T_USERS: TableDoc(
        grain="one row per `user_id`: the latest profiles",
        partitioned_by=(),
        written="`ingest`: MERGE on `user_id` of the new and changed rows only (an unchanged input makes no "
        "commit); a row is replaced only by one from a run date at least as recent (`updated_at`)",
        notes="Only the profile columns a model or table uses (data minimisation): `gender`, read from the "
        "input, is stored only when `privacy.keep_profile_columns` names it. With `privacy.pseudonymize`, "
        "`user_id` here and in every table is a pseudonym ([privacy.md](privacy.md)).",
    ),
    C.T_INTERACTIONS: TableDoc(
        grain="one row per (user, item) with any event in bronze: the latest state",
        partitioned_by=(),
        written="`matrix`: the events ingested since the last build MERGEd into the stored pairs (one "
        "commit, carrying the build's watermark as its `userMetadata`); overwritten whole by a full refold",
        notes="`n_<event_type>` counts, `total_watch_seconds`, `max_watch_seconds` (the longest watch), "
        "`watch_ratio` = min(1, longest watch / duration), `rating` (the latest, at `rating_ts`), "
        "`first_ts`, "
        "`last_ts`, and the implicit `confidence` "
        "(weights in `matrix.weights` of `conf/base.yaml`):\n\n"
        "    confidence = max(0,  2·watch_ratio + 1·ln(1+plays) + 2·[completed] + 3·[liked] + 4·[favorited]\n"
        "                        + 2·[shared] + 1·[commented] + 1·[rated] + 1·max(0, rating−3) "
        "− 5·[disliked])\n\nImpressions alone give 0. Implicit ALS weighs a pair by `1 + alpha·confidence`.",
    ),
    C.T_USER_INDEX: TableDoc(
        grain="one row per `user_id`: its stable integer `user_idx`",
        partitioned_by=(),
        written="`matrix`: MERGE on `user_id`; only `first_seen` of a known id can change (downwards)",
        notes="`first_seen` is the earliest run date whose data held the id. New ids are appended after the "
        "maximum, profile ids first (by id), then ids known only from events (by first event date, then "
        "id); a known id never changes number.",
    ),
    C.T_ITEM_INDEX: TableDoc(
        grain="one row per `item_id`: its stable integer `item_idx`",
        partitioned_by=(),
        written="`matrix`: MERGE on `item_id`; only `first_seen` of a known id can change (downwards)",
        notes="As `silver/user_index`: new ids appended after the maximum, catalog ids first (by id), then "
        "ids known only from events (by first event date, then id); a known id never changes number.",
    ),
    C.T_RECOMMENDATIONS: TableDoc(
        grain="one row per (user, algorithm, rank) of a run date",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`recommend`: replaces the run date's rows of the algorithms it ran, after "
        "`vidrec.data.contracts.check_recommendations`",
        notes="For each user and algorithm: ranks 1..N without gaps, no duplicate item, no item the user "
        "completed, rated, liked, favorited or disliked (nor played, with `recommend.exclude_played`), "
        "scores non-increasing with rank. Users a model cannot serve (no history) get the popularity list "
        "under that model's name with the reason `popular right now (not enough history for a personal "
        "list)`. The `hybrid` rows cover every indexed user (cold-start routing is part of it) and each "
        "carries its own `reason`. `model_version` is `<algorithm>-<run_date>-<hash of its parameters>`.",
    ),
    C.T_SIMILAR_ITEMS: TableDoc(
        grain="one row per (item, algorithm, rank) of a run date",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`recommend`: replaces the run date's partition",
        notes="For every item, its `similar_items.top_n` most similar items by co-watching (`itemknn`: "
        "shrunk cosine of the users who engaged with both) and by metadata (`content`: cosine of the "
        "content vectors, so items nobody has watched have neighbours too). Ranks 1..N per (item, "
        'algorithm), no item similar to itself, scores non-increasing. This is what a "more like this" '
        'shelf and "because you watched X" read.',
        schema_source="vidrec.models.itemknn.SIMILAR_ITEMS_SCHEMA",
    ),
    C.T_POPULAR_ITEMS: TableDoc(
        grain="one row per (segment, rank) of a run date",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`popular`: replaces the run date's partition, after "
        "`vidrec.data.contracts.check_popular_items`",
        notes=f"Segments `{C.SEGMENT_OVERALL}` and `{C.GENRE_SEGMENT_PREFIX}<name>` (distinct engaged users "
        f"in the last `popularity.window_days`), and `{C.SEGMENT_TRENDING}` (growth of engaged users over "
        "the last `trending_days` against the period before). Ranks 1..N per segment, no duplicate item.",
        columns=(
            (C.COL_RUN_DATE, "date"),
            (C.COL_SEGMENT, "string"),
            (C.COL_RANK, "int"),
            (C.COL_ITEM, "string"),
            (C.COL_SCORE, "double"),
        ),
        schema_source="vidrec.models.popularity.popular_lists",
    ),
    C.T_MODEL_METRICS: TableDoc(
        grain="one row per (algorithm, metric, k, split) of a run date",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`evaluate` (and `jobs/evaluate.py`): replaces the run date's partition",
        notes="precision, recall, f1, ndcg, map, hit_rate, mrr, coverage, diversity, novelty at `k`; rmse "
        "and mae (`k` null) where ratings exist; `users_evaluated`. `split` names the protocol, and "
        "`<split>:cold_users` / `<split>:cold_items` its slices. Definitions: "
        "[evaluation.md](evaluation.md).",
    ),
    C.T_USER_EMBEDDINGS: TableDoc(
        grain="one row per (user, algorithm) of a run date",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`recommend`: replaces the run date's rows of the algorithms that return embeddings",
        notes="Mult-VAE's user-interest vectors (the encoder mean), for analysts.",
        columns=(
            (C.COL_RUN_DATE, "date"),
            (C.COL_USER, "string"),
            (C.COL_ALGORITHM, "string"),
            (C.COL_MODEL_VERSION, "string"),
            ("embedding", "array<float>"),
        ),
        schema_source="vidrec.serving.gold.write_user_embeddings",
    ),
    C.T_RUNS: TableDoc(
        grain="one row per stage of each run",
        partitioned_by=(),
        written="every stage appends its row (success or failure)",
        notes="`details` is JSON (the stage's counts), `rows_written` maps each table to the rows its "
        "commits wrote (from Delta's commit metrics), `bad_records` the records ingest rejected, "
        "`model_versions` (evaluate, recommend) maps a model name (e.g. `als` or `als-biased`) to its "
        "model version.",
        columns=(
            ("run_id", "string"),
            (C.COL_RUN_DATE, "date"),
            ("stage", "string"),
            ("status", "string"),
            ("started_at", "timestamp"),
            ("ended_at", "timestamp"),
            ("seconds", "double"),
            ("details", "string"),
            ("error", "string"),
            ("rows_written", "map<string,bigint>"),
            ("bad_records", "bigint"),
            ("model_versions", "map<string,string>"),
        ),
        schema_source="vidrec.pipeline.runlog.RUNS_SCHEMA",
    ),
    C.T_LEASE: TableDoc(
        grain="at most one row: the job that holds the warehouse (none: free)",
        partitioned_by=(),
        written="every job that writes the warehouse: inserted when it starts, its `heartbeat_at` "
        "updated every `lease.heartbeat_s`, deleted when it ends (each a conditional MERGE)",
        notes="One writer at a time ([operations.md](operations.md#one-writer-at-a-time)): a second writer "
        "exits 3 naming the holder, or waits with `--wait SECONDS`; a row whose `heartbeat_at` is older "
        "than `lease.stale_after_s` is a dead job's and is taken over. `token` is unique to one hold, "
        "`run_id` the job's run (the nightly's `ops/runs` id). Readers take no lease.",
        columns=(
            ("lease", "string"),
            ("token", "string"),
            ("job", "string"),
            ("run_id", "string"),
            ("host", "string"),
            ("pid", "bigint"),
            ("started_at", "timestamp"),
            ("heartbeat_at", "timestamp"),
        ),
        schema_source="vidrec.pipeline.lease.SCHEMA",
    ),
    TUNING_TRIALS: TableDoc(
        grain="one row per trial of a tuning job (the hybrid: per blend tried)",
        partitioned_by=(C.COL_RUN_DATE,),
        written="`jobs/tune.py`: a rerun replaces its run date and protocol",
        notes="`params` and `metrics` are JSON; `metric` is `ndcg@10`; `chosen` marks the configuration "
        "kept. See [evaluation.md](evaluation.md).",
        schema_source="vidrec.evaluation.trials.TRIALS_SCHEMA",
        constant="vidrec.evaluation.trials.TRIALS_TABLE",
    ),
    BLEND_WEIGHTS: TableDoc(
        grain="one row per learned blend of the hybrid: (`run_date`, `protocol`)",
        partitioned_by=(C.COL_RUN_DATE,),
        written="the offline evaluation (`evaluate` stage, `jobs/evaluate.py`) with `hybrid.tune_weights`: "
        "a rerun replaces its run date and protocol",
        notes="`weights` (JSON: component, and `new_items`, -> warm weight), `score_norm` and `rrf_k` were "
        "chosen on a validation carve of the evaluation's training side, where they scored "
        "`validation_ndcg` at `k` over `validation_users`; `components` (JSON) holds the model versions "
        "of the lists they were chosen on, `weights_version` the choice's own version. The served hybrid "
        "uses the latest row of `evaluation.protocol` up to its run date. See "
        "[evaluation.md](evaluation.md#the-learned-blend).",
        schema_source="vidrec.evaluation.blend_weights.BLEND_SCHEMA",
        constant="vidrec.evaluation.blend_weights.BLEND_TABLE",
    ),
}

HEADER = (
    "<!-- Generated by `python -m vidrec.cli.docs` (`make docs`) from vidrec.data.schemas, vidrec.constants "
    "and the notes in src/vidrec/cli/docs.py: do not edit by hand. -->"
)


def _tables_of(module: object) -> list[Table]:
    """``T_*`` tables ``(layer, name)`` of a module, in the order they are defined."""
    return [
        value
        for key, value in vars(module).items()
        if key.startswith("T_")
        and isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ]


def _schema_for(table: Table, module: object = schemas) -> tuple[str, StructType] | None:
    """The schema of ``table`` in ``module``: named ``NAME`` or ``LAYER_NAME`` (upper case)."""
    layer, name = table
    for attr in (name.upper(), f"{layer}_{name}".upper()):
        value = getattr(module, attr, None)
        if isinstance(value, StructType):
            return attr, value
    return None


def _anchor(table: Table) -> str:
    """GitHub's anchor of the heading ``layer/name``."""
    return "#" + f"{table[0]}{table[1]}".lower()


def _columns(schema: StructType) -> list[str]:
    lines = ["| column | type | nullable |", "| --- | --- | --- |"]
    for f in schema.fields:
        lines.append(f"| `{f.name}` | {f.dataType.simpleString()} | {'yes' if f.nullable else 'no'} |")
    return lines


def _declared_schema(source: str) -> StructType | None:
    """The ``StructType`` that ``source`` (``module.attribute``) names, if it names one."""
    if "." not in source:
        return None
    module, attr = source.rsplit(".", 1)
    value = getattr(importlib.import_module(module), attr, None)
    return value if isinstance(value, StructType) else None


def _partitioning(doc: TableDoc | None) -> str:
    if doc is None:
        return "–"
    return ", ".join(f"`{c}`" for c in doc.partitioned_by) or "–"


def _section(table: Table, module: str) -> list[str]:
    layer, name = table
    doc = TABLE_DOCS.get(table)
    const = next((k for k, v in vars(C).items() if k.startswith("T_") and v == table), None)
    where = f"`{module}.{const}`" if const else f"`{doc.constant}`" if doc and doc.constant else "no constant"
    lines = [
        f"## {layer}/{name}",
        "",
        f"`vidrec_{layer}.{name}` at `<warehouse>/{layer}/{name}` ({where}).",
        "",
    ]
    if doc is not None:
        lines += [
            f"- **Grain:** {doc.grain}.",
            f"- **Partitioned by:** {_partitioning(doc) if doc.partitioned_by else 'not partitioned'}.",
            f"- **Written by:** {doc.written}.",
            "",
        ]
        if doc.notes:
            lines += [doc.notes, ""]
    found = _schema_for(table)
    declared = _declared_schema(doc.schema_source) if doc is not None else None
    if found is not None:
        attr, schema = found
        lines += [f"Schema `vidrec.data.schemas.{attr}`:", "", *_columns(schema), ""]
    elif declared is not None and doc is not None:
        lines += [f"Schema `{doc.schema_source}`:", "", *_columns(declared), ""]
    elif doc is not None and doc.columns:
        lines += [
            f"Columns (declared in `{doc.schema_source}`, not in `vidrec.data.schemas`, so copied by hand):",
            "",
            "| column | type |",
            "| --- | --- |",
            *[f"| `{n}` | {t or '–'} |" for n, t in doc.columns],
            "",
        ]
    return lines


def render_tables() -> str:
    """The markdown of ``docs/tables.md``."""
    core = _tables_of(C)
    extra = [t for t in TABLE_DOCS if t not in core]
    order = {layer: i for i, layer in enumerate(LAYER_ORDER)}
    warehouse = sorted(core + extra, key=lambda t: order.get(t[0], len(order)))  # stable: defined order
    analytics = _tables_of(analytics_common)
    lines = [
        HEADER,
        "",
        "# Tables",
        "",
        "Every table is a Delta table at `<warehouse>/<layer>/<table>`, registered in the Spark catalog as "
        "`vidrec_<layer>.<table>` (`vidrec.data.tables.register_all(spark, warehouse)` registers them in a "
        "new session). Every write is one Delta commit, so a reader sees the previous complete version or "
        "the new one; a table partitioned by `run_date` is written by replacing the run date's partition, "
        "so rerunning a date replaces its rows. The input these tables come from: "
        "[contract.md](contract.md).",
        "",
        "| table | catalog name | grain | partitioned by |",
        "| --- | --- | --- | --- |",
    ]
    for t in warehouse:
        doc = TABLE_DOCS.get(t)
        grain = doc.grain if doc else "–"
        lines.append(
            f"| [`{t[0]}/{t[1]}`]({_anchor(t)}) | `vidrec_{t[0]}.{t[1]}` | {grain} | {_partitioning(doc)} |"
        )
    for t in analytics:
        lines.append(
            f"| [`{t[0]}/{t[1]}`](analytics_tables.md) | `vidrec_{t[0]}.{t[1]}` | see "
            "[analytics_tables.md](analytics_tables.md) | `run_date` |"
        )
    lines.append("")
    for t in warehouse:
        lines += _section(t, "vidrec.constants")
    lines += [
        "## Analytics tables",
        "",
        "Built by the `analytics` stage (`vidrec.analytics`), each partitioned by `run_date` (a run replaces "
        "its date's partition). Documented column by column, with a query each, in "
        "[analytics_tables.md](analytics_tables.md).",
        "",
        "| table | catalog name | constant |",
        "| --- | --- | --- |",
    ]
    for t in analytics:
        const = next(k for k, v in vars(analytics_common).items() if k.startswith("T_") and v == t)
        lines.append(f"| `{t[0]}/{t[1]}` | `vidrec_{t[0]}.{t[1]}` | `vidrec.analytics.common.{const}` |")
    lines.append("")
    for t in analytics:
        found = _schema_for(t, analytics_common)
        if found is not None:
            lines += [f"### {t[0]}/{t[1]}", "", *_columns(found[1]), ""]
    mapped = {found[0] for t in warehouse if (found := _schema_for(t)) is not None}
    others = [(k, v) for k, v in vars(schemas).items() if isinstance(v, StructType) and k not in mapped]
    if others:
        lines += ["## Other schemas in `vidrec.data.schemas`", ""]
        for k, v in others:
            lines += [f"### {k}", "", *_columns(v), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``docs/tables.md``, or with ``--check`` exit 1 when it differs from the rendering."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is not current")
    parser.add_argument("--out", default=str(TABLES_MD), help="the file (default: docs/tables.md)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    text = render_tables()
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True), str(out), "rendered", n=1
        )
        sys.stderr.writelines(list(diff)[:60])
        print(f"{out} is out of date: run `make docs`", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
