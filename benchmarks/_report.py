"""How every benchmark hands over its result: the JSON on stdout, and the same text in ``--out``."""

from __future__ import annotations

import json
from pathlib import Path


def emit(doc, out: str | None = None, indent: int = 1) -> None:
    """Print ``doc`` as JSON; also write it to ``out`` (parent folders created) when given."""
    text = json.dumps(doc, indent=indent)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
