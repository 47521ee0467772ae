"""The trainer package's public surface, imported in a fresh interpreter as a user's script would."""

from __future__ import annotations

import subprocess
import sys


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_report_imports_without_torch() -> None:
    code = "import sys; from kubetune_trainer import report, write_result, TrainerConfig; print('torch' in sys.modules)"
    assert _fresh(code) == "False"


def test_main_is_imported_lazily_and_callable() -> None:
    code = "import sys; from kubetune_trainer import main; print(callable(main), main.__module__)"
    assert _fresh(code) == "True kubetune_trainer.train"


def test_the_train_name_is_the_submodule_and_its_train_function_is_reachable() -> None:
    # Before the fix, the package's lazy ``train`` attribute imported itself: RecursionError in a fresh interpreter.
    code = (
        "import types; from kubetune_trainer import train; "
        "print(isinstance(train, types.ModuleType), callable(train.train))"
    )
    assert _fresh(code) == "True True"
