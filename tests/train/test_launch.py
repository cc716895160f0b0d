"""The torchrun launcher: the command it builds, streamed output, failures and timeouts."""

import os
import sys
import textwrap
from pathlib import Path

import pytest

from dlnb.train import launch as launch_module
from dlnb.train.launch import LaunchError, launch, torchrun_command


def test_single_node_command_uses_a_standalone_rendezvous():
    cmd = torchrun_command("train.py", ["--epochs", 2], nproc=4)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in cmd and "--standalone" in cmd
    assert cmd[-3:] == ["train.py", "--epochs", "2"]


def test_multi_node_flags_replace_the_standalone_rendezvous():
    flags = ["--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29500"]
    cmd = torchrun_command(
        "dlnb.scripts.train_mnist_ddp", nproc=8, module=True, torchrun_args=flags
    )
    assert "--standalone" not in cmd
    assert cmd[cmd.index("--nproc-per-node=8") + 1 :] == [
        *flags,
        "--module",
        "dlnb.scripts.train_mnist_ddp",
    ]
    with pytest.raises(ValueError, match="at least 1"):
        torchrun_command("train.py", nproc=0)


def test_workers_import_this_dlnb_and_keep_the_callers_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "elsewhere")
    env = launch_module._child_env(2, {"EXTRA": "1"})
    first, rest = env["PYTHONPATH"].split(os.pathsep, 1)
    assert (
        Path(first, "dlnb", "train", "launch.py").resolve()
        == Path(launch_module.__file__).resolve()
    )
    assert rest == "elsewhere" and env["EXTRA"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_missing_script_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="module=True"):
        launch(str(tmp_path / "nope.py"))


@pytest.mark.slow
def test_output_streams_and_failures_raise_with_the_tail(tmp_path, capsys):
    script = tmp_path / "fails.py"
    script.write_text(
        textwrap.dedent("""
        import os
        print("worker", os.environ["RANK"], "of", os.environ["WORLD_SIZE"])
        raise SystemExit("bad hyperparameters")
    """)
    )
    with pytest.raises(LaunchError, match="exited with status") as err:
        launch(str(script), nproc=1, timeout_s=120)
    assert "worker 0 of 1" in capsys.readouterr().out  # streamed into the cell as it ran
    assert "bad hyperparameters" in str(err.value) and "worker 0 of 1" in err.value.output


def test_a_run_past_its_timeout_is_stopped(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    with pytest.raises(LaunchError, match="did not finish within 1"):
        launch(str(script), nproc=1, timeout_s=1, echo=False)
