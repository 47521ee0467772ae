"""`kubetune dashboard` and `kubetune validate` for studies: clear errors, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kubetune.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_dashboard_needs_a_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", str(ROOT / "examples" / "digits-mlp.yaml")]) == 2
    assert "spec.tuning: not a study" in capsys.readouterr().err


def test_dashboard_before_the_study_ran_says_how_to_start_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = tmp_path / "digits-tune.yaml"
    shutil.copy(ROOT / "examples" / "digits-tune.yaml", example)
    assert main(["dashboard", str(example), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no study storage at journal://" in err and f"kubetune run {example}" in err


def test_the_tuning_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "examples" / "digits-tune.yaml")]) == 0
    assert "ok (TrainingJob digits-tune)" in capsys.readouterr().out
