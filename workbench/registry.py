"""A small name -> factory registry shared by the zoo, the data sets, the selectors and the transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from workbench.errors import UnknownNameError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories.

    Parameters
    ----------
    kind
        What the registry holds ("model", "data set", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            first_line = next(iter((factory.__doc__ or "").strip().splitlines()), "")
            self._descriptions[name] = description or first_line
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; an :class:`UnknownNameError` with the closest name otherwise."""
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{closest(name, self._factories)} "
                f"Known {self.kind}s: {', '.join(sorted(self._factories))}."
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description."""
        return {name: self._descriptions[name] for name in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._factories
