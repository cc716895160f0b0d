"""The decoder from scratch: causal attention, a KV cache that changes nothing, training signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlnb.lm import decoder as dec


def _model(vocab_size=12, block=16, seed=0):
    torch.manual_seed(seed)
    return dec.Decoder(dec.DecoderConfig(vocab_size, block_size=block, d_model=16, n_heads=2))


def test_the_vocabulary_round_trips_and_maps_unknown_characters_to_zero():
    vocab = dec.CharVocab.fit("abca")
    assert len(vocab) == 4 and vocab.decode(vocab.encode("cab")) == "cab"
    assert vocab.encode("az").tolist() == [1, 0]
    with pytest.raises(ValueError, match="non-empty"):
        dec.CharVocab.fit("")


def test_the_causal_mask_lets_each_position_see_itself_and_the_past():
    assert dec.causal_mask(3).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert dec.causal_mask(1, 4).tolist() == [[1, 1, 1, 1]]  # the newest query sees every key
    assert dec.causal_mask(2, 4).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_a_later_token_never_changes_an_earlier_prediction():
    model = _model().eval()
    ids = torch.randint(0, 12, (1, 10))
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 12
    a, _ = model(ids)
    b, _ = model(changed)
    assert torch.allclose(a[0, :6], b[0, :6], atol=1e-6)
    assert not torch.allclose(a[0, 6:], b[0, 6:])


def test_the_cache_gives_the_same_logits_as_the_whole_sequence():
    model = _model().eval()
    ids = torch.randint(0, 12, (2, 9))
    full, _ = model(ids)
    first, cache = model(ids[:, :5])
    rest, _ = model(ids[:, 5:], cache)
    assert torch.allclose(torch.cat([first, rest], 1), full, atol=1e-5)


def test_generation_with_and_without_the_cache_agrees_and_respects_the_context():
    model = _model()
    prompt = torch.randint(0, 12, (2, 4))
    a = dec.generate(model, prompt, 8, use_cache=True)
    b = dec.generate(model, prompt, 8, use_cache=False)
    assert a.shape == (2, 12) and torch.equal(a, b) and torch.equal(a[:, :4], prompt)
    sampled = dec.generate(model, prompt, 8, temperature=1.0, seed=3)
    assert torch.equal(sampled, dec.generate(model, prompt, 8, temperature=1.0, seed=3))
    with pytest.raises(ValueError, match="exceeds the context"):
        dec.generate(model, prompt, 13)
    with pytest.raises(ValueError, match="exceed the context"):
        model(torch.zeros(1, 17, dtype=torch.long))
    assert dec.tokens_per_second(model, prompt, 4, use_cache=True, repeats=1) > 0


def test_batches_are_windows_and_their_shifted_targets():
    ids = np.arange(50)
    x, y = dec.batch(ids, 8, 5, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 8)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="fewer than a window"):
        dec.batch(np.arange(8), 8, 2, np.random.default_rng(0))
    assert dec.windows(np.arange(20), 8).shape == (2, 8)


def test_training_on_a_repeating_text_drives_the_held_out_loss_down():
    vocab = dec.CharVocab.fit("abcdefgh")
    ids = vocab.encode("abcdefgh" * 40)
    model = _model(len(vocab), block=16)
    before = dec.window_nll(model, ids, 16).mean()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(60):
        x, y = dec.batch(ids, 16, 8, rng)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dec.window_nll(model, ids, 16)
    assert after.shape == (20,)
    assert after.mean() < 0.2 < before
    bits = dec.text_bits(model, vocab, ["abcdefghabcdefghabcdefgh", "hgfedcba"], block=16)
    assert bits[0] < 0.5 < bits[1]  # the pattern it learned costs little, its reverse a lot
    with pytest.raises(ValueError, match="two characters"):
        dec.text_bits(model, vocab, ["a"])
