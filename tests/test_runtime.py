import os
import random
import re
import time

import IPython
import numpy as np
import pytest
import torch

from dlnb import runtime as display
from dlnb import runtime as gpu


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS (so the tests hold on a GPU runner too)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_picks_the_cpu_without_an_accelerator(no_accelerator):
    assert gpu.pick_device("auto") == torch.device("cpu")
    assert gpu.pick_device() == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert gpu.pick_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu.pick_device("auto").type == "cuda"


def test_explicit_devices_are_returned_as_given(no_accelerator):
    assert gpu.pick_device("cpu") == torch.device("cpu")
    dev = torch.device("cpu")
    assert gpu.pick_device(dev) is dev


def test_cuda_without_cuda_is_a_clear_error(no_accelerator):
    with pytest.raises(RuntimeError, match="CUDA is not available") as err:
        gpu.pick_device("cuda")
    assert "'auto' or 'cpu'" in str(err.value)
    with pytest.raises(RuntimeError, match="'cuda:1'"):
        gpu.pick_device("cuda:1")


def _draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_seed_everything_makes_python_numpy_and_torch_reproducible():
    gpu.seed_everything(123)
    first = _draws()
    gpu.seed_everything(123)
    assert _draws() == first
    gpu.seed_everything(124)
    other = _draws()
    assert all(a != b for a, b in zip(other, first, strict=True))


def test_seed_everything_deterministic_switches_on_deterministic_kernels(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    try:
        gpu.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def test_doctor_reports_versions_and_cuda_fields(monkeypatch, capsys):
    monkeypatch.setattr(gpu, "_driver_cuda_version", lambda: None)
    report = gpu.doctor(display=False)
    assert capsys.readouterr().out == ""
    assert report["torch"] == torch.__version__
    assert report["torch_cuda"] == torch.version.cuda
    assert report["cuda_available"] == torch.cuda.is_available()
    assert report["python"].count(".") == 2
    for key in ("device", "devices", "driver_cuda", "warnings", "cpu_threads", "torchvision"):
        assert key in report
    assert isinstance(report["devices"], list)
    if not torch.cuda.is_available():
        assert report["devices"] == []


def test_doctor_displays_its_report(monkeypatch, capsys):
    monkeypatch.setattr(gpu, "_driver_cuda_version", lambda: None)
    report = gpu.doctor()
    out = capsys.readouterr().out
    assert "torch" in out and report["torch"] in out
    assert "cuda_available" in out


def test_doctor_warns_when_the_driver_is_older_than_the_wheel(monkeypatch, capsys):
    monkeypatch.setattr(gpu, "_driver_cuda_version", lambda: "12.2")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    with pytest.warns(
        UserWarning, match="built for CUDA 12.8 but the driver supports only CUDA 12.2"
    ):
        report = gpu.doctor(display=True)
    assert report["driver_cuda"] == "12.2"
    assert any("update the NVIDIA driver" in w for w in report["warnings"])
    assert "WARNING: torch was built for CUDA 12.8" in capsys.readouterr().out


@pytest.mark.parametrize("driver", ["12.8", "13.0"])
def test_doctor_is_quiet_when_the_driver_is_new_enough(monkeypatch, recwarn, driver):
    monkeypatch.setattr(gpu, "_driver_cuda_version", lambda: driver)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    report = gpu.doctor(display=False)
    assert not [w for w in report["warnings"] if "driver supports only" in w]
    assert not [w for w in recwarn if "driver supports only" in str(w.message)]


def test_doctor_notes_a_cuda_wheel_without_a_gpu(monkeypatch, no_accelerator):
    monkeypatch.setattr(gpu, "_driver_cuda_version", lambda: None)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    report = gpu.doctor(display=False)
    assert any("running on CPU" in w for w in report["warnings"])


def test_driver_cuda_version_parses_nvidia_smi(monkeypatch):
    class Done:
        stdout = "| NVIDIA-SMI 550.54   Driver Version: 550.54   CUDA Version: 12.4     |"

    monkeypatch.setattr(gpu.subprocess, "run", lambda *a, **k: Done())
    assert gpu._driver_cuda_version() == "12.4"

    def missing(*a, **k):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(gpu.subprocess, "run", missing)
    assert gpu._driver_cuda_version() is None


def test_timer_measures_and_synchronises(monkeypatch):
    synced = []
    monkeypatch.setattr(gpu, "sync", lambda device=None: synced.append(device))
    with gpu.Timer("cpu") as t:
        time.sleep(0.05)
    assert t.seconds >= 0.05
    assert synced == ["cpu", "cpu"]  # on entry and on exit


def test_timer_on_the_cpu_really_runs():
    with gpu.Timer("cpu") as t:
        torch.ones(100, 100) @ torch.ones(100, 100)
    assert t.seconds > 0


def test_an_unsynchronised_timer_does_not_wait_for_the_device(monkeypatch):
    synced = []
    monkeypatch.setattr(gpu, "sync", lambda device=None: synced.append(device))
    with gpu.Timer("cuda", sync=False) as t:
        time.sleep(0.01)
    assert synced == [] and t.seconds >= 0.01


def test_matmul_gflops_counts_two_n_cubed_per_product_over_the_timed_products(monkeypatch):
    products = []
    clock = iter([10.0, 10.5])  # the Timer reads the clock on entry and on exit: 0.5 s
    monkeypatch.setattr(gpu.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(gpu, "sync", lambda device=None: products.append("sync"))
    real = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: products.append("@") or real(a, b))
    gflops = gpu.matmul_gflops(100, "cpu", repeats=4)
    assert gflops == pytest.approx(2 * 100**3 * 4 / 0.5 / 1e9)
    assert products == ["@", "sync", "@", "@", "@", "@", "sync"]  # warm-up outside the timer


def test_memory_stats_has_rss():
    stats = gpu.memory_stats("cpu")
    assert stats["rss_mib"] > 1
    assert not any(k.startswith("cuda") for k in stats)


@pytest.mark.gpu
def test_cuda_device_timer_and_memory():
    assert gpu.pick_device("auto").type == "cuda"
    x = torch.ones(1024, 1024, device="cuda")
    with gpu.Timer("cuda") as t:
        y = x @ x
    assert t.seconds > 0 and float(y[0, 0]) == 1024
    stats = gpu.memory_stats("cuda")
    assert (
        stats["cuda_allocated_mib"] >= 8 and stats["cuda_peak_mib"] >= stats["cuda_allocated_mib"]
    )
    report = gpu.doctor(display=False)
    assert report["devices"] and report["devices"][0]["total_gib"] > 0


# --- model device, thread caps, atomic writes ---


def test_model_device_is_the_first_parameters_or_the_cpu():
    assert gpu.model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert gpu.model_device(torch.nn.ReLU()) == torch.device("cpu")  # no parameters


@pytest.mark.gpu
def test_model_device_follows_the_model_to_cuda():
    assert gpu.model_device(torch.nn.Linear(2, 2).cuda()).type == "cuda"


def test_cpu_threads_caps_inside_the_block_and_restores_even_on_error():
    before = torch.get_num_threads()
    with gpu.cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), gpu.cpu_threads(1):
        raise KeyError
    assert torch.get_num_threads() == before
    with gpu.cpu_threads(None):
        assert torch.get_num_threads() == before


def test_atomic_write_renames_a_complete_file_into_place(tmp_path):
    path = tmp_path / "sub" / "out.bin"  # missing folders are made
    with gpu.atomic_write(path, suffix=".part") as f:
        f.write(b"new")
        assert not path.exists() and [p.suffix for p in path.parent.iterdir()] == [".part"]
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), gpu.atomic_write(path) as f:
        f.write(b"half")
        raise OSError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# --- display helpers ---


class ZMQInteractiveShell:
    """Stands in for the shell of a Jupyter kernel (only its class name matters)."""


class TerminalInteractiveShell:
    """Stands in for the terminal IPython shell."""


@pytest.fixture
def jupyter(monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())


def test_plain_python_is_not_a_notebook_and_is_headless(monkeypatch):
    monkeypatch.delenv("DLNB_HEADLESS", raising=False)
    assert display.in_notebook() is False
    assert display.is_headless() is True


def test_terminal_ipython_is_not_a_notebook(monkeypatch):
    monkeypatch.delenv("DLNB_HEADLESS", raising=False)
    monkeypatch.setattr(IPython, "get_ipython", lambda: TerminalInteractiveShell())
    assert display.in_notebook() is False
    assert display.is_headless() is True


def test_a_jupyter_kernel_has_a_front_end(jupyter, monkeypatch):
    monkeypatch.delenv("DLNB_HEADLESS", raising=False)
    assert display.in_notebook() is True
    assert display.is_headless() is False


@pytest.mark.parametrize("value, headless", [("1", True), ("0", False)])
def test_the_runner_marks_a_kernel_headless(jupyter, monkeypatch, value, headless):
    monkeypatch.setenv("DLNB_HEADLESS", value)
    assert display.in_notebook() is True
    assert display.is_headless() is headless


def test_show_prints_outside_a_notebook(capsys):
    display.show({"accuracy": 0.5})
    assert capsys.readouterr().out.strip() == "{'accuracy': 0.5}"


def test_show_displays_in_a_notebook(jupyter, monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    display.show("table")
    assert shown == ["table"]


def test_progress_prints_a_status_line_per_item_when_headless(capsys, monkeypatch):
    monkeypatch.setenv("DLNB_HEADLESS", "1")
    out = []
    for item in display.progress(["a", "b", "c"], "sweep"):
        out.append(item)
        print(f"work {item}")
    assert out == ["a", "b", "c"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "work a" and re.fullmatch(r"sweep: 1/3 done \(\d+ s\)", lines[1])
    assert lines[-1].startswith("sweep: 3/3 done")
    assert list(display.progress(range(2), "quiet", enabled=False)) == [0, 1]
    assert capsys.readouterr().out == ""


def test_progress_is_a_kept_tqdm_bar_in_a_live_notebook(jupyter, monkeypatch):
    import tqdm.auto

    monkeypatch.setenv("DLNB_HEADLESS", "0")
    made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda seq, **kw: made.append(kw) or iter(seq))
    assert list(display.progress([1, 2], "fits")) == [1, 2]
    assert made == [{"desc": "fits", "total": 2, "leave": True}]
