"""The researcher's own networks and data: image folders, models and data by import path in study files,
``round_to`` in studies, and plain torch Datasets in the Python API."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.datasets import load_dataset
from workbench.errors import ConfigError, DataError, StudyError
from workbench.study import Store, expand, load_study, run_study
from workbench.study.imports import build_model, load_data
from workbench.study.runner import cache_dir_for
from workbench.surgery import Plan, apply
from workbench.train import evaluate

CLASSES = ("cat", "dog", "eel")

# A small CNN as people publish it: a class with a `forward(x, return_features=False)`, a builder function,
# torch.nn.functional calls and `x.view(x.size(0), -1)`; no `input_shape` attribute. Plus a data module.
USER_MODULE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10, width=6):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x, return_features=False):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.max_pool2d(out, 2)
        out = F.relu(self.bn2(self.conv2(out)))
        features = F.adaptive_avg_pool2d(out, 1)
        features = features.view(features.size(0), -1)
        logits = self.fc(features)
        if return_features:
            return logits, features
        return logits


def small_cnn(num_classes=10, width=6):
    return SmallCNN(num_classes=num_classes, width=width)


def broken(num_classes=10):
    raise RuntimeError("no weights file here")


def not_a_module():
    return 42


class Blobs(Dataset):
    """Three classes of 3x12x12 images, one bright channel each: a plain torch Dataset of (image, label)."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        self.images = 0.1 * torch.randn(n, 3, 12, 12, generator=g)
        self.images[torch.arange(n), self.labels] += 1.0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def blobs(split, n=30):
    return Blobs(n, {"train": 0, "val": 1, "test": 2}[split])


def blob_pairs(split):
    data = blobs(split)
    return data.images, data.labels


def odd_data(split):
    return "not data"
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The user's module ``usernets`` written as a real file and importable (``tmp_path`` on ``sys.path``)."""
    (tmp_path / "usernets.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_images(root, classes=CLASSES, per_class=20, size=(12, 12), seed=0):
    """``root/<class>/<i>.png``: tiny RGB PNGs whose class is the bright channel."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (*size[::-1], 3), dtype=np.uint8)
            pixels[..., k % 3] += 180
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


# -- the image-folder data set ------------------------------------------------------------------------


def test_image_folder_splits_are_disjoint_deterministic_and_labelled_by_sorted_class_names(tmp_path):
    root = write_images(tmp_path / "images", classes=("eel", "cat", "dog"))
    parts = {split: load_dataset("folder", root=root, split=split, size=None) for split in ("train", "val", "test")}
    train, val, test = parts["train"], parts["val"], parts["test"]
    assert train.class_names == ["cat", "dog", "eel"] and train.num_classes == 3
    assert train.input_shape == (3, 12, 12) and train.inputs.dtype == torch.float32
    assert 0.0 <= float(train.inputs.min()) and float(train.inputs.max()) <= 1.0
    assert (len(train), len(val), len(test)) == (42, 6, 12)  # 70 / 10 / 20 % of each class
    index_sets = [set(p.indices.tolist()) for p in parts.values()]
    assert sum(map(len, index_sets)) == len(set().union(*index_sets)) == 60
    again = load_dataset("folder", root=root, split="test", size=None)
    assert torch.equal(again.inputs, test.inputs) and torch.equal(again.targets, test.targets)
    # labels follow the sorted names: "cat" (written second: green) is 0, "dog" (blue) 1, "eel" (red) 2
    assert all(int(x.mean(dim=(1, 2)).argmax()) == [1, 2, 0][y] for x, y in zip(test.inputs, test.targets.tolist()))
    trainval = load_dataset("folder", root=root, split="trainval", size=None)
    assert set(trainval.indices.tolist()) == index_sets[0] | index_sets[1]
    grey = load_dataset("folder", root=root, split="val", size=20, mode="L")
    assert grey.input_shape == (1, 20, 20) and grey.indices.tolist() == val.indices.tolist()


def test_image_folder_with_train_and_test_folders(tmp_path):
    write_images(tmp_path / "data" / "train", per_class=10)
    write_images(tmp_path / "data" / "test", per_class=4, seed=1)
    train = load_dataset("folder", root=tmp_path / "data", split="train", size=8)
    test = load_dataset("folder", root=tmp_path / "data", split="test", size=8)
    val = load_dataset("folder", root=tmp_path / "data", split="val", size=8)
    assert (len(train), len(val), len(test)) == (27, 3, 12) and test.input_shape == (3, 8, 8)
    assert test.indices.tolist() == list(range(12)) and not set(train.indices) & set(val.indices)
    assert test.class_names == list(CLASSES)


def test_image_folder_bad_inputs_are_clear_data_errors(tmp_path):
    with pytest.raises(DataError, match="pass root=PATH"):
        load_dataset("folder", split="train")
    with pytest.raises(DataError, match="folder not found"):
        load_dataset("folder", root=tmp_path / "nothing", split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folder; an image-folder data set needs at least two"):
        load_dataset("folder", root=tmp_path / "empty", split="train")

    root = write_images(tmp_path / "a", per_class=5)
    (root / "fish").mkdir()
    with pytest.raises(DataError, match="class folder 'fish' holds no image"):
        load_dataset("folder", root=root, split="train")
    (root / "fish" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not an image file"):
        load_dataset("folder", root=root, split="train")
    (root / "fish" / "notes.txt").unlink()
    (root / "fish" / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped
    (root / "fish" / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"00\.png: not an image Pillow can read"):
        load_dataset("folder", root=root, split="trainval")

    root = write_images(tmp_path / "b", per_class=5)
    Image.new("RGB", (7, 9)).save(root / "dog" / "99.png")
    with pytest.raises(DataError, match="with size=None every image must have the same size. Pass size=N"):
        load_dataset("folder", root=root, split="trainval", size=None)
    assert load_dataset("folder", root=root, split="trainval", size=6).input_shape == (3, 6, 6)
    with pytest.raises(DataError, match="more than max_images=3"):
        load_dataset("folder", root=root, split="train", max_images=3)
    with pytest.raises(DataError, match="max_bytes=1,000"):
        load_dataset("folder", root=root, split="train", max_bytes=1000)
    with pytest.raises(ConfigError, match="mode must be 'RGB'"):
        load_dataset("folder", root=root, split="train", mode="CMYK")
    with pytest.raises(ConfigError, match="val_fraction \\+ test_fraction"):
        load_dataset("folder", root=root, split="train", val_fraction=0.5, test_fraction=0.5)
    (tmp_path / "c" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="not both 'train' and 'test'"):
        load_dataset("folder", root=tmp_path / "c", split="train")


# -- models and data by import path ------------------------------------------------------------------


def study_text(images, checkpoint, round_to="round_to = 4"):
    return f"""
[study]
name = "mine"
seeds = [0]
latency = false

[[models]]
label = "cnn on images"
model = "usernets:small_cnn"
args = {{ num_classes = 3 }}
input_shape = [3, 12, 12]
data = "folder"
data_options = {{ root = "{images.as_posix()}", size = 12 }}
training = {{ epochs = 1, batch_size = 16 }}

[[models]]
label = "saved cnn"
model = "usernets:small_cnn"
args = {{ num_classes = 3 }}
checkpoint = "{checkpoint.name}"
data = "usernets:blobs"

[[models]]
label = "mlp on pairs"
name = "mlp"
data = "usernets:blob_pairs"
training = {{ epochs = 1 }}

[selectors]
magnitude = {{}}

[compression]
budgets = [0.5]
{round_to}

[finetune]
epochs = 1

[pipelines]
share = [{{ do = "share", bits = 4 }}]
"""


def test_a_study_of_user_models_and_image_folders_runs_end_to_end(user_module, tmp_path):
    images = write_images(tmp_path / "images")
    import usernets

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "saved.pt", usernets.small_cnn(num_classes=3))
    path = tmp_path / "mine.toml"
    path.write_text(study_text(images, tmp_path / "saved.pt"))
    study = load_study(path)
    runs = expand(study)
    assert len(runs) == 9
    outcome = run_study(study, quiet=True)
    assert (outcome.done, outcome.failed) == (9, 0), outcome
    with Store(tmp_path / "mine.sqlite", readonly=True) as store:
        rows = {row["hash"]: row for row in store.rows()}
    compressed = [row for row in rows.values() if row["kind"] == "compress"]
    assert len(compressed) == 3
    for row in rows.values():
        if row["kind"] == "pipeline":  # a pipeline on the user's models too
            metrics = row["metrics"]  # 4-bit shared weights: several times fewer stored bytes
            assert metrics["stored_bytes"] * 2 < metrics["base_stored_bytes"] and metrics["compression_ratio"] > 2
    for row in compressed:
        metrics = row["metrics"]
        assert metrics["params"] < metrics["base_params"] and metrics["macs"] < metrics["base_macs"]
        assert metrics["retrain_samples"] > 0
        assert metrics["accuracy"] * metrics["n"] == pytest.approx(round(metrics["accuracy"] * metrics["n"]))  # of n
        assert row["plan"]["meta"]["round_to"] == 4
        assert all(len(sel["keep"]) % 4 == 0 for sel in row["plan"]["selections"].values())  # round_to reached it

    # a stored run's model is rebuilt from the cached base (loaded on the user's architecture) and its plan
    cnn = next(row for row in compressed if row["config"]["model"]["label"] == "cnn on images")
    base, _ = load_checkpoint(
        cache_dir_for(tmp_path / "mine.sqlite") / f"{cnn['config']['base']}.pt", base=usernets.small_cnn(num_classes=3)
    )
    smaller = apply(base, Plan.from_dict(cnn["plan"]), fuse="drop", example_input=torch.randn(2, 3, 12, 12))
    assert (
        sum(p.numel() for p in smaller.parameters())
        == cnn["metrics"]["params"]
        < sum(p.numel() for p in base.parameters())
    )
    assert smaller(torch.randn(2, 3, 12, 12)).shape == (2, 3)
    test = load_dataset("folder", root=images, split="test", size=12)  # the run's score, found again
    assert evaluate(smaller, test)["accuracy"] == pytest.approx(cnn["metrics"]["accuracy_rebuilt"])
    assert [smaller.conv1.out_channels, smaller.conv2.out_channels] == [4, 8]  # 6 -> 3 and 12 -> 6, rounded up to 4s

    # a second run is skipped; the run hashes name the user's code, so an edit makes new runs
    assert run_study(study, quiet=True).skipped == 9
    (user_module / "usernets.py").write_text(textwrap.dedent(USER_MODULE) + "\n# edited\n")
    assert {run.hash for run in expand(load_study(path))}.isdisjoint(rows)  # every entry names usernets.py


def test_round_to_changes_hashes_only_when_set(user_module, tmp_path):
    images = write_images(tmp_path / "images", per_class=2)
    save_checkpoint(tmp_path / "saved.pt", __import__("usernets").small_cnn(num_classes=3))
    path = tmp_path / "a.toml"
    path.write_text(study_text(images, tmp_path / "saved.pt", round_to=""))
    plain = {run.hash: run.config for run in expand(load_study(path))}
    assert not any("round_to" in config for config in plain.values())
    path.write_text(study_text(images, tmp_path / "saved.pt", round_to="round_to = 8"))
    rounded = {run.hash: run.config for run in expand(load_study(path))}
    assert sum(h in plain for h in rounded) == 6  # base models and pipelines are the same; selector runs are new
    for bad in ("round_to = 0", "round_to = 2.5", 'round_to = "8"'):
        path.write_text(study_text(images, tmp_path / "saved.pt", round_to=bad))
        with pytest.raises(StudyError, match="compression.round_to"):
            load_study(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('model = "no_such_pkg.nets:resnet56"', "'no_such_pkg.nets:resnet56': module 'no_such_pkg' not found"),
        ('model = "usernets:resnet56"', "'usernets:resnet56': module 'usernets' has no 'resnet56'"),
        ('model = "usernets"', "'usernets' is not an import path; write 'package.module:function'"),
        ('model = "usernets:small_cnn"\nargs = { depth = 3 }', "'usernets:small_cnn' cannot take the arguments"),
        ('model = "usernets:small_cnn"\ndata = "usernets:nothing"', "'usernets:nothing': module 'usernets' has no"),
        ('name = "mlp"\nmodel = "usernets:small_cnn"', "give name (a zoo model) or model"),
        ('name = "mlp"\ninput_shape = [3, 12, 12]', "input_shape is for a model of your own"),
    ],
)
def test_import_path_errors_name_the_path(user_module, tmp_path, entry, message):
    data = "" if "data =" in entry else 'data = "digits"'
    path = tmp_path / "bad.toml"
    path.write_text(
        f'[study]\nname = "bad"\n\n[[models]]\n{entry}\n{data}\n\n[pipelines]\nq = [{{ do = "share", bits = 4 }}]\n'
    )
    with pytest.raises(StudyError, match="models\\[0\\]") as caught:
        load_study(path)
    assert message in str(caught.value)


def test_a_failing_or_wrong_user_callable_is_a_study_error_and_a_failed_run(user_module, tmp_path):
    with pytest.raises(StudyError, match="model 'usernets:broken' failed when called with .*no weights file here"):
        build_model("usernets:broken", {"num_classes": 3})
    with pytest.raises(StudyError, match="returned a int, not a torch.nn.Module"):
        build_model("usernets:not_a_module")
    with pytest.raises(StudyError, match="data 'usernets:odd_data' returned a str for split 'train'"):
        load_data("usernets:odd_data", "train")
    path = tmp_path / "broken.toml"
    path.write_text(
        '[study]\nname = "b"\nlatency = false\n\n[[models]]\nmodel = "usernets:broken"\ndata = "usernets:blobs"\n'
        'training = { epochs = 1 }\n\n[pipelines]\nq = [{ do = "share", bits = 4 }]\n'
    )
    outcome = run_study(path, quiet=True)
    assert outcome.failed == 2 and outcome.done == 0
    with Store(tmp_path / "broken.sqlite", readonly=True) as store:
        errors = [row["error"] for row in store.rows()]
    assert any("StudyError: model 'usernets:broken' failed when called" in (e or "") for e in errors)


def test_data_callables_become_datasets(user_module):
    pairs = load_data("usernets:blob_pairs", "test")
    assert pairs.num_classes == 3 and pairs.input_shape == (3, 12, 12) and pairs.split == "test"
    own = load_data("usernets:blobs", "val", {"n": 9})
    assert type(own).__name__ == "Blobs" and len(own) == 9


# -- the Python API takes a plain torch Dataset -------------------------------------------------------


class PlainImages(Dataset):
    """A plain torch Dataset: no ``inputs`` / ``targets`` tensors, no ``input_shape``, labels as ints."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = (torch.arange(n) % 3).tolist()
        self.images = [0.1 * torch.randn(3, 12, 12, generator=g) for _ in range(n)]
        for image, label in zip(self.images, self.labels):
            image[label] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.labels[index]


def test_fit_evaluate_and_compress_take_a_plain_torch_dataset(user_module):
    from usernets import small_cnn

    from workbench.compression import Retraining, compress
    from workbench.train import evaluate, fit

    train, test = PlainImages(48, 0), PlainImages(24, 1)
    torch.manual_seed(0)
    model = small_cnn(num_classes=3)
    history = fit(model, train, epochs=3, batch_size=16, lr=0.01, random_state=0, quiet=True)
    assert history.total_samples == 3 * 48
    scores = evaluate(model, test)
    assert scores["n"] == 24 and scores["accuracy"] > 0.5
    result = compress(
        model,
        keep=0.5,
        train=train,
        test=test,
        retrain=Retraining(epochs=1),
        latency=False,
        example_input=torch.randn(2, 3, 12, 12),
        round_to=4,
    )
    assert result.after["params"] < result.before["params"] and result.after["n"] == 24
    assert result.retrain_samples == 48 and [len(s.keep) % 4 for _, s in result.plan.items()] == [0, 0]
