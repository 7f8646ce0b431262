"""spark-submit entry point: the 'build_matrix' stage. Same flags as every job: `vidrec build_matrix -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("build_matrix", sys.argv[1:]))
