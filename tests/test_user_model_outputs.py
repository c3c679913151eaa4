"""Users' models with odd outputs and signatures, and small API holes: a forward returning a dict, keyword
defaults, weights on the meta device, a teacher of other classes, float or one-class targets, ``num_classes``
below the labels, tied layers, names registered twice, Huffman coding of a model with nothing shared."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from workbench.compression import Retraining, compress
from workbench.datasets import ArrayDataset, register_dataset
from workbench.datasets.catalog import DATASETS
from workbench.errors import CompressionError, ConfigError, DataError, ModelError
from workbench.graph import from_model
from workbench.graph.trace import trace_model
from workbench.quantize import huffman_code, share_weights
from workbench.registry import Registry
from workbench.train import distill, evaluate, fit, predict, reconstruct
from workbench.zoo import MODELS, create_model, list_models, register_model


class DictNet(nn.Module):
    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(torch.relu(self.a(x)))}


class TupleNet(DictNet):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        hidden = torch.relu(self.a(x))
        return self.head(hidden), hidden


class MaskNet(nn.Module):
    """``forward(x, *, scale=1.0, mask=None)``: called with x alone, the mask is None and the scale 1."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 12)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor, *, scale: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.a(x)) * scale
        if mask is not None:
            h = h * mask
        return self.head(h)


class TiedNet(nn.Module):
    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.b.weight = self.a.weight
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


def pairs(n: int = 32, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 16, generator=g), torch.randint(0, classes, (n,), generator=g)


def mlp(classes: int = 4) -> nn.Module:
    return create_model("mlp", random_state=0, widths=[16, 8, classes])


# -- what a forward returns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "said"), [(DictNet, "a dict with keys 'logits'"), (TupleNet, "a tuple of 2 items")], ids=["dict", "tuple"]
)
def test_a_forward_returning_no_tensor_is_refused_with_how_to_wrap_it(make, said):
    calls = {
        "evaluate": lambda: evaluate(make(), pairs()),
        "predict": lambda: predict(make(), pairs()[0]),
        "fit": lambda: fit(make(), pairs(), epochs=1, quiet=True),
        "compress": lambda: compress(make(), keep=0.5, latency=False, example_input=torch.randn(4, 16)),
    }
    for name, call in calls.items():
        with pytest.raises(ModelError) as info:
            call()
        message = str(info.value)
        assert f"{make.__name__}'s forward returns {said}, not a tensor" in message, name
        assert "return self.model(x)[" in message, name


def test_a_teacher_returning_a_dict_is_refused():
    with pytest.raises(ModelError, match="DictNet's forward returns a dict"):
        distill(mlp(), DictNet(), pairs(), epochs=1, quiet=True)


# -- keyword defaults ------------------------------------------------------------------------------------


def test_a_none_default_stays_none_when_traced():
    model, x = MaskNet(), torch.randn(4, 16)
    gm = trace_model(model, x)
    assert gm.meta["tracer"] == "fx-concrete" and gm.meta["concrete_args"] == {"scale": 1.0, "mask": None}
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))
    graph = from_model(model, x)
    assert graph.groups["a"].prunable
    result = compress(model, keep=0.5, latency=False, example_input=x)
    assert result.model.a.out_features == 6 and result.model.head.in_features == 6


# -- models that cannot run -----------------------------------------------------------------------------


def test_a_model_on_the_meta_device_is_refused_before_it_runs():
    with torch.device("meta"):
        model = DictNet()
    calls = {
        "evaluate": lambda: evaluate(model, pairs()),
        "fit": lambda: fit(model, pairs(), epochs=1, quiet=True),
        "compress": lambda: compress(model, keep=0.5, latency=False, example_input=torch.randn(4, 16, device="meta")),
    }
    for name, call in calls.items():
        with pytest.raises(ModelError, match="on the meta device.*load its weights first") as info:
            call()
        assert "'a.weight'" in str(info.value), name


# -- teachers ---------------------------------------------------------------------------------------------


def test_a_teacher_of_other_classes_is_refused_naming_both():
    student, teacher = mlp(4), mlp(5)
    before = [p.clone() for p in student.parameters()]
    for call in (
        lambda: distill(student, teacher, pairs(), epochs=1, quiet=True),
        lambda: distill(student, [mlp(4), teacher], pairs(), epochs=1, quiet=True),
        lambda: reconstruct(student, teacher, pairs(), epochs=1, quiet=True),
    ):
        with pytest.raises(ConfigError, match=r"teacher MLP gives outputs of shape \(5,\).*student MLP gives \(4,\)"):
            call()
    assert all(torch.equal(p, q) for p, q in zip(before, student.parameters()))  # refused before any training


def test_compress_refuses_a_teacher_of_other_classes_before_selecting(monkeypatch):
    import workbench.rebuild

    def never(*args, **kwargs):
        raise AssertionError("selection ran before the teacher was checked")

    monkeypatch.setattr(workbench.rebuild, "select_and_rebuild", never)
    retrain = Retraining(method="distill", epochs=1, max_batches=1)
    with pytest.raises(ConfigError, match="teacher MLP gives outputs of shape"):
        compress(mlp(4), keep=0.5, retrain=retrain, teacher=mlp(5), train=pairs(), latency=False)


def test_distill_leaves_the_teachers_modes_as_they_were():
    teacher = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 4)).train()
    teacher[1].eval()
    distill(mlp(4), teacher, pairs(), epochs=1, quiet=True)
    assert [m.training for m in teacher.modules()] == [True, True, False, True]


# -- targets ----------------------------------------------------------------------------------------------


def test_fit_refuses_float_targets_saying_what_to_do():
    x, _ = pairs()
    with pytest.raises(DataError, match="integer class labels.*got float32 targets.*loss_fn"):
        fit(mlp(), (x, torch.rand(len(x))), epochs=1, quiet=True)
    with pytest.raises(DataError, match="got bool targets"):
        evaluate(mlp(2), (x, torch.rand(len(x)) > 0.5))
    fit(mlp(1), (x, torch.rand(len(x), 1)), epochs=1, quiet=True, loss_fn=nn.functional.mse_loss)  # values: fine


def test_fit_on_one_class_warns_naming_the_class():
    x, _ = pairs(24)
    data = ArrayDataset(
        x, torch.full((24,), 2), name="mine", split="train", num_classes=3, class_names=["ant", "bee", "cow"]
    )
    with pytest.warns(
        UserWarning, match=r"all 24 training samples of the first epoch are of one class \(label 2, 'cow'\)"
    ):
        fit(mlp(3), data, epochs=2, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(mlp(4), pairs(), epochs=1, quiet=True)  # several classes: no word


def test_evaluate_refuses_labels_outside_num_classes():
    x, y = pairs(classes=4)
    y[0] = 3
    with pytest.raises(DataError, match=r"class indices in \[0, 3\) for num_classes=3; found values in \[0, 3\]"):
        evaluate(mlp(4), (x, y), num_classes=3)
    data = ArrayDataset(x, y, name="mine", split="test", num_classes=2)
    with pytest.raises(DataError, match=r"in \[0, 2\) for the data's 2 classes"):
        evaluate(mlp(4), data)
    assert evaluate(mlp(4), (x, y), num_classes=4)["n"] == len(x)


# -- tied layers ------------------------------------------------------------------------------------------


def test_tied_layers_are_not_cut_and_stay_tied():
    model, x = TiedNet(), torch.randn(4, 16)
    graph = from_model(model, x)
    assert not graph.groups["a"].prunable and not graph.groups["b"].prunable
    summary = graph.summary()
    assert "its layer 'a' shares its weight with 'b.weight' (tied layers; slicing would untie them)" in summary
    assert "its layer 'b' shares its weight with 'a.weight'" in summary
    result = compress(model, keep=0.5, latency=False, example_input=x)
    assert result.model.b.weight is result.model.a.weight
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), model(x))


def test_a_layer_called_twice_is_not_tied():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(16, 8)
            self.shared = nn.Linear(8, 8)
            self.head = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.shared(torch.relu(self.shared(torch.relu(self.a(x)))))))

    graph = from_model(Twice(), torch.randn(4, 16))
    assert graph.groups["a"].prunable and "tied" not in graph.summary()


# -- registries and Huffman coding ------------------------------------------------------------------------


def test_registering_a_name_twice_says_how_to_replace_it():
    list_models()
    zoo_mlp = MODELS.get("mlp")
    with pytest.raises(
        ConfigError, match=r"model 'mlp' is already registered \(workbench\.zoo\.models\.mlp\.mlp\).*replace=True"
    ):
        register_model("mlp")(lambda **kw: nn.Linear(1, 1))
    assert MODELS.get("mlp") is zoo_mlp
    digits = DATASETS.get("digits")
    with pytest.raises(ConfigError, match="data set 'digits' is already registered"):
        register_dataset("digits")(lambda root, split: None)
    assert DATASETS.get("digits") is digits
    registry: Registry[int] = Registry("thing")
    registry.register("one")(lambda: 1)
    registry.register("one", replace=True)(lambda: 2)
    assert registry.get("one")() == 2


def test_a_selector_name_is_replaced_only_when_asked_and_a_refused_class_keeps_its_name():
    from workbench.select import SELECTORS, get_selector, register_selector
    from workbench.select.scoring import MagnitudeSelector

    class Mine(MagnitudeSelector):
        """Magnitude, registered again."""

    original, other = SELECTORS.get("magnitude"), SELECTORS.get("random")
    with pytest.raises(ConfigError, match=r"selector 'random' is already registered.*replace=True"):
        register_selector("random")(Mine)
    assert SELECTORS.get("random") is other and Mine.name == "magnitude"  # the refusal did not rename the class
    try:
        register_selector("magnitude", replace=True)(Mine)
        assert type(get_selector("magnitude")) is Mine
    finally:
        register_selector("magnitude", replace=True)(original)
    assert type(get_selector("magnitude")) is original


def test_huffman_code_refuses_a_model_with_nothing_shared():
    with pytest.raises(CompressionError, match="no weight-shared layer in MLP.*share_weights"):
        huffman_code(mlp())
    coded = huffman_code(share_weights(mlp(), bits=2))
    assert coded is not None
