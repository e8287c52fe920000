"""EL000: an unexpected exception while analysing one file (emitted by the linter driver)."""

from evallint.rules.base import Rule


class InternalError(Rule):
    code = "EL000"
    name = "internal-error"
    summary = "evallint failed on this file; the other files were still linted"
    what_it_does = (
        "Reports an unexpected exception raised while analysing one file, naming the exception. "
        "The run goes on with the other files."
    )
    why_bad = (
        "The file was not checked, so mistakes in it can go unnoticed. This is a bug in evallint: "
        "please report it with the file (or a reduced copy)."
    )
    always_on = True
    emitted_by_driver = True
