"""Package attributes imported on first use, so that importing a package costs only what is used."""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package` that imports `sources[name]` (a module path) when `name`
    is first looked up."""

    def __getattr__(name: str) -> Any:
        if name in sources:
            return getattr(import_module(sources[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
