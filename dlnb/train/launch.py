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

#: The folder holding the `dlnb` package (this file is dlnb/train/launch.py), put first on the
#: workers' PYTHONPATH so they import this dlnb.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

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
    root = str(PACKAGE_ROOT)
    child["PYTHONPATH"] = os.pathsep.join(p for p in (root, child.get("PYTHONPATH")) if p)
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
    """Run `script` under torchrun with `nproc` processes, print its output line by line as it
    arrives, and return all of it; raise `LaunchError` (with its last lines) when it fails.

    Args:
        script: a path to a .py file, or a module name with `module=True`.
        args: the script's own command-line arguments.
        nproc: processes on this machine.
        module: run `script` as a module (`python -m`).
        torchrun_args: torchrun's own flags (several nodes: --nnodes, --rdzv-endpoint ...).
        env: variables added to the workers' environment.
        timeout_s: stop the run (and raise) after this many seconds; None waits.
        echo: print each line as it arrives.
    """
    _check_script(script, module)
    cmd = torchrun_command(script, args, nproc=nproc, module=module, torchrun_args=torchrun_args)
    proc = _start(cmd, _child_env(nproc, env))
    timed_out = threading.Event()
    timer = threading.Timer(timeout_s, _time_out, (proc, timed_out)) if timeout_s else None
    try:
        if timer:
            timer.start()
        lines, code = _stream(proc, echo)
    finally:
        if timer:
            timer.cancel()
    _raise_on_failure(script, lines, code, nproc, timeout_s if timed_out.is_set() else None)
    return "".join(lines)


def _check_script(script: str, module: bool) -> None:
    """A clear error when `script` is neither a module (`module=True`) nor a file."""
    if not module and not Path(script).is_file():
        raise FileNotFoundError(
            f"No training script at {script!r}; pass a path to a .py file, or a module name "
            "with module=True."
        )


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `cmd` in a session of its own (so `_stop` reaches its workers), output piped."""
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=hasattr(os, "killpg"),
    )


def _time_out(proc: subprocess.Popen, timed_out: threading.Event) -> None:
    """Mark the run as timed out and stop it (called by the timer when `timeout_s` passes)."""
    timed_out.set()
    _stop(proc)


def _stream(proc: subprocess.Popen, echo: bool) -> tuple[list[str], int]:
    """Read the run's output line by line (printing it with `echo`) until it exits; the lines and
    the exit status. KeyboardInterrupt in the notebook stops the workers too."""
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)
        return lines, proc.wait()
    except BaseException:
        _stop(proc)
        proc.wait()
        raise


def _raise_on_failure(
    script: str, lines: list[str], code: int, nproc: int, timed_out_after: float | None
) -> None:
    """Raise `LaunchError` with the workers' last lines when the run timed out or failed."""
    output = "".join(lines)
    # Show what the workers printed last, not torchrun's own traceback that follows it.
    end = next((i for i, ln in enumerate(lines) if TORCHRUN_LOG.match(ln)), len(lines))
    tail = "".join(lines[max(0, end - 20) : end])
    if timed_out_after is not None:
        raise LaunchError(
            f"{script} did not finish within {timed_out_after} s and was stopped; "
            f"raise timeout_s or shorten the run. Last output:\n{tail}",
            output,
        )
    if code != 0:
        raise LaunchError(
            f"{script} exited with status {code} under torchrun "
            f"({nproc} processes). Last output:\n{tail}",
            output,
        )
