"""How the report shows a value: which values are numbers, config values and numbers as text, and
text clipped to a width. Shared by the table, the figures and the HTML page."""

from __future__ import annotations

import json
import math
from typing import Any, TypeGuard


def is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v) if isinstance(v, list | dict) else str(v)


def num(v: Any, spec: str) -> str:
    return format(v, spec) if is_number(v) else "-"


def clip(text: str, width: int, keep_end: bool = False) -> str:
    if len(text) <= width:
        return text
    return "..." + text[-(width - 3) :] if keep_end else text[: width - 3] + "..."
