"""spark-submit entry point: the 'recommend' stage(s). Same flags as every job; see `vidrec recommend -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("recommend", sys.argv[1:]))
