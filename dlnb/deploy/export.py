"""Export a trained model (TorchScript, torch.export, ONNX), check parity, run it with ONNX Runtime, quantise it."""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlnb import claims
from dlnb.runtime import model_device

NumpyFn = Callable[[np.ndarray], np.ndarray]


class ParityError(AssertionError):
    """An exported model's outputs differ from eager PyTorch by more than the allowed tolerance."""


def _require(module: str, package: str):
    """Import an optional dependency or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module} is needed for this step but is not installed. Install it with "
            f"`pip install {package}` (it is a dependency of dlnb: `pip install -e .`)."
        ) from e


def _example_batch(example: torch.Tensor) -> torch.Tensor:
    """Return an example with a batch of at least 2, so exporters do not specialise the batch axis to 1."""
    if not isinstance(example, torch.Tensor) or example.ndim < 1:
        raise TypeError(
            f"example must be a batched torch.Tensor such as torch.zeros(2, 1, 28, 28), got {type(example).__name__}."
        )
    return example if example.shape[0] >= 2 else example.expand(2, *example.shape[1:]).contiguous()


def _eval_cpu(model: nn.Module) -> nn.Module:
    """The model in eval mode on the CPU (exports are portable CPU artefacts); a copy if it is elsewhere."""
    if any(t.device.type != "cpu" for t in [*model.parameters(), *model.buffers()]):
        model = copy.deepcopy(model).to("cpu")
    return model.eval()


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path | None = None):
    """Trace and freeze a model to TorchScript; save it when `path` is given.

    TorchScript is deprecated from torch 2.9 on (FutureWarnings, silenced here): it stays
    for comparison and for C++ deployments that still need it; prefer ONNX or torch.export.
    """
    model = _eval_cpu(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        with torch.no_grad():
            scripted = torch.jit.freeze(torch.jit.trace(model, _example_batch(example).cpu()))
        if path is not None:
            torch.jit.save(scripted, str(path))
    return scripted


def export_program(model: nn.Module, example: torch.Tensor, path: str | Path | None = None):
    """Capture a model with `torch.export` (dynamic batch axis); save it as `.pt2` when `path` is given."""
    model = _eval_cpu(model)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        model, (_example_batch(example).cpu(),), dynamic_shapes=({0: batch},)
    )
    if path is not None:
        torch.export.save(program, str(path))
    return program


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, opset: int | None = None
) -> Path:
    """Export a model to a single ONNX file with a dynamic batch axis (input `input`, output `output`)."""
    _require("onnxscript", "onnxscript")
    model = _eval_cpu(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        model,
        (_example_batch(example).cpu(),),
        str(path),
        dynamo=True,
        dynamic_shapes=({0: batch},),
        input_names=["input"],
        output_names=["output"],
        opset_version=opset,
        external_data=False,
        verbose=False,
    )
    return path


def ort_session(
    path: str | Path, threads: int | None = None, optimization: str = "all", spin: bool = True
):
    """Open an ONNX Runtime CPU session with graph optimisations; `threads` defaults to torch's thread count.

    `spin=False` stops idle intra-op threads from busy-waiting: slightly slower calls, but the
    CPU stays free for other work (a web server's event loop, other processes on a shared machine).
    """
    ort = _require("onnxruntime", "onnxruntime")
    levels = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {sorted(levels)}, got {optimization!r}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No ONNX model at {path}. Export one first with dlnb.deploy.export.export_onnx(model, example, path)."
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidProtobuf types
        raise ValueError(
            f"ONNX Runtime could not load {path} ({type(e).__name__}: {e}). The file may be truncated or "
            "not an ONNX model: export it again with dlnb.deploy.export.export_onnx."
        ) from e


def ort_threads(session) -> int:
    """The intra-op thread count an ONNX Runtime session was created with."""
    return session.get_session_options().intra_op_num_threads


def sample_shape(session) -> tuple[int, ...]:
    """The per-sample input shape of an ONNX Runtime session (its input shape without the batch axis)."""
    shape = session.get_inputs()[0].shape[1:]
    if not all(isinstance(d, int) for d in shape):
        raise ValueError(
            f"Only the batch axis may be dynamic; this model's input shape is {['batch', *shape]}."
        )
    return tuple(shape)


def as_numpy_fn(model) -> NumpyFn:
    """Wrap an nn.Module, TorchScript module, ExportedProgram or ORT session as `f(np.ndarray) -> np.ndarray`."""
    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()
    if isinstance(model, nn.Module):
        with contextlib.suppress(
            NotImplementedError
        ):  # torch.export's module() is always in eval mode
            model.eval()
        device = model_device(model)

        def run_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
                return model(batch).float().cpu().numpy()  # .cpu() waits for the device

        return run_torch
    if hasattr(model, "run") and hasattr(model, "get_inputs"):
        name = model.get_inputs()[0].name

        def run_ort(x: np.ndarray) -> np.ndarray:
            return model.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        return run_ort
    if callable(model):
        return model
    raise TypeError(
        f"Cannot run a {type(model).__name__}: pass an nn.Module, ExportedProgram, ORT session or a function."
    )


def batched(fn: NumpyFn, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Run `fn` over `x` in batches and concatenate the outputs."""
    return np.concatenate([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def parity(
    reference,
    candidate,
    inputs: np.ndarray,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    batch_size: int = 512,
    strict: bool = True,
) -> dict:
    """Compare a candidate runtime's outputs with a reference's on the same inputs.

    Reports the max absolute error, the max relative error (per sample, the largest absolute
    difference over the largest reference magnitude), and top-1 agreement. `ok` is
    `np.allclose`'s rule: every |cand - ref| <= atol + rtol * |ref|. With `strict` a failure
    raises ParityError.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    ref = batched(as_numpy_fn(reference), inputs, batch_size).astype(np.float64)
    cand = batched(as_numpy_fn(candidate), inputs, batch_size).astype(np.float64)
    if ref.shape != cand.shape:
        raise ParityError(f"Output shapes differ: reference {ref.shape}, candidate {cand.shape}.")
    diff = np.abs(ref - cand)
    per_sample = diff.reshape(len(diff), -1).max(1) / np.maximum(
        np.abs(ref).reshape(len(ref), -1).max(1), 1e-12
    )
    report = {
        "n": len(inputs),
        "max_abs_error": float(diff.max()),
        "mean_abs_error": float(diff.mean()),
        "max_rel_error": float(per_sample.max()),
        "argmax_agreement": float((ref.argmax(-1) == cand.argmax(-1)).mean())
        if ref.ndim > 1
        else float("nan"),
        "atol": atol,
        "rtol": rtol,
        "ok": bool(np.all(diff <= atol + rtol * np.abs(ref))),
    }
    if strict and not report["ok"]:
        raise ParityError(
            f"Outputs differ beyond atol={atol}, rtol={rtol}: max abs error {report['max_abs_error']:.3g}, "
            f"max rel error {report['max_rel_error']:.3g}. Check the model was exported in eval mode, "
            "or loosen the tolerance knowingly (e.g. for a quantised model)."
        )
    return report


def quantize_onnx(src: str | Path, dst: str | Path, per_channel: bool = False) -> Path:
    """Dynamic int8 quantisation of an ONNX model's weights with ONNX Runtime (activations quantised at run time).

    torch.ao.quantization.quantize_dynamic is deprecated in torch 2.x (in favour of torchao,
    not installed here) and covers only Linear/RNN layers; ORT's quantises Conv and MatMul.
    """
    _require("onnxruntime", "onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared))
        quantize_dynamic(
            str(prepared), str(dst), per_channel=per_channel, weight_type=QuantType.QInt8
        )
    return dst


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy of any runnable model (see `as_numpy_fn`) on arrays `x`, `y`."""
    logits = batched(as_numpy_fn(model), np.asarray(x, dtype=np.float32), batch_size)
    return float((logits.argmax(-1) == np.asarray(y)).mean())


def quantization_report(
    fp32_path: str | Path,
    int8_path: str | Path,
    x: np.ndarray,
    y: np.ndarray,
    threads: int | None = None,
) -> dict:
    """Size and accuracy of an fp32 ONNX model against its int8 version on the same labelled data,
    with the 95 % interval of the accuracy change (int8 - fp32, bootstrap over the examples)."""
    sizes = {name: os.path.getsize(p) for name, p in (("fp32", fp32_path), ("int8", int8_path))}
    correct = {
        name: _correct(ort_session(p, threads), x, y)
        for name, p in (("fp32", fp32_path), ("int8", int8_path))
    }
    change = claims.bootstrap_effect(
        correct["int8"].tolist(), correct["fp32"].tolist(), names=("int8", "float32")
    )
    return {
        "fp32_bytes": sizes["fp32"],
        "int8_bytes": sizes["int8"],
        "size_ratio": sizes["fp32"] / sizes["int8"],
        "fp32_accuracy": float(correct["fp32"].mean()),
        "int8_accuracy": float(correct["int8"].mean()),
        "accuracy_drop": float(correct["fp32"].mean() - correct["int8"].mean()),
        "accuracy_change_low": change.low,
        "accuracy_change_high": change.high,
        "n": len(x),
    }


def _correct(model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """1.0 where `model` predicts the label, else 0.0, per example."""
    logits = batched(as_numpy_fn(model), np.asarray(x, dtype=np.float32), batch_size)
    return (logits.argmax(-1) == np.asarray(y)).astype(float)
