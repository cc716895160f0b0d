"""Run a training script under torchrun from a notebook and stream its output into the cell.

One machine, N processes (gloo on CPUs, NCCL on GPUs; the script picks with
`dlnb.train.distributed.init_distributed()`):

    launch("dlnb.scripts.train_mnist_ddp", ["--epochs", "2"], nproc=2, module=True)

Several machines: run the same script on every node with torchrun's own rendezvous flags, in a
terminal or through `launch(..., torchrun_args=...)`. With 2 nodes of 8 GPUs, on each node:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST0:29400 --rdzv-id job42 -m dlnb.scripts.train_mnist_ddp

or, with a fixed rank per node: `--nnodes 2 --node-rank 0|1 --master-addr HOST0 --master-port
29500`. `torchrun_command(...)` prints the exact line `launch` would run. Checkpoints are
written by global rank 0, so give every node the same `--out` on shared storage to resume.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import dlnb

MULTI_NODE_FLAGS = (
    "--nnodes",
    "--node-rank",
    "--node_rank",
    "--master-addr",
    "--master_addr",
    "--master-port",
    "--master_port",
    "--rdzv",
)
# torchrun's own log lines ("E1121 04:57:56.338000 10822 .../torch/distributed/elastic/...")
TORCHRUN_LOG = re.compile(r"^[EWI]\d{4} .*torch[/\\]distributed[/\\]elastic")


class LaunchError(RuntimeError):
    """A launched training run failed or timed out; `.output` holds everything it printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def torchrun_command(
    script: str,
    args: Sequence[object] = (),
    *,
    nproc: int = 2,
    module: bool = False,
    torchrun_args: Sequence[str] = (),
) -> list[str]:
    """The command line `launch` runs: torchrun (as `python -m torch.distributed.run`) + script."""
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}.")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if not any(a.startswith(MULTI_NODE_FLAGS) for a in torchrun_args):
        cmd.append("--standalone")  # one node: torchrun picks a free port itself
    cmd += list(torchrun_args)
    if module:
        cmd.append("--module")
    return cmd + [script, *map(str, args)]


def _child_env(nproc: int, env: dict[str, str] | None) -> dict[str, str]:
    child = dict(os.environ)
    repo = str(Path(dlnb.__file__).resolve().parents[1])  # so workers import this dlnb
    child["PYTHONPATH"] = os.pathsep.join(p for p in (repo, child.get("PYTHONPATH")) if p)
    child["PYTHONUNBUFFERED"] = "1"  # lines arrive as they are printed
    child.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    child.update(env or {})
    return child


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    if hasattr(os, "killpg"):
        os.killpg(proc.pid, signal.SIGTERM)  # torchrun and its workers share this session
    else:
        proc.terminate()


def launch(
    script: str,
    args: Sequence[object] = (),
    *,
    nproc: int = 2,
    module: bool = False,
    torchrun_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
    echo: bool = True,
) -> str:
    """Run `script` (a path, or a module with `module=True`) under torchrun with `nproc`
    processes, print its output line by line as it arrives, and return all of it.

    Raises `LaunchError` (with the output's last lines) when the run fails or passes `timeout_s`.
    """
    if not module and not Path(script).is_file():
        raise FileNotFoundError(
            f"No training script at {script!r}; pass a path to a .py file, or a module name "
            "with module=True."
        )
    cmd = torchrun_command(script, args, nproc=nproc, module=module, torchrun_args=torchrun_args)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_child_env(nproc, env),
        start_new_session=hasattr(os, "killpg"),
    )
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _stop(proc)

    timer = threading.Timer(timeout_s, on_timeout) if timeout_s else None
    lines: list[str] = []
    try:
        if timer:
            timer.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)
        code = proc.wait()
    except BaseException:  # KeyboardInterrupt in the notebook stops the workers too
        _stop(proc)
        proc.wait()
        raise
    finally:
        if timer:
            timer.cancel()
    output = "".join(lines)
    # Show what the workers printed last, not torchrun's own traceback that follows it.
    end = next((i for i, ln in enumerate(lines) if TORCHRUN_LOG.match(ln)), len(lines))
    tail = "".join(lines[max(0, end - 20) : end])
    if timed_out.is_set():
        raise LaunchError(
            f"{script} did not finish within {timeout_s} s and was stopped; "
            f"raise timeout_s or shorten the run. Last output:\n{tail}",
            output,
        )
    if code != 0:
        raise LaunchError(
            f"{script} exited with status {code} under torchrun "
            f"({nproc} processes). Last output:\n{tail}",
            output,
        )
    return output
