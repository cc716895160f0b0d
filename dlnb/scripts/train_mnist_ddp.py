"""Train LeNet-5 on MNIST with `dlnb.fit`, in one process or in many under torchrun.

    python -m dlnb.scripts.train_mnist_ddp --epochs 2                 # one process
    torchrun --standalone --nproc-per-node 2 -m dlnb.scripts.train_mnist_ddp --device cpu
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29400 \\
             --rdzv-id job42 -m dlnb.scripts.train_mnist_ddp --out /shared/run   # every node

`--batch-size` is per process, so the global batch is world size x batch size. Rank 0 prints
progress, writes checkpoints (a rerun with the same --out resumes) and `summary.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlnb.models import LeNet5
from dlnb.train import distributed
from dlnb.train.config import TrainConfig
from dlnb.train.loop import evaluate, fit, resolve_device
from dlnb.vision.datasets import mnist_loaders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the script."""
    parser = argparse.ArgumentParser(description="LeNet-5 on MNIST with dlnb.fit (DDP-ready).")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="examples per process")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-subset", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--test-subset", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--device", default="auto", help="auto: each rank's GPU, else the CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/train_mnist_ddp", help="checkpoints and summary")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate on the test set, and (on rank 0) write `summary.json` under --out."""
    args = parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()
    with distributed.process_group(backend="gloo" if args.device == "cpu" else None):
        loaders = mnist_loaders(
            batch_size=args.batch_size,
            train_subset=args.train_subset,
            test_subset=args.test_subset,
            seed=args.seed,
        )
        torch.manual_seed(args.seed)
        model = LeNet5()
        config = TrainConfig(
            epochs=args.epochs,
            lr=args.lr,
            device=args.device,
            seed=args.seed,
            checkpoint_dir=str(out / "checkpoints"),
        )
        device = resolve_device(config)
        history = fit(model, loaders, config, device=device)
        test = evaluate(model, loaders.test, config, device=device)  # same weights on every rank
        summary = {
            "world_size": distributed.world_size(),
            "backend": torch.distributed.get_backend() if distributed.is_distributed() else None,
            "global_batch_size": args.batch_size * distributed.world_size(),
            "test_accuracy": test["accuracy"],
            "seconds": time.perf_counter() - start,
            "history": history.records,
        }
        distributed.log(f"rank {distributed.rank()} done", all_ranks=True)
        if distributed.is_main_process():
            write_summary(summary, out)
    return summary


def write_summary(summary: dict, out: Path) -> None:
    """Write `summary.json` under `out` and print the test accuracy it reports."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"test accuracy {summary['test_accuracy']:.4f} with {summary['world_size']} "
        f"process(es), global batch {summary['global_batch_size']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
