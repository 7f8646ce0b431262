"""spark-submit entry point: the nightly for every date of a range, in order. See `vidrec backfill -h`.

pipelines/backfill.py --start YYYY-MM-DD --end YYYY-MM-DD --raw DIR [--warehouse DIR] [--conf FILE]
                      [--set KEY=VALUE] [--stages a,b]

`--raw /data/raw/{run_date}` reads one folder per day; a plain folder is read by every date (each
takes the events up to its date). Same as `jobs/nightly.py --run-date START --until END`.
"""

import os
import sys


def _no_vidrec(exc: ModuleNotFoundError, prog: str) -> int:
    """Without vidrec importable, say which wheel is missing (spark-submit --py-files puts it first on
    PYTHONPATH) in one line, exit code 2: nothing ran."""
    if exc.name != "vidrec":
        raise exc
    wheels = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p.endswith((".whl", ".zip"))]
    missing = [os.path.abspath(p) for p in wheels if not os.path.isfile(p)]
    where = f"no wheel at {missing[0]} (spark-submit --py-files)" if missing else "no vidrec on sys.path"
    print(
        f"{prog}: cannot import vidrec: {where}; build it with `pip wheel --no-deps -w dist .`",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    try:
        from vidrec.cli.stages import backfill_main
    except ModuleNotFoundError as exc:
        sys.exit(_no_vidrec(exc, "vidrec backfill"))
    sys.exit(backfill_main(sys.argv[1:]))
