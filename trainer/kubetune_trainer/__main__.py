"""``python -m kubetune_trainer``: run one worker and exit with the contract's exit code, promptly (``shutdown``).

Must not import: kopf, kubernetes or ``kubetune``.
"""

from kubetune_trainer.shutdown import exit_now
from kubetune_trainer.train import main

if __name__ == "__main__":
    exit_now(main())
