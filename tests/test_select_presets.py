"""Paper presets: named selector settings with citations, overridable, usable from study files."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError, StudyError
from workbench.select import get_selector, list_presets
from workbench.unitview import UnitView, similarity_matrix


def test_every_preset_is_documented_and_builds_its_selector():
    presets = list_presets()
    assert {(p.selector, p.name) for p in presets} >= {
        ("dpp", "diversity-networks"),
        ("submodular", "el-halabi-2022"),
        ("sbm", "graspologic"),
        ("spectral", "graspologic"),
    }
    for preset in presets:
        assert preset.citation and preset.description
        params = get_selector(preset.selector, preset=preset.name).get_params()
        assert {key: params[key] for key in preset.params} == preset.params
    assert [p.name for p in list_presets("dpp")] == ["diversity-networks"]


def test_paper_settings_and_the_source_and_fusion_they_expect():
    dn = get_selector("dpp", preset="diversity-networks")
    assert (dn.mode, dn.metric) == ("sample", "rbf")
    assert dn.preset_info["source"] == "activations" and dn.preset_info["fuse"] == "lsq"
    assert "Mariet" in dn.preset_info["citation"]
    eh = get_selector("submodular", preset="el-halabi-2022")
    assert eh.objective == "input_change" and eh.preset_info["fuse"] == "lsq"
    assert get_selector("spectral", preset="graspologic").clustering == "gmm"
    sbm = get_selector("sbm", preset="graspologic")
    assert sbm.n_blocks is None and sbm.max_blocks == 10


def test_explicit_params_override_the_preset_and_the_selection_records_it():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((20, 4))
    selector = get_selector("dpp", preset="diversity-networks", budget=5, mode="map", random_state=0).fit(features)
    assert selector.mode == "map" and selector.metric == "rbf"
    info = selector.selection_.info["preset"]
    assert info["name"] == "diversity-networks" and info["overridden"] == ["mode"]
    assert info["source"] == "activations" and info["fuse"] == "lsq"
    assert selector.selection_.params["metric"] == "rbf"  # the plan replays with the preset's parameters
    assert "preset" not in get_selector("dpp", budget=5).fit(features).selection_.info


def test_the_dpp_metric_replaces_the_views_kernel():
    features = np.random.default_rng(1).standard_normal((15, 3))
    view = UnitView("g", features, kernel=similarity_matrix(features, "cosine"))
    selector = get_selector("dpp", preset="diversity-networks", budget=4, random_state=0).fit(view)
    rbf = similarity_matrix(features, "rbf")
    np.testing.assert_allclose(selector.kernel_, rbf + 1e-6 * np.eye(15), atol=1e-12)
    default = get_selector("dpp", budget=4, random_state=0).fit(view)
    assert not np.allclose(default.marginals_, selector.marginals_)
    with pytest.raises(Exception, match="metric='cosin' is not one of"):
        get_selector("dpp", metric="cosin", budget=4).fit(view)


def test_unknown_presets_name_the_known_ones():
    with pytest.raises(ConfigError, match="unknown preset 'diversity' for selector 'dpp'; known presets of 'dpp': "):
        get_selector("dpp", preset="diversity")
    with pytest.raises(ConfigError, match="selector 'random' has no presets.*dpp/diversity-networks"):
        get_selector("random", preset="x")


def test_plan_copies_keep_the_preset_record():
    from workbench.surgery.plan_builder import _with_budget

    copy = _with_budget(get_selector("dpp", preset="diversity-networks"), 0.25)
    assert copy.budget == 0.25 and copy.preset_info["name"] == "diversity-networks"


STUDY = """
[study]
name = "p"
seeds = [0]

[[models]]
name = "mlp"
args = { widths = [16, 10] }
data = "digits"
training = { epochs = 1 }

[selectors]
dpp = { preset = "PRESET" }

[compression]
budgets = [0.5]
fuse = ["lsq"]
"""


def test_study_files_accept_presets_and_refuse_unknown_ones(tmp_path):
    from workbench.study import load_study

    path = tmp_path / "s.toml"
    path.write_text(STUDY.replace("PRESET", "diversity-networks"))
    assert load_study(path).selectors["dpp"] == {"preset": "diversity-networks"}
    path.write_text(STUDY.replace("PRESET", "divnet"))
    with pytest.raises(StudyError, match="unknown preset 'divnet'.*diversity-networks"):
        load_study(path)
