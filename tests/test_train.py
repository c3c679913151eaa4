"""workbench.train: fitting, seeding, hooks and penalties, argument checks, evaluation by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import ConfigError, DataError, ModelError
from workbench.train import RETRAIN_LR, History, TrainHook, evaluate, finetune, fit, predict
from workbench.zoo import create_model

# ---------------------------------------------------------------- fixtures


def blobs(n: int = 160, seed: int = 0) -> TensorDataset:
    """Two well separated Gaussian blobs in 2-D, labels 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None] * 2 - 1) * 2.0
    return TensorDataset(x, y)


def small_net(dropout: float = 0.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


QUICK = {"epochs": 3, "batch_size": 32, "quiet": True}

# ---------------------------------------------------------------- fit


def test_fit_learns_a_separable_problem():
    data = blobs()
    model = small_net()
    history = fit(model, data, val_data=blobs(60, seed=1), epochs=8, batch_size=16, lr=0.01, quiet=True)
    assert isinstance(history, History) and len(history) == 8
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val[-1]["accuracy"] >= 0.95 and history.val[-1]["n"] == 60
    assert evaluate(model, data)["accuracy"] >= 0.95
    assert not model.training
    assert history.best()["val_accuracy"] >= history.last()["val_accuracy"]
    assert history.as_dict()["epochs"] == 8 and len(history.seconds) == 8


def test_same_seed_same_weights_different_seed_different():
    start = small_net(dropout=0.3)
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        model = copy.deepcopy(start)
        fit(model, blobs(), random_state=seed, **QUICK)
        runs[name] = weights(model)
    assert all(torch.equal(a, b) for a, b in zip(runs["a"], runs["b"]))
    assert not all(torch.equal(a, c) for a, c in zip(runs["a"], runs["c"]))


def test_fit_restores_the_callers_random_state():
    model = small_net(dropout=0.3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, blobs(), **QUICK)
    assert torch.equal(torch.rand(3), expected)


class CountingHook:
    def __init__(self) -> None:
        self.calls = {"before_step": 0, "after_step": 0}
        self.epochs: list[int] = []
        self.logs: list[dict] = []
        self.training_seen: set[bool] = set()

    def before_step(self, model: nn.Module) -> None:
        assert all(p.grad is not None for p in model.parameters())  # after backward
        self.training_seen.add(model.training)
        self.calls["before_step"] += 1

    def after_step(self, model: nn.Module) -> None:
        self.calls["after_step"] += 1

    def after_epoch(self, model: nn.Module, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch)
        self.logs.append(logs)


def test_hooks_are_called_each_step_and_epoch():
    hook = CountingHook()
    only_epochs = type("EpochOnly", (), {"after_epoch": lambda self, model, epoch, logs: seen.append(epoch)})()
    seen: list[int] = []
    fit(small_net(), blobs(100), val_data=blobs(20, seed=3), hooks=[hook, only_epochs], **QUICK)
    batches = math.ceil(100 / 32)
    assert hook.calls == {"before_step": 3 * batches, "after_step": 3 * batches}
    assert hook.epochs == [0, 1, 2] and seen == [0, 1, 2]
    assert hook.training_seen == {True}
    assert {"train_loss", "lr", "seconds", "penalty", "val_accuracy", "val_loss"} <= set(hook.logs[0])
    assert isinstance(hook, TrainHook)
    fit(small_net(), blobs(100), hooks=[hook], max_batches=2, **QUICK)
    assert hook.calls["before_step"] == 3 * batches + 3 * 2


class MaskHook:
    """Keeps the first layer's masked weights at their initial values (gradient masking)."""

    def __init__(self, layer: nn.Linear) -> None:
        self.mask = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
        self.layer = layer

    def before_step(self, model: nn.Module) -> None:
        self.layer.weight.grad[~self.mask] = 0.0


def test_gradient_masking_hook_freezes_masked_weights():
    model = small_net()
    before = model[0].weight.detach().clone()
    hook = MaskHook(model[0])
    fit(model, blobs(), hooks=[hook], **QUICK)
    after = model[0].weight.detach()
    assert torch.equal(after[~hook.mask], before[~hook.mask])
    assert not torch.equal(after[hook.mask], before[hook.mask])


def test_penalty_is_added_and_changes_the_result():
    start = small_net()
    plain, penalised = copy.deepcopy(start), copy.deepcopy(start)
    fit(plain, blobs(), lr=0.01, **QUICK)

    def l2(model: nn.Module) -> torch.Tensor:
        return 0.5 * sum((p**2).sum() for p in model.parameters())

    history = fit(penalised, blobs(), lr=0.01, penalty=l2, **QUICK)
    norm = lambda m: float(sum((p.detach() ** 2).sum() for p in m.parameters()))  # noqa: E731
    assert norm(penalised) < 0.8 * norm(plain)
    assert all(value > 0 for value in history.penalty)
    with pytest.raises(ConfigError, match="scalar tensor"):
        fit(small_net(), blobs(), penalty=lambda model: 1.0, **QUICK)


def test_param_groups_train_extra_parameters_at_their_own_rates():
    start = small_net()
    plain, model = copy.deepcopy(start), copy.deepcopy(start)
    near, far = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))
    one_sgd_step = {
        "epochs": 1,
        "max_batches": 1,
        "optimizer": "sgd",
        "momentum": 0.0,
        "lr": 0.05,
        "schedule": "constant",
        "quiet": True,
    }
    groups = [{"params": model.parameters()}, {"params": [near], "lr": 0.1}, {"params": [far], "lr": 0.01}]
    fit(model, blobs(), param_groups=groups, penalty=lambda m: (near - 1) ** 2 + (far - 1) ** 2, **one_sgd_step)
    assert near.item() == pytest.approx(0.2) and far.item() == pytest.approx(0.02)  # lr times the gradient 2
    fit(plain, blobs(), **one_sgd_step)  # the model's group keeps fit's lr
    assert all(torch.equal(a, b) for a, b in zip(weights(plain), weights(model)))
    assert not all(torch.equal(a, b) for a, b in zip(weights(start), weights(model)))


def test_bad_param_groups_are_config_errors():
    model = small_net()
    weight = model[0].weight
    cases = [
        ([], "non-empty list of dicts"),
        ({"params": [weight]}, "non-empty list of dicts"),
        ([{"lr": 0.1}], "item 0"),
        ([{"params": ["weight"]}], "item 0"),
        ([{"params": [weight], "lr": -1.0}], r"param_groups\[0\]\['lr'\]"),
        ([{"params": [weight]}, {"params": [weight]}], "more than one parameter group"),
    ]
    for groups, match in cases:
        with pytest.raises(ConfigError, match=match):
            fit(model, blobs(20), param_groups=groups, **QUICK)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"optimizer": "adamx"}, "adam, adamw, sgd"),
        ({"schedule": "cos"}, "cosine, step, constant, onecycle"),
        ({"momentum": 1.5}, "momentum"),
        ({"hooks": [object()]}, "before_step"),
        ({"loss_fn": "mse"}, "loss_fn"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        fit(small_net(), blobs(20), **{**QUICK, **kwargs})


def test_bad_data_is_a_data_or_model_error():
    empty = TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="empty"):
        fit(small_net(), empty, **QUICK)
    with pytest.raises(DataError, match="val_data is empty"):
        fit(small_net(), blobs(20), val_data=empty, **QUICK)
    x, _ = blobs(20).tensors
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        fit(small_net(), (x, torch.full((20,), 5)), **QUICK)
    with pytest.raises(ModelError, match=r"\(20, 3\)"):
        fit(small_net(), (torch.randn(20, 3), torch.zeros(20, dtype=torch.long)), **QUICK)


def test_a_lone_last_sample_joins_the_previous_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    hook = CountingHook()
    fit(model, blobs(33), hooks=[hook], **QUICK)  # 33 = 32 + 1: one batch of 33, not 32 and 1
    assert hook.calls["before_step"] == 3


def test_unlabelled_data_and_unknown_history_metric():
    with pytest.raises(DataError, match="labelled"):
        fit(small_net(), TensorDataset(torch.randn(10, 2)), **QUICK)
    history = fit(small_net(), blobs(20), **QUICK)
    assert history.best() == history.epoch(min(range(3), key=history.train_loss.__getitem__))
    with pytest.raises(ConfigError, match="not recorded"):
        history.best("miou")


@pytest.mark.parametrize(
    ("schedule", "kwargs", "expected"),
    [
        ("constant", {}, [0.01, 0.01, 0.01]),
        ("step", {"step_size": 1, "gamma": 0.5}, [0.005, 0.0025, 0.00125]),
        ("cosine", {}, [0.0075, 0.0025, 0.0]),
    ],
)
def test_schedules_set_the_learning_rate(schedule, kwargs, expected):
    history = fit(small_net(), blobs(64), lr=0.01, schedule=schedule, optimizer="sgd", **{**QUICK, **kwargs})
    assert history.lr == pytest.approx(expected, abs=1e-9)


def test_onecycle_adamw_and_loader_and_pair_inputs():
    data = blobs(64)
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    history = fit(
        small_net(), loader, optimizer="adamw", schedule="onecycle", lr=0.01, weight_decay=0.01, epochs=2, quiet=True
    )
    assert history.lr[-1] < 0.01 * 0.01 and len(history) == 2
    history = fit(small_net(), data.tensors, epochs=2, quiet=True)
    assert len(history.train_loss) == 2


def test_finetune_defaults_to_the_one_retraining_learning_rate():
    history = finetune(small_net(), blobs(32), 1, schedule="constant", quiet=True)
    assert history.lr == [pytest.approx(RETRAIN_LR)] and RETRAIN_LR == 1e-3  # as distill and reconstruct
    history = finetune(small_net(), blobs(32), 1, schedule="constant", optimizer="sgd", lr=0.05, quiet=True)
    assert history.lr == [pytest.approx(0.05)]


class PixelNet(nn.Module):
    """A 1x1 convolution: per-pixel logits for 2 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_fit_segmentation_with_ignored_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 6, 6, generator=g)
    y = (x[:, 0] > 0).long()
    y[:, 0, 0] = 255  # ignored label
    torch.manual_seed(0)
    model = PixelNet()
    history = fit(model, (x, y), epochs=15, batch_size=8, lr=0.05, quiet=True)
    assert history.train_loss[-1] < history.train_loss[0]
    result = evaluate(model, (x, y))
    assert set(result) == {"miou", "iou", "pixel_accuracy", "loss", "n"} and result["n"] == 40
    assert result["pixel_accuracy"] > 0.9 and result["miou"] > 0.8


# ---------------------------------------------------------------- evaluate by hand


def test_evaluate_classification_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    targets = torch.tensor([0, 1, 0, 1, 1])  # right, right, wrong, wrong, right
    result = evaluate(nn.Identity(), (logits, targets), batch_size=2)
    right, wrong = math.log(1 + 2 * math.exp(-2)), math.log(math.exp(2) + 2)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["loss"] == pytest.approx((3 * right + 2 * wrong) / 5)
    assert result["n"] == 5
    assert torch.equal(predict(nn.Identity(), logits, batch_size=2), logits)


def test_evaluate_segmentation_by_hand_with_absent_class():
    predicted = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [1, 0]]])
    targets = torch.tensor([[[0, 1], [0, 255]], [[0, 0], [1, 1]]])
    logits = 2.0 * nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float()  # class 2 never predicted
    result = evaluate(nn.Identity(), (logits, targets), batch_size=1)
    # 7 labelled pixels. class 0: TP 3, FP 1, FN 1 -> 3/5; class 1: TP 2, FP 1, FN 1 -> 2/4; class 2 absent
    assert result["miou"] == pytest.approx((3 / 5 + 2 / 4) / 2)
    assert result["pixel_accuracy"] == pytest.approx(5 / 7)
    right, wrong = math.log(1 + 2 * math.exp(-2)), math.log(math.exp(2) + 2)
    assert result["loss"] == pytest.approx((5 * right + 2 * wrong) / 7)
    assert result["n"] == 2
    explicit = evaluate(nn.Identity(), (logits, targets), task="segmentation", num_classes=3)
    assert explicit["miou"] == pytest.approx(result["miou"])
    with pytest.raises(DataError, match=r"\[0, 1\)"):
        evaluate(nn.Identity(), (logits, targets), num_classes=1)


def test_evaluate_rejects_bad_task_and_restores_mode():
    model = small_net()
    model.train()
    evaluate(model, blobs(20))
    assert model.training
    with pytest.raises(ConfigError, match="classification, segmentation"):
        evaluate(model, blobs(20), task="regression")


# ---------------------------------------------------------------- with the zoo and the embedded data


def test_mlp_on_digits_trains_and_round_trips(tmp_path):
    from workbench.datasets import load_dataset
    from workbench.metrics import profile
    from workbench.zoo import example_input

    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    torch.manual_seed(0)
    model = create_model("mlp", widths=[64, 32, train.num_classes])
    history = fit(model, train, val_data=test, epochs=6, batch_size=32, lr=1e-2, quiet=True)
    scores = evaluate(model, test)
    assert scores["accuracy"] >= 0.9 and scores["n"] == len(test)
    assert scores["accuracy"] == pytest.approx(history.val[-1]["accuracy"])
    loaded, metadata = load_checkpoint(save_checkpoint(tmp_path / "mlp.pt", model, metadata={"test": scores}))
    assert evaluate(loaded, test) == scores and metadata == {"test": scores}
    assert profile(loaded, example_input(loaded), latency=False).params == 64 * 32 + 32 + 32 * 10 + 10
