"""The rule registry: every module ``elNNN_*.py`` in this package defines one rule class.

The classes are the single source for ``evallint rules``, ``evallint rule CODE``, SARIF metadata,
the generated docs and the catalogue (``catalogue.py``, generated too): the plain data that
selection, configuration, ``# noqa`` and driver findings read (``rule_infos``), so that a run that
analyses nothing imports no rule class, nor LibCST. Adding a rule is adding one file here and
running ``python tools/generate_rule_docs.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache

from evallint.rules.base import Rule, RuleInfo

_RULE_MODULE = re.compile(r"^el\d{3}_\w+$")


@lru_cache(maxsize=None)
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule class, sorted by code."""
    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(__path__):
        if not _RULE_MODULE.match(info.name):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value is not Rule \
                    and value.__module__ == module.__name__:
                found.append(value)
    codes = [rule.code for rule in found]
    duplicates = {code for code in codes if codes.count(code) > 1}
    if duplicates:
        raise RuntimeError(f"rule codes defined twice: {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda rule: rule.code))


def rule_by_code() -> dict[str, type[Rule]]:
    """Map of code (``EL101``) to rule class."""
    return {rule.code: rule for rule in all_rules()}


def rule_by_name() -> dict[str, type[Rule]]:
    """Map of kebab-case name (``eval-mode-leaks-into-training``) to rule class."""
    return {rule.name: rule for rule in all_rules()}


def rule_infos() -> tuple[RuleInfo, ...]:
    """``RuleInfo.of`` every rule class, sorted by code, without importing one (the catalogue;
    imported here, not at the top, so that the generator never depends on it)."""
    from evallint.rules.catalogue import CATALOGUE

    return CATALOGUE


def info_by_code() -> dict[str, RuleInfo]:
    """Map of code to ``RuleInfo``."""
    return {info.code: info for info in rule_infos()}
