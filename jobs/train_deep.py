"""spark-submit entry point: train one deep model (see ``vidrec train_deep -h``)."""

import sys

from vidrec.cli.train_deep import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
