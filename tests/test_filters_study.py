"""analyses/filters.toml, the full convolutional grid, is a valid study of the intended size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from workbench.study.grid import expand
from workbench.study.schema import load_study

FILTERS = Path(__file__).resolve().parent.parent / "analyses" / "filters.toml"


def test_filters_study_is_valid_and_covers_the_conv_grid():
    study = load_study(FILTERS)
    names = {entry.name for entry in study.models}
    assert {"resnet", "vgg_small", "mobilenet_v1", "enet"} <= names
    assert {entry.data for entry in study.models} == {"shapes", "shapes-seg"}
    resolutions = Counter(entry.data_options.get("size", 32) for entry in study.baselines.models)
    assert resolutions == {32: 3, 64: 4}  # width 0.5 at 32 is one of the compressed models
    runs = Counter(run.kind for run in expand(study))
    seeds, selectors = len(study.study.seeds), len(study.selectors)
    assert runs["compress"] == len(study.models) * seeds * selectors * 3 * 3
