"""LoRA against full fine-tuning of a causal LM on a task answered with one generated token.

    prompter = TokenPrompts(tokenizer)           # or CharPrompts(vocab, width) for a char Decoder
    lora = add_lora(copy.deepcopy(base), r=8)    # peft: low-rank updates of the attention layers
    run = train_next_token(lora, prompter, prompts, y, label_ids, steps=30, lr=1e-3)
    accuracy(lora, prompter, test_prompts, test_y, label_ids)

Both methods minimise the same loss: cross-entropy of the answer token after the prompt, over the
whole vocabulary. Full fine-tuning updates every weight; LoRA freezes them and learns, for each
adapted weight W, a product B A of rank r added to it (B starts at zero, so training starts from
the pretrained model). `adapter_roundtrip` saves the adapter, loads it onto a fresh copy of the
base, merges it into the weights and checks that the three give the same outputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dlnb.lm.decoder import CharVocab
from dlnb.lm.fieldtask import label_tokens

#: The projections LoRA adapts by default: every attention projection of each layer, named as in
#: Llama-style transformers models and in `dlnb.lm.decoder.Decoder`.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
DECODER_TARGETS = ("qkv", "proj")


def add_lora(model, r: int = 8, alpha: int = 16, targets: Sequence[str] = LORA_TARGETS):
    """`model` wrapped by peft with LoRA adapters of rank `r` on `targets`; all else frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets))
    return get_peft_model(model, config)


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters, tied weights counted once."""
    seen: dict[int, torch.nn.Parameter] = {}
    for p in model.parameters():
        seen.setdefault(p.data_ptr(), p)
    total = sum(p.numel() for p in seen.values())
    return sum(p.numel() for p in seen.values() if p.requires_grad), total


@dataclass
class TokenPrompts:
    """Prompts for a transformers causal LM: its tokenizer, left padding, the last position's logits."""

    tokenizer: Any

    def logits(self, model, prompts: Sequence[str]) -> torch.Tensor:
        """Logits over the vocabulary of the token after each prompt."""
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        batch = tok(list(prompts), return_tensors="pt", padding=True)
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        return model(**batch, logits_to_keep=1).logits[:, -1].float()

    def label_ids(self, labels: Sequence[str]) -> list[int]:
        """The token of each label as the next word (see `fieldtask.label_tokens`)."""
        return label_tokens(self.tokenizer, labels)


@dataclass
class CharPrompts:
    """Prompts for a character-level `Decoder`: the last `width` characters, space-padded on the
    left (the decoder has no padding mask), the last position's logits; a label is its first
    character."""

    vocab: CharVocab
    width: int

    def logits(self, model, prompts: Sequence[str]) -> torch.Tensor:
        """Logits over the characters of the one after each prompt."""
        rows = [self.vocab.encode(p.rjust(self.width)[-self.width :]) for p in prompts]
        ids = torch.from_numpy(np.stack(rows)).to(next(model.parameters()).device)
        return model(ids)[0][:, -1].float()

    def label_ids(self, labels: Sequence[str]) -> list[int]:
        """The id of each label's first character; they must differ and be in the vocabulary."""
        ids = [int(self.vocab.encode(label[0])[0]) for label in labels]
        if len(set(ids)) != len(ids) or 0 in ids:
            raise ValueError(f"The labels {list(labels)} need distinct, known first characters.")
        return ids


@torch.no_grad()
def predict(model, prompter, prompts: Sequence[str], label_ids: Sequence[int], batch_size=32):
    """Index of the label token each prompt's next-token distribution ranks highest."""
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        logits = prompter.logits(model, prompts[i : i + batch_size])
        out.append(logits[:, list(label_ids)].argmax(1).cpu().numpy())
    return np.concatenate(out)


def accuracy(model, prompter, prompts, y, label_ids) -> float:
    """Share of prompts whose highest-scored label is the right one."""
    return float(np.mean(predict(model, prompter, prompts, label_ids) == np.asarray(y)))


def state_megabytes(model, optimizer: torch.optim.Optimizer) -> float:
    """Memory the training state holds, in MB: weights, gradients and optimiser moments."""
    tensors = {p.data_ptr(): p for p in model.parameters()}
    tensors |= {p.grad.data_ptr(): p.grad for p in model.parameters() if p.grad is not None}
    for state in optimizer.state.values():
        tensors |= {t.data_ptr(): t for t in state.values() if torch.is_tensor(t) and t.dim()}
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 1e6


def _step(model, prompter, prompts, targets, optimizer) -> float:
    """One AdamW step on the answer token's cross-entropy; the loss."""
    logits = prompter.logits(model, prompts)
    loss = F.cross_entropy(logits, targets.to(logits.device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_next_token(
    model,
    prompter,
    prompts: Sequence[str],
    y: Sequence[int],
    label_ids: Sequence[int],
    *,
    steps: int,
    lr: float,
    batch_size: int = 8,
    seed: int = 0,
) -> dict:
    """AdamW (constant `lr`) on the answer token's cross-entropy, `steps` batches drawn with `seed`.

    Args:
        model: a causal LM (plain: full fine-tuning; peft-wrapped: LoRA).
        prompter: `TokenPrompts` (a transformers model) or `CharPrompts` (a char `Decoder`).
        prompts, y: the training prompts and the index of each one's label.
        label_ids: the token id of each label.
        steps, lr, batch_size, seed: the schedule. Returns seconds per step (after the first),
            the losses and the training state's MB.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    targets = torch.tensor([label_ids[int(c)] for c in y])
    losses, times = [], []
    model.train()
    for _ in range(steps):
        start = time.perf_counter()
        pick = rng.choice(len(prompts), size=min(batch_size, len(prompts)), replace=False)
        losses.append(_step(model, prompter, [prompts[i] for i in pick], targets[pick], optimizer))
        times.append(time.perf_counter() - start)
    model.eval()
    return {
        "seconds_per_step": float(np.mean(times[1:] if len(times) > 1 else times)),
        "losses": losses,
        "state_mb": state_megabytes(model, optimizer),
    }


def folder_megabytes(folder: str | Path) -> float:
    """Size of the files in `folder`, in MB."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6


@torch.no_grad()
def adapter_roundtrip(peft_model, base, prompter, prompts: Sequence[str], folder) -> dict:
    """Save the adapter to `folder`, load it onto `base` (an untouched copy of the base model) and
    merge it into the weights; the largest logit difference of each against the trained model."""
    from peft import PeftModel

    peft_model.eval()
    peft_model.save_pretrained(folder)
    reference = prompter.logits(peft_model, prompts)
    loaded = PeftModel.from_pretrained(base, folder).eval()
    from_disk = prompter.logits(loaded, prompts)
    merged = loaded.merge_and_unload().eval()
    after_merge = prompter.logits(merged, prompts)
    return {
        "adapter_mb": folder_megabytes(folder),
        "loaded_max_diff": float((from_disk - reference).abs().max()),
        "merged_max_diff": float((after_merge - reference).abs().max()),
        "merged_has_lora": any("lora_" in name for name, _ in merged.named_parameters()),
    }
