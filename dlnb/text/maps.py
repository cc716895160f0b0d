"""Reading attention maps with numbers: how much of one token's attention lands on each group of
tokens, per layer and head, and the sentence that says what the maps show.

    maps = attention_maps(model, ids, mask)
    shares = attention_shares(maps, ids, mask, query_token=CLS, groups={"A": [A], "B": [B]})
    print(describe_attention(shares, "[CLS]"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["attention_shares", "describe_attention", "layers_looking_at"]


def _query_positions(ids: np.ndarray, query_token: int) -> np.ndarray:
    """Where `query_token` first occurs in each row; every row must hold it."""
    found = ids == query_token
    missing = np.flatnonzero(~found.any(axis=1))
    if missing.size:
        raise ValueError(
            f"Rows {missing[:10].tolist()} do not contain the query token {query_token}."
        )
    return found.argmax(axis=1)


def attention_shares(
    maps: Sequence[np.ndarray],
    input_ids,
    attention_mask,
    *,
    query_token: int,
    groups: Mapping[str, Sequence[int]],
):
    """Mean share of one token's attention on each group of key tokens, per layer and head.

    `maps` are `attention_maps`' (examples, heads, queries, keys) arrays; the query is the first
    position of `query_token` in each example. Returns a frame with columns layer (from 1), head,
    group, share (mean over examples of the weights on the group's tokens) and uniform (what an
    even spread over the example's real tokens would give the group).
    """
    import pandas as pd

    ids, mask = np.asarray(input_ids), np.asarray(attention_mask).astype(bool)
    rows = np.arange(len(ids))
    query = _query_positions(ids, query_token)
    real = mask.sum(axis=1)
    records = []
    for layer, weights in enumerate(maps, start=1):
        w = np.asarray(weights)[rows, :, query, :]  # (examples, heads, keys)
        for group, tokens in groups.items():
            member = np.isin(ids, list(tokens)) & mask
            share = (w * member[:, None, :]).sum(-1).mean(axis=0)  # (heads,)
            uniform = float((member.sum(axis=1) / real).mean())
            records += [
                {"layer": layer, "head": h, "group": group, "share": float(s), "uniform": uniform}
                for h, s in enumerate(share)
            ]
    return pd.DataFrame(records)


def _looked_at(part, strong: float) -> dict[int, list[tuple[str, float]]]:
    """Per head, the groups it looks at: share >= strong and >= 3 x an even spread's."""
    out: dict[int, list[tuple[str, float]]] = {}
    for head, rows in part.groupby("head"):
        hits = rows[(rows["share"] >= strong) & (rows["share"] >= 3 * rows["uniform"])]
        out[int(head)] = [(g, float(v)) for g, v in zip(hits["group"], hits["share"], strict=True)]
    return out


def layers_looking_at(shares, targets: Sequence[str], *, strong: float = 0.5) -> list[int]:
    """The layers in which every group of `targets` is looked at by some head."""
    layers = []
    for layer, part in shares.groupby("layer"):
        seen = {g for hits in _looked_at(part, strong).values() for g, _ in hits}
        if set(targets) <= seen:
            layers.append(int(layer))
    return layers


def _head_phrase(head: int, hits: list[tuple[str, float]], part) -> str:
    if hits:
        return f"head {head} looks at " + " and ".join(f"{g} ({v:.2f})" for g, v in hits)
    rows = part[part["head"] == head].sort_values("share", ascending=False)
    top = rows.iloc[0]
    return f"head {head} spreads its attention (largest share {top['group']} {top['share']:.2f})"


def _layer_sentence(part, query: str, layer: int, last: bool, strong: float) -> str:
    phrases = [_head_phrase(h, hits, part) for h, hits in _looked_at(part, strong).items()]
    return f"In layer {layer}{' (the last)' if last else ''}, {query}'s {', '.join(phrases)}."


def describe_attention(
    shares, query: str, *, strong: float = 0.5, targets: Sequence[str] = ()
) -> str:
    """What `query` attends to, per layer and head, from `attention_shares`, in sentences.

    A head looks at a group when it gives it at least `strong` (default: half) of the query's
    attention and at least three times what an even spread would; otherwise it spreads its
    attention, and its largest share is named. With `targets` (the groups that decide the
    label), a last sentence says in which layers heads reach all of them.
    """
    if shares.empty:
        raise ValueError("describe_attention needs the frame of attention_shares.")
    layers = sorted(shares["layer"].unique())
    uniform = shares.groupby("group")["uniform"].first()
    even = ", ".join(f"{g} {uniform[g]:.2f}" for g in uniform.index)
    text = " ".join(
        _layer_sentence(shares[shares["layer"] == layer], query, layer, layer == layers[-1], strong)
        for layer in layers
    )
    text += f" (Shares of {query}'s attention, averaged over the examples; an even spread gives {even}.)"
    if not targets:
        return text
    both = layers_looking_at(shares, targets, strong=strong)
    names = " and ".join(targets)
    if not both:
        return f"{text} No layer has heads on all of {names}, the tokens that decide the label."
    where = " and ".join(str(x) for x in both)
    layer_word = "layer" if len(both) == 1 else "layers"
    return (
        f"{text} {names}, the tokens that decide the label, each get a head's attention in "
        f"{layer_word} {where}."
    )
