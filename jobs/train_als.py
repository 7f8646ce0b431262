"""spark-submit entry point: the 'train_als' stage(s). Same flags as every job; see `vidrec train_als -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("train_als", sys.argv[1:]))
