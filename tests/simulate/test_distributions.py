"""DIST strings: what parses, what each means (means of draws), and errors that name the bad part."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kubetune.simulate import DistributionError, parse_distribution
from kubetune.simulate.distributions import Empirical, HyperExp, Pareto, ShiftedExp, ShiftedPareto


@pytest.mark.parametrize(
    ("spec", "expected", "mean"),
    [
        ("shiftedexp:1,2", ShiftedExp(1.0, 2.0), 1.5),
        ("shiftedexp: 0 , 1", ShiftedExp(0.0, 1.0), 1.0),
        ("pareto:2,3", Pareto(2.0, 3.0), 3.0),
        ("shiftedpareto:5,2,3", ShiftedPareto(5.0, 2.0, 3.0), 8.0),
        ("hyperexp:0.9,1,0.1", HyperExp(0.9, 1.0, 0.1), 1.9),
    ],
)
def test_parametric_distributions(spec: str, expected: object, mean: float) -> None:
    dist = parse_distribution(spec)
    assert dist == expected
    assert dist.mean == pytest.approx(mean)
    draws = dist.sample(np.random.default_rng(0), 400_000)
    assert draws.min() >= 0
    assert draws.mean() == pytest.approx(mean, rel=0.02)


def test_pareto_tail() -> None:
    draws = parse_distribution("pareto:1,1.5").sample(np.random.default_rng(1), 400_000)
    assert draws.min() >= 1.0
    assert (draws > 4.0).mean() == pytest.approx(4.0**-1.5, rel=0.03)
    assert parse_distribution("pareto:1,0.8").mean == float("inf")


def test_empirical_lines_and_json(tmp_path: Path) -> None:
    lines = tmp_path / "times.txt"
    lines.write_text("# task times\n1.5\n\n2.5  # slow one\n3\n")
    dist = parse_distribution(f"empirical:{lines}")
    assert isinstance(dist, Empirical)
    assert dist.values.tolist() == [1.5, 2.5, 3.0]
    assert set(dist.sample(np.random.default_rng(0), 1000).tolist()) == {1.5, 2.5, 3.0}
    listed = tmp_path / "times.json"
    listed.write_text(json.dumps([1, 2.0, 4]))
    assert parse_distribution(f"empirical:{listed}").mean == pytest.approx(7 / 3)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("shiftedexp", "expected KIND:PARAMETERS"),
        ("gamma:1,2", "unknown distribution 'gamma'"),
        ("shiftedexp:1", "expects 2 numbers SHIFT,RATE, got 1"),
        ("shiftedexp:1,2,3", "expects 2 numbers SHIFT,RATE, got 3"),
        ("shiftedexp:", "expects 2 numbers SHIFT,RATE, got 0"),
        ("shiftedexp:1,x", "RATE 'x' is not a number"),
        ("shiftedexp:-1,1", "SHIFT must be >= 0"),
        ("shiftedpareto:-1,1,2", "SHIFT must be >= 0"),
        ("shiftedpareto:1,1", "expects 3 numbers SHIFT,XM,ALPHA, got 2"),
        ("shiftedexp:1,0", "RATE must be > 0"),
        ("shiftedexp:1,inf", "RATE must be finite"),
        ("pareto:0,1", "XM must be > 0"),
        ("pareto:1,-2", "ALPHA must be > 0"),
        ("hyperexp:1.5,1,2", "P must be in [0, 1]"),
        ("hyperexp:0.5,1", "expects 3 numbers P,RATE1,RATE2"),
        ("hyperexp:0.5,1,0", "RATE2 must be > 0"),
        ("empirical:", "FILE is missing"),
        ("empirical:/nonexistent/times.txt", "cannot read the file"),
    ],
)
def test_errors_name_the_bad_part(spec: str, problem: str) -> None:
    with pytest.raises(DistributionError) as error:
        parse_distribution(spec)
    assert problem in str(error.value)
    assert str(error.value).startswith(f"--dist {spec}")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("1\nabc\n", "line 2 ('abc') is not a number"),
        ("", "holds no task times"),
        ("1\n-2\n", "must be finite and >= 0"),
        ('[1, "a"]', "item 1 ('a') is not a number"),
        ("[1, 2", "not a JSON list"),
    ],
)
def test_empirical_errors(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "times"
    path.write_text(content)
    with pytest.raises(DistributionError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_distribution(f"empirical:{path}")
