"""MNIST-1D (Greydanus, 2020, "Scaling down deep learning"), generated locally.

Ten hand-designed templates of length 12, one per digit, are each turned into signals of length 40 by
the transformations of the reference generator, with its default arguments:

1. append 36..60 zeros (padding) and stretch the result linearly to 72 points;
2. scale by a factor in [0.8, 1.2];
3. translate (circularly) by 0..47 points;
4. fill the zero (background) points with correlated noise (scale 0.25, Gaussian filter, sigma 2);
5. add i.i.d. Gaussian noise (scale 0.02) everywhere;
6. shear (subtract a ramp of slope in [-0.375, 0.375]) and resample linearly to 40 points.

Samples are made class by class (``num_samples // 10`` each), shuffled, and the whole set is centred
and scaled to unit standard deviation. The random numbers are drawn in the reference generator's
order from ``numpy.random.RandomState(seed)`` (one sample after the other, then the shuffle), so the
default arguments (5000 samples, seed 42) reproduce the reference generator's output up to float32
rounding: its first 80% (4000 samples) is the paper's training set, the last 20% (1000) its test set.
The arithmetic is vectorized over samples (about 0.1 s for 5000 samples).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from workbench.datasets.base import ArrayDataset, make_dataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.limits import check_generated_memory
from workbench.datasets.options import check_int
from workbench.datasets.splits import pick_split
from workbench.errors import ConfigError

TEMPLATE_LENGTH = 12
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
CORR_NOISE_SIGMA = 2.0
IID_NOISE_SCALE = 0.02
SHEAR_SCALE = 0.75
FINAL_LENGTH = 40
TRAIN_FRACTION = 0.8  # the paper's train / test cut
VAL_FRACTION = 0.1  # share of the paper's train part held out as our "val" split
_EPS = 1e-8  # added to the templates so that their zeros are told apart from padding
_DILATED = TEMPLATE_LENGTH + PADDING[1]
#: Bytes generating one sample needs at most (about a dozen float64 rows of 72 points; measured peak 5-6 KiB).
BYTES_PER_SAMPLE = 8 * 1024

# Template curves of the digits 0..9 (before normalization), as designed in the paper.
_RAW_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)


def templates() -> np.ndarray:
    """The 10 normalized templates ``(10, 12)``: zero mean, unit deviation, shifted to start at 0, divided by 6."""
    x = _RAW_TEMPLATES - _RAW_TEMPLATES.mean(axis=1, keepdims=True)
    x /= x.std(axis=1, keepdims=True)
    x -= x[:, :1]
    return x / 6.0


def _resample(signals: np.ndarray, lengths: np.ndarray, n_out: int) -> np.ndarray:
    """Linear resampling of row ``i``'s first ``lengths[i]`` points onto ``n_out`` evenly spaced points."""
    position = np.linspace(0.0, 1.0, n_out)[None, :] * (lengths[:, None] - 1)
    left = np.clip(np.floor(position).astype(np.int64), 0, lengths[:, None] - 2)
    weight = position - left
    lo = np.take_along_axis(signals, left, axis=1)
    hi = np.take_along_axis(signals, left + 1, axis=1)
    return lo + weight * (hi - lo)


def _draw(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """All random numbers, drawn in the reference generator's order (sample by sample, then the shuffle)."""
    rs = np.random.RandomState(seed)
    pad_u = np.empty(num_samples)
    scale_u = np.empty(num_samples)
    shift = np.empty(num_samples, dtype=np.int64)
    corr = np.empty((num_samples, _DILATED))
    iid = np.empty((num_samples, _DILATED))
    shear_u = np.empty(num_samples)
    for i in range(num_samples):
        pad_u[i] = rs.random_sample()
        scale_u[i] = rs.random_sample()
        shift[i] = rs.randint(MAX_TRANSLATION)
        corr[i] = rs.standard_normal(_DILATED)
        iid[i] = rs.standard_normal(_DILATED)
        shear_u[i] = rs.random_sample()
    order = rs.permutation(num_samples)
    return {
        "pad_u": pad_u,
        "scale_u": scale_u,
        "shift": shift,
        "corr": corr,
        "iid": iid,
        "shear_u": shear_u,
        "order": order,
    }


@functools.lru_cache(maxsize=8)
def generate_mnist1d(num_samples: int = 5000, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Generate MNIST-1D: signals ``(N, 40)`` float32 (standardized) and labels ``(N,)`` int64.

    Cached: the same arguments return the same (read-only) arrays without generating again.
    """
    from scipy.ndimage import gaussian_filter1d

    per_class = num_samples // 10
    n = per_class * 10
    labels = np.repeat(np.arange(10), per_class)
    r = _draw(n, seed)

    # 1. pad with 36..60 zeros, stretch to 72 points
    lengths = TEMPLATE_LENGTH + PADDING[0] + (r["pad_u"] * (PADDING[1] - PADDING[0] + 1)).astype(np.int64)
    padded = np.zeros((n, _DILATED))
    padded[:, :TEMPLATE_LENGTH] = templates()[labels] + _EPS
    x = _resample(padded, lengths, _DILATED)
    # 2. scale, 3. translate circularly
    x *= 1.0 + SCALE_COEFF * (r["scale_u"][:, None] - 0.5)
    x = np.take_along_axis(x, (np.arange(_DILATED)[None, :] - r["shift"][:, None]) % _DILATED, axis=1)
    # 4. correlated noise on the background, 5. i.i.d. noise everywhere
    background = x == 0
    x = np.where(background, gaussian_filter1d(CORR_NOISE_SCALE * r["corr"], CORR_NOISE_SIGMA, axis=1), x)
    x = x + IID_NOISE_SCALE * r["iid"]
    # 6. shear, resample to 40 points
    x = x - (SHEAR_SCALE * (r["shear_u"] - 0.5))[:, None] * np.linspace(-0.5, 0.5, _DILATED)[None, :]
    x = _resample(x, np.full(n, _DILATED), FINAL_LENGTH)

    x, labels = x[r["order"]], labels[r["order"]]
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    x.setflags(write=False)
    labels.setflags(write=False)
    return x, labels


def split_positions(n: int) -> dict[str, np.ndarray]:
    """Train / val / test positions of an MNIST-1D set of ``n`` samples (see :func:`mnist1d`)."""
    n_trainval = int(n * TRAIN_FRACTION)
    n_val = int(round(n_trainval * VAL_FRACTION))
    return {
        "train": np.arange(0, n_trainval - n_val),
        "val": np.arange(n_trainval - n_val, n_trainval),
        "test": np.arange(n_trainval, n),
    }


@register_dataset(
    "mnist1d",
    "MNIST-1D (Greydanus 2020): 1x40 signals, 10 classes, 3600/400/1000 train/val/test; generated locally",
)
def mnist1d(root: str | os.PathLike | None, split: str, *, num_samples: int = 5000, seed: int = 42) -> ArrayDataset:
    """MNIST-1D, generated locally with the reference generator's default arguments.

    Splits: the paper's training part is the first 80% of the shuffled samples and its test part the
    last 20% (4000 / 1000 by default). Our ``"test"`` is the paper's test part; ``"val"`` is the last
    10% of the paper's training part (400) and ``"train"`` the rest (3600); ``"trainval"`` is the
    paper's whole training part. ``indices`` are positions in the shuffled set of ``num_samples``.

    Parameters
    ----------
    num_samples
        Total number of samples, a positive multiple of 10 (the same number per class).
    seed
        Seed of the random stream (42 gives the reference data set).
    """
    num_samples = check_int(num_samples, "num_samples", 10)
    if num_samples % 10:
        raise ConfigError(f"num_samples must be a multiple of 10 (the same number per class), got {num_samples}.")
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    check_generated_memory(
        "mnist1d", num_samples * BYTES_PER_SAMPLE, {"num_samples": num_samples}, "lower num_samples (5000 by default)"
    )
    x, y = generate_mnist1d(num_samples, seed)
    rows = pick_split(split, split_positions(len(y)), "raise num_samples")
    return make_dataset(
        x[:, None, :],
        y,
        rows,
        name="mnist1d",
        split=split,
        num_classes=10,
        task="classification",
        class_names=[str(d) for d in range(10)],
    )
