"""benchmarks/trainer_overhead.py runs end to end and prints what the README quotes. No timing asserts.

A subprocess keeps the benchmark's threads and checkpoint files out of this test session.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

BENCHMARK = "trainer_overhead.py"
TINY = ["--model", "mlp", "--width", "16", "--depth", "1", "--chunk", "20", "--rounds", "2", "--threads", "1"]


def test_a_tiny_run_prints_the_three_rates_and_both_ratios(run_benchmark: Callable[..., str]) -> None:
    out = run_benchmark(BENCHMARK, *TINY, "--checkpoint-every", "15", "--min-interval", "0")
    assert "2 chunks of 20 steps each" in out and "checkpoint_every=15 min_interval=0s clock=own turns" in out
    # Warm-up (10) and 2 x 20 timed steps: checkpoints at steps 15, 30 and 45, counted from the progress records.
    assert "(3 checkpoints in its 50 steps)" in out
    rates = {name: float(value) for name, value in re.findall(r"^(bare|twin|kubetune)\s+([\d.]+) samples/s", out, re.M)}
    assert set(rates) == {"bare", "twin", "kubetune"} and all(rate > 0 for rate in rates.values())
    found = re.search(r"ratio kubetune/bare ([\d.]+) \(twin/bare ([\d.]+)\)", out)
    assert found is not None, out
    # The ratios printed (3 decimals) are those of the rates printed (1 decimal), up to the rounding of each.
    assert float(found[1]) == pytest.approx(rates["kubetune"] / rates["bare"], abs=6e-4)
    assert float(found[2]) == pytest.approx(rates["twin"] / rates["bare"], abs=6e-4)


def test_the_mfu_counts_the_multiplying_weights_and_leaves_the_embedding_tables_out(
    run_benchmark: Callable[..., str],
) -> None:
    out = run_benchmark(BENCHMARK, *TINY, "--model", "transformer", "--seq-len", "8", "--vocab", "32", "--mfu")
    params = re.search(r"params=(\d+)", out)
    assert params is not None, out
    total = int(params[1])
    counted = re.search(r"MFU counts (\d+) multiplying weights \(embedding tables, (\d+), left out\)", out)
    assert counted is not None, out
    assert int(counted[2]) == 32 * 16 + 8 * 16  # token and position tables of width 16
    assert int(counted[1]) + int(counted[2]) == total
    assert re.search(r"^MFU kubetune \d\.\d{4} ", out, re.M)
