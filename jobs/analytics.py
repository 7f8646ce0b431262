"""spark-submit entry point: the 'analytics' stage (gold analytics tables). See ``vidrec analytics -h``."""

import sys

from vidrec.cli.stages import run_stages

if __name__ == "__main__":
    sys.exit(run_stages("analytics", sys.argv[1:]))
