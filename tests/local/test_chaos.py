"""`--chaos`, `--prices`: parsing with clear errors, deterministic draws, preemption notices at the asked rate."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubetune.cli import _load_prices, main
from kubetune.local.chaos import Chaos, ChaosError

ROOT = Path(__file__).resolve().parents[2]


def test_straggler_factors_are_deterministic_per_worker_and_at_least_one() -> None:
    chaos = Chaos.parse(["straggler=pareto:1,2"], seed=7)
    factors = [chaos.slowdown(f"job-w{rank}-a0") for rank in range(200)]
    assert all(f is not None and f >= 1.0 for f in factors)
    assert factors == [Chaos.parse(["straggler=pareto:1,2"], seed=7).slowdown(f"job-w{r}-a0") for r in range(200)]
    assert chaos.slowdown("job-w0-a1") != chaos.slowdown("job-w0-a0")  # a relaunch is a fresh draw
    mean = sum(f for f in factors if f is not None) / len(factors)
    assert 1.5 < mean < 2.6  # Pareto(1, 2) has mean 2
    assert Chaos.parse([]).slowdown("x") is None


def test_preemption_notices_arrive_with_the_mean_time_between_them() -> None:
    chaos = Chaos.parse(["preempt=mtbf:2s"], seed=1)
    assert chaos.mtbf_seconds == 2.0
    notices = sum(chaos.preemption_due(t / 10) for t in range(0, 20_000))  # 2,000 s in steps of 0.1 s
    assert 850 < notices < 1150
    assert Chaos.parse(["preempt=mtbf:500ms"]).mtbf_seconds == 0.5
    assert Chaos.parse(["preempt=mtbf:2m"]).mtbf_seconds == 120.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("straggler", "expected straggler=DIST or preempt=mtbf:DURATION"),
        ("straggler=lognormal:1,2", "--chaos straggler=lognormal:1,2"),
        ("preempt=every:60s", "expected preempt=mtbf:DURATION"),
        ("preempt=mtbf:soon", "expected a positive duration"),
        ("flood=1", "unknown kind 'flood'"),
    ],
)
def test_bad_chaos_is_refused_naming_it(spec: str, message: str) -> None:
    with pytest.raises(ChaosError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Chaos.parse([spec])


def test_prices_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "prices.yaml"
    good.write_text("cpu: {spot: 0.01, onDemand: 0.034}\ngpu: {spot: 0.9}\n")
    assert _load_prices(good) == {"cpu": {"spot": 0.01, "onDemand": 0.034}, "gpu": {"spot": 0.9}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("cpu: {preemptible: 0.01}\n")
    with pytest.raises(ValueError, match=r"--prices .*bad.yaml: cpu.preemptible: expected spot\|onDemand"):
        _load_prices(bad)
    assert main(["run", str(ROOT / "examples" / "digits-mlp.yaml"), "--prices", str(bad)]) == 2
    assert main(["run", str(ROOT / "examples" / "digits-mlp.yaml"), "--chaos", "bogus"]) == 2
    assert "--chaos bogus" in capsys.readouterr().err
