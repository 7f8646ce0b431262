"""``vidrec forget_user`` / ``jobs/forget_user.py``: erase users from every table and file of a warehouse."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from vidrec.config import Config
from vidrec.pipeline.forget import forget_users, read_ids_file
from vidrec.pipeline.lease import LeaseError

log = logging.getLogger(__name__)


#: Exit code of a forget none of whose users (or some of them) the warehouse held.
EXIT_UNKNOWN_USER = 5


def extra_roots(conf: Config) -> list[str]:
    """Folders outside the warehouse that hold this warehouse's files keyed by user: the deep models'
    ``deep.launch.shard_root`` and ``deep.launch.artifact_root`` when set.

    The MLflow tracking store is not among them: tuning logs no per-user row there (see
    :func:`vidrec.evaluation.tuning._log_model_files` and docs/privacy.md), and a store shared by
    several warehouses must not be edited by one warehouse's ``user_idx``.
    """
    return [r for r in (conf.deep.launch.shard_root, conf.deep.launch.artifact_root) if r]


def main(argv: Sequence[str] | None = None) -> int:
    """``forget_user --warehouse DIR --user-id ID [--user-ids-file F] [--vacuum-retention-hours H]``.

    ``--wait S`` waits up to S seconds for the warehouse's lease. Exit codes: 0 done; 1 the forget
    failed; 2 bad arguments or configuration, or ``privacy.pseudonymize`` without its key (nothing
    touched); 3 another job holds the warehouse's lease (``--wait`` to wait for it); 4 the lease
    table is malformed; 5 some user was in no table (already forgotten, or a wrong id): the others
    were erased.
    """
    import argparse
    import json
    import sys
    from pathlib import Path

    from vidrec.cli.common import add_wait, report_stream, setup_logging, warehouse_override, with_lease
    from vidrec.config import ConfigError, load_config
    from vidrec.data import privacy

    parser = argparse.ArgumentParser(
        prog="vidrec forget_user",
        description="Erase users from every table and file of the warehouse (right to be forgotten).",
    )
    parser.add_argument("--warehouse", help="Delta warehouse root (overrides conf 'warehouse')")
    parser.add_argument(
        "--user-id",
        action="append",
        default=[],
        help="a user id as the product knows it (with privacy.pseudonymize: the original id, not its "
        "pseudonym); repeatable",
    )
    parser.add_argument("--user-ids-file", help="text file of user ids, one per line")
    parser.add_argument(
        "--vacuum-retention-hours",
        type=float,
        default=None,
        help="VACUUM the affected tables with this retention and truncate their Delta log "
        "(0: erase the files now). Omitted: logical delete only, files go at the next VACUUM.",
    )
    parser.add_argument("--conf", help="environment config file (default conf/local.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    add_wait(parser)
    args = parser.parse_args(argv)
    ids = list(args.user_id)
    if args.user_ids_file:
        try:
            ids += read_ids_file(args.user_ids_file)
        except OSError as exc:
            print(f"vidrec forget_user: --user-ids-file: {exc}", file=sys.stderr)
            return 2
    ids = sorted({i.strip() for i in ids if i.strip()})
    if not ids:
        print("vidrec forget_user: give at least one --user-id or a --user-ids-file", file=sys.stderr)
        return 2
    if args.vacuum_retention_hours is not None and args.vacuum_retention_hours < 0:
        print("vidrec forget_user: --vacuum-retention-hours must be >= 0", file=sys.stderr)
        return 2
    if args.wait < 0:
        print(f"vidrec forget_user: --wait must be >= 0 seconds, got {args.wait:g}", file=sys.stderr)
        return 2
    overrides = [*args.set, *warehouse_override(args.warehouse)]
    try:
        conf = load_config(args.conf, overrides)
        key = privacy.load_key(conf.privacy)
    except ConfigError as exc:
        print(f"vidrec forget_user: configuration error: {exc}", file=sys.stderr)
        return 2
    warehouse = conf.warehouse
    if "://" not in str(warehouse) and not Path(warehouse).is_dir():
        print(f"vidrec forget_user: warehouse {warehouse} does not exist", file=sys.stderr)
        return 2
    # with pseudonyms the warehouse holds HMAC(key, id); rows ingested before pseudonymisation was
    # switched on hold the id itself: both are erased
    groups = [[i, privacy.pseudonym(key, i)] if key is not None else [i] for i in ids]
    setup_logging(conf.logging.level)
    from vidrec.pipeline.session import build_spark

    report = report_stream()  # Delta's VACUUM prints to the JVM's stdout: keep the JSON report apart
    try:
        spark = build_spark(conf)
    except ConfigError as exc:
        print(f"vidrec forget_user: configuration error: {exc}", file=sys.stderr)
        return 2

    def work(held: Any) -> int:
        try:
            result = forget_users(
                spark,
                warehouse,
                [u for g in groups for u in g],
                args.vacuum_retention_hours,
                extra_roots=extra_roots(conf),
                groups=groups,
                guard=held.check,
            )
        except LeaseError:
            raise
        except Exception as exc:
            log.error("vidrec forget_user failed: %s", exc)
            return 1
        print(json.dumps(result, indent=2, sort_keys=True), file=report, flush=True)
        if result["unknown_users"]:
            print(
                f"vidrec forget_user: {result['unknown_users']} of {len(groups)} user id(s) were in no table "
                "of the warehouse: already forgotten, or an id it never held"
                + (" (privacy.pseudonymize is on: check the key is the one ingest used)" if key else "")
                + "; every other user given was erased",
                file=sys.stderr,
            )
            return EXIT_UNKNOWN_USER
        return 0

    return with_lease("vidrec forget_user", spark, conf, "forget_user", args.wait, work)
