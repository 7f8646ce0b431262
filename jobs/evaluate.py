"""spark-submit entry point: the 'evaluate' stage(s). Same flags as every job; see `vidrec evaluate -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("evaluate", sys.argv[1:]))
