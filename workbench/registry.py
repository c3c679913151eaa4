"""A small name -> factory registry shared by the zoo, the data sets, the selectors and the transforms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from workbench.errors import ConfigError, UnknownNameError, closest

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

    def register(
        self, name: str, description: str = "", *, replace: bool = False
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``.

        Raises
        ------
        ConfigError
            ``name`` is already registered and ``replace`` is False (pass ``replace=True`` to put the new
            factory in its place).
        """

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and not replace:
                raise ConfigError(
                    f"{self.kind} {name!r} is already registered ({_qualified(self._factories[name])}); register "
                    f"yours under another name, or pass replace=True to put it in place of the existing one."
                )
            self._factories[name] = factory
            first_line = next(iter((factory.__doc__ or "").strip().splitlines()), "")
            self._descriptions[name] = description or first_line
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; an :class:`UnknownNameError` with the closest name otherwise (also for
        a name that is not a string, such as a list written where a name belongs)."""
        if not isinstance(name, str):
            raise UnknownNameError(
                f"a {self.kind} is named by a string, got {type(name).__name__} {name!r}. "
                f"Known {self.kind}s: {', '.join(sorted(self._factories))}."
            )
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
        return isinstance(name, str) and name in self._factories


def _qualified(factory: Callable[..., object]) -> str:
    """``module.name`` of a registered factory, for messages."""
    module = getattr(factory, "__module__", None) or "?"
    return f"{module}.{getattr(factory, '__qualname__', type(factory).__name__)}"
