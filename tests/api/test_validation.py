"""`kubetune validate` and kubetune.api.parse: every kind of bad input is refused with its field path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubetune.api import SpecError, load, parse
from kubetune.cli import main
from kubetune.core.workerenv import Placement, worker_env
from kubetune_trainer.config import TrainerConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

GOOD: dict[str, Any] = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "ok"},
    "spec": {
        "trainer": {"model": {"family": "mlp", "depth": 2, "width": 64}},
        "hyperparameters": {"batchSize": 64},
        "parallelism": {"workers": 2},
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()

BAD = [
    ("wrong type", _with("spec.parallelism.workers", "two"), "spec.parallelism.workers: must be an integer"),
    ("zero workers", _with("spec.parallelism.workers", 0), "spec.parallelism.workers: must be >= 1, got 0"),
    (
        "negative workers",
        _with("spec.parallelism.workers", -3),
        "spec.parallelism.workers: must be >= 1, got -3",
    ),
    ("unknown field", _with("spec.parallelism.replicas", 2), "spec.parallelism.replicas: unknown field"),
    ("missing model", _with("spec.trainer.model", _DELETE), "spec.trainer: exactly one of trainer.model"),
    ("missing trainer", _with("spec.trainer", _DELETE), "spec.trainer: required field is missing"),
    ("bad enum", _with("spec.trainer.model.family", "rnn"), "spec.trainer.model.family: must be one of"),
    (
        "batch size 0",
        _with("spec.hyperparameters.batchSize", 0),
        "spec.hyperparameters.batchSize: must be >= 1",
    ),
    (
        "learning rate 0",
        _with("spec.hyperparameters.learningRate", 0),
        "spec.hyperparameters.learningRate: must be > 0",
    ),
    ("momentum 1", _with("spec.hyperparameters.momentum", 1.0), "spec.hyperparameters.momentum: must be < 1"),
    (
        "bool for int",
        _with("spec.hyperparameters.epochs", True),
        "spec.hyperparameters.epochs: must be an integer",
    ),
    (
        "batch not divisible",
        _with("spec.hyperparameters.batchSize", 63),
        "spec.hyperparameters.batchSize: hyperparameters.batchSize must be a multiple of parallelism.workers",
    ),
    (
        "nccl without gpus",
        _with("spec.parallelism.backend", "nccl"),
        "spec.parallelism.backend: parallelism.backend nccl",
    ),
    (
        "too many stages",
        _with("spec.parallelism", {"mode": "model", "workers": 5}),
        "spec.parallelism.workers: parallelism.workers must not exceed trainer.model.depth + 1",
    ),
    (
        "both model and command",
        _with("spec.trainer.command", ["python", "train.py"]),
        "spec.trainer: exactly one of",
    ),
    (
        "bad env name",
        _with("spec.trainer.env", [{"name": "1BAD", "value": "x"}]),
        "spec.trainer.env[0].name: must match",
    ),
    (
        "bad toleration effect",
        _with("spec.tolerations", [{"key": "a", "effect": "Never"}]),
        "spec.tolerations[0].effect: must be one of",
    ),
    (
        "wrong apiVersion",
        _with("apiVersion", "kubetune.dev/v1"),
        "apiVersion: must be 'kubetune.dev/v1alpha1'",
    ),
    ("bad cpu quantity", _with("spec.resources.limits", {"cpu": "lots"}), "spec.resources.limits.cpu: must match"),
    (
        "negative memory",
        _with("spec.resources.requests", {"memory": "-1Gi"}),
        "spec.resources.requests.memory: must match",
    ),
    ("bad name", _with("metadata.name", "Digits_MLP"), "metadata.name: must be a DNS label"),
    ("spec not an object", _with("spec", [1, 2]), "spec: must be an object, got array"),
]


@pytest.mark.parametrize(("case", "doc", "expected"), BAD, ids=[case for case, _, _ in BAD])
def test_validate_names_the_field(
    case: str, doc: dict[str, Any], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{case.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {expected}" in err, err
    assert "Traceback" not in err


def test_every_problem_is_reported_at_once() -> None:
    doc = _with("spec.parallelism", {"workers": 0, "mode": "both"})
    doc["spec"]["hyperparameters"] = {"batchSize": -1, "optimizer": "lbfgs"}
    with pytest.raises(SpecError) as caught:
        parse(doc)
    paths = [problem.path for problem in caught.value.problems]
    assert paths == sorted(paths)
    assert set(paths) == {
        "spec.parallelism.workers",
        "spec.parallelism.mode",
        "spec.hyperparameters.batchSize",
        "spec.hyperparameters.optimizer",
    }


def test_defaults_come_from_the_crd() -> None:
    job = parse(GOOD)
    assert job.spec.hyperparameters.learning_rate == 0.05
    assert job.spec.hyperparameters.optimizer == "sgd"
    assert job.spec.parallelism.backend == "auto"
    assert job.spec.parallelism.resolved_backend == "gloo"
    assert job.spec.checkpoint.every_steps == 100
    assert job.spec.backoff_limit == 3
    assert job.manifest["spec"]["parallelism"]["mode"] == "data"


def test_the_checkpoint_defaults_reach_the_trainer_and_match_its_own() -> None:
    """A trainer run by hand (``python -m kubetune_trainer``) checkpoints like a TrainingJob's default worker."""
    ckpt = parse(GOOD).spec.checkpoint
    env = worker_env(parse(GOOD), 0, 0, Placement("127.0.0.1", 29500, "/ckpt", "none"))
    config = TrainerConfig.from_env(env)
    assert (config.checkpoint_every_steps, config.checkpoint_every_seconds) == (ckpt.every_steps, ckpt.every_seconds)
    assert config.checkpoint_min_interval_seconds == ckpt.min_interval_seconds == 1
    assert config.checkpoint_keep == ckpt.keep
    standalone = TrainerConfig()
    assert (standalone.checkpoint_every_steps, standalone.checkpoint_every_seconds) == (100, 0)
    assert (standalone.checkpoint_min_interval_seconds, standalone.checkpoint_keep) == (1, 2)
    assert (ckpt.every_steps, ckpt.every_seconds, ckpt.keep) == (100, 0, 2)


def test_unreadable_and_multi_document_files_are_problems_not_tracebacks(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(GOOD) + "---\n" + yaml.safe_dump(GOOD))
    with pytest.raises(SpecError, match="exactly one TrainingJob, found 2"):
        load(two)
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load(broken)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_examples_validate(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(example)]) == 0
    assert "ok" in capsys.readouterr().out
