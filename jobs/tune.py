"""spark-submit entry point: tune hyper-parameters on a validation split (see ``vidrec tune -h``)."""

import sys

from vidrec.cli.tune import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
