"""spark-submit entry point: the 'nightly' stage(s). Same flags as every job; see `vidrec nightly -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("nightly", sys.argv[1:]))
