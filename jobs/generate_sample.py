"""spark-submit entry point: generate the synthetic sample (see ``vidrec generate_sample -h``)."""

import sys

from vidrec.cli.sample import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
