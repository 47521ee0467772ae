"""build_policy: names, spellings, and errors that name the bad option."""

from __future__ import annotations

import pytest
from kubetune.core.stragglers import Adaptive, Late, NoReplication, SingleFork, Spark, build_policy, from_spec


def test_every_policy_by_name() -> None:
    assert isinstance(build_policy("none"), NoReplication)
    assert isinstance(build_policy("spark"), Spark)
    assert isinstance(build_policy("late"), Late)
    assert isinstance(build_policy("singleFork", forkWhenDone=0.9), SingleFork)
    assert isinstance(build_policy("single-fork", when_done=0.9), SingleFork)
    assert isinstance(build_policy("adaptive", maxExtraCost=0.2), Adaptive)


def test_spark_defaults_and_options() -> None:
    spark = build_policy("spark", quantile=0.9, multiplier=3)
    assert isinstance(spark, Spark) and (spark.quantile, spark.multiplier) == (0.9, 3.0)
    default = build_policy("spark")
    assert isinstance(default, Spark) and (default.quantile, default.multiplier) == (0.75, 1.5)
    assert spark.describe() == "spark(quantile=0.9, multiplier=3.0, minRuntime=0.0)"


def test_from_spec() -> None:
    policy = from_spec({"policy": "singleFork", "forkWhenDone": 0.8, "replicas": 2, "original": "kill"})
    assert isinstance(policy, SingleFork)
    assert (policy.when_done, policy.replicas, policy.original) == (0.8, 2, "kill")
    assert isinstance(from_spec({}), NoReplication)


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("bogus", {}, "stragglers.policy: unknown policy 'bogus'"),
        ("spark", {"quantile": 1.5}, "stragglers.quantile: must be <= 1"),
        ("spark", {"quantile": 0}, "stragglers.quantile: must be > 0"),
        ("spark", {"multiplier": "x"}, "stragglers.multiplier: must be a number"),
        ("spark", {"maxExtraCost": 0.1}, "stragglers.maxExtraCost: unknown option for policy spark"),
        ("singleFork", {}, "stragglers.forkWhenDone: give exactly one"),
        ("singleFork", {"forkWhenDone": 0.5, "forkAtTime": 1.0}, "stragglers.forkWhenDone: give exactly one"),
        ("singleFork", {"forkWhenDone": 0.5, "replicas": 0}, "stragglers.replicas: must be >= 1"),
        ("singleFork", {"forkWhenDone": 0.5, "replicas": 1.5}, "stragglers.replicas: must be an integer"),
        ("singleFork", {"forkWhenDone": 0.5, "original": "maybe"}, "stragglers.original: must be 'keep' or 'kill'"),
        ("adaptive", {"maxExtraCost": -1}, "stragglers.maxExtraCost: must be >= 0"),
        ("late", {"cap": 0}, "stragglers.cap: must be > 0"),
        ("none", {"replicas": 2}, "stragglers.replicas: unknown option for policy none"),
    ],
)
def test_bad_input_names_the_option(name: str, options: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError) as error:
        build_policy(name, **options)
    assert str(error.value).startswith(problem)
