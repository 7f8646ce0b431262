"""spark-submit entry point: right to be forgotten. See `python jobs/forget_user.py -h`.

jobs/forget_user.py --warehouse DIR --user-id ID [--user-id ID2] [--user-ids-file F]
                    [--vacuum-retention-hours H] [--conf FILE] [--set KEY=VALUE]
"""

import sys

from vidrec.cli.forget import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
