"""What does `dlnb.fit` cost over a hand-written PyTorch loop, and over its peers? Same model
(LeNet-5), data (an MNIST subset), loaders, seed and optimizer (AdamW), timed in one run with
interleaved repeats: the hand loop, `dlnb.fit`, PyTorch Lightning's `Trainer` and fastai's
`Learner` (each peer skipped, saying so, when not installed: `pip install -e .[bench]`), all
with progress bars off (`--bars` turns them on). The final weights of fit and the hand loop must
agree; every loop's validation accuracy is printed. Target: fit / hand loop <= 1.05 on a CPU.

With CUDA, it also measures training images/s of LeNet-5 on full MNIST with the GPU-resident
loader against a standard DataLoader (target >= 3x), and with AMP and channels_last.

    python benchmarks/train_overhead.py [--train-subset 12000] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from dlnb.data.loaders import make_loaders  # noqa: E402
from dlnb.models import LeNet5, eval_mode  # noqa: E402
from dlnb.runtime import Timer, pick_device  # noqa: E402
from dlnb.train.config import TrainConfig  # noqa: E402
from dlnb.train.loop import fit  # noqa: E402
from dlnb.vision.datasets import mnist_tensors  # noqa: E402


def hand_loop(model, loaders, epochs: int, lr: float, seed: int, device: torch.device) -> dict:
    """The loop a practitioner writes by hand: train, then validate, each epoch."""
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for epoch in range(1, epochs + 1):
        loaders.train.generator.manual_seed(seed * 1000 + epoch)  # fit's per-epoch shuffle seed
        model.train()
        total, seen = 0.0, 0
        for x, y in loaders.train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            seen += len(y)
        model.eval()
        valid_loss, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loaders.valid:
                x, y = x.to(device), y.to(device)
                logits = model(x)
                valid_loss += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                n += len(y)
    return {"train_loss": total / seen, "valid_loss": valid_loss / n, "valid_accuracy": correct / n}


def dlnb_loop(
    model, loaders, epochs: int, lr: float, seed: int, device: torch.device, bars: bool = False
) -> dict:
    """The same training with `dlnb.fit`."""
    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, amp="off", progress=bars)
    return fit(model, loaders, config, device=device).records[-1]


def lightning_loop(
    model, loaders, epochs: int, lr: float, seed: int, device: torch.device, bars: bool = False
) -> None:
    """The same training with PyTorch Lightning's Trainer (no logger, checkpoints or sanity check)."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def on_train_epoch_start(self):
            loaders.train.generator.manual_seed(seed * 1000 + self.current_epoch + 1)

        def training_step(self, batch, _):
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, _):
            self.log("valid_loss", F.cross_entropy(self.net(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0)

    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=bars,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Module(), loaders.train, loaders.valid)


def fastai_loop(
    model, loaders, epochs: int, lr: float, seed: int, device: torch.device, bars: bool = False
) -> None:
    """The same training with fastai's Learner (torch AdamW through OptimWrapper, constant lr)."""
    import fastai.callback.progress  # noqa: F401  (the progress bar and no_bar, as fastai.vision.all has them)
    from fastai.callback.core import Callback as FastaiCallback
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper

    class ReseedCallback(FastaiCallback):
        def before_train(self):
            loaders.train.generator.manual_seed(seed * 1000 + self.epoch + 1)

    learner = Learner(
        DataLoaders(loaders.train, loaders.valid, device=device),
        model.to(device),
        loss_func=F.cross_entropy,
        opt_func=functools.partial(OptimWrapper, opt=torch.optim.AdamW),
        lr=lr,
        wd=0.0,
        cbs=[ReseedCallback()],
    )
    if bars:
        learner.fit(epochs, lr)
    else:
        with learner.no_bar(), learner.no_logging():
            learner.fit(epochs, lr)


def accuracy(model, loader, device: torch.device) -> float:
    """Top-1 accuracy of `model` on `loader`."""
    correct, n = 0, 0
    with eval_mode(model), torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
            n += len(y)
    return correct / n


def timed(loop, loaders, args, device) -> tuple[float, float, torch.nn.Module]:
    """Wall and CPU seconds of one run of `loop` from a freshly seeded LeNet-5."""
    torch.manual_seed(args.seed)
    model = LeNet5()
    cpu0 = time.process_time()
    with Timer(device) as t:
        if loop is hand_loop:
            loop(model, loaders, args.epochs, args.lr, args.seed, device)
        else:
            loop(model, loaders, args.epochs, args.lr, args.seed, device, args.bars)
    return t.seconds, time.process_time() - cpu0, model


def overhead(args, device: torch.device) -> float:
    """Interleaved repeats of fit and the hand loop; prints and returns the median time ratio."""
    x, y = mnist_tensors("train", subset=args.train_subset, seed=args.seed)
    loaders = make_loaders(x, y, batch_size=args.batch_size, seed=args.seed)
    loops = {"dlnb.fit": dlnb_loop, "hand loop": hand_loop}
    for name, package, loop in [
        ("Lightning", "lightning", lightning_loop),
        ("fastai", "fastai", fastai_loop),
    ]:
        if importlib.util.find_spec(package):
            loops[name] = loop
        else:
            print(
                f"{package} is not installed (pip install -e .[bench]): skipping the {name} peer."
            )
    for loop in loops.values():  # warm-up: allocator, kernels, lazy imports
        timed(loop, loaders, args, device)
    wall = {name: [] for name in loops}
    cpu = {name: [] for name in loops}
    models = {}
    for i in range(args.repeats):
        order = list(loops) if i % 2 == 0 else list(reversed(list(loops)))  # cancel drift
        for name in order:
            w, c, models[name] = timed(loops[name], loaders, args, device)
            wall[name].append(w)
            cpu[name].append(c)
    ratios = {
        name: statistics.median(w / h for w, h in zip(wall[name], wall["hand loop"], strict=True))
        for name in loops
    }
    ratio = ratios["dlnb.fit"]
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(
            models["dlnb.fit"].state_dict().values(),
            models["hand loop"].state_dict().values(),
            strict=True,
        )
    )
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {len(loaders.train.dataset)} "
        f"training images, batch {args.batch_size}, {args.epochs} epoch(s), {args.repeats} repeats, "
        f"progress bars {'on' if args.bars else 'off'}, load average {os.getloadavg()}"
    )
    for name in loops:
        cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu["hand loop"])
        print(
            f"  {name:<10} median wall {statistics.median(wall[name]):.3f} s, "
            f"median CPU {statistics.median(cpu[name]):.3f} s; / hand loop: wall "
            f"{ratios[name]:.3f}x (median of interleaved pairs), CPU {cpu_ratio:.3f}x; "
            f"validation accuracy {accuracy(models[name], loaders.valid, device):.4f}"
        )
    print(f"  fit / hand loop time ratio: {ratio:.3f} (target <= 1.05)")
    print(f"  final weights agree: max |difference| = {diff:.2e}")
    if diff > 1e-5:
        raise SystemExit("FAIL: dlnb.fit and the hand loop ended with different weights.")
    return ratio


def gpu_throughput(args, device: torch.device) -> float:
    """Training images/s with the GPU-resident loader against a standard DataLoader (AMP off for
    both), then with AMP and with AMP + channels_last on the GPU-resident loader."""
    x, y = mnist_tensors("train", seed=args.seed)
    standard = make_loaders(x, y, batch_size=512, seed=args.seed, valid_fraction=0.0)
    resident = make_loaders(x, y, batch_size=512, seed=args.seed, valid_fraction=0.0, device=device)
    config = TrainConfig(epochs=1, lr=2e-3, seed=args.seed, progress=False, amp="off")
    amp = TrainConfig(epochs=1, lr=2e-3, seed=args.seed, progress=False, amp="auto")
    candidates = {
        "DataLoader": (standard, config),
        "GpuLoader": (resident, config),
        "GpuLoader + AMP": (resident, amp),
        "GpuLoader + AMP + channels_last": (
            resident,
            TrainConfig(
                epochs=1, lr=2e-3, seed=args.seed, progress=False, amp="auto", channels_last=True
            ),
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    for i in range(args.repeats + 1):
        for name, (loaders, cfg) in candidates.items():
            torch.manual_seed(args.seed)
            with Timer(device) as t:
                fit(LeNet5(), loaders, cfg, device=device)
            if i > 0:  # the first round warms up cuDNN and the allocator
                rates[name].append(len(x) / t.seconds)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    speedup = medians["GpuLoader"] / medians["DataLoader"]
    print(f"{torch.cuda.get_device_name(device)}: LeNet-5 on MNIST ({len(x)} images, batch 512)")
    for name, rate in medians.items():
        print(f"  {name:<32} {rate:,.0f} images/s ({rate / medians['DataLoader']:.2f}x DataLoader)")
    print(f"  GPU-resident loader speed-up (AMP off): {speedup:.1f}x (target >= 3x)")
    return speedup


def main() -> None:
    """Parse arguments and run the comparisons this machine supports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-subset", type=int, default=12000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--bars", action="store_true", help="progress bars on (fit and peers)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="device of the overhead comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overhead(args, pick_device(args.device))
    if torch.cuda.is_available():
        gpu_throughput(args, torch.device("cuda"))
    else:
        print(
            "No CUDA device: skipping the GPU half (GPU-resident loader against DataLoader, AMP, "
            "channels_last): those numbers need a GPU and cannot be shown on a CPU."
        )


if __name__ == "__main__":
    main()
