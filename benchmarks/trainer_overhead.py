"""How much does the kubetune trainer cost over a bare PyTorch loop? (target: kubetune/bare >= 0.97 on CPU)

Both loops train the same model on the same in-memory synthetic tensors with the same batch order, optimizer and
precision. The kubetune side is the real hot loop, ``Trainer.train_steps(n)``, with heartbeats going to a file
sink and checkpoints at the default interval (every 100 steps and at epoch ends: the snapshot on the training
thread, the background write and commit on the writer thread, both inside the timed window).

What counts as overhead is kubetune's machinery: heartbeats, checkpoints, the loss and metric bookkeeping, the
stop and checkpoint checks of every step. The work any training loop does once an epoch is not: the bare loop
also draws a new shuffle per epoch (the trainer's order, seed + epoch) and runs the same validation pass at every
epoch end (the same validation tensors, in batches of the trainer's ``EVAL_BATCH``, eval mode, loss and accuracy
read back to the host), so both sides time the same training recipe.

After a warm-up, the two alternate ``--repeats`` times (ABBA order, so load drift favours neither); the medians
are printed, with the load average before and after (the figures are only comparable on a quiet machine).

    python benchmarks/trainer_overhead.py --model mlp
    python benchmarks/trainer_overhead.py --model transformer --device cuda --precision bf16 --compile --mfu
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
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
    parser.add_argument("--steps", type=int, default=300, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--checkpoint-every", type=int, default=100, help="trainer checkpoint interval in steps (0: epoch ends only)"
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
            batch_size=args.batch,
            epochs=10**6,
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            checkpoint_dir=f"{tmp}/ckpt",
            checkpoint_every_steps=args.checkpoint_every,
            progress=f"file:{tmp}/progress.jsonl",
            omp_num_threads=args.threads,
        )
        trainer = Trainer(config)
        bare = bare_loop(trainer, config)
        device = trainer.device
        warmup = max(10, args.steps // 5)
        timed(bare, warmup, device)
        timed(trainer.train_steps, warmup, device)
        bare_rates, kube_rates = [], []
        for repeat in range(args.repeats):  # alternate which loop goes first, so drift favours neither
            order = ((bare_rates, bare), (kube_rates, trainer.train_steps))
            for rates, loop in order if repeat % 2 == 0 else order[::-1]:
                rates.append(args.steps * args.batch / timed(loop, args.steps, device))
        trainer.close("FINISHED")
    load_after = os.getloadavg()

    bare_rate, kube_rate = statistics.median(bare_rates), statistics.median(kube_rates)
    ratios = [k / b for k, b in zip(kube_rates, bare_rates, strict=True)]
    print(
        f"model={args.model} depth={args.depth} width={args.width} batch={args.batch} device={device} "
        f"precision={args.precision} compile={args.compile} threads={torch.get_num_threads()} "
        f"checkpoint_every={args.checkpoint_every} "
        f"params={count_parameters(trainer.module)}"
    )
    print(f"bare     {bare_rate:12.1f} samples/s (median of {args.repeats} x {args.steps} steps)")
    print(f"kubetune {kube_rate:12.1f} samples/s")
    print(
        f"ratio kubetune/bare {kube_rate / bare_rate:.3f} (median of per-repeat ratios {statistics.median(ratios):.3f})"
    )
    print(f"per-repeat ratios {' '.join(f'{r:.3f}' for r in ratios)}")
    print(
        f"load average (1/5/15 min) before {' '.join(f'{v:.2f}' for v in load_before)}, "
        f"after {' '.join(f'{v:.2f}' for v in load_after)} on {os.cpu_count()} CPUs"
    )
    if args.mfu:
        if args.model != "transformer":
            parser.error("--mfu needs --model transformer")
        seq = trainer.data.input_shape[0]
        flops_per_token = 6 * count_parameters(trainer.module) + 12 * args.depth * args.width * seq
        for name, rate in (("bare", bare_rate), ("kubetune", kube_rate)):
            achieved = flops_per_token * rate * seq
            tflops, peak = achieved / 1e12, args.peak_flops / 1e12
            print(f"MFU {name:8s} {achieved / args.peak_flops:.4f} ({tflops:.2f} TFLOP/s of {peak:.0f})")


if __name__ == "__main__":
    main()
