"""The device-resident loader: complete epochs, seeded shuffles, shards and on-device augmentation."""

import pytest
import torch

from dlnb.data.resident import GpuLoader, random_flip, random_translate

pytestmark = pytest.mark.usefixtures("single_thread")


def _labels(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y]


def test_an_epoch_visits_every_example_once_in_a_seeded_order():
    x, y = torch.randn(10, 1, 8, 8), torch.arange(10)
    loader = GpuLoader(x, y, batch_size=4, device="cpu", seed=3)
    first = _labels(loader)
    second = _labels(loader)
    assert len(loader) == 3
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second  # each pass is a new epoch with a new shuffle
    loader.set_epoch(0)
    assert _labels(loader) == first  # ... and an epoch replays exactly (resume)
    for xb, yb in GpuLoader(x, y, batch_size=4, device="cpu", seed=3):
        assert torch.equal(xb, x[yb])  # images stay with their labels


def test_drop_last_and_no_shuffle():
    x, y = torch.randn(10, 3), torch.arange(10)
    assert _labels(GpuLoader(x, y, batch_size=4, shuffle=False, device="cpu")) == list(range(10))
    loader = GpuLoader(x, y, batch_size=4, shuffle=False, drop_last=True, device="cpu")
    assert len(loader) == 2 and _labels(loader) == list(range(8))


@pytest.mark.parametrize("n, drop_last", [(10, False), (11, False), (11, True)])
def test_shards_split_an_epoch_between_ranks_evenly(n, drop_last):
    loader = GpuLoader(
        torch.randn(n, 2), torch.arange(n), batch_size=2, drop_last=drop_last, device="cpu", seed=1
    )
    shards = [loader.shard(r, 2) for r in range(2)]
    for s in shards:
        s.set_epoch(5)
    seen = [_labels(s) for s in shards]
    assert len(seen[0]) == len(seen[1])  # DDP needs the same number of batches on every rank
    assert len(shards[0]) == len(shards[1])
    if drop_last:
        # 5 examples per rank, so 2 full batches of 2; no example on both ranks
        assert not set(seen[0]) & set(seen[1]) and len(seen[0]) == 4
    else:
        assert set(seen[0]) | set(seen[1]) == set(range(n))
    with pytest.raises(ValueError, match="outside a group"):
        loader.shard(2, 2)


def test_evaluation_shards_hold_every_example_exactly_once():
    loader = GpuLoader(
        torch.randn(11, 2), torch.arange(11), batch_size=2, shuffle=False, device="cpu"
    )
    parts = [_labels(loader.shard(r, 3, even=False)) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(11))
    assert [len(p) for p in parts] == [4, 4, 3]


def test_random_translate_shifts_whole_images_within_range():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel in the middle
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(out.sum(dim=(1, 2, 3)) == 1.0)
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 9, where % 9
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # shifts differ


def test_random_flip_mirrors_about_half():
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(200, 1, 1, 1)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 3).sum().item()
    assert 60 < flipped < 140
    assert torch.all((out == x).all(dim=-1) | (out == x.flip(-1)).all(dim=-1))


def test_augmentation_is_reproducible_per_epoch_and_only_on_request():
    x, y = torch.randn(16, 1, 12, 12), torch.arange(16)
    aug = GpuLoader(x, y, batch_size=16, translate=2, flip=True, device="cpu")
    a = next(iter(aug))[0]
    aug.set_epoch(0)
    assert torch.equal(next(iter(aug))[0], a)
    assert not torch.equal(next(iter(aug))[0], a)  # epoch 1 draws new shifts
    plain = GpuLoader(x, y, batch_size=16, shuffle=False, device="cpu")
    assert torch.equal(next(iter(plain))[0], x)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="matching"):
        GpuLoader(torch.zeros(3, 2), torch.zeros(4), device="cpu")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        GpuLoader(torch.zeros(3, 28, 28), torch.zeros(3), translate=2, device="cpu")
    with pytest.raises(TypeError, match="floating-point"):
        GpuLoader(
            torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.zeros(3), flip=True, device="cpu"
        )


def test_a_tuple_of_inputs_is_batched_together():
    x_num, x_cat, y = torch.randn(10, 3), torch.arange(10) * 10, torch.arange(10)
    loader = GpuLoader((x_num, x_cat), y, batch_size=4, device="cpu", seed=2)
    assert len(loader) == 3 and len(loader.dataset) == 10
    for (num, cat), yb in loader:
        assert torch.equal(num, x_num[yb]) and torch.equal(cat, yb * 10)
    parts = [_labels(loader.shard(r, 2, even=False)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == 5 and sorted(sum(parts, [])) == list(range(10))
    with pytest.raises(ValueError, match="a tuple of inputs"):
        GpuLoader((x_num, x_cat), y, translate=1, device="cpu")
    with pytest.raises(ValueError, match="matching"):
        GpuLoader((x_num, x_cat), y[:9], device="cpu")


@pytest.mark.gpu
def test_batches_live_on_the_gpu():
    loader = GpuLoader(
        torch.randn(64, 1, 28, 28), torch.arange(64), batch_size=16, translate=2, device="cuda"
    )
    xb, yb = next(iter(loader))
    assert xb.is_cuda and yb.is_cuda and xb.shape == (16, 1, 28, 28)
