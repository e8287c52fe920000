"""The ``evallint`` command line: ``check``, ``rule CODE`` and ``rules`` (see docs/cli.md).

What only some runs need (rich's markdown, progress bar and tables; fixes) is imported where it is
used, and LibCST, the analysis and the rule classes with the first file that needs them
(``linter.lint_source``): a run of cache hits and clean files starts fast."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import click

from evallint import __version__
from evallint.analysis.project import Project, RootFinder
from evallint.cache import ResultCache
from evallint.config import ConfigError, load_config, split_codes
from evallint.diagnostics import Diagnostic
from evallint.discovery import Excluder, discover
from evallint.linter import decode
from evallint.reporters import formats
from evallint.reporters.context import ReportContext, location
from evallint.reporters.statistics import write_statistics
from evallint.rule_docs import default_label, fix_label, rule_markdown
from evallint.rules import all_rules, rule_by_code, rule_by_name
from evallint.runner import (
    DEFAULT_TIME_LIMIT, LintOptions, Target, default_jobs, lint_target, lint_targets, project_for,
)

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
# A progress bar (on stderr, when it is a terminal) only for runs this large.
PROGRESS_THRESHOLD = 200
# Rounds of fixing: fixes that overlap wait for the next round, and a fix can expose the next
# (as Ruff does, re-lint after each round); the bound stops fixes that keep undoing each other.
FIX_ROUNDS = 10


class UsageFailure(click.ClickException):
    """An error the user must correct; exits with code 2 like click's own usage errors."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:
        click.echo(f"evallint: error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evallint")
def main() -> None:
    """Find train/eval-mode and grad-mode mistakes in PyTorch code, without running it."""


def run() -> None:
    """The console script: like ``main``, but a failure that stops the run exits with 2."""
    try:
        main(prog_name="evallint")
    except Exception as error:  # noqa: BLE001 - exit 1 would mean "findings"
        click.echo(f"evallint: error: {type(error).__name__}: {error}", err=True)
        sys.exit(EXIT_ERROR)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--select", help="Rule codes or prefixes to enable, comma-separated (replaces the "
                                "configured set); `ALL` for every rule.")
@click.option("--ignore", help="Rule codes or prefixes to disable, comma-separated.")
@click.option("--extend-select", help="Rule codes or prefixes to enable on top of the selection.")
@click.option("--output-format", type=click.Choice(sorted(formats())), default="text",
              show_default=True, help="How findings are printed: `github` annotates GitHub pull "
              "requests, `sarif` is for code scanning, `gitlab` a GitLab Code Quality report, `junit` "
              "JUnit XML for CI test reports (see docs/ci.md).")
@click.option("--fix", is_flag=True, help="Apply safe fixes in place.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply (or offer) fixes that can change behaviour.")
@click.option("--diff", is_flag=True, help="Print the fixes as a diff instead of writing them.")
@click.option("--add-noqa", is_flag=True,
              help="Add a `# noqa: CODE` directive for every current finding (to adopt evallint "
                   "in an existing project and fail only on new findings); prints nothing else. "
                   "Not with --fix or --diff.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Use this pyproject.toml or evallint.toml instead of searching for one.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per CPU).")
@click.option("--exit-zero", is_flag=True, help="Exit with 0 even when there are findings.")
@click.option("--statistics", is_flag=True, help="Print a count per rule instead of the findings.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the findings: no summary, no progress.")
@click.option("--stdin-filename", help="The name of the file read from standard input (`-`).")
@click.option("--file-time-limit", type=click.FloatRange(min=0), default=None,
              help=f"Seconds of CPU time the analysis of one file may use before it is stopped and reported "
                   f"(EL000); 0: no limit.  [default: {DEFAULT_TIME_LIMIT:g}]")
def check(paths: tuple[Path, ...], select: str | None, ignore: str | None, extend_select: str | None,
          output_format: str, fix: bool, unsafe_fixes: bool, diff: bool, add_noqa: bool,
          config_path: Path | None,
          no_cache: bool, jobs: int | None, exit_zero: bool, statistics: bool, quiet: bool,
          stdin_filename: str | None, file_time_limit: float | None) -> None:
    """Lint PATHS (files and folders; default `.`; `-` reads standard input)."""
    from_stdin = paths == (Path("-"),)
    if Path("-") in paths and not from_stdin:
        raise UsageFailure("`-` (standard input) cannot be combined with other paths")
    if add_noqa and (fix or diff):
        raise UsageFailure(f"`--add-noqa` cannot be combined with `{'--fix' if fix else '--diff'}`")
    if add_noqa and from_stdin:
        raise UsageFailure("`--add-noqa` edits files; it cannot be used with standard input (`-`)")
    given = list(paths) or [Path(".")]
    anchor = (Path(stdin_filename) if stdin_filename else Path.cwd()) if from_stdin else given[0]
    try:
        config = load_config(config_path, anchor if anchor.is_dir() else anchor.parent)
        config = config.with_cli(split_codes(select) if select is not None else None,
                                 split_codes(extend_select), split_codes(ignore))
    except ConfigError as error:
        raise UsageFailure(str(error)) from error

    rules = config.selected_rules()
    if from_stdin:
        name = stdin_filename or "-"
        file = Path(stdin_filename).resolve() if stdin_filename else Path.cwd() / "<stdin>.py"
        try:
            text = decode(sys.stdin.buffer.read())
        except UnicodeDecodeError as error:
            raise UsageFailure(f"standard input is not UTF-8: {error}") from error
        targets = [Target(name, file, text, root=RootFinder().root_of(file))]
    else:
        excluder = Excluder.from_patterns(config.root, config.exclude)
        # Each file's own project root (for its imports): never depends on the other paths given.
        roots = RootFinder()
        targets = [Target(str(path), path, root=roots.root_of(path)) for path in discover(given, excluder)]
    use_cache = not (no_cache or from_stdin)
    time_limit = next((limit for limit in (file_time_limit, config.file_time_limit) if limit is not None),
                      DEFAULT_TIME_LIMIT)
    options = LintOptions(codes=tuple(rule.code for rule in rules),
                          settings=config.settings, config_root=config.root,
                          per_file_ignores=tuple(config.per_file_ignores.items()),
                          time_limit=time_limit or None)
    cache = ResultCache(config.root, _fingerprint(options)) if use_cache else None
    show_progress = not quiet and _stderr_is_terminal() and len(targets) > PROGRESS_THRESHOLD
    linted: dict[str, str | None] = {}
    diagnostics = _lint_with_progress(targets, options, jobs or default_jobs(), cache, show_progress,
                                      linted)
    if add_noqa:
        complete = _add_noqa(targets, diagnostics, linted,
                             options.unsuppressable | {"EL002"}, quiet)
        sys.exit(EXIT_CLEAN if complete else EXIT_FINDINGS)

    context = ReportContext(quiet=quiet, unsafe_fixes=unsafe_fixes,
                            sources={t.path: t.text for t in targets if t.text is not None},
                            paths=[t.path for t in targets])
    if fix or diff:
        outcome = _fix(targets, diagnostics, options, unsafe_fixes, write=fix and not diff,
                       from_stdin=from_stdin, quiet=quiet, digests=linted)
        if diff:
            sys.stdout.write("".join(outcome.diffs))
            sys.exit(EXIT_FINDINGS if outcome.diffs and not exit_zero else EXIT_CLEAN)
        diagnostics = outcome.remaining
        context.fixed = outcome.fixed
        if from_stdin:
            context.out = sys.stderr
        if outcome.fixed and not quiet and (statistics or output_format != "text"):
            # the text format's summary says it; the others have none
            click.echo(f"Fixed {outcome.fixed} finding{'s' if outcome.fixed != 1 else ''} "
                       f"({len(diagnostics)} remaining).", err=True)

    if statistics:
        write_statistics(diagnostics, context, as_json=output_format == "json")
    else:
        formats()[output_format](diagnostics, context)
    sys.exit(EXIT_FINDINGS if diagnostics and not exit_zero else EXIT_CLEAN)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _fingerprint(options: LintOptions) -> str:
    """What besides a file's content (and its project root, see ``ResultCache``) decides its
    findings; part of every cache key."""
    # The working folder too: related locations in imported files are shown relative to it.
    settings = (options.settings.strict_restore, tuple(sorted(options.settings.model_names)),
                options.settings.strict_test_code)
    text = repr((options.codes, settings, options.per_file_ignores, os.getcwd()))
    return hashlib.sha256(text.encode()).hexdigest()


def _lint_with_progress(targets: list[Target], options: LintOptions, jobs: int,
                        cache: ResultCache | None, show_progress: bool,
                        linted: dict[str, str | None] | None = None) -> list[Diagnostic]:
    if not show_progress:
        return lint_targets(targets, options, jobs, cache, linted=linted)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("Linting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("lint", total=len(targets))
        return lint_targets(targets, options, jobs, cache,
                            on_progress=lambda n: progress.advance(task, n), linted=linted)


@dataclass
class FixOutcome:
    remaining: list[Diagnostic]  # the findings after fixing, sorted
    diffs: list[str]  # with ``--diff``: one unified diff per changed file
    fixed: int  # fixes applied (and written, unless ``--diff``)


def _fix(targets: list[Target], diagnostics: list[Diagnostic], options: LintOptions, unsafe: bool,
         write: bool, from_stdin: bool, quiet: bool, digests: dict[str, str | None]) -> FixOutcome:
    """Apply fixes file by file in rounds: apply the fixes that do not overlap, re-lint, apply
    again, until no applicable fix is left or ``FIX_ROUNDS``. Notebooks are fixed cell by cell.
    A file that changed on disk since it was linted is linted again first; one that changes
    while it is being fixed is not overwritten."""
    from evallint.cache import content_hash
    from evallint.fixes import (
        FileChanged, apply_fixes, apply_notebook_fixes, applicable, notebook_diff, unified_diff, with_bom,
        write_atomically,
    )

    by_path: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        by_path.setdefault(d.path, []).append(d)
    remaining: list[Diagnostic] = []
    diffs: list[str] = []
    fixed = 0
    projects: dict[Path, Project] = {}  # re-parse only the files whose text the fixes changed
    for target in targets:
        found = by_path.pop(target.path, [])
        if not any(applicable(d, unsafe) for d in found):
            remaining.extend(found)
            if from_stdin and write:
                sys.stdout.write(target.text or "")
            continue
        try:
            raw = target.file.read_bytes() if target.text is None else b""
            original = target.text if target.text is not None else decode(raw)
        except (OSError, UnicodeDecodeError) as error:
            _warn(f"{target.path}: cannot read the file again to fix it: {error}", quiet)
            remaining.extend(found)
            continue

        def relint(text: str, target: Target = target) -> list[Diagnostic]:
            relinted = replace(target, text=text)
            return lint_target(relinted, project_for(projects, relinted), options).diagnostics

        if target.text is None and digests.get(target.path) != content_hash(raw):
            found = relint(original)  # changed since it was linted: the findings are stale
        apply = apply_notebook_fixes if target.is_notebook else apply_fixes
        text, file_fixed, before = original, 0, found
        for _ in range(FIX_ROUNDS):
            result = apply(text, found, unsafe)
            if not result.applied:
                break
            file_fixed += len(result.applied)
            text = result.text
            found = relint(text)
        else:
            if any(applicable(d, unsafe) for d in found):
                _warn(f"{target.path}: fixes did not settle after {FIX_ROUNDS} rounds; "
                      "the remaining fixes were not applied", quiet)
        for refused in result.refused:
            _warn(f"{location(refused.path, refused.span.line, refused.span.column, refused.cell)}: "
                  f"the fix for {refused.code} was not applied: the fixed file would not parse", quiet)
        if text == original:
            remaining.extend(found)
            if from_stdin and write:
                sys.stdout.write(text)
            continue
        if not write:
            diffs.append((notebook_diff if target.is_notebook else unified_diff)(target.path, original, text))
        elif from_stdin:
            sys.stdout.write(text)
        else:
            try:
                write_atomically(target.file, with_bom(raw, text), expected=raw)
            except FileChanged:
                _warn(f"{target.path}: the file changed on disk while it was being fixed; "
                      "it was not written", quiet)
                remaining.extend(before)
                continue
        fixed += file_fixed
        remaining.extend(found)
    remaining.extend(d for found in by_path.values() for d in found)
    return FixOutcome(sorted(remaining, key=Diagnostic.sort_key), diffs, fixed)


def _warn(message: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"evallint: warning: {message}", err=True)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _add_noqa(targets: list[Target], diagnostics: list[Diagnostic], linted: dict[str, str | None],
              not_suppressible: frozenset[str], quiet: bool) -> bool:
    """``--add-noqa``: write a directive for each finding that a ``# noqa`` can silence; True
    when every such finding got one. A file is written only if it still holds the bytes linted."""
    from collections import Counter

    from evallint.add_noqa import add_to_notebook, add_to_source, wanted_codes
    from evallint.cache import content_hash
    from evallint.fixes import FileChanged, with_bom, write_atomically

    by_path: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        by_path.setdefault(d.path, []).append(d)
    left = Counter(d.code for d in diagnostics if d.code in not_suppressible)
    directives = files = 0
    problems: list[str] = []
    for target in targets:
        wanted = wanted_codes(by_path.get(target.path, ()), not_suppressible)
        if not wanted:
            continue
        try:
            raw = target.file.read_bytes()
            if content_hash(raw) != linted.get(target.path):
                raise FileChanged("it changed since it was linted")
            original = decode(raw)
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{target.path}: not edited: {getattr(error, 'strerror', None) or error}")
            continue
        outcome = add_to_notebook(original, wanted) if target.is_notebook else add_to_source(original, wanted)
        for key, reason in outcome.unplaced:
            where = f"cell {key[0]}:{key[1]}" if isinstance(key, tuple) else str(key)
            problems.append(f"{target.path}:{where}: no `# noqa` added: {reason}")
        if not outcome.directives:
            continue
        try:
            write_atomically(target.file, with_bom(raw, outcome.text), expected=raw)
        except FileChanged:
            problems.append(f"{target.path}: not edited: it changed on disk since it was read")
            continue
        except OSError as error:
            problems.append(f"{target.path}: not edited: {error.strerror or error}")
            continue
        directives += outcome.directives
        files += 1
    for problem in problems:
        click.echo(f"evallint: warning: {problem}", err=True)
    if not quiet:
        click.echo(f"Added {_plural(directives, 'noqa directive')} to {_plural(files, 'file')}.", err=True)
        if left:
            counts = ", ".join(f"{code}: {count}" for code, count in sorted(left.items()))
            click.echo(f"{_plural(sum(left.values()), 'finding')} left as is: not suppressible with "
                       f"`# noqa` ({counts}; EL000/EL001 are always reported, EL002 is fixed with `--fix`).",
                       err=True)
    return not problems


@main.command()
@click.argument("code")
def rule(code: str) -> None:
    """Show the documentation of a rule, by code (EL101) or name."""
    found = rule_by_code().get(code.upper()) or rule_by_name().get(code.lower())
    if found is None:
        raise UsageFailure(f"unknown rule {code!r} (see `evallint rules`)")
    text = rule_markdown(found)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        click.echo(text)


@main.command(name="rules")
def list_rules() -> None:
    """List every rule: code, name, default on/off, fixable, summary."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("Code", "Name", "Default", "Fix", "Summary"):
        table.add_column(column, overflow="fold")
    for item in all_rules():
        table.add_row(item.code, item.name, default_label(item), fix_label(item), item.summary)
    Console(width=max(120, Console().width), soft_wrap=False).print(table)
