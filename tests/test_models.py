import pytest
import torch

from dlnb.models import MLP, LeNet5, count_parameters, eval_mode


@pytest.mark.parametrize("num_classes, in_channels", [(10, 1), (3, 3)])
def test_lenet5_output_shape(num_classes, in_channels):
    model = LeNet5(num_classes=num_classes, in_channels=in_channels)
    assert model(torch.randn(4, in_channels, 28, 28)).shape == (4, num_classes)


def test_lenet5_has_the_classic_parameter_count():
    # conv 1->6 (5x5), conv 6->16 (5x5), then 400-120-84-10 fully connected layers
    expected = (
        (6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    )
    assert count_parameters(LeNet5()) == expected


@pytest.mark.parametrize(
    "shape, hint",
    [
        ((4, 28, 28), "x.unsqueeze(1)"),
        ((4, 1, 32, 32), "resize to 28x28"),
        ((4, 3, 28, 28), "(batch, 1, 28, 28)"),
    ],
)
def test_lenet5_wrong_input_shape_is_a_clear_error(shape, hint):
    with pytest.raises(ValueError, match="LeNet5 expects images of shape") as err:
        LeNet5()(torch.randn(*shape))
    assert str(tuple(shape)) in str(err.value) and hint in str(err.value)


@pytest.mark.parametrize("shape", [(5, 784), (5, 1, 28, 28)])
def test_mlp_flattens_and_outputs_logits(shape):
    model = MLP(784, hidden=(32, 16), out_features=7)
    assert model(torch.randn(*shape)).shape == (5, 7)


def test_mlp_layers_follow_hidden():
    model = MLP(20, hidden=(8,), out_features=2)
    assert count_parameters(model) == (20 * 8 + 8) + (8 * 2 + 2)
    assert count_parameters(MLP(20, hidden=(), out_features=2)) == 20 * 2 + 2


def test_mlp_wrong_number_of_features_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"MLP expects 784 features per sample, got input of shape "
        r"\(5, 1, 32, 32\) \(1024 per sample\)",
    ):
        MLP(784)(torch.randn(5, 1, 32, 32))


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = MLP(10, hidden=(64,), out_features=3, dropout=0.5)
    x = torch.randn(4, 10)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_count_parameters_trainable_only():
    model = LeNet5()
    for p in model.features.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.features.parameters())
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - frozen


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_evaluates_inside_the_block_and_restores_the_mode(training):
    model = MLP(4, dropout=0.5).train(training)
    with eval_mode(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
    assert all(m.training is training for m in model.modules())


def test_eval_mode_restores_the_mode_when_the_block_fails():
    model = MLP(4).train()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError
    assert model.training


def test_lenet5_traces_without_a_tracer_warning():
    # Issue 16 item 6: the input-shape check raised a TracerWarning in TorchScript export.
    import warnings

    model = LeNet5().eval()
    x = torch.randn(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "`torch.jit.trace` is deprecated", FutureWarning)
        traced = torch.jit.trace(model, x)
    torch.testing.assert_close(traced(x), model(x))
    with pytest.raises(ValueError, match="LeNet5 expects"):
        model(torch.randn(2, 28, 28))  # eager still checks
