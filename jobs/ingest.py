"""spark-submit entry point: the 'ingest' stage(s). Same flags as every job; see `vidrec ingest -h`."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("ingest", sys.argv[1:]))
