"""Export, parity, ONNX Runtime sessions and int8 quantisation (dlnb.deploy.export)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from dlnb.deploy import export as deploy
from dlnb.models import LeNet5


@pytest.fixture(scope="module")
def digits_mlp():
    """An MLP trained for a second on scikit-learn's 8x8 digits, with its held-out split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    train, test = idx[:1400], idx[1400:]
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval(), x[test], y[test]


@pytest.mark.slow
def test_onnx_export_has_a_dynamic_batch_axis_and_matches_eager(lenet, lenet_onnx):
    model, x = lenet
    session = deploy.ort_session(lenet_onnx)
    assert isinstance(session.get_inputs()[0].shape[0], str)  # symbolic batch axis
    assert deploy.sample_shape(session) == (1, 28, 28)
    for n in (1, 3, 64):  # exported with a batch of 2: other sizes must work
        report = deploy.parity(model, session, x[:n].numpy())
        assert report["ok"] and report["n"] == n
        assert report["max_abs_error"] < 1e-4 and report["argmax_agreement"] == 1.0


@pytest.mark.slow
def test_torchscript_and_torch_export_round_trip_through_files(lenet, tmp_path):
    model, x = lenet
    deploy.export_torchscript(model, x[:4], tmp_path / "lenet.ts")
    deploy.export_program(model, x[:4], tmp_path / "lenet.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(tmp_path / "lenet.ts"))
    program = torch.export.load(str(tmp_path / "lenet.pt2"))
    for candidate in (scripted, program):
        report = deploy.parity(model, candidate, x.numpy())  # batch 64, exported with 4
        assert report["ok"] and report["max_abs_error"] < 1e-4


def test_torchscript_export_is_quiet_about_its_deprecation(lenet):
    model, x = lenet
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        scripted = deploy.export_torchscript(model, x[:2])
    assert deploy.parity(model, scripted, x[:8].numpy())["ok"]


def test_parity_measures_the_error_it_reports(lenet):
    model, x = lenet
    eager = deploy.as_numpy_fn(model)
    report = deploy.parity(model, lambda a: eager(a) + 0.01, x.numpy(), strict=False)
    assert report["max_abs_error"] == pytest.approx(0.01, rel=1e-3)
    assert report["mean_abs_error"] == pytest.approx(0.01, rel=1e-3)
    assert not report["ok"]


def test_parity_raises_on_a_different_model(lenet):
    model, x = lenet
    other = LeNet5().eval()
    with pytest.raises(deploy.ParityError, match="max abs error"):
        deploy.parity(model, other, x.numpy())
    with pytest.raises(deploy.ParityError, match="shapes differ"):
        deploy.parity(model, lambda a: np.zeros((len(a), 3)), x.numpy(), strict=False)


def test_ort_session_explains_missing_and_corrupt_files(lenet_onnx, tmp_path):
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        deploy.ort_session(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(lenet_onnx.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated"):
        deploy.ort_session(truncated)
    with pytest.raises(ValueError, match="optimization must be one of"):
        deploy.ort_session(lenet_onnx, optimization="max")


def test_ort_session_uses_the_threads_asked_for(lenet_onnx):
    assert deploy.ort_threads(deploy.ort_session(lenet_onnx, threads=1)) == 1
    assert deploy.ort_threads(deploy.ort_session(lenet_onnx)) == torch.get_num_threads()


def test_as_numpy_fn_rejects_what_it_cannot_run():
    with pytest.raises(TypeError, match="Cannot run a str"):
        deploy.as_numpy_fn("model.onnx")


def test_export_needs_a_batched_tensor(lenet, tmp_path):
    with pytest.raises(TypeError, match="batched torch.Tensor"):
        deploy.export_onnx(lenet[0], np.zeros((1, 1, 28, 28)), tmp_path / "x.onnx")


@pytest.mark.slow
def test_int8_quantisation_shrinks_the_model_and_keeps_its_accuracy(digits_mlp, tmp_path):
    model, x, y = digits_mlp
    fp32 = deploy.export_onnx(model, torch.from_numpy(x[:2]), tmp_path / "mlp.onnx")
    int8 = deploy.quantize_onnx(fp32, tmp_path / "mlp.int8.onnx")
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops  # the weights really are int8
    report = deploy.quantization_report(fp32, int8, x, y)
    assert report["fp32_accuracy"] == pytest.approx(deploy.accuracy(model, x, y))
    assert report["fp32_accuracy"] > 0.9  # the model learned, so the accuracy check means something
    assert report["size_ratio"] > 2.5  # float32 -> int8 weights, plus scales and zero points
    assert report["accuracy_drop"] < 0.02
    low, high = report["accuracy_change_low"], report["accuracy_change_high"]
    assert low <= -report["accuracy_drop"] <= high  # the bootstrap interval holds the change
    assert report["n"] == len(x)


@pytest.mark.gpu
def test_a_model_on_cuda_exports_from_a_cpu_copy_and_runs_on_its_device(lenet, tmp_path):
    model, x = lenet
    on_gpu = LeNet5().cuda().eval()
    on_gpu.load_state_dict(model.state_dict())
    path = deploy.export_onnx(on_gpu, x[:2].cuda(), tmp_path / "lenet.onnx")
    assert next(on_gpu.parameters()).is_cuda  # the caller's model stays where it was
    report = deploy.parity(on_gpu, deploy.ort_session(path), x.numpy(), atol=1e-3, rtol=1e-2)
    assert report["ok"] and report["argmax_agreement"] == 1.0
