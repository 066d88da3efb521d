"""The order of `/list_models`, which is the order of the chat page's model picker.

Rule (one function, `model_sort_key`):
1. "Pro" models first: a name with `Pro` as one of its `-`/`_`/`.`/space separated parts.
2. Then InternVL-family models (the name contains `InternVL`, any case), largest parameter count
   first. The count is the first `<N>B` part of the name, N an integer or decimal
   (`InternVL3_5-241B-A28B` is 241B; `A28B`, the active parameters, is not a size part).
   Family members without a size come after the sized ones.
3. Then every other model, alphabetically.
Ties (same group and size) are ordered case-insensitively by name, then by the exact name, so
the order never depends on the order workers registered in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PARTS = re.compile(r"[-_.\s]+")
# A size is digits (optionally with a decimal part) directly followed by B, standing alone
# between separators or the name's ends. The lookbehind keeps `A28B` and `8x7B` out.
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")

PRO_GROUP = 0
INTERNVL_GROUP = 1
OTHER_GROUP = 2


def parameter_count_b(model_name: str) -> float | None:
    """Billions of parameters named in a model name, or None when it names none."""
    match = _SIZE.search(model_name)
    return float(match.group(1)) if match else None


def is_pro_model(model_name: str) -> bool:
    return "pro" in (part.lower() for part in _PARTS.split(model_name))


def is_internvl_model(model_name: str) -> bool:
    return "internvl" in model_name.lower()


def model_sort_key(model_name: str) -> tuple[int, int, float, str, str]:
    """Sort key: (group, sized-first, -size, name ignoring case, name)."""
    size = parameter_count_b(model_name)
    if is_pro_model(model_name):
        group = PRO_GROUP
    elif is_internvl_model(model_name):
        group = INTERNVL_GROUP
    else:
        group = OTHER_GROUP
        size = None  # other models are alphabetical, whatever their size
    sized_first = 0 if size is not None else 1
    return (group, sized_first, -(size or 0.0), model_name.lower(), model_name)


def sort_models(model_names: Iterable[str]) -> list[str]:
    """Unique model names in picker order."""
    return sorted(set(model_names), key=model_sort_key)
