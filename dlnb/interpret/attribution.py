"""Attribution with Captum: one call per prediction, numpy out.

`attribute(model, x, method=...)` covers Integrated Gradients (with its convergence delta),
Saliency, SmoothGrad, Occlusion and Grad-CAM; `attribute_text` runs layer integrated gradients
over a transformer's token embeddings. Next door: `dlnb.interpret_sanity` (the Adebayo et al.
model-randomisation check, agreement between methods), `dlnb.interpret_tabular` (black-box
feature attributions against XGBoost's own importances) and `dlnb.interpret_plot` (plots).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dlnb.models import eval_mode
from dlnb.runtime import model_device

METHODS = ("integrated_gradients", "saliency", "smoothgrad", "occlusion", "gradcam")
BASELINES = ("zero", "blur", "uniform")
TEXT_REFERENCES = ("pad", "mask", "unk")  # the token every non-special token becomes


@dataclass
class Attribution:
    """Attributions of a batch: `values` shaped like the input, or (N, H, W) for Grad-CAM."""

    values: np.ndarray
    method: str
    targets: np.ndarray
    probabilities: np.ndarray
    delta: np.ndarray | None = None
    relative_delta: np.ndarray | None = None

    def heatmaps(self) -> np.ndarray:
        """One non-negative (H, W) map per sample: |attribution| summed over channels."""
        v = np.abs(self.values)
        return v if self.method == "gradcam" or v.ndim == 3 else v.sum(axis=1)


@dataclass
class TokenAttribution:
    """Per-token attributions of one text (signed: positive supports `target`), and per word:
    the sum of its word pieces. `note` says when the reference explains most of the logit."""

    tokens: list[str]
    values: np.ndarray
    target: int
    probabilities: np.ndarray
    delta: float
    relative_delta: float
    words: list[str] = field(default_factory=list)
    word_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reference: str = "pad"
    note: str = ""


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name`, or a ValueError that lists the names there are."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Layer {name!r} does not exist in {type(model).__name__}.{hint} "
        f"Available layer names: {', '.join(names)}."
    )


def last_conv_layer(model: nn.Module) -> str:
    """Name of the last Conv2d in `model` (the usual Grad-CAM layer)."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"{type(model).__name__} has no Conv2d layer, so Grad-CAM needs `layer=` set to "
            "the name of a layer whose output has spatial dimensions."
        )
    return convs[-1]


def make_baseline(
    x: torch.Tensor, kind: str | float | torch.Tensor = "zero", seed: int = 0
) -> torch.Tensor:
    """The reference input attributions are measured against: zero, blur, uniform or a tensor."""
    if isinstance(kind, torch.Tensor):
        return kind.to(x.device, x.dtype).expand_as(x).clone()
    if isinstance(kind, int | float) and not isinstance(kind, bool):
        return torch.full_like(x, float(kind))
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "uniform":
        g = torch.Generator().manual_seed(seed)
        noise = torch.rand(x.shape, generator=g).to(x.device, x.dtype)
        return x.min() + noise * (x.max() - x.min())
    if kind == "blur":
        if x.ndim != 4:
            raise ValueError(
                f"A blur baseline needs images shaped (N, C, H, W), got {tuple(x.shape)}."
            )
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(1.0, min(x.shape[-2:]) / 10)
        k = min(2 * int(3 * sigma) + 1, 2 * (min(x.shape[-2:]) // 2) - 1)
        return gaussian_blur(x, [k, k], [sigma, sigma])
    raise ValueError(f"Unknown baseline {kind!r}; use one of {BASELINES}, a number or a tensor.")


def forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits (N, classes) for `x`, without gradients; bad inputs raise clearly."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"Inputs must be a torch.Tensor, got {type(x).__name__}; use torch.as_tensor(x)."
        )
    if not x.is_floating_point():
        raise TypeError(f"Inputs must be floating point, got {x.dtype}; use x.float().")
    if x.ndim < 2:
        raise ValueError(
            f"Inputs need a leading batch dimension, got shape {tuple(x.shape)}; use x.unsqueeze(0)."
        )
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{type(model).__name__} cannot take an input of shape {tuple(x.shape)} ({err}). "
            "Pass a batch shaped like the model's training inputs, e.g. (N, C, H, W) for an image "
            "model; use x.unsqueeze(0) for a single example."
        ) from err
    out = getattr(out, "logits", out)
    if out.ndim != 2:
        raise ValueError(
            f"The model must return logits shaped (N, classes), got {tuple(out.shape)}."
        )
    return out


def resolve_targets(
    target: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor
) -> torch.Tensor:
    """One class index per sample: the prediction when `target` is None; range-checked."""
    n, k = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(
            f"Got {t.numel()} targets for a batch of {n}; pass one per sample or one int."
        )
    bad = [int(v) for v in t if not 0 <= int(v) < k]
    if bad:
        raise ValueError(
            f"Target {bad[0]} is out of range: the model has {k} classes, so targets go from 0 to {k - 1}."
        )
    return t.to(logits.device)


def relative_delta(
    model: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    target: torch.Tensor,
    delta: torch.Tensor,
) -> np.ndarray:
    """|IG convergence delta| as a share of the gap it should add up to, f(x) - f(baseline)."""
    with eval_mode(model):
        logits, base_logits = forward_logits(model, x), forward_logits(model, baseline)
    t = torch.as_tensor(target, device=logits.device).reshape(-1, 1).expand(len(x), 1)
    gap = (logits - base_logits).gather(1, t).squeeze(1).abs().cpu().numpy()
    return np.abs(delta.detach().cpu().numpy()) / np.maximum(gap, 1e-8)


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    method: str = "integrated_gradients",
    *,
    baseline: str | float | torch.Tensor = "zero",
    n_steps: int = 32,
    layer: str | None = None,
    nt_samples: int = 16,
    noise_level: float = 0.15,
    window: int | None = None,
    stride: int | None = None,
    internal_batch_size: int | None = None,
) -> Attribution:
    """Attribute the model's score for `target` (default: the predicted class) on batch `x`.

    `internal_batch_size` bounds how many perturbed copies (IG steps, noisy samples, occluded
    images) go through the model at once; by default about 2 M input values per batch (13 at
    224 x 224 x 3, thousands for MNIST). Lower it when memory is short.
    """
    from captum.attr import (
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")
    if method == "gradcam":  # check the layer before any compute
        layer_module = find_layer(model, layer or last_conv_layer(model))
    with eval_mode(model):
        x = x.to(model_device(model)) if isinstance(x, torch.Tensor) else x
        logits = forward_logits(model, x)
        t = resolve_targets(target, logits)
        probs = logits.softmax(dim=1).cpu().numpy()
        per_batch = internal_batch_size or max(1, 2**21 // x[0].numel())
        delta = rel = None
        if method == "integrated_gradients":
            base = make_baseline(x, baseline)
            attr, d = IntegratedGradients(model).attribute(
                x,
                base,
                target=t,
                n_steps=n_steps,
                internal_batch_size=per_batch,
                return_convergence_delta=True,
            )
            delta = d.detach().abs().cpu().numpy()
            rel = relative_delta(model, x, base, t, d)
        elif method == "saliency":
            attr = Saliency(model).attribute(x.detach().requires_grad_(), target=t, abs=False)
        elif method == "smoothgrad":
            stdev = noise_level * float(x.max() - x.min())
            attr = NoiseTunnel(Saliency(model)).attribute(
                x.detach().requires_grad_(),
                nt_type="smoothgrad",
                nt_samples=nt_samples,
                nt_samples_batch_size=max(1, per_batch // len(x)),
                stdevs=stdev,
                target=t,
                abs=False,
            )
        elif method == "occlusion":
            if x.ndim != 4:
                raise ValueError(
                    f"Occlusion here slides over images (N, C, H, W), got {tuple(x.shape)}."
                )
            w = window or max(3, x.shape[-1] // 7)
            s = stride or max(1, w // 2)
            attr = Occlusion(model).attribute(
                x,
                sliding_window_shapes=(x.shape[1], w, w),
                strides=(x.shape[1], s, s),
                baselines=make_baseline(x, baseline),
                target=t,
                perturbations_per_eval=max(1, per_batch // len(x)),
            )
        else:
            cam = LayerGradCam(model, layer_module).attribute(x, target=t, relu_attributions=True)
            attr = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")[:, 0]
    return Attribution(attr.detach().cpu().numpy(), method, t.cpu().numpy(), probs, delta, rel)


def attribute_text(
    model: nn.Module,
    tokenizer,
    text: str,
    target: int | None = None,
    *,
    n_steps: int = 32,
    layer: str | nn.Module | None = None,
    max_length: int = 128,
    reference: str = "pad",
    warn: bool = True,
) -> TokenAttribution:
    """Layer integrated gradients over token embeddings of a `model(input_ids, attention_mask)`.

    The reference keeps the special tokens and turns every other token into [PAD] ("pad"),
    [MASK] ("mask") or [UNK] ("unk"). Attributions sum to f(text) - f(reference) for `target`;
    when the reference alone already holds over half of the target's margin over the next class,
    `note` says that the words get little of the credit and suggests another reference (and
    warns, unless `warn=False`: a widget shows the note instead).
    """
    from captum.attr import LayerIntegratedGradients

    if not isinstance(text, str) or not text.strip():
        raise ValueError("`text` must be a non-empty string.")
    if reference not in TEXT_REFERENCES:
        raise ValueError(f"reference={reference!r} is not one of {TEXT_REFERENCES}.")
    ref_id = getattr(tokenizer, f"{reference}_token_id", None)
    if ref_id is None:
        raise ValueError(
            f"The tokenizer has no {reference} token; use reference= one of {TEXT_REFERENCES} "
            "that it has."
        )
    if isinstance(layer, str):
        emb = find_layer(model, layer)
    elif layer is not None:
        emb = layer
    elif (get_input_embeddings := getattr(model, "get_input_embeddings", None)) is not None:
        emb = get_input_embeddings()
    else:
        raise ValueError(
            f"{type(model).__name__} has no get_input_embeddings(); pass `layer=` with the name "
            "of its token embedding module."
        )
    dev = model_device(model)
    enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
    word_ids = enc.word_ids(0) if getattr(enc, "is_fast", False) else None
    ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
    special = torch.tensor(
        tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
        dtype=torch.bool,
        device=dev,
    )
    base_ids = torch.where(special, ids[0], torch.full_like(ids[0], ref_id))[None]

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = model(input_ids, attention_mask)
        return getattr(out, "logits", out)

    with eval_mode(model):
        with torch.no_grad():
            logits, base_logits = forward(ids, mask), forward(base_ids, mask)
        t = resolve_targets(target, logits)
        attr, d = LayerIntegratedGradients(forward, emb).attribute(
            ids,
            base_ids,
            target=t,
            additional_forward_args=(mask,),
            n_steps=n_steps,
            return_convergence_delta=True,
        )
    gap = float((logits - base_logits)[0, t[0]])
    delta = float(d.abs()[0])
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    values = attr.sum(dim=-1)[0].detach().cpu().numpy()
    words, word_values = merge_words(tokens, values, word_ids, special.cpu().numpy())
    note = _reference_note(
        logits[0].detach().cpu(), base_logits[0].detach().cpu(), int(t[0]), reference
    )
    if note and warn:
        warnings.warn(note, stacklevel=2)
    return TokenAttribution(
        tokens=tokens,
        values=values,
        target=int(t[0]),
        probabilities=logits.softmax(dim=1)[0].cpu().numpy(),
        delta=delta,
        relative_delta=delta / max(abs(gap), 1e-8),
        words=words,
        word_values=word_values,
        reference=reference,
        note=note,
    )


def merge_words(
    tokens: Sequence[str],
    values: np.ndarray,
    word_ids: Sequence[int | None] | None = None,
    special: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """Whole words and the sum of their pieces' values: by the tokenizer's `word_ids` (a fast
    tokenizer's), else by WordPiece's "##" continuations; special tokens are left out."""
    special = np.zeros(len(tokens), bool) if special is None else np.asarray(special, bool)
    if word_ids is None:  # a new word at every piece that does not continue one
        word_ids = np.cumsum([not t.startswith("##") for t in tokens]).tolist()
    words: dict[int, list] = {}
    for token, value, key, skip in zip(tokens, values, word_ids, special, strict=True):
        if key is not None and not skip:
            word = words.setdefault(key, ["", 0.0])
            word[0] += token[2:] if token.startswith("##") else token
            word[1] += float(value)
    return [w for w, _ in words.values()], np.asarray([v for _, v in words.values()])


def _margin(logits: torch.Tensor, target: int) -> float:
    """How far class `target`'s logit is above the highest other class's."""
    others = torch.cat([logits[:target], logits[target + 1 :]])
    return float(logits[target] - others.max()) if len(others) else 0.0


def _reference_note(
    logits: torch.Tensor, base_logits: torch.Tensor, target: int, reference: str
) -> str:
    """A note when the reference alone holds over half of the target's margin at the input."""
    margin, held = _margin(logits, target), _margin(base_logits, target)
    if margin <= 0 or held <= 0.5 * margin:
        return ""
    other = "mask" if reference != "mask" else "unk"
    return (
        f"The {reference} reference alone puts class {target} {held:.3g} above the next class, "
        f"over half of its margin {margin:.3g} on the text, so the words get little of the "
        f"credit. Try reference={other!r}."
    )
