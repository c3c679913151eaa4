"""Selectors: which units of a prunable group to keep, and where the dropped ones go.

Every selector reads a :class:`workbench.unitview.UnitView` (or a raw (n, d) feature array) and
returns a :class:`Selection` (``keep``, ``assign``, ``scores``)::

    from workbench.select import get_selector
    selection = get_selector("dpp", budget=0.25, mode="map").fit(view).selection_

Registered selectors (:func:`list_selectors`): ``random``, ``magnitude``, ``activation``, ``sbm``,
``spectral``, ``leiden``, ``dpp``, ``submodular``. Paper presets (:func:`list_presets`) give a
selector the settings of the paper it comes from: ``get_selector("dpp", preset="diversity-networks")``.
The k-DPP numerics are public as :class:`KDPP` (a kernel L, its eigendecomposition, or features B with
L = B Bᵀ, sampled through the dual kernel when B is narrow), :func:`sample_k_dpp`,
:func:`k_dpp_marginals` and :func:`greedy_map_dpp`. graspologic, dppy and scikit-learn are imported
only when a selector that needs them is fitted.
"""

from __future__ import annotations

from workbench.select.base import SELECTORS, Selector, get_selector, list_selectors, register_selector
from workbench.select.blockmodel import SBMSelector
from workbench.select.community import LeidenSelector
from workbench.select.dpp import DPPSelector
from workbench.select.kdpp import KDPP, greedy_map_dpp, k_dpp_marginals, sample_k_dpp, sample_k_dpp_dppy
from workbench.select.presets import Preset, get_preset, list_presets
from workbench.select.scoring import ActivationSelector, MagnitudeSelector, RandomSelector
from workbench.select.spectral import SpectralSelector
from workbench.select.submodular import SubmodularSelector
from workbench.select.validation import as_unit_view
from workbench.selection import Selection, resolve_budget

__all__ = [
    "SELECTORS",
    "Selection",
    "Selector",
    "resolve_budget",
    "get_selector",
    "list_selectors",
    "register_selector",
    "Preset",
    "get_preset",
    "list_presets",
    "as_unit_view",
    "KDPP",
    "sample_k_dpp",
    "sample_k_dpp_dppy",
    "k_dpp_marginals",
    "greedy_map_dpp",
    "RandomSelector",
    "MagnitudeSelector",
    "ActivationSelector",
    "SBMSelector",
    "SpectralSelector",
    "LeidenSelector",
    "DPPSelector",
    "SubmodularSelector",
]
