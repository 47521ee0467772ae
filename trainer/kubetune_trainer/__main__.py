"""``python -m kubetune_trainer``: run one worker and exit with the contract's exit code.

Must not import: kopf, kubernetes or ``kubetune``.
"""

import sys

from kubetune_trainer.train import main

if __name__ == "__main__":
    sys.exit(main())
