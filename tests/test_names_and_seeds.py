"""Names that are not strings and seeds beyond 64 bits are refused by name, never as a TypeError or OverflowError."""

from __future__ import annotations

import pytest
from toy import tiny_mlp

from workbench.errors import ConfigError, UnknownNameError
from workbench.pipeline import check_steps, planned_epochs
from workbench.select import get_selector
from workbench.select.presets import get_preset
from workbench.utils import check_random_state, seed_from
from workbench.zoo import create_model


@pytest.mark.parametrize("name", [["x"], {"a": 1}, 3, None])
def test_a_name_that_is_not_a_string_is_named(name):
    with pytest.raises(UnknownNameError, match="named by a string"):
        create_model(name)
    with pytest.raises(UnknownNameError, match="named by a string"):
        get_selector(name)
    with pytest.raises(ConfigError, match="unknown transform"):
        check_steps([{"do": name}])


def test_a_preset_that_is_not_a_string_is_named():
    with pytest.raises(ConfigError, match="named by a string"):
        get_preset("dpp", ["x"])
    with pytest.raises(ConfigError, match="named by a string"):
        get_selector("dpp", preset=["x"])


@pytest.mark.parametrize("epochs", [True, -1, [1], 1e30, float("nan"), "2"])
def test_pipeline_epoch_settings_are_checked(epochs):
    steps = [{"do": "retrain", "epochs": epochs}]
    with pytest.raises(ConfigError, match="step 0 \\(retrain\\): epochs"):
        planned_epochs(steps, tiny_mlp())


def test_seeds_beyond_64_bits_are_refused():
    assert 0 <= seed_from(2**64 - 1) < 2**32
    check_random_state(2**64 - 1)
    for bad in (2**64, -1):
        with pytest.raises(ConfigError, match="2\\*\\*64"):
            check_random_state(bad)
