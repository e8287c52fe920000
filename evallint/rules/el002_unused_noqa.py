"""EL002: a ``# noqa: ELxxx`` comment that suppresses nothing (opt-in; emitted by the driver)."""

from evallint.diagnostics import Applicability, Severity
from evallint.rules.base import Rule


class UnusedNoqa(Rule):
    code = "EL002"
    name = "unused-noqa"
    summary = "A `# noqa` comment names an evallint code that has no finding on its line"
    what_it_does = ("Reports each evallint code in a `# noqa: ...` comment that suppressed nothing on "
                    "its line. Bare `# noqa` comments and other tools' codes are left alone.")
    why_bad = ("A stale suppression hides the next real finding on that line, and readers take it as "
               "a sign that something there needs silencing.")
    fix_safety = "Safe: only the unused codes (or the whole comment) are removed."
    fix_applicability = Applicability.SAFE
    severity = Severity.WARNING
    default_enabled = False
    emitted_by_driver = True
    VALID = (
        "import torch\nimport torchvision\n\nmodel = torchvision.models.resnet18()\n"
        "with torch.no_grad():\n"
        "    features = model(batch)  # noqa: EL103 - calibration wants batch statistics\n",
    )
    INVALID = (
        "import torch\nimport torchvision\n\nmodel = torchvision.models.resnet18()\n"
        "model.eval()\nwith torch.no_grad():\n"
        "    predictions = model(batch)  # noqa: EL103  # EL002\n",
    )
