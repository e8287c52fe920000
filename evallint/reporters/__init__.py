"""Output formats: each module here with a ``FORMAT`` name and a ``write`` function is one format.

Reporters only format findings; they never decide what is found.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Callable

from evallint.reporters.context import ReportContext

Writer = Callable[[list, ReportContext], None]


@lru_cache(maxsize=None)
def formats() -> dict[str, Writer]:
    """Map of ``--output-format`` name to its writer."""
    found: dict[str, Writer] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        name = getattr(module, "FORMAT", None)
        if name is not None:
            found[name] = module.write
    return found

