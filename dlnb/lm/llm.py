"""A small pretrained LLM offline: SmolLM2-135M-Instruct from its GGUF file, prompts, generation.

    llm = load_llm()                    # the registered GGUF, de-quantised to float32 once
    prompt = chat_prompt(llm.tokenizer, "What is R?")
    print(generate(llm, [prompt], max_new_tokens=30)[0])

transformers reads a GGUF file (`from_pretrained(folder, gguf_file=...)`, with the `gguf` package)
and de-quantises it to float32: about 20 s for this model on a laptop CPU. `load_llm` does that once
and keeps the float32 weights, tokenizer and config in `$DLNB_DATA/lm/`, with the sha256 of the
GGUF they came from and of the weights file, checked on every later load (about a second).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlnb.data.registry import ChecksumError, data_dir, sha256_file
from dlnb.lm import assets

GGUF_MAGIC = b"GGUF"
#: The system message of every prompt here: short, so that prompts stay cheap on a CPU.
SYSTEM = "You are a concise assistant. Answer briefly."


@dataclass
class LLM:
    """A causal language model with its tokenizer, and where it came from."""

    model: Any
    tokenizer: Any
    source: str
    seconds: float

    @property
    def context(self) -> int:
        """The most positions (prompt plus generated tokens) the model was trained for."""
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 0)


def check_gguf(path: str | Path) -> Path:
    """`path` as a GGUF file, or a clear error: FileNotFoundError when it is missing, ValueError
    when its first bytes are not the GGUF signature (a damaged download, another format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No GGUF file at {path}. The lesson's model installs with `{assets.GGUF_FIX}` "
            "(no compiler needed); load_llm() without a path finds it."
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if head != GGUF_MAGIC:
        raise ValueError(
            f"{path} is not a GGUF file (it starts with {head!r}, not {GGUF_MAGIC!r}): it is "
            "damaged or in another format. Download it again or reinstall the package it came from."
        )
    return path


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' loading reports and progress bars inside the block (restored after)."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    bar = getattr(gguf_utils, "tqdm", None)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    gguf_utils.tqdm = lambda items, **kwargs: items
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _convert(gguf: Path, folder: Path, gguf_sha256: str) -> None:
    """De-quantise `gguf` into `folder`: float32 safetensors, config, tokenizer and digests."""
    import safetensors.torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as exc:  # the gguf reader raises many kinds of error on a damaged file
        raise ValueError(
            f"Could not read the model in {gguf} ({type(exc).__name__}: {exc}). The file is damaged "
            "or holds an architecture transformers cannot load; download it again."
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the copy is plain float32
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    tied = getattr(model.config, "tie_word_embeddings", False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if tied:
        state.pop("lm_head.weight", None)
    safetensors.torch.save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    digests = {
        "gguf_sha256": gguf_sha256,
        "weights_sha256": sha256_file(folder / "model.safetensors"),
    }
    (folder / "digests.json").write_text(json.dumps(digests, indent=1))


def _cached(folder: Path, gguf_sha256: str) -> bool:
    """Whether `folder` holds a verified float32 copy of the GGUF with this sha256."""
    try:
        digests = json.loads((folder / "digests.json").read_text())
    except (OSError, ValueError):
        return False
    if digests.get("gguf_sha256") != gguf_sha256:
        return False
    weights = folder / "model.safetensors"
    if not weights.is_file() or sha256_file(weights) != digests.get("weights_sha256"):
        raise ChecksumError(
            str(weights),
            str(digests.get("weights_sha256")),
            sha256_file(weights) if weights.is_file() else "missing",
            f"The float32 copy was altered or is incomplete: delete {folder} and load again.",
        )
    return True


def load_llm(path: str | Path | None = None, *, cache: bool = True) -> LLM:
    """The causal LM in a GGUF file (default: the lesson's verified SmolLM2), in float32, eval mode.

    The de-quantised copy is kept in `$DLNB_DATA/lm/<gguf sha256>/` and checked by sha256 when
    reused (`cache=False` converts again and keeps nothing). A missing or damaged file is a clear
    error (see `check_gguf`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    gguf = check_gguf(path) if path is not None else assets.gguf_file()
    digest = assets.GGUF_SHA256 if path is None else sha256_file(gguf)
    folder = data_dir() / "lm" / digest[:16]
    if not cache:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="dlnb-llm-"))
    if cache and _cached(folder, digest):
        source = f"the verified float32 copy in {folder} (converted earlier from {gguf.name})"
    else:
        _convert(gguf, folder, digest)
        source = f"{gguf.name}, de-quantised to float32 now" + (f" and kept in {folder}" * cache)
    with quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return LLM(model, tokenizer, source, time.perf_counter() - start)


def chat_prompt(tokenizer, user: str, system: str | None = SYSTEM) -> str:
    """`user`'s message in the model's chat template, ending where the assistant's answer starts."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tokenizer, prompts: Sequence[str], context: int, max_new_tokens: int):
    """Left-padded ids of `prompts`; a prompt that leaves no room for `max_new_tokens` within the
    model's `context` positions is a ValueError naming it (nothing is cut silently)."""
    if not prompts:
        raise ValueError("No prompts to encode.")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    lengths = batch["attention_mask"].sum(1)
    if context and int(lengths.max()) + max_new_tokens > context:
        worst = int(lengths.argmax())
        raise ValueError(
            f"Prompt {worst} has {int(lengths[worst])} tokens; with max_new_tokens={max_new_tokens} "
            f"it needs more than the model's {context} positions. Shorten it (retrieve fewer or "
            "shorter passages) or ask for fewer new tokens."
        )
    return batch


@torch.no_grad()
def _generate_batch(llm: LLM, prompts: Sequence[str], max_new_tokens: int, decoding) -> list[str]:
    batch = encode(llm.tokenizer, prompts, llm.context, max_new_tokens).to(llm.model.device)
    out = llm.model.generate(
        **batch, max_new_tokens=max_new_tokens, pad_token_id=llm.tokenizer.pad_token_id, **decoding
    )
    new = out[:, batch["input_ids"].shape[1] :]
    return [t.strip() for t in llm.tokenizer.batch_decode(new, skip_special_tokens=True)]


def generate(
    llm: LLM,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    *,
    seed: int = 0,
    batch_size: int = 8,
    **decoding,
) -> list[str]:
    """The model's continuations of `prompts`, special tokens removed, in the prompts' order.

    Prompts run in batches of `batch_size` of similar length (little padding). `decoding` goes to
    `model.generate` (`do_sample`, `temperature`, `top_k`, `top_p`, `repetition_penalty`...);
    greedy by default. Seeded.
    """
    if not prompts:
        raise ValueError("No prompts to generate from.")
    torch.manual_seed(seed)
    decoding.setdefault("do_sample", False)
    if not decoding["do_sample"]:
        decoding.update(temperature=None, top_p=None, top_k=None)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        texts = _generate_batch(llm, [prompts[i] for i in chunk], max_new_tokens, decoding)
        for i, text in zip(chunk, texts, strict=True):
            out[i] = text
    return out


@torch.no_grad()
def text_nll(model, tokenizer, text: str, max_tokens: int = 256) -> tuple[float, int, int]:
    """(total negative log-likelihood in nats, tokens scored, characters covered) of `text`'s first
    `max_tokens` tokens under `model`: the first token is given, every later one is predicted."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][
        :, :max_tokens
    ]
    if ids.shape[1] < 2:
        raise ValueError("text_nll needs a text of at least two tokens.")
    logits = model(input_ids=ids).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
    first = len(tokenizer.decode(ids[0, :1]))
    chars = len(tokenizer.decode(ids[0])) - first
    return float(nll), int(ids.shape[1] - 1), max(chars, 1)


def bits_per_char(model, tokenizer, texts: Sequence[str], max_tokens: int = 256) -> np.ndarray:
    """Bits per character of each text (its first `max_tokens` tokens): comparable across
    tokenisers, unlike perplexity per token."""
    out = []
    for text in texts:
        nll, _, chars = text_nll(model, tokenizer, text, max_tokens)
        out.append(nll / chars / np.log(2))
    return np.array(out)


def parameter_megabytes(model: torch.nn.Module) -> float:
    """Memory of the model's parameters and buffers, in MB (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total / 1e6
