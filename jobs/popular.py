"""spark-submit entry point: the 'popular' stage. Same flags as every job; see `vidrec popular -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("popular", sys.argv[1:]))
