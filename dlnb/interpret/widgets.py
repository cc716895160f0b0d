"""Attribution explorers built from ipywidgets in Python (no custom JavaScript).

The pattern is fastai's `vision/widgets.py`: each explorer holds its controls and a `.widget`
(a VBox) that `_ipython_display_` shows; the state is read with `.state` and set with
`.set(...)`, so tests and scripts drive it without a browser. When no front end is attached
(`dlnb.runtime.is_headless()`: papermill, a plain script) displaying an explorer shows a static
matplotlib figure of its current state instead.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dlnb.interpret.attribution import (
    BASELINES,
    METHODS,
    Attribution,
    TokenAttribution,
    attribute,
    attribute_text,
    forward_logits,
)
from dlnb.interpret.plots import (
    as_image,
    evidence_label,
    figure_png,
    plot_overlay,
    plot_tokens,
    plot_top_predictions,
    tokens_html,
)
from dlnb.interpret.sanity import SanityResult
from dlnb.models import eval_mode
from dlnb.runtime import model_device

PREDICTED = -1  # target value meaning "the class the model predicts"


def _new_figure(width: float, height: float):
    """A matplotlib Figure outside pyplot, so building it never displays it by itself."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _target_options(class_names: Sequence[str]) -> list[tuple[str, int]]:
    """Dropdown options: "predicted class", then each class ("3: cat", or "7" when it is named "7")."""
    return [("predicted class", PREDICTED)] + [
        (n if n == str(i) else f"{i}: {n}", i) for i, n in enumerate(class_names)
    ]


def _method_options(
    methods: Sequence[str], sanity: Mapping[str, SanityResult] | None
) -> list[tuple[str, str]]:
    """Method menu entries. With sanity results: the methods that passed first (the first is
    the one shown), then the unchecked ones, then those that did not pass, each labelled."""
    if sanity is None:
        return [(m, m) for m in methods]

    def rank(m: str) -> int:
        result = sanity.get(m)
        return 1 if result is None else 0 if result.passed else 2

    ordered = sorted(methods, key=rank)  # stable: the caller's order within each group
    return [(f"{m} ({evidence_label(m, sanity)})", m) for m in ordered]


BUSY = "<i>computing&hellip;</i>"


class _Explorer:
    """Shared plumbing: controls observed by `update`, `.state`, `.set`, display."""

    controls: dict[str, Any]
    widget: Any
    status: Any

    def _watch(self) -> None:
        self._quiet = False
        for c in self.controls.values():
            c.observe(self._on_change, names="value")

    def _inputs(self) -> list[Any]:
        """The widgets a user can change; disabled while an update runs."""
        return list(self.controls.values())

    def _on_change(self, change: dict) -> None:
        if self._quiet:
            return
        # Busy state: the front end shows "computing..." and greyed-out controls at once (widget
        # messages go out while the kernel computes), so clicks cannot queue stale work behind it.
        inputs = [c for c in self._inputs() if not c.disabled]
        for c in inputs:
            c.disabled = True
        self.status.value = BUSY
        try:
            self.update()
        except (ValueError, TypeError, RuntimeError) as err:  # show it where the user looks
            self.status.value = f"<span style='color: #b00'>{html.escape(str(err))}</span>"
        finally:
            for c in inputs:
                c.disabled = False

    @property
    def state(self) -> dict[str, Any]:
        """The current value of every control."""
        return {k: c.value for k, c in self.controls.items()}

    def set(self, **state: Any) -> None:
        """Set several controls at once (names as in `.state`), then update once."""
        unknown = set(state) - set(self.controls)
        if unknown:
            raise ValueError(
                f"Unknown control(s) {sorted(unknown)}; the controls are {list(self.controls)}."
            )
        self._quiet = True
        try:
            for k, v in state.items():
                self.controls[k].value = v
        finally:
            self._quiet = False
        self.update()

    def update(self) -> None:  # pragma: no cover - overridden
        """Recompute and redraw for the current state."""
        raise NotImplementedError

    def figure(self):  # pragma: no cover - overridden
        """A static matplotlib Figure of the current state."""
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        from dlnb.runtime import is_headless

        display(self.figure() if is_headless() else self.widget)


class ImageAttributionExplorer(_Explorer):
    """Pick a sample, method, target class, baseline and IG steps; see the overlay and top classes.

    `inputs` is the model-ready batch (N, C, H, W); `images` the matching pictures to draw on
    (N, H, W[, 3]), by default the inputs rescaled to [0, 1]. `baselines` adds named baselines
    (a number or a tensor, e.g. `{"black": -mean / std}`), listed first and chosen by default.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        images: Sequence[np.ndarray] | np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        *,
        sample_names: Sequence[str] | None = None,
        methods: Sequence[str] = METHODS,
        layer: str | None = None,
        n_steps: int = 32,
        top_k: int = 5,
        baselines: dict[str, float | torch.Tensor] | None = None,
        sanity: Mapping[str, SanityResult] | None = None,
    ):
        import ipywidgets as w

        self.baselines: dict[str, Any] = {**(baselines or {}), **{b: b for b in BASELINES}}

        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
            raise ValueError("`inputs` must be a tensor batch shaped (N, C, H, W).")
        self.model, self.inputs, self.layer, self.top_k = model, inputs, layer, top_k
        self.sanity = dict(sanity) if sanity is not None else None
        self.images = [as_image(x) for x in inputs] if images is None else list(images)
        if len(self.images) != len(inputs):
            raise ValueError(
                f"Got {len(self.images)} images for {len(inputs)} inputs; pass one per input."
            )
        with eval_mode(model):
            k = forward_logits(model, inputs[:1].to(model_device(model))).shape[1]
        self.class_names = (
            [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(k)]
        )
        names = (
            list(sample_names)
            if sample_names is not None
            else [f"sample {i}" for i in range(len(inputs))]
        )
        self.controls = {
            "sample": w.Dropdown(
                options=[(n, i) for i, n in enumerate(names)], value=0, description="sample"
            ),
            "method": w.Dropdown(options=_method_options(methods, sanity), description="method"),
            "target": w.Dropdown(
                options=_target_options(self.class_names), value=PREDICTED, description="target"
            ),
            "baseline": w.Dropdown(options=list(self.baselines), description="baseline"),
            "steps": w.IntSlider(value=n_steps, min=4, max=128, step=4, description="IG steps"),
        }
        self.image = w.Image(format="png", layout=w.Layout(max_width="560px"))
        self.predictions = w.HTML()
        self.status = w.HTML()
        c = self.controls
        self.widget = w.VBox(
            [
                w.HBox([c["sample"], c["method"], c["target"]]),
                w.HBox([c["baseline"], c["steps"]]),
                w.HBox([self.image, self.predictions]),
                self.status,
            ]
        )
        self._cache: dict[tuple, Attribution] = {}
        self.result: Attribution  # set by every update, the first one below
        self._watch()
        self.update()

    def _compute(self) -> Attribution:
        s = self.state
        key = (s["sample"], s["method"], s["target"], s["baseline"], s["steps"])
        if key not in self._cache:
            self._cache[key] = attribute(
                self.model,
                self.inputs[s["sample"] : s["sample"] + 1],
                None if s["target"] == PREDICTED else s["target"],
                s["method"],
                baseline=self.baselines[s["baseline"]],
                n_steps=s["steps"],
                layer=self.layer,
            )
        return self._cache[key]

    def update(self) -> None:
        """Recompute the attribution for the current state and redraw."""
        start = time.perf_counter()
        self.result = self._compute()
        fig = self._draw(with_bars=False)
        self.image.value = figure_png(fig)
        p = self.result.probabilities[0]
        rows = "".join(
            f"<tr><td>{html.escape(self.class_names[i])}</td><td style='text-align:right'>{p[i]:.1%}</td></tr>"
            for i in np.argsort(p)[::-1][: self.top_k]
        )
        self.predictions.value = f"<b>top predictions</b><table>{rows}</table>"
        note = ""
        if self.result.relative_delta is not None:
            note = f" &middot; IG convergence delta {self.result.relative_delta[0]:.2%} of f(x) - f(baseline)"
        if self.sanity is not None:
            note += f" &middot; {evidence_label(self.result.method, self.sanity)}"
        self.status.value = f"{self.result.method} in {time.perf_counter() - start:.2f} s{note}"

    def _draw(self, with_bars: bool):
        r, img = self.result, self.images[self.state["sample"]]
        fig = _new_figure(9.5 if with_bars else 6, 3)
        axes = fig.subplots(
            1, 3 if with_bars else 2, width_ratios=[1, 1, 1.2] if with_bars else None
        )
        axes[0].imshow(img, cmap="gray" if np.ndim(img) == 2 else None)
        axes[0].set_axis_off()
        target = self.class_names[int(r.targets[0])]
        axes[0].set_title(f"{self.controls['sample'].label}", fontsize=9)
        title = f"{r.method.replace('_', ' ')} for '{target}'"
        if self.sanity is not None:
            title += "\n" + evidence_label(r.method, self.sanity)
        plot_overlay(img, r.heatmaps()[0], axes[1], title=title)
        checked = (self.sanity or {}).get(r.method)
        if self.sanity is not None and (checked is None or not checked.passed):
            axes[1].title.set_color("tab:red")
        if with_bars:
            plot_top_predictions(r.probabilities[0], self.class_names, self.top_k, axes[2])
        fig.tight_layout()
        return fig

    def figure(self):
        """The image, the overlay and the top predictions as one static Figure."""
        return self._draw(with_bars=True)


class TextAttributionView(_Explorer):
    """Pick or type a text and a target class; tokens are coloured by layer integrated gradients."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        texts: Sequence[str],
        class_names: Sequence[str],
        *,
        n_steps: int = 32,
        layer: str | nn.Module | None = None,
        about: str = "",
        sanity: SanityResult | None = None,
    ):
        import ipywidgets as w

        if not texts:
            raise ValueError("Pass at least one text to explain.")
        self.model, self.tokenizer, self.n_steps, self.layer = model, tokenizer, n_steps, layer
        self.class_names = [str(n) for n in class_names]
        self.about, self.sanity = about, sanity
        self.controls = {
            "text": w.Textarea(
                value=texts[0], continuous_update=False, layout=w.Layout(width="90%")
            ),
            "target": w.Dropdown(
                options=_target_options(self.class_names), value=PREDICTED, description="target"
            ),
        }
        self.examples = w.Dropdown(
            options=[(t if len(t) < 60 else t[:57] + "...", t) for t in texts],
            description="example",
        )
        self.examples.observe(self._on_example, names="value")
        self.controls["text"].observe(self._on_text, names="value")
        self.tokens = w.HTML()
        self.status = w.HTML()
        self.card = w.Output()
        if about:
            from IPython.display import Markdown

            self.card.append_display_data(Markdown(about))
        self.widget = w.VBox(
            [
                self.card,
                self.examples,
                self.controls["text"],
                self.controls["target"],
                self.tokens,
                self.status,
            ]
        )
        self.result: TokenAttribution  # set by every update, the first one below
        self._watch()
        self.update()

    def _inputs(self) -> list[Any]:
        return [self.examples, *self.controls.values()]

    def _on_example(self, change: dict) -> None:
        if change["new"] is not None:
            self.set(text=change["new"])

    def _on_text(self, change: dict) -> None:
        """Typed text that is none of the examples clears the example picker."""
        if change["new"] != self.examples.value:
            self.examples.value = None

    def update(self) -> None:
        """Recompute token attributions for the current text and target."""
        s = self.state
        target = None if s["target"] == PREDICTED else s["target"]
        self.result = r = attribute_text(
            self.model,
            self.tokenizer,
            s["text"],
            target,
            n_steps=self.n_steps,
            layer=self.layer,
            warn=False,
        )
        self.tokens.value = tokens_html(r.tokens, r.values)
        pred = int(np.argmax(r.probabilities))
        self.status.value = (
            f"predicted <b>{html.escape(self.class_names[pred])}</b> ({r.probabilities[pred]:.1%}); "
            f"explaining <b>{html.escape(self.class_names[r.target])}</b>; green supports it, red "
            f"opposes it; IG delta {r.relative_delta:.2%}{self._checked()}"
            + (f"<br><i>{html.escape(r.note)}</i>" if r.note else "")
        )

    def _checked(self) -> str:
        """What the colours are worth, from the sanity check of the text attributions."""
        if self.sanity is None:
            return "; attributions not sanity-checked"
        return f"; {evidence_label('text', {'text': self.sanity})}"

    def figure(self):
        """The coloured tokens as a static Figure."""
        r = self.result
        fig = _new_figure(10, 0.6 + 0.45 * max(1, -(-len(r.tokens) // 12)))
        title = (
            f"attribution to '{self.class_names[r.target]}' (p = {r.probabilities[r.target]:.1%})"
            f"{self._checked()}"
        )
        plot_tokens(r.tokens, r.values, fig.subplots(), title=title)
        return fig

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        from dlnb.runtime import is_headless

        if is_headless() and self.about:
            display(Markdown(self.about))
        super()._ipython_display_()
