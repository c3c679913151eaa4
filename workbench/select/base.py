"""The selector base class and registry.

A selector is an sklearn-style estimator: ``__init__`` stores parameters only, ``fit(view)`` reads a
:class:`~workbench.unitview.UnitView` (or a raw (n, d) feature array) and sets fitted attributes with
trailing underscores, ``selection_`` (a :class:`~workbench.selection.Selection`), ``scores_`` and
``fit_info_`` (what the fit found, copied to the Selection's ``info``) always. Subclasses implement
:meth:`Selector._select`; the base class validates the view, resolves the budget, assigns dropped units to
their most similar kept unit and builds the Selection. When the view was read from data, the Selection's
``params`` also hold ``data``: the samples and positions per sample used, and their caps.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from workbench.errors import ConfigError, SelectionError
from workbench.numeric import as_float, as_int
from workbench.registry import Registry
from workbench.select import validation
from workbench.select.grouping import assign_to_kept
from workbench.select.presets import get_preset
from workbench.selection import Selection, json_safe, resolve_budget
from workbench.unitview import UnitView
from workbench.utils import RandomState, check_random_state

SELECTORS: Registry[type[Selector]] = Registry("selector")


def register_selector(name: str, description: str = "", *, replace: bool = False):
    """Class decorator registering a :class:`Selector` subclass under ``name``.

    Raises
    ------
    ConfigError
        ``name`` is already registered and ``replace`` is False (pass ``replace=True`` to put the new selector in
        its place); the class is left as it was.
    """

    def decorator(cls: type[Selector]) -> type[Selector]:
        SELECTORS.register(name, description, replace=replace)(cls)
        cls.name = name
        return cls

    return decorator


def list_selectors() -> list[str]:
    """Names of the registered selectors."""
    return SELECTORS.names()


def get_selector(name: str, preset: str | None = None, **params: Any) -> Selector:
    """An unfitted selector ``name`` with ``params``; UnknownNameError / ConfigError on bad input, SelectionError
    on a parameter value the selector cannot use (:meth:`Selector.check_params`: checked here, before any fit).

    ``preset`` names a paper's settings (:func:`~workbench.select.presets.list_presets`); explicit ``params``
    override them, and the fitted Selection's ``info["preset"]`` records the preset.
    """
    cls = SELECTORS.get(name)
    allowed = cls._param_names()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"selector {name!r} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(allowed)}.")
    if preset is None:
        return cls(**params).check_params()
    chosen = get_preset(name, preset)
    selector = cls(**{**chosen.params, **params})
    selector.preset_info = chosen.info([key for key in params if key in chosen.params])
    return selector.check_params()


#: View metadata copied into a Selection's params (under ``"data"``): how much data the view read.
DATA_CAPS = ("samples", "positions_per_sample", "max_samples", "max_positions")


def _data_caps(view: UnitView) -> dict[str, Any]:
    """``{"data": {...}}`` with the sample and position caps of an activation view, else ``{}``."""
    if "samples" not in view.meta:
        return {}
    return {"data": {key: view.meta[key] for key in DATA_CAPS if key in view.meta}}


class Selector:
    """Base class: choose ``budget`` units of a group (int k, or a fraction in (0, 1]).

    Subclass attributes
    -------------------
    name
        Registry name (set by :func:`register_selector`).
    uses_similarity
        Whether the selection itself depends on unit similarities; such selectors refuse views whose
        units are indistinguishable (constant features). Magnitude, activation and random selection
        do not need them (for their assignment of dropped units a degenerate similarity only makes
        ties, resolved to the lowest kept index).
    """

    name: ClassVar[str] = ""
    uses_similarity: ClassVar[bool] = True
    #: set by get_selector(..., preset=...): what the Selection's info records of the preset
    preset_info: dict[str, Any] | None = None

    def __init__(self, budget: int | float = 0.5, random_state: RandomState = None) -> None:
        self.budget = budget
        self.random_state = random_state

    # -- parameters -----------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Selector:
        """Change constructor parameters; ConfigError for unknown names."""
        allowed = self._param_names()
        for key, value in params.items():
            if key not in allowed:
                raise ConfigError(f"selector {self.name!r} has no parameter {key!r}; it takes {', '.join(allowed)}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def check_params(self) -> Selector:
        """Check every parameter that can be checked without a unit view (named choices, counts, ranges, flags)
        and return the selector; a SelectionError naming the first bad one.

        :meth:`fit` calls it, and so does :func:`get_selector`: a bad setting is refused where it is given (a
        study file when it is read), not when the first group is selected. Subclasses check their own
        parameters in :meth:`_check_params`; what depends on the view (a count against its units) is checked
        when fitting.
        """
        self._check_params()
        return self

    def _check_params(self) -> None:
        """Check the subclass's parameters with :meth:`_choice`, :meth:`_count`, :meth:`_real`, :meth:`_flag`."""

    def _choice(self, param: str, choices: tuple[str, ...], optional: bool = False) -> str | None:
        """Parameter ``param``, one of ``choices`` (or None when ``optional``)."""
        value = getattr(self, param)
        if optional and value is None:
            return None
        if isinstance(value, (list, dict)) or value not in choices:
            raise SelectionError(
                f"selector {self.name!r}: {param}={value!r} is not one of {', '.join(map(repr, choices))}."
            )
        return value

    def _count(self, param: str, low: int = 1, optional: bool = False) -> int | None:
        """Parameter ``param``, an integer >= ``low`` (or None when ``optional``)."""
        value = getattr(self, param)
        if optional and value is None:
            return None
        return as_int(value, f"selector {self.name!r}: {param}", low=low, error=SelectionError)

    def _real(
        self, param: str, low: float = 0.0, low_open: bool = False, high: float | None = None, high_open: bool = False
    ) -> float:
        """Parameter ``param``, a finite number within the bounds."""
        return as_float(
            getattr(self, param),
            f"selector {self.name!r}: {param}",
            low=low,
            low_open=low_open,
            high=high,
            high_open=high_open,
            error=SelectionError,
        )

    def _flag(self, param: str) -> bool:
        """Parameter ``param``, true or false."""
        value = getattr(self, param)
        if not isinstance(value, (bool, np.bool_)):
            raise SelectionError(f"selector {self.name!r}: {param} is true or false, got {value!r}.")
        return bool(value)

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, view: UnitView | np.ndarray) -> Selector:
        """Select units of ``view``; sets ``selection_``, ``scores_``, ``keep_`` and selector-specific attributes."""
        self.check_params()
        view = validation.as_unit_view(view)
        validation.check_finite(view.features, "features", view.group)
        k = resolve_budget(view.n_units, self.budget)
        if self._uses_similarity():
            validation.check_not_constant(view, self.name)
        self._kernel_cache: dict[bool, np.ndarray] = {}
        rng = check_random_state(self.random_state)
        self.fit_info_: dict[str, Any] = {"preset": self.preset_info} if self.preset_info else {}
        keep, scores, labels = self._select(view, k, rng)
        assign = assign_to_kept(self._assignment_similarity(view), keep, labels)
        self.selection_ = Selection(
            group=view.group,
            n_units=view.n_units,
            keep=keep,
            assign=assign,
            scores=scores,
            method=self.name,
            params=json_safe({**self.get_params(), **_data_caps(view)}),
            info=json_safe(self.fit_info_),
        )
        self.scores_ = self.selection_.scores
        self.keep_ = self.selection_.keep
        del self._kernel_cache
        return self

    def fit_select(self, view: UnitView | np.ndarray) -> Selection:
        """``fit(view).selection_``."""
        return self.fit(view).selection_

    # -- for subclasses -------------------------------------------------------------------------
    def _uses_similarity(self) -> bool:
        return self.uses_similarity

    def _kernel(self, view: UnitView, psd: bool = False) -> np.ndarray:
        """The view's checked similarity (symmetric; PSD when asked), computed once per fit."""
        if psd not in self._kernel_cache:
            self._kernel_cache[psd] = validation.similarity(view, self.name, psd=psd)
        return self._kernel_cache[psd]

    def _assignment_similarity(self, view: UnitView) -> np.ndarray:
        """Similarity used to send dropped units to kept ones (the view's similarity by default)."""
        if self._kernel_cache:
            return next(iter(self._kernel_cache.values()))
        return self._kernel(view)

    def _select(
        self, view: UnitView, k: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return (kept indices, scores (n,), labels to assign within or None)."""
        raise NotImplementedError
