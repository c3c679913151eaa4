"""A few representative cases of the hostile probe (analyses/probe_hostile.py), two per category: one the
workbench always handled and one it failed when the probe was written (fixed since). A case listed in the probe's
``KNOWN`` failures is marked xfail with its reason, strict, so that a fix shows as an unexpected pass."""

from __future__ import annotations

import os
import stat

import pytest
from analysis_scripts import load_analysis


def _load_probe():
    return load_analysis("probe_hostile")


probe = _load_probe()

#: Two cases per category: the first handled from the start, the second failing when the probe was written.
PICKED = [
    "cli/train --out /dev/null",
    "cli/train --out a 300-character file name",
    "checkpoints/a weight on the meta device",
    "checkpoints/a torch archive with a storage record cut short",
    "data/folder with a truncated PNG",
    "data/folder of 16-bit grey PNGs",
    "study-files/training lr = inf",
    "study-files/arrays nested 10000 deep",
    "study-runs/a store that is an empty file",
    "study-runs/report --out the store itself",
    "api/plan_from keep=1e-300 keeps one unit",
    "api/fit with float targets",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    by_key = {case.key: case for case in probe.all_cases()}
    found = probe.run_cases([by_key[key] for key in PICKED], root=root)
    assert list(root.iterdir()) == []  # the probe's folder is deleted
    return {f"{r.category}/{r.name}": r for r in found}


def _param(key: str):
    known = probe.KNOWN.get(key)
    marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
    return pytest.param(key, marks=marks, id=key)


def test_the_picked_cases_cover_every_category():
    assert {key.split("/")[0] for key in PICKED} == set(probe.CATEGORIES)
    assert sum(key in probe.KNOWN for key in PICKED) <= len(PICKED) // 2  # a fixed case leaves KNOWN (and its xfail)


@pytest.mark.parametrize("key", [_param(key) for key in PICKED])
def test_the_case_is_handled(results, key):
    result = results[key]
    assert result.status in probe.GOOD, f"{result.status}: {result.detail}"


def test_dev_null_is_still_a_character_device(results):
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
