"""Terraform's own error diagnostics, read from its output: the cause an engine error names.

Terraform prints each problem as a diagnostic block, ``Error: <summary>`` then its
detail, on stderr (with colour, framed by ``╷ │ ╵``). A failed command's last lines are
often something else (a warning, the CLI config's complaints), so the cause is looked
for, not assumed to be the tail. The text given is already scrubbed of the config's
secrets; this only picks lines out of it.
"""

from __future__ import annotations

MAX_LINES = 15  # of the diagnostics an error message quotes; the whole output is kept elsewhere
MAX_CHARS = 2000
_FRAME = "╷│╵"


def _plain(line: str) -> str:
    """A line without the diagnostic frame Terraform draws with colour on."""
    stripped = line.lstrip()
    if stripped[:1] in _FRAME:
        return stripped[1:].strip()
    return line.rstrip()


def terraform_errors(output: str, max_lines: int = MAX_LINES) -> str:
    """The ``Error:`` blocks of Terraform's output (blank lines dropped, at most
    ``max_lines`` lines and ``MAX_CHARS`` characters); failing any, its last three lines."""
    picked: list[str] = []
    keep = False
    for raw in output.splitlines():
        line = _plain(raw)
        if line.startswith("Error:"):
            keep = True
        elif line.startswith(("Warning:", "There are some problems with the CLI configuration")):
            keep = False
        elif raw.lstrip()[:1] == "╵":  # the end of a framed block
            keep = False
        if keep and line.strip():
            picked.append(line.strip() if line.startswith("Error:") else "  " + line.strip())
    if not picked:
        picked = [line.strip() for line in output.splitlines() if line.strip()][-3:]
    cut = len(picked) > max_lines
    text = "\n".join(picked[:max_lines])
    if len(text) > MAX_CHARS:
        text, cut = text[:MAX_CHARS], True
    return text + ("\n  ..." if cut else "")
