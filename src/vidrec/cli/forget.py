"""``vidrec forget_user`` / ``jobs/forget_user.py``: erase users from every table and file of a warehouse."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vidrec.pipeline.forget import forget_users, read_ids_file

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """``forget_user --warehouse DIR --user-id ID [--user-ids-file F] [--vacuum-retention-hours H]``.

    Exit codes: 0 done, 1 the forget failed, 2 bad arguments or configuration (nothing touched).
    """
    import argparse
    import json
    import sys
    from pathlib import Path

    from vidrec.cli.common import setup_logging, warehouse_override
    from vidrec.config import ConfigError, load_config

    parser = argparse.ArgumentParser(
        prog="vidrec forget_user",
        description="Erase users from every table and file of the warehouse (right to be forgotten).",
    )
    parser.add_argument("--warehouse", help="Delta warehouse root (overrides conf 'warehouse')")
    parser.add_argument("--user-id", action="append", default=[], help="a user id; repeatable")
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
    args = parser.parse_args(argv)

    ids = list(args.user_id)
    if args.user_ids_file:
        try:
            ids += read_ids_file(args.user_ids_file)
        except OSError as exc:
            print(f"vidrec forget_user: --user-ids-file: {exc}", file=sys.stderr)
            return 2
    ids = [i.strip() for i in ids if i.strip()]
    if not ids:
        print("vidrec forget_user: give at least one --user-id or a --user-ids-file", file=sys.stderr)
        return 2
    if args.vacuum_retention_hours is not None and args.vacuum_retention_hours < 0:
        print("vidrec forget_user: --vacuum-retention-hours must be >= 0", file=sys.stderr)
        return 2
    overrides = [*args.set, *warehouse_override(args.warehouse)]
    try:
        conf = load_config(args.conf, overrides)
    except ConfigError as exc:
        print(f"vidrec forget_user: configuration error: {exc}", file=sys.stderr)
        return 2
    warehouse = conf.warehouse
    if "://" not in str(warehouse) and not Path(warehouse).is_dir():
        print(f"vidrec forget_user: warehouse {warehouse} does not exist", file=sys.stderr)
        return 2
    setup_logging(conf.logging.level)

    from vidrec.pipeline.session import build_spark

    try:
        spark = build_spark(conf)
    except ConfigError as exc:
        print(f"vidrec forget_user: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        result = forget_users(spark, warehouse, ids, args.vacuum_retention_hours)
    except Exception as exc:
        log.error("vidrec forget_user failed: %s", exc)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
