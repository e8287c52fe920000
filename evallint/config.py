"""Configuration: ``[tool.evallint]`` in pyproject.toml or ``evallint.toml``, merged with the CLI."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from evallint.rules import rule_infos
from evallint.rules.base import RuleInfo, RuleSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

KNOWN_KEYS = {"select", "ignore", "extend-select", "exclude", "per-file-ignores", "strict-restore",
              "model-names", "test-code", "file-time-limit"}
TEST_CODE_MODES = ("lenient", "strict")


class ConfigError(Exception):
    """A configuration or selection the user must correct (exit code 2)."""


@dataclass(frozen=True)
class Config:
    """The settings of one run. ``root`` is the folder patterns are relative to."""

    root: Path
    source: Path | None = None
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    strict_restore: bool = False
    model_names: tuple[str, ...] = ()
    test_code: str = "lenient"
    # Seconds the analysis of one file may take (0: no limit; None: the default).
    file_time_limit: float | None = None

    @property
    def settings(self) -> RuleSettings:
        return RuleSettings(strict_restore=self.strict_restore, model_names=frozenset(self.model_names),
                            strict_test_code=self.test_code == "strict")

    def selected_rules(self) -> tuple[RuleInfo, ...]:
        """The rules this configuration turns on (EL000 and EL001 always)."""
        return select_rules(self.select, self.extend_select, self.ignore)

    def with_cli(self, select: Sequence[str] | None, extend_select: Sequence[str],
                 ignore: Sequence[str]) -> "Config":
        """Command-line selection on top: ``--select`` replaces, the others add."""
        for codes in (select or (), extend_select, ignore):
            check_codes(codes, "the command line")
        return replace(self, select=tuple(select) if select is not None else self.select,
                       extend_select=self.extend_select + tuple(extend_select),
                       ignore=self.ignore + tuple(ignore))


def split_codes(value: str | None) -> list[str]:
    """``"EL1, EL201"`` -> ``["EL1", "EL201"]``."""
    return [part.strip().upper() for part in (value or "").split(",") if part.strip()]


def check_codes(codes: Iterable[str], where: str) -> None:
    codes_known = [rule.code for rule in rule_infos()]
    for code in codes:
        if code == "ALL":
            continue
        if not any(known.startswith(code) for known in codes_known) or not code.startswith("EL"):
            raise ConfigError(f"unknown rule code or prefix {code!r} in {where} "
                              f"(see `evallint rules`)")


def _match_length(code: str, patterns: Iterable[str]) -> int:
    """Length of the most specific pattern matching ``code`` (``ALL`` counts as 1), else 0."""
    best = 0
    for pattern in patterns:
        if pattern == "ALL":
            best = max(best, 1)
        elif code.startswith(pattern):
            best = max(best, len(pattern) + 1)
    return best


def select_rules(select: Sequence[str] | None, extend_select: Sequence[str],
                 ignore: Sequence[str]) -> tuple[RuleInfo, ...]:
    """Rules chosen by codes/prefixes: the most specific of select and ignore wins (as in Ruff)."""
    chosen = []
    for rule in rule_infos():
        if rule.always_on:
            chosen.append(rule)
            continue
        if select is None:  # the default selection is as broad as ``ALL``: any ignore beats it
            selected = 1 if rule.default_enabled else 0
        else:
            selected = _match_length(rule.code, select)
        selected = max(selected, _match_length(rule.code, extend_select))
        ignored = _match_length(rule.code, ignore)
        if selected and selected > ignored:
            chosen.append(rule)
    return tuple(chosen)


def find_config_file(start: Path) -> Path | None:
    """The nearest ``evallint.toml``, or ``pyproject.toml`` with a ``[tool.evallint]`` table."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "evallint.toml"
        if candidate.is_file():
            return candidate
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "tool" in (table := _read_toml(candidate)) \
                and "evallint" in table["tool"]:
            return candidate
    return None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error


def load_config(explicit: Path | None, start: Path) -> Config:
    """The configuration from ``explicit`` (``--config``) or the nearest config file above ``start``."""
    path = explicit or find_config_file(start)
    if path is None:
        return Config(root=start.resolve() if start.is_dir() else start.resolve().parent)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("evallint", {})
    elif "tool" in data and "evallint" in data["tool"]:
        data = data["tool"]["evallint"]
    return parse_table(data, path)


def parse_table(data: dict, path: Path) -> Config:
    """Validate a ``[tool.evallint]`` table; unknown keys and codes raise ConfigError."""
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {path}; "
                          f"known keys: {', '.join(sorted(KNOWN_KEYS))}")

    def codes(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"`{key}` in {path} must be a list of rule codes")
        result = tuple(v.strip().upper() for v in value)
        check_codes(result, f"`{key}` of {path}")
        return result

    def strings(key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"`{key}` in {path} must be a list of strings")
        return tuple(value)

    per_file: dict[str, tuple[str, ...]] = {}
    table = data.get("per-file-ignores", {})
    if not isinstance(table, dict):
        raise ConfigError(f"`per-file-ignores` in {path} must be a table of glob = [codes]")
    for glob, value in table.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"`per-file-ignores.{glob!r}` in {path} must be a list of rule codes")
        per_file[glob] = tuple(v.strip().upper() for v in value)
        check_codes(per_file[glob], f"`per-file-ignores` of {path}")
    strict = data.get("strict-restore", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"`strict-restore` in {path} must be true or false")
    test_code = data.get("test-code", "lenient")
    if test_code not in TEST_CODE_MODES:
        raise ConfigError(f"`test-code` in {path} must be one of {', '.join(map(repr, TEST_CODE_MODES))}")
    time_limit = data.get("file-time-limit")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or time_limit < 0):
        raise ConfigError(f"`file-time-limit` in {path} must be a number of seconds (0: no limit)")
    return Config(root=path.parent.resolve(), source=path, file_time_limit=time_limit,
                  select=codes("select") if "select" in data else None,
                  extend_select=codes("extend-select"), ignore=codes("ignore"),
                  exclude=strings("exclude"), per_file_ignores=per_file,
                  strict_restore=strict, model_names=strings("model-names"), test_code=test_code)
