"""spark-submit entry point: the nightly for every date of a range, in order. See `vidrec backfill -h`.

pipelines/backfill.py --start YYYY-MM-DD --end YYYY-MM-DD --raw DIR [--warehouse DIR] [--conf FILE]
                      [--set KEY=VALUE] [--stages a,b]

`--raw /data/raw/{run_date}` reads one folder per day; a plain folder is read by every date (each
takes the events up to its date). Same as `jobs/nightly.py --run-date START --until END`.
"""

import sys

from vidrec.cli.stages import backfill_main

if __name__ == "__main__":
    sys.exit(backfill_main(sys.argv[1:]))
