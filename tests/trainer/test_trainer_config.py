"""TrainerConfig.from_env: the contract's environment, parsed strictly."""

from __future__ import annotations

import dataclasses

import pytest
from kubetune_trainer.config import ConfigError, TrainerConfig, env_from_args


def test_empty_environment_gives_the_documented_defaults() -> None:
    config = TrainerConfig.from_env({})
    assert (config.model_family, config.model_depth, config.model_width) == ("mlp", 2, 128)
    assert (config.dataset, config.learning_rate, config.batch_size, config.momentum) == ("digits", 0.05, 64, 0.9)
    assert (config.optimizer, config.epochs, config.seed, config.parallelism) == ("sgd", 30, 0, "data")
    assert (config.backend, config.precision, config.compile) == ("auto", "fp32", False)
    assert (config.checkpoint_every_steps, config.checkpoint_keep, config.microbatches) == (100, 2, 4)
    assert (config.timeout_seconds, config.progress_interval, config.slowdown) == (300.0, 2.0, 1.0)


def test_every_contract_variable_is_parsed() -> None:
    env = {
        "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "job-w0-a0.job", "MASTER_PORT": "29400",
        "KUBETUNE_JOB": "job", "KUBETUNE_ATTEMPT": "3", "KUBETUNE_MODEL_FAMILY": "CNN",
        "KUBETUNE_MODEL_DEPTH": "3", "KUBETUNE_MODEL_WIDTH": "16", "KUBETUNE_DATASET": "synthetic",
        "KUBETUNE_LEARNING_RATE": "0.1", "KUBETUNE_BATCH_SIZE": "128", "KUBETUNE_MOMENTUM": "0",
        "KUBETUNE_WEIGHT_DECAY": "1e-4", "KUBETUNE_OPTIMIZER": "adam", "KUBETUNE_EPOCHS": "5",
        "KUBETUNE_STEPS": "40", "KUBETUNE_SEED": "7", "KUBETUNE_PARALLELISM": "model", "KUBETUNE_BACKEND": "gloo",
        "KUBETUNE_MICROBATCHES": "8", "KUBETUNE_PRECISION": "bf16", "KUBETUNE_COMPILE": "true",
        "KUBETUNE_DEVICE": "cpu", "KUBETUNE_CHECKPOINT_DIR": "/ck", "KUBETUNE_CHECKPOINT_EVERY_STEPS": "0",
        "KUBETUNE_CHECKPOINT_EVERY_SECONDS": "30", "KUBETUNE_CHECKPOINT_KEEP": "3",
        "KUBETUNE_PROGRESS": "file:/tmp/p.jsonl", "KUBETUNE_PROGRESS_INTERVAL": "0.5",
        "KUBETUNE_RESULT_FILE": "/tmp/r.json", "KUBETUNE_TIMEOUT_SECONDS": "60", "KUBETUNE_SLOWDOWN": "2.5",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000", "KUBETUNE_MLFLOW_RUN_ID": "abc", "OMP_NUM_THREADS": "2",
    }  # fmt: skip
    config = TrainerConfig.from_env(env)
    assert (config.rank, config.world_size, config.master_addr, config.master_port) == (1, 2, "job-w0-a0.job", 29400)
    assert (config.model_family, config.optimizer, config.parallelism, config.precision) == (
        "cnn", "adam", "model", "bf16",
    )  # fmt: skip
    assert config.compile is True
    assert (config.steps, config.microbatches, config.checkpoint_every_seconds) == (40, 8, 30.0)
    assert (config.mlflow_tracking_uri, config.mlflow_run_id, config.omp_num_threads) == (
        "http://mlflow:5000",
        "abc",
        2,
    )
    assert config.per_worker_batch == 128  # model parallelism: every stage sees the whole batch


def test_unknown_kubetune_variable_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="KUBETUNE_LEARNIN_RATE"):
        TrainerConfig.from_env({"KUBETUNE_LEARNIN_RATE": "0.1"})


def test_unrelated_variables_are_ignored() -> None:
    assert TrainerConfig.from_env({"PATH": "/bin", "HOME": "/root"}) == TrainerConfig()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KUBETUNE_LEARNING_RATE", "fast"),
        ("KUBETUNE_LEARNING_RATE", "0"),
        ("KUBETUNE_LEARNING_RATE", "nan"),
        ("KUBETUNE_BATCH_SIZE", "0"),
        ("KUBETUNE_BATCH_SIZE", "1.5"),
        ("KUBETUNE_MODEL_FAMILY", "rnn"),
        ("KUBETUNE_DATASET", "imagenet"),
        ("KUBETUNE_OPTIMIZER", "lion"),
        ("KUBETUNE_PARALLELISM", "tensor"),
        ("KUBETUNE_COMPILE", "maybe"),
        ("KUBETUNE_SLOWDOWN", "0.5"),
        ("KUBETUNE_EPOCHS", "-1"),
        ("KUBETUNE_PROGRESS", "somewhere"),
        ("MASTER_PORT", "http"),
    ],
)
def test_bad_value_raises_naming_variable_and_value(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainerConfig.from_env({variable: value})
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)


def test_torchrun_pet_variables_are_fallbacks() -> None:
    env = {
        "PET_NNODES": "4", "PET_NPROC_PER_NODE": "1", "PET_NODE_RANK": "3",
        "PET_MASTER_ADDR": "10.0.0.1", "PET_MASTER_PORT": "23456",
    }  # fmt: skip
    config = TrainerConfig.from_env(env)
    assert (config.rank, config.world_size, config.master_addr, config.master_port) == (3, 4, "10.0.0.1", 23456)
    both = TrainerConfig.from_env({**env, "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "a"})
    assert (both.rank, both.world_size, both.master_addr) == (1, 2, "a")


def test_global_batch_must_divide_over_data_parallel_ranks() -> None:
    with pytest.raises(ConfigError, match="KUBETUNE_BATCH_SIZE=66"):
        TrainerConfig.from_env({"WORLD_SIZE": "4", "RANK": "0", "KUBETUNE_BATCH_SIZE": "66"})
    config = TrainerConfig.from_env({"WORLD_SIZE": "4", "RANK": "0", "KUBETUNE_BATCH_SIZE": "64"})
    assert config.per_worker_batch == 16


def test_microbatches_must_divide_the_batch_for_model_parallelism() -> None:
    with pytest.raises(ConfigError, match="KUBETUNE_MICROBATCHES"):
        TrainerConfig.from_env({"KUBETUNE_PARALLELISM": "model", "KUBETUNE_MICROBATCHES": "5"})


def test_rank_must_be_below_world_size() -> None:
    with pytest.raises(ConfigError, match="RANK=2"):
        TrainerConfig.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_config_is_frozen() -> None:
    config = TrainerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]


def test_command_line_arguments_become_variables() -> None:
    env = env_from_args(["--learning-rate", "0.2", "--model-family=cnn"])
    assert env == {"KUBETUNE_LEARNING_RATE": "0.2", "KUBETUNE_MODEL_FAMILY": "cnn"}
    with pytest.raises(ConfigError, match="KUBETUNE_LEARNING_RATES"):
        TrainerConfig.from_env(env_from_args(["--learning-rates", "1"]))
    with pytest.raises(ConfigError, match="missing value"):
        env_from_args(["--epochs"])
