"""Data sets check their size, shape, classes and files: empty or pixel-less splits, one-class labels, batches
larger than their format allows, generated sets too large for memory, and image folders holding pipes,
16-bit images or capitalised split folders."""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import signal
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.datasets import ArrayDataset, limits, load_dataset, mnist1d, shapes
from workbench.datasets import cifar as cifar_module
from workbench.datasets.splits import pick_split
from workbench.errors import ConfigError, DataError

# ------------------------------------------------------------------------------------------------- helpers


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """An IDX folder whose train and t10k files both hold ``images`` and ``labels`` (unsigned bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())
    return folder


def write_cifar(folder: Path, n: int = 10, protocol: int = 4) -> Path:
    """A python-layout CIFAR-10 folder of five training batches and a test batch of ``n`` images each."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


def write_cifar_bin(folder: Path, n: int = 10) -> Path:
    """A binary-layout CIFAR-10 folder of five training batches and a test batch of ``n`` records each."""
    folder.mkdir(parents=True, exist_ok=True)
    record = np.zeros((n, cifar_module.RECORD_BYTES), np.uint8)
    record[:, 0] = np.arange(n) % 10
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record.tobytes())
    return folder


def png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        for k in range(count):
            png(root / name / f"{k}.png", np.full((6, 6, 3), 40 * k % 256, np.uint8))
    return root


@contextlib.contextmanager
def time_limit(seconds: int):
    """Turn a hang into a failure (SIGALRM interrupts a blocking open of a named pipe)."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------- sizes, shapes and classes


def test_idx_images_of_no_pixel_are_refused_from_the_header(tmp_path):
    write_idx(tmp_path, np.zeros((100, 0, 0), np.uint8), np.arange(100) % 10)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: the header declares images of 0 x 0 pixels"):
        load_dataset("idx", root=tmp_path, split="test")


def test_idx_labels_of_one_class_are_refused_or_warned_about(tmp_path):
    write_idx(tmp_path, np.zeros((100, 4, 4), np.uint8), np.zeros(100, np.uint8))
    with pytest.raises(DataError, match=r"every label is 0, a data set of one class"):
        load_dataset("idx", root=tmp_path, split="train")
    with pytest.warns(UserWarning, match=r"split 'train' of data set 'idx': all 90 samples are of one class, '0'"):
        data = load_dataset("idx", root=tmp_path, split="train", num_classes=3)  # declared: trains, warned
    assert data.num_classes == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("idx", root=tmp_path, split="test", num_classes=3)  # evaluation on one class is fine


def test_a_split_left_empty_by_the_fractions_is_refused_naming_every_size(tmp_path):
    write_idx(tmp_path, np.zeros((100, 4, 4), np.uint8), np.arange(100) % 10)
    with pytest.raises(DataError, match=r"split 'train' is empty: the 100 samples are cut into train 0, val 100; "):
        load_dataset("idx", root=tmp_path, split="train", val_fraction=0.999)
    with pytest.raises(DataError, match=r"change val_fraction \(now 0\.999\)"):
        load_dataset("idx", root=tmp_path, split="train", val_fraction=0.999)
    assert len(load_dataset("idx", root=tmp_path, split="val", val_fraction=0.999)) == 100
    with pytest.raises(DataError, match=r"split 'test' is empty: the 10 samples are cut into train 6, val 4, test 0"):
        load_dataset("shapes", split="test", num_samples=10)


def test_pick_split_picks_and_refuses_only_an_empty_split():
    parts = {"train": np.array([0, 2]), "val": np.array([], np.int64), "test": np.array([1])}
    assert pick_split("trainval", parts).tolist() == [0, 2]
    with pytest.raises(DataError, match=r"split 'val' is empty: the 3 samples are cut into train 2, val 0, test 1; x"):
        pick_split("val", parts, "x")


def test_every_loaded_split_is_checked():
    def data(n: int, shape=(3,), num_classes: int = 2, labels=None) -> ArrayDataset:
        targets = torch.as_tensor(labels if labels is not None else np.arange(n) % num_classes, dtype=torch.long)
        return ArrayDataset(torch.zeros(n, *shape), targets, name="mine", split="train", num_classes=num_classes)

    with pytest.raises(DataError, match="split 'train' of data set 'mine' holds no sample"):
        limits.check_loaded(data(0), "mine")
    with pytest.raises(DataError, match=r"every input is empty \(0 x 4 values\)"):
        limits.check_loaded(data(4, shape=(0, 4)), "mine")
    with pytest.raises(DataError, match="has 1 class"):
        limits.check_loaded(data(4, num_classes=1), "mine")
    with pytest.warns(UserWarning, match=r"all 4 samples are of one class, '1' \(label 1\) of 2"):
        limits.check_loaded(data(4, labels=[1, 1, 1, 1]), "mine")
    ok = data(4)
    assert limits.check_loaded(ok, "mine") is ok


# ------------------------------------------------------------------------------------------------ CIFAR-10


@pytest.mark.parametrize("protocol", [2, 4])
def test_an_empty_cifar_batch_is_called_empty(tmp_path, protocol):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", n=0, protocol=protocol)
    with pytest.raises(DataError, match=r"test_batch: the batch is empty: it holds no image") as caught:
        load_dataset("cifar10", root=folder, split="test")
    assert "crafted" not in str(caught.value)


def test_protocol_2_bytes_are_read_but_only_the_empty_ones(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", n=10, protocol=2)  # Python 3 bytes: _codecs.encode
    assert len(load_dataset("cifar10", root=folder, split="test")) == 10

    class Allocates:
        def __reduce__(self):
            return bytes, (10**12,)  # would allocate a terabyte if it were run

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Allocates(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch: not a readable CIFAR-10 pickle \(ValueError: bytes called"):
        load_dataset("cifar10", root=folder, split="test")


def test_a_cifar_binary_batch_is_bounded_by_what_the_format_allows(tmp_path):
    folder = write_cifar_bin(tmp_path / "cifar-10-batches-bin")
    with open(folder / "test_batch.bin", "wb") as handle:  # sparse: 10,001 whole records of zeros
        handle.truncate(cifar_module.RECORD_BYTES * 10_001)
    with pytest.raises(DataError, match=r"30,733,073 bytes, more than the 10,000 records of 3073 bytes"):
        load_dataset("cifar10", root=folder, split="test")
    packed = gzip.compress(b"\0" * cifar_module.RECORD_BYTES * 10_001)
    (folder / "test_batch.bin").write_bytes(packed)
    with pytest.raises(DataError, match=r"more bytes unpacked than the 10,000 records"):
        load_dataset("cifar10", root=folder, split="test")


def test_a_cifar_python_batch_too_large_is_refused_before_unpickling(tmp_path, monkeypatch):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", n=10)
    monkeypatch.setattr(cifar_module, "MAX_PICKLE_BYTES", 1000)

    def never(*args, **kwargs):
        raise AssertionError("unpickled")

    monkeypatch.setattr(cifar_module, "load_restricted_pickle", never)
    with pytest.raises(DataError, match=r"test_batch: [\d,]+ bytes, more than a CIFAR-10 batch of 10,000 images"):
        load_dataset("cifar10", root=folder, split="test")


def test_a_cifar_batch_of_more_images_than_the_format_holds_is_refused(tmp_path, monkeypatch):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", n=12)
    monkeypatch.setattr(cifar_module, "BATCH_IMAGES", 11)
    with pytest.raises(DataError, match=r"the batch holds 12 images; a CIFAR-10 batch holds 1 to 11 images"):
        load_dataset("cifar10", root=folder, split="test")


# ------------------------------------------------------------------------------------------ generated sets


@pytest.mark.parametrize(
    "name, options",
    [("mnist1d", {"num_samples": 10**9}), ("shapes", {"size": 100_000}), ("shapes-seg", {"num_samples": 10**8})],
)
def test_generated_sets_too_large_for_memory_are_refused_before_generating(name, options):
    with pytest.raises(ConfigError, match=rf"data set '{name}' with .* needs about [\d,.]+ GiB of memory to generate"):
        load_dataset(name, **options)


def test_the_memory_limit_follows_the_free_memory(monkeypatch):
    monkeypatch.setattr(limits, "free_memory", lambda: 2 * 2**20)  # 2 MiB free: 1 MiB allowed
    with pytest.raises(ConfigError, match=r"needs about [\d.]+ MiB .* more than the 1\.0 MiB allowed"):
        load_dataset("shapes", num_samples=60, size=32)
    monkeypatch.setattr(limits, "free_memory", lambda: 2**40)
    assert len(load_dataset("shapes", split="test", num_samples=60, size=32)) == 12


def _peak(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "name, options, estimate",
    [
        ("shapes", dict(num_samples=300, size=24, channels=1), shapes.generation_bytes(300, 24, 1)),
        ("shapes", dict(num_samples=300, size=24, difficulty="hard"), shapes.generation_bytes(300, 24, 3)),
        ("shapes-seg", dict(num_samples=100, size=32), shapes.generation_bytes(100, 32, 3, segmentation=True)),
        ("mnist1d", dict(num_samples=1000, seed=7), 1000 * mnist1d.BYTES_PER_SAMPLE),
    ],
)
def test_the_estimates_bound_the_memory_generating_takes(name, options, estimate):
    import scipy.ndimage  # noqa: F401  (imported before measuring: mnist1d's filter is not part of its data)

    shapes.generate_shapes.cache_clear()
    shapes.generate_shape_scenes.cache_clear()
    mnist1d.generate_mnist1d.cache_clear()
    peak = _peak(lambda: load_dataset(name, split="trainval", **options))
    assert peak <= estimate, f"{name}: generating took {peak} bytes, the estimate is {estimate}"
    assert estimate <= 3 * peak  # and stays a useful bound


# ------------------------------------------------------------------------------------------- image folders


def test_a_named_pipe_among_the_images_is_refused_by_name(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 5, "dog": 5})
    os.mkfifo(root / "cat" / "x.png")
    with time_limit(10), pytest.raises(DataError, match=r"cat/x\.png: a named pipe, not a regular file"):
        load_dataset("folder", root=root, split="train", size=6)


def test_a_broken_link_among_the_images_is_refused_by_name(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 5, "dog": 5})
    (root / "dog" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=r"dog/gone\.png: a broken link, not a regular file"):
        load_dataset("folder", root=root, split="train", size=6)


@pytest.mark.parametrize("mode, channels", [("L", 1), ("RGB", 3)])
def test_16_bit_grey_images_are_scaled_by_their_depth(tmp_path, mode, channels):
    root = tmp_path / "scans"
    for name, value in (("dark", 4096), ("mid", 32768)):
        for k in range(5):
            png(root / name / f"{k}.png", np.full((6, 6), value, np.uint16))
    data = load_dataset("folder", root=root, split="trainval", size=6, mode=mode)
    assert data.input_shape == (channels, 6, 6)
    for label, value in enumerate((4096, 32768)):
        rows = data.inputs[data.targets == label]
        assert torch.allclose(rows, torch.full_like(rows, value / 65535), atol=1e-6)
    resized = load_dataset("folder", root=root, split="trainval", size=3, mode=mode)
    assert torch.allclose(resized.inputs[resized.targets == 1], torch.tensor(32768 / 65535), atol=1e-6)


def test_8_bit_images_read_as_before(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 5, "dog": 5})
    data = load_dataset("folder", root=root, split="trainval", size=6, mode="L")
    assert data.inputs.unique().tolist() == pytest.approx([v / 255 for v in (0, 40, 80, 120, 160)])


def test_split_folders_are_recognized_whatever_their_case(tmp_path):
    root = tmp_path / "pets"
    image_folder(root / "Train", {"cat": 5, "dog": 5})
    image_folder(root / "TEST", {"cat": 2, "dog": 2})
    train = load_dataset("folder", root=root, split="train", size=6)
    test = load_dataset("folder", root=root, split="test", size=6)
    assert train.class_names == test.class_names == ["cat", "dog"]
    assert len(test) == 4 and len(load_dataset("folder", root=root, split="trainval", size=6)) == 10
    image_folder(root / "train", {"cat": 5, "dog": 5})
    with pytest.raises(DataError, match=r"the folders Train, train all name the 'train' split; keep one"):
        load_dataset("folder", root=root, split="train", size=6)
