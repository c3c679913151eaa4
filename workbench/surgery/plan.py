"""A :class:`Plan`: one :class:`~workbench.selection.Selection` per prunable group, serializable to JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import SurgeryError
from workbench.utils import MAX_JSON_DEPTH, atomic_write_text, check_path, json_depth

PLAN_FORMAT = "workbench-plan"


@dataclass
class Plan:
    """Which units of each prunable group to keep, and where the dropped ones go.

    Attributes
    ----------
    selections
        Group name (the name of the group's root layer, as in ``NetworkGraph.groups``) -> Selection.
    meta
        Free-form, JSON-safe details (selector, budget, source model).
    """

    selections: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, selection in self.selections.items():
            if getattr(selection, "group", name) != name:
                raise SurgeryError(
                    f"plan entry {name!r} holds the selection of group {selection.group!r}; key each selection by its group."
                )

    def __iter__(self) -> Iterator[str]:
        return iter(self.selections)

    def __len__(self) -> int:
        return len(self.selections)

    def __getitem__(self, group: str) -> Any:
        return self.selections[group]

    def items(self):
        """(group, selection) pairs."""
        return self.selections.items()

    @property
    def kept_fraction(self) -> float:
        """Kept units over all units of the plan's groups."""
        total = sum(s.n_units for s in self.selections.values())
        return sum(len(s.keep) for s in self.selections.values()) / total if total else 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``Plan.from_dict`` reads it back)."""
        return {
            "format": PLAN_FORMAT,
            "version": 1,
            "meta": self.meta,
            "selections": {name: sel.to_dict() for name, sel in self.selections.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict` output."""
        from workbench.selection import Selection

        if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
            raise SurgeryError(
                "this is not a workbench plan (no 'format': 'workbench-plan' marker); "
                "write plans with Plan.to_json or Plan.save."
            )
        selections = {name: Selection.from_dict(sel) for name, sel in data.get("selections", {}).items()}
        return cls(selections=selections, meta=dict(data.get("meta", {})))

    def to_json(self) -> str:
        """The plan as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Read a plan from a JSON string."""
        if isinstance(text, str) and json_depth(text) > MAX_JSON_DEPTH:
            raise SurgeryError(f"plan JSON is nested deeper than {MAX_JSON_DEPTH} levels; a plan is two levels deep.")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SurgeryError(f"plan is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the plan to ``path`` atomically."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan written by :meth:`save`; :class:`SurgeryError` for a path that cannot name a file (None, too
        long) or names none."""
        path = check_path(path, "the plan path", SurgeryError)
        if not path.is_file():
            raise SurgeryError(f"plan file {path} does not exist.")
        return cls.from_json(path.read_text(encoding="utf-8"))
