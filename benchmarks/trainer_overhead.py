"""How much does the kubetune trainer cost over a bare PyTorch loop? (target: kubetune/bare >= 0.97 on CPU)

Both loops train the same model on the same in-memory synthetic tensors with the same batch order, optimizer and
precision. The kubetune side is the real hot loop, ``Trainer.train_steps(n)``, with heartbeats going to a file
sink and checkpoints at the default interval (every 100 steps and at epoch ends, at least 1 s apart: the snapshot
on the training thread, the background write and commit on the writer thread, both inside the timed window);
``--min-interval 0`` takes every checkpoint the step interval asks for.

What counts as overhead is kubetune's machinery: heartbeats, checkpoints, the loss and metric bookkeeping, the
stop and checkpoint checks of every step. The work any training loop does once an epoch is not: the bare loop
also draws a new shuffle per epoch (the trainer's order, seed + epoch) and runs the same validation pass at every
epoch end (the same validation tensors, in batches of the trainer's ``EVAL_BATCH``, eval mode, loss and accuracy
read back to the host), so both sides time the same training recipe.

After a warm-up, three loops take turns for ``--rounds`` rounds of ``--chunk`` steps each: the bare loop, a
second bare loop with its own model (the *twin*), and the kubetune trainer, in forward order in even rounds and
reversed in odd ones, so that load drift favours none. Each side's samples/s is its steps over the sum of its
chunks' times. The trainer's clock (its checkpoint interval) runs only during its own turns: alone, a trainer
checkpoints at most once a second of its own training, and a wall clock would also count the other loops' turns,
about three times the checkpoints per kubetune step a lone trainer takes (``--wall-clock`` measures that way).
The twin prices the measurement itself: twin / bare would be 1.000 on an ideal machine, and how far
it is from 1 is the resolution of kubetune / bare in the same run (two identical loops differ by a few per cent on
a shared 2-core VM). The chunk length (150) shares no small factor with the checkpoint interval (100) or the
synthetic epoch (256 steps at batch 64), so a background write started near a chunk's end, which then runs into
the next loop's chunk, is rare rather than systematic. The load average before and after is printed too.

    python benchmarks/trainer_overhead.py --model mlp
    python benchmarks/trainer_overhead.py --model transformer --device cuda --precision bf16 --compile --mfu
    python benchmarks/trainer_overhead.py --model transformer --depth 12 --width 768 --batch 16 --seq-len 1024 \
        --vocab 50304 --device cuda --precision bf16 --compile --mfu --chunk 20 --rounds 5   # GPT-small's shape
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from kubetune_trainer.config import TrainerConfig
from kubetune_trainer.models import build_model, count_parameters
from kubetune_trainer.train import EVAL_BATCH, Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(trainer: Trainer, config: TrainerConfig) -> Callable[[int], None]:
    """A plain PyTorch loop over the trainer's data tensors: steps, a shuffle and a validation pass per epoch."""
    device = trainer.device
    torch.manual_seed(config.seed)
    data = trainer.data
    model = build_model(
        config.model_family,
        config.model_depth,
        config.model_width,
        input_shape=data.input_shape,
        num_outputs=data.num_outputs,
        vocab_size=data.vocab_size,
        classify=data.classify,
    ).to(device)
    forward: torch.nn.Module = torch.compile(model) if config.compile else model  # type: ignore[assignment]
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    x_all, y_all = trainer.train_x, trainer.train_y
    val_x, val_y = data.val_x, data.val_y
    batch = config.batch_size
    batches = len(y_all) // batch
    autocast: Callable[[], contextlib.AbstractContextManager[object]] = (
        (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16))
        if config.precision == "bf16"
        else contextlib.nullcontext
    )

    def shuffle(epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed + epoch)
        return torch.randperm(len(y_all), generator=generator)[: batches * batch].view(batches, batch).to(device)

    @torch.no_grad()
    def validate() -> tuple[float, float]:
        model.eval()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for start in range(0, len(val_y), EVAL_BATCH):
            xb = val_x[start : start + EVAL_BATCH].to(device)
            yb = val_y[start : start + EVAL_BATCH].to(device).flatten()
            with autocast():
                logits = model(xb)
            flat = logits.flatten(0, -2).float()
            loss_sum += F.cross_entropy(flat, yb, reduction="sum")
            correct += (flat.argmax(dim=1) == yb).sum()
        model.train()
        return float(loss_sum) / val_y.numel(), float(correct) / val_y.numel()

    epoch, position = 0, 0
    order = shuffle(epoch)

    def run(steps: int) -> None:
        nonlocal epoch, position, order
        for _ in range(steps):
            indices = order[position]
            position += 1
            x, y = x_all[indices], y_all[indices]
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(forward(x).flatten(0, -2).float(), y.flatten())
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if position == batches:  # epoch end: validate, then the next epoch's order
                validate()
                epoch, position = epoch + 1, 0
                order = shuffle(epoch)

    return run


class TurnClock:
    """A monotonic clock that stands still outside :meth:`turn`: the time a loop has spent on its own turns."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._stopped_at: float | None = time.monotonic()

    def __call__(self) -> float:
        now = time.monotonic() if self._stopped_at is None else self._stopped_at
        return now - self._offset

    def turn(self, run: Callable[[int], object]) -> Callable[[int], object]:
        """``run`` with this clock going only while it runs."""

        def during(steps: int) -> object:
            assert self._stopped_at is not None
            self._offset += time.monotonic() - self._stopped_at
            self._stopped_at = None
            try:
                return run(steps)
            finally:
                self._stopped_at = time.monotonic()

        return during


def timed(run: Callable[[int], object], steps: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    run(steps)
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("mlp", "cnn", "transformer"), default="mlp")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=TrainerConfig.synthetic_seq_len, help="transformer tokens/seq")
    parser.add_argument("--vocab", type=int, default=TrainerConfig.synthetic_vocab, help="transformer vocabulary")
    parser.add_argument("--chunk", type=int, default=150, help="steps per timed chunk")
    parser.add_argument("--rounds", type=int, default=30, help="rounds (each loop times one chunk per round)")
    parser.add_argument(
        "--checkpoint-every", type=int, default=100, help="trainer checkpoint interval in steps (0: epoch ends only)"
    )
    parser.add_argument(
        "--min-interval",
        type=float,
        default=TrainerConfig.checkpoint_min_interval_seconds,
        help="least seconds between periodic checkpoints (default: the trainer's; 0: every one asked for)",
    )
    parser.add_argument(
        "--wall-clock",
        action="store_true",
        help="the trainer's checkpoint interval counts the other loops' turns too (default: only its own)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--mfu", action="store_true", help="print the transformer's model FLOPs utilisation")
    parser.add_argument("--peak-flops", type=float, default=989e12, help="peak bf16 FLOP/s (H100 SXM dense)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainerConfig(
            model_family=args.model,
            model_depth=args.depth,
            model_width=args.width,
            dataset="synthetic",
            synthetic_seq_len=args.seq_len,
            synthetic_vocab=args.vocab,
            batch_size=args.batch,
            epochs=10**6,
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            checkpoint_dir=f"{tmp}/ckpt",
            checkpoint_every_steps=args.checkpoint_every,
            checkpoint_min_interval_seconds=args.min_interval,
            progress=f"file:{tmp}/progress.jsonl",
            omp_num_threads=args.threads,
        )
        clock = TurnClock()
        trainer = Trainer(config, clock=time.monotonic if args.wall_clock else clock)
        device = trainer.device
        loops: dict[str, Callable[[int], object]] = {
            "bare": bare_loop(trainer, config),
            "twin": bare_loop(trainer, config),
            "kubetune": trainer.train_steps if args.wall_clock else clock.turn(trainer.train_steps),
        }
        warmup = max(10, args.chunk // 5)
        for loop in loops.values():
            timed(loop, warmup, device)
        seconds = dict.fromkeys(loops, 0.0)
        turns = list(loops.items())
        for round_ in range(args.rounds):  # forward, then reversed: drift favours no loop
            for name, loop in turns if round_ % 2 == 0 else turns[::-1]:
                seconds[name] += timed(loop, args.chunk, device)
        trainer.close("FINISHED")
        with open(f"{tmp}/progress.jsonl", encoding="utf-8") as records:
            checkpoints = sum(json.loads(line)["kind"] == "checkpoint" for line in records)
    load_after = os.getloadavg()

    samples = args.rounds * args.chunk * args.batch
    rate = {name: samples / spent for name, spent in seconds.items()}
    print(
        f"model={args.model} depth={args.depth} width={args.width} batch={args.batch} device={device} "
        f"precision={args.precision} compile={args.compile} threads={torch.get_num_threads()} "
        f"checkpoint_every={args.checkpoint_every} min_interval={args.min_interval:g}s "
        f"clock={'wall' if args.wall_clock else 'own turns'} "
        f"params={count_parameters(trainer.module)}"
    )
    print(f"bare     {rate['bare']:12.1f} samples/s ({args.rounds} chunks of {args.chunk} steps each)")
    print(f"twin     {rate['twin']:12.1f} samples/s (a second bare loop: the measurement's own error)")
    steps = warmup + args.rounds * args.chunk
    print(f"kubetune {rate['kubetune']:12.1f} samples/s ({checkpoints} checkpoints in its {steps} steps)")
    print(f"ratio kubetune/bare {rate['kubetune'] / rate['bare']:.3f} (twin/bare {rate['twin'] / rate['bare']:.3f})")
    print(
        f"load average (1/5/15 min) before {' '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {' '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} CPUs"
    )
    if args.mfu:
        if args.model != "transformer":
            parser.error("--mfu needs --model transformer")
        # PaLM's count (as nanoGPT's MFU): 6 FLOPs per weight that multiplies (an embedding lookup multiplies
        # nothing; the untied output head does) and per token, plus attention's 12 * layers * width * length.
        seq = trainer.data.input_shape[0]
        lookups = sum(m.weight.numel() for m in trainer.module.modules() if isinstance(m, torch.nn.Embedding))
        matmul_params = count_parameters(trainer.module) - lookups
        flops_per_token = 6 * matmul_params + 12 * args.depth * args.width * seq
        print(f"MFU counts {matmul_params} multiplying weights (embedding tables, {lookups}, left out)")
        for name in ("bare", "kubetune"):
            achieved = flops_per_token * rate[name] * seq
            tflops, peak = achieved / 1e12, args.peak_flops / 1e12
            print(f"MFU {name:8s} {achieved / args.peak_flops:.4f} ({tflops:.2f} TFLOP/s of {peak:.0f})")


if __name__ == "__main__":
    main()
