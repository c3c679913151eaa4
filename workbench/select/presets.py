"""Paper presets: each selector's settings as the paper it comes from uses them.

A preset is a named set of constructor parameters with its citation and, where the paper says so, the
unit-view source (``"activations"``) and the fusion (``"lsq"``) it expects. The source and fusion are
recorded in the fitted Selection's ``info`` (under ``"preset"``) and never change how a study runs;
build the view and choose the fusion accordingly. Explicit parameters override a preset's::

    from workbench.select import get_selector, list_presets
    selector = get_selector("dpp", preset="diversity-networks", budget=0.1)
    [(p.selector, p.name) for p in list_presets()]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ConfigError

__all__ = ["Preset", "PRESETS", "get_preset", "list_presets"]


@dataclass(frozen=True)
class Preset:
    """One selector's settings from one paper.

    Attributes
    ----------
    selector, name
        The registered selector and the preset's name.
    params
        Constructor parameters (explicit ones given with the preset override them).
    citation
        The paper (or documentation) the settings come from.
    description
        What the settings are and what the paper does beyond them.
    source, fuse
        The unit-view source (``"weights"`` / ``"activations"``) and fusion (``"drop"`` / ``"merge"`` /
        ``"lsq"``) the paper uses, or None when it does not say.
    """

    selector: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    citation: str = ""
    description: str = ""
    source: str | None = None
    fuse: str | None = None

    def info(self, overrides: list[str] | None = None) -> dict[str, Any]:
        """What a fitted Selection records of the preset (``overrides``: parameters given explicitly)."""
        info: dict[str, Any] = {"name": self.name, "citation": self.citation, "params": dict(self.params)}
        if self.source:
            info["source"] = self.source
        if self.fuse:
            info["fuse"] = self.fuse
        if overrides:
            info["overridden"] = sorted(overrides)
        return info


_PRESETS = [
    Preset(
        "dpp",
        "diversity-networks",
        params={"mode": "sample", "metric": "rbf"},
        citation="Mariet & Sra, Diversity Networks: Neural Network Compression Using Determinantal Point "
        "Processes, ICLR 2016",
        description="k-DPP sampling on a Gaussian RBF kernel of the units' activations (bandwidth by the median "
        "heuristic here; the paper tunes it), then the dropped units' contribution is folded into the kept ones by "
        "least-squares reweighting of the next layer's weights; the paper also uses the greedy mode (mode='map').",
        source="activations",
        fuse="lsq",
    ),
    Preset(
        "submodular",
        "el-halabi-2022",
        params={"objective": "input_change", "reg": 1e-8},
        citation="El Halabi, Srinivas & Lacoste-Julien, Data-Efficient Structured Pruning via Submodular "
        "Optimization, NeurIPS 2022",
        description="greedy maximization of the weakly submodular reduction in the next layer's input change, "
        "with the kept units' outgoing weights re-fitted by least squares (the selector's new_out_weights_).",
        source="activations",
        fuse="lsq",
    ),
    Preset(
        "sbm",
        "graspologic",
        params={"n_blocks": None, "max_blocks": 10, "degree_corrected": False},
        citation="graspologic SBMEstimator (Chung et al., graspy: Graph Statistics in Python, JMLR 2019)",
        description="the number of blocks chosen by BIC among 1..10 (graspologic's min_comm=1, max_comm=10), "
        "blocks from an adjacency spectral embedding with the elbow-chosen dimension clustered by a Gaussian "
        "mixture, as graspologic's SBMEstimator does.",
    ),
    Preset(
        "sbm",
        "graspologic-dcsbm",
        params={"n_blocks": None, "max_blocks": 10, "degree_corrected": True},
        citation="graspologic DCSBMEstimator (Karrer & Newman 2011; Chung et al., JMLR 2019)",
        description="as 'graspologic' with degree correction (Laplacian spectral embedding), for graphs whose "
        "units differ in degree (hubs).",
    ),
    Preset(
        "spectral",
        "graspologic",
        params={"embedding": "ase", "n_components": None, "clustering": "gmm"},
        citation="graspologic AdjacencySpectralEmbed + GaussianCluster (Sussman et al. 2012; Zhu & Ghodsi 2006; "
        "Chung et al., JMLR 2019)",
        description="adjacency spectral embedding with the dimension chosen by Zhu & Ghodsi's profile-likelihood "
        "elbow, clustered by a full-covariance Gaussian mixture; the number of clusters is the budget (one medoid "
        "kept per cluster) rather than graspologic's BIC choice.",
    ),
]

#: every preset, by (selector, name)
PRESETS: dict[tuple[str, str], Preset] = {(p.selector, p.name): p for p in _PRESETS}


def list_presets(selector: str | None = None) -> list[Preset]:
    """The presets (of one ``selector`` when given), sorted by selector and name."""
    return [PRESETS[key] for key in sorted(PRESETS) if selector is None or key[0] == selector]


def get_preset(selector: str, name: str) -> Preset:
    """The preset ``name`` of ``selector``; a ConfigError naming the known ones otherwise."""
    if not isinstance(selector, str) or not isinstance(name, str):
        raise ConfigError(
            f"a preset is named by a string (selector {selector!r}, preset {name!r}); "
            f"e.g. preset = 'diversity-networks' (all presets: {', '.join(p.name for p in list_presets())})."
        )
    if (selector, name) in PRESETS:
        return PRESETS[(selector, name)]
    known = [p.name for p in list_presets(selector)]
    hint = f"known presets of {selector!r}: {', '.join(known)}" if known else f"selector {selector!r} has no presets"
    everything = ", ".join(f"{p.selector}/{p.name}" for p in list_presets())
    raise ConfigError(f"unknown preset {name!r} for selector {selector!r}; {hint} (all presets: {everything}).")
