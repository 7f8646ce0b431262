"""Every command line of vidrec: the ``vidrec`` console command and what ``jobs/*.py`` call.

``vidrec COMMAND [flags]`` dispatches to one module of this package:

- :mod:`~vidrec.cli.stages`: ``nightly``, one stage (``ingest``, ``build_matrix``, ``evaluate``,
  ``train_als``, ``recommend``, ``popular``, ``analytics``) and ``backfill``;
- :mod:`~vidrec.cli.forget`: ``forget_user``;
- :mod:`~vidrec.cli.tune`: ``tune``;
- :mod:`~vidrec.cli.train_deep`: ``train_deep`` (one deep model);
- :mod:`~vidrec.cli.sample`: ``generate_sample``;
- :mod:`~vidrec.cli.quickcheck`: the deep models against popularity on a generated sample.

Exit codes of every command: 0 success; 1 a stage failed (rolled back, logged in ``ops/runs``); 2 bad
flags, configuration or paths (nothing written).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vidrec.cli.stages import COMMANDS, run_stages


def main(argv: Sequence[str] | None = None) -> int:
    """``vidrec <command> [flags]``: one entry point for every stage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = {
        "backfill": "vidrec.cli.stages:backfill_main",
        "forget_user": "vidrec.cli.forget",
        "generate_sample": "vidrec.cli.sample",
        "train_deep": "vidrec.cli.train_deep",
        "tune": "vidrec.cli.tune",
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in {*COMMANDS, *extra}:
        names = ", ".join([*COMMANDS, *extra])
        print(
            f"usage: vidrec COMMAND [flags]   (COMMAND: {names}; 'vidrec COMMAND -h' for flags)",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command in extra:
        import importlib

        module, _, func = extra[command].partition(":")
        return int(getattr(importlib.import_module(module), func or "main")(rest) or 0)
    return run_stages(command, rest)
