"""Synthetic images of filled shapes, for classification (``shapes``) and segmentation (``shapes-seg``).

Each shape is drawn as a filled region of an implicit function on the pixel grid, at a random
position, size and rotation (within +-15 degrees), in a random colour that differs from the random
background colour by 0.3 to 0.7 in every channel; light Gaussian pixel noise is added and values are
clipped to [0, 1]. Colour carries no class information, so a model has to recognize the outline.
Everything is generated with vectorized numpy from ``seed`` and cached in memory.

The default images are easy for a small CNN (above 98% after a few epochs), which leaves compressed
models nothing to differ on. ``difficulty`` (:data:`DIFFICULTIES`) adds, on the same shapes, what makes
real images hard: smaller shapes, clutter (small shapes of random kinds behind the object), occlusion
(a bar of background colour across it), texture (stripes that modulate every colour) and stronger noise.
:data:`EXTRA_SHAPES` give up to 10 classes. Every setting is drawn on a resolution-free grid, so ``size``
renders the same scenes at another resolution (32 and 64 pixels for MobileNet's resolution multiplier).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.datasets.base import ArrayDataset, make_dataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.limits import check_generated_memory
from workbench.datasets.options import check_int
from workbench.datasets.splits import contiguous_split, pick_split, stratified_split
from workbench.errors import ConfigError, closest

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring")
#: Further shapes a ``classes`` list (or ``classes`` up to 10) may use: harder to tell from the six above.
EXTRA_SHAPES = ("hexagon", "ellipse", "star", "crescent")
ALL_SHAPES = SHAPES + EXTRA_SHAPES
FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test
MAX_ANGLE = np.pi / 12  # rotations within +-15 degrees keep squares and diamonds apart
_HINT = "lower size or num_samples"


def _inside(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether shape-frame points ``(u, v)`` (unit radius, ``v`` pointing down) lie inside ``kind``."""
    au, av = np.abs(u), np.abs(v)
    if kind == "circle":
        return u * u + v * v <= 1.0
    if kind == "square":
        return np.maximum(au, av) <= 0.8
    if kind == "triangle":  # equilateral, apex up, centroid at the origin
        return (v <= 0.5) & (np.sqrt(3.0) * au <= v + 1.0)
    if kind == "cross":
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if kind == "diamond":
        return au + av <= 1.0
    if kind == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.36)
    if kind == "hexagon":  # regular, flat top, circumradius 1
        return (av <= 0.866) & (np.sqrt(3.0) * au + av <= np.sqrt(3.0))
    if kind == "ellipse":
        return u * u + v * v / 0.36 <= 1.0
    if kind == "star":  # hexagram: two overlapping triangles
        return ((v <= 0.5) & (np.sqrt(3.0) * au <= v + 1.0)) | ((v >= -0.5) & (np.sqrt(3.0) * au <= 1.0 - v))
    if kind == "crescent":
        return (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + v * v > 0.49)
    raise AssertionError(kind)


def _masks(kinds: np.ndarray, names: Sequence[str], params: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Boolean masks ``(N, size, size)``: shape ``names[kinds[i]]`` placed with ``params`` row ``i``."""
    grid = ((np.arange(size) + 0.5) / size * 2.0 - 1.0).astype(np.float32)  # pixel centres in [-1, 1]
    p = {key: value.astype(np.float32)[:, None, None] for key, value in params.items()}
    dx = grid[None, None, :] - p["cx"]
    dy = grid[None, :, None] - p["cy"]
    cos, sin = np.cos(p["angle"]) / p["scale"], np.sin(p["angle"]) / p["scale"]
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    masks = np.zeros((len(kinds), size, size), dtype=bool)
    for k, name in enumerate(names):
        rows = np.flatnonzero(kinds == k)
        if len(rows):
            masks[rows] = _inside(name, u[rows], v[rows])
    return masks


def _placement(rng: np.random.Generator, n: int, scale_range: tuple[float, float]) -> dict[str, np.ndarray]:
    scale = rng.uniform(*scale_range, size=n)
    return {
        "scale": scale,
        "cx": rng.uniform(-1.0 + scale, 1.0 - scale),
        "cy": rng.uniform(-1.0 + scale, 1.0 - scale),
        "angle": rng.uniform(-MAX_ANGLE, MAX_ANGLE, size=n),
    }


def _contrasting(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Colours that differ from ``background`` by 0.3..0.7 in every channel."""
    return ((background + rng.uniform(0.3, 0.7, size=background.shape)) % 1.0).astype(np.float32)


def _finish(rng: np.random.Generator, images: np.ndarray, noise: float) -> np.ndarray:
    """Add pixel noise of deviation ``noise`` to float32 ``images`` (in place), clip to [0, 1], freeze."""
    images += np.float32(noise) * rng.standard_normal(images.shape, dtype=np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    images.setflags(write=False)
    return images


@dataclass(frozen=True)
class Difficulty:
    """How hard ``shapes`` images are.

    Attributes
    ----------
    noise
        Standard deviation of the pixel noise (used when the ``noise`` option is not given).
    scale
        Range of the shape radius, as a fraction of half the image side.
    clutter
        Number of small distractor shapes (random kinds, radius 0.08..0.16) drawn behind the object.
    occlusion
        Half-width of a bar of background colour laid across the object, as a fraction of its radius
        (0: none).
    texture
        Amplitude of stripes (2..6 cycles per image, random direction) that multiply every colour (0: none).
    """

    noise: float
    scale: tuple[float, float]
    clutter: int = 0
    occlusion: float = 0.0
    texture: float = 0.0


#: Named difficulty settings of ``shapes``: ``easy`` is the original generator (and its exact images).
DIFFICULTIES = {
    "easy": Difficulty(noise=0.05, scale=(0.3, 0.6)),
    # One distractor and a little more noise: ResNet-8 reaches about 90% in 8 epochs (the main job's conv block).
    "moderate": Difficulty(noise=0.08, scale=(0.3, 0.6), clutter=1),
    "medium": Difficulty(noise=0.1, scale=(0.25, 0.55), clutter=2, occlusion=0.1, texture=0.1),
    "hard": Difficulty(noise=0.15, scale=(0.2, 0.5), clutter=4, occlusion=0.2, texture=0.2),
}


def _pixel_grid(size: int) -> np.ndarray:
    return ((np.arange(size) + 0.5) / size * 2.0 - 1.0).astype(np.float32)


def _add_clutter(
    rng: np.random.Generator, images: np.ndarray, background: np.ndarray, names: Sequence[str], count: int
) -> None:
    """Draw ``count`` small shapes of random kinds and contrasting colours into ``images`` (in place)."""
    n, size = len(images), images.shape[-1]
    for _ in range(count):
        kinds = rng.integers(0, len(names), size=n)
        masks = _masks(kinds, names, _placement(rng, n, (0.08, 0.16)), size)
        np.copyto(images, _contrasting(rng, background)[:, :, None, None], where=masks[:, None])


def _occlude(
    rng: np.random.Generator, images: np.ndarray, background: np.ndarray, place: dict[str, np.ndarray], width: float
) -> None:
    """Lay a bar of background colour (half-width ``width`` x radius, random direction) across each object."""
    grid = _pixel_grid(images.shape[-1])
    n = len(images)
    angle = rng.uniform(0.0, np.pi, size=n).astype(np.float32)[:, None, None]
    offset = rng.uniform(-0.5, 0.5, size=n).astype(np.float32)[:, None, None]
    scale = place["scale"].astype(np.float32)[:, None, None]
    dx = grid[None, None, :] - place["cx"].astype(np.float32)[:, None, None]
    dy = grid[None, :, None] - place["cy"].astype(np.float32)[:, None, None]
    across = (np.cos(angle) * dx + np.sin(angle) * dy) / scale - offset
    np.copyto(images, background[:, :, None, None], where=(np.abs(across) <= width)[:, None])


def _texture(rng: np.random.Generator, images: np.ndarray, amplitude: float) -> None:
    """Multiply ``images`` (in place) by ``1 + amplitude * sin(...)``: stripes of random frequency and direction."""
    grid = _pixel_grid(images.shape[-1])
    n = len(images)
    cycles = rng.uniform(2.0, 6.0, size=n).astype(np.float32)[:, None, None]
    angle = rng.uniform(0.0, np.pi, size=n).astype(np.float32)[:, None, None]
    phase = rng.uniform(0.0, 2 * np.pi, size=n).astype(np.float32)[:, None, None]
    along = np.cos(angle) * grid[None, None, :] + np.sin(angle) * grid[None, :, None]
    images *= (1.0 + amplitude * np.sin(np.pi * cycles * along + phase))[:, None]


@functools.lru_cache(maxsize=4)
def generate_shapes(
    num_samples: int,
    size: int,
    channels: int,
    classes: tuple[str, ...],
    seed: int,
    noise: float,
    difficulty: Difficulty = DIFFICULTIES["easy"],
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, channels, size, size)`` float32 of one shape each and labels ``(N,)`` int64 (balanced).

    ``difficulty`` adds clutter, occlusion and texture (drawn from a second stream of ``seed``, so that
    the shapes, positions and colours are those of the easy images).
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_samples) % len(classes)).astype(np.int64)
    place = _placement(rng, num_samples, difficulty.scale)
    masks = _masks(labels, classes, place, size)
    background = rng.uniform(size=(num_samples, channels)).astype(np.float32)
    colour = _contrasting(rng, background)
    images = np.broadcast_to(background[:, :, None, None], (num_samples, channels, size, size)).copy()
    extra = np.random.default_rng([seed, 1])
    _add_clutter(extra, images, background, classes, difficulty.clutter)
    np.copyto(images, colour[:, :, None, None], where=masks[:, None])
    if difficulty.occlusion > 0:
        _occlude(extra, images, background, place, difficulty.occlusion)
    if difficulty.texture > 0:
        _texture(extra, images, difficulty.texture)
    labels.setflags(write=False)
    return _finish(rng, images, noise), labels


@functools.lru_cache(maxsize=4)
def generate_shape_scenes(
    num_samples: int, size: int, channels: int, classes: tuple[str, ...], max_shapes: int, seed: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, channels, size, size)`` with 1..``max_shapes`` shapes and masks ``(N, size, size)`` int64.

    Mask value 0 is background and ``k + 1`` is ``classes[k]``; later shapes cover earlier ones.
    """
    rng = np.random.default_rng(seed)
    count = rng.integers(1, max_shapes + 1, size=num_samples)
    background = rng.uniform(size=(num_samples, channels)).astype(np.float32)
    images = np.broadcast_to(background[:, :, None, None], (num_samples, channels, size, size)).copy()
    targets = np.zeros((num_samples, size, size), dtype=np.int64)
    for slot in range(max_shapes):
        kinds = rng.integers(0, len(classes), size=num_samples)
        masks = _masks(kinds, classes, _placement(rng, num_samples, (0.2, 0.5)), size)
        masks &= (slot < count)[:, None, None]
        colour = _contrasting(rng, background)
        np.copyto(images, colour[:, :, None, None], where=masks[:, None])
        np.copyto(targets, kinds[:, None, None] + 1, where=masks)
    targets.setflags(write=False)
    return _finish(rng, images, noise), targets


def generation_bytes(num_samples: int, size: int, channels: int, segmentation: bool = False) -> int:
    """Bytes generating a set and copying out one split need at most, from the options alone.

    Per pixel of the whole set: the float32 images (4 per channel, twice: generated, then the split's copy) and
    the generator's float32 and boolean temporaries; for segmentation also the int64 masks (twice) and the
    temporaries of every shape slot. Measured peaks stay below these figures at every size.
    """
    per_pixel = 8 * channels + 40 if segmentation else 12 * channels + 16
    return num_samples * size * size * per_pixel


def _check_classes(classes: int | Sequence[str]) -> tuple[str, ...]:
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if not 2 <= classes <= len(ALL_SHAPES):
            raise ConfigError(
                f"classes must be between 2 and {len(ALL_SHAPES)} (or a list of {ALL_SHAPES}), got {classes}."
            )
        return ALL_SHAPES[: int(classes)]
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise ConfigError(f"classes must be an int or a list of shape names from {ALL_SHAPES}, got {classes!r}.")
    names = tuple(classes)
    for name in names:
        if name not in ALL_SHAPES:
            raise ConfigError(
                f"unknown shape {name!r}.{closest(str(name), ALL_SHAPES)} Known shapes: {', '.join(ALL_SHAPES)}."
            )
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"classes must name at least 2 different shapes, got {list(names)}.")
    return names


def _check_difficulty(difficulty: object) -> Difficulty:
    if isinstance(difficulty, Difficulty):
        return difficulty
    if not isinstance(difficulty, str) or difficulty not in DIFFICULTIES:
        raise ConfigError(
            f"unknown shapes difficulty {difficulty!r};{closest(str(difficulty), DIFFICULTIES)} "
            f"use one of {', '.join(DIFFICULTIES)}."
        )
    return DIFFICULTIES[difficulty]


def _check_common(num_samples: object, channels: object, seed: object, noise: object) -> tuple[int, int, int, float]:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise <= 1.0:
        raise ConfigError(f"noise must be a number in [0, 1] (standard deviation of pixel noise), got {noise!r}.")
    return (
        check_int(num_samples, "num_samples", 10),
        check_int(channels, "channels", 1),
        check_int(seed, "seed", 0),
        float(noise),
    )


@register_dataset(
    "shapes",
    "synthetic filled shapes (circle, square, triangle, cross, diamond, ring): 3x32x32 images, 6 classes; generated",
)
def shapes(
    root: str | os.PathLike | None,
    split: str,
    *,
    num_samples: int = 3000,
    size: int = 32,
    channels: int = 3,
    classes: int | Sequence[str] = len(SHAPES),
    seed: int = 0,
    noise: float | None = None,
    difficulty: str = "easy",
) -> ArrayDataset:
    """One filled shape per image; the label is its kind.

    Parameters
    ----------
    num_samples
        Images in the whole set (classes balanced); cut per class into 60% train, 20% val and
        20% test with ``seed`` (1800 / 600 / 600 by default). ``indices`` are generation positions.
    size, channels
        Image side in pixels (at least 8) and number of colour channels (1 gives grey images).
        The same ``seed`` gives the same scenes at every ``size``.
    classes
        How many of :data:`ALL_SHAPES` to use (the first ones: 6 are :data:`SHAPES`, up to 10), or a list
        of their names.
    seed, noise
        Random seed of the whole set, and standard deviation of the pixel noise (default: the difficulty's).
    difficulty
        ``"easy"`` (the original images), ``"moderate"`` (one distractor, noise 0.08), ``"medium"`` or
        ``"hard"`` (:data:`DIFFICULTIES`: smaller shapes, clutter, occlusion, texture, stronger noise).
    """
    names = _check_classes(classes)
    setting = _check_difficulty(difficulty)
    num_samples, channels, seed, noise = _check_common(
        num_samples, channels, seed, setting.noise if noise is None else noise
    )
    size = check_int(size, "size", 8)
    need = generation_bytes(num_samples, size, channels)
    check_generated_memory("shapes", need, {"num_samples": num_samples, "size": size, "channels": channels}, _HINT)
    images, labels = generate_shapes(num_samples, size, channels, names, seed, noise, setting)
    train, val, test = stratified_split(labels, FRACTIONS, seed)
    rows = pick_split(split, {"train": train, "val": val, "test": test}, "raise num_samples")
    return make_dataset(
        images,
        labels,
        rows,
        name="shapes",
        split=split,
        num_classes=len(names),
        task="classification",
        class_names=list(names),
    )


@register_dataset(
    "shapes-seg",
    "synthetic scenes of 1-3 shapes with per-pixel masks: 3x64x64 images, background + 6 classes; generated",
)
def shapes_seg(
    root: str | os.PathLike | None,
    split: str,
    *,
    num_samples: int = 1000,
    size: int = 64,
    channels: int = 3,
    classes: int | Sequence[str] = len(SHAPES),
    max_shapes: int = 3,
    seed: int = 0,
    noise: float = 0.05,
) -> ArrayDataset:
    """Scenes of 1..``max_shapes`` shapes with a label per pixel (0 background, ``k + 1`` shape ``k``).

    Parameters
    ----------
    num_samples
        Images in the whole set; the first 60% are train, the next 20% val and the last 20% test
        (600 / 200 / 200 by default; samples are i.i.d.). ``indices`` are generation positions.
    size
        Image side in pixels, a multiple of 8 (ENet downsamples three times), at least 16.
    channels, classes, seed, noise
        As for ``shapes``; ``num_classes`` is ``len(classes) + 1`` (background).
    max_shapes
        Largest number of shapes per image (each image has at least one).
    """
    names = _check_classes(classes)
    num_samples, channels, seed, noise = _check_common(num_samples, channels, seed, noise)
    size = check_int(size, "size", 16)
    if size % 8:
        raise ConfigError(f"size must be a multiple of 8 (ENet and similar networks halve it 3 times), got {size}.")
    max_shapes = check_int(max_shapes, "max_shapes", 1)
    need = generation_bytes(num_samples, size, channels, segmentation=True)
    options = {"num_samples": num_samples, "size": size, "channels": channels}
    check_generated_memory("shapes-seg", need, options, _HINT)
    images, targets = generate_shape_scenes(num_samples, size, channels, names, max_shapes, seed, noise)
    train, val, test = contiguous_split(num_samples, FRACTIONS)
    rows = pick_split(split, {"train": train, "val": val, "test": test}, "raise num_samples")
    return make_dataset(
        images,
        targets,
        rows,
        name="shapes-seg",
        split=split,
        num_classes=len(names) + 1,
        task="segmentation",
        class_names=["background", *names],
    )
