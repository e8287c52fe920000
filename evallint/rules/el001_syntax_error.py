"""EL001: a file that cannot be decoded or parsed (emitted by the linter driver)."""

from evallint.rules.base import Rule


class SyntaxError_(Rule):
    code = "EL001"
    name = "syntax-error"
    summary = "The file could not be decoded or parsed, so it was not checked"
    what_it_does = "Reports a file that is not valid UTF-8 Python (or not a valid notebook), at the error's position."
    why_bad = "A file that does not parse cannot be checked; the rest of the run goes on."
    always_on = True
    emitted_by_driver = True
