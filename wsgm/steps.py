"""A step setting: sampling steps at every scale (``8``) or per scale 0..J (``[8, 8, 32]``).

One value type for every place that reads a setting — the config's ``sampling.steps`` entries,
the path label of a file (``steps8``, ``steps8-8-32``), the CLI's ``--steps`` — so that parsing,
labels, per-scale lists and costs are computed once:

    >>> Steps("8-8-32").per_scale(2), Steps(8).per_scale(2), Steps([8, 8, 32]).label
    ([8, 8, 32], [8, 8, 8], '8-8-32')
"""

from __future__ import annotations

import numbers
import re

_LABEL = re.compile(r"[0-9]+(-[0-9]+)*")


def _count(value, setting) -> int:
    """One step count: an integer (not a bool, not a float such as 30.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"step setting {setting!r}: {value!r} is not an integer number of steps. "
                         "Fix: give an integer (8), a list of integers ([8, 8, 32]) or a label ('8-8-32')")
    return int(value)


class Steps:
    """An immutable step setting: one count for all scales, or a per-scale list (scale 0 first).

    ``Steps(8)``, ``Steps("8")``, ``Steps([8, 8, 32])``, ``Steps("8-8-32")`` or another ``Steps``.
    Equal settings are equal and hash alike (``Steps("8") == Steps(8)``); a one-entry list stays a
    list (``Steps([8]).spec_value == [8]``), as the specs have always recorded it.
    """

    __slots__ = ("_value",)

    def __init__(self, setting: int | str | list[int] | tuple[int, ...] | Steps) -> None:
        if isinstance(setting, Steps):
            value = setting._value
        elif isinstance(setting, str):
            if not _LABEL.fullmatch(setting.strip()):
                raise ValueError(f"step setting {setting!r} is not a step label. Fix: use an integer ('8') "
                                 "or integers joined by '-' per scale 0..J ('8-8-32')")
            parts = tuple(int(p) for p in setting.strip().split("-"))
            value = parts[0] if len(parts) == 1 else parts
        elif isinstance(setting, (list, tuple)):
            if not setting:
                raise ValueError(f"step setting {setting!r}: a per-scale list needs one entry per scale 0..J")
            value = tuple(_count(s, setting) for s in setting)
        else:
            value = _count(setting, setting)
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name, value):
        raise AttributeError("Steps is immutable")

    @property
    def spec_value(self) -> int | list[int]:
        """The setting as the specs record it (and hash): the int, or the per-scale list."""
        return self._value if isinstance(self._value, int) else list(self._value)

    @property
    def label(self) -> str:
        """The path label: "8", or "8-8-32" for a per-scale list (scales 0..J)."""
        return str(self._value) if isinstance(self._value, int) else "-".join(map(str, self._value))

    @property
    def is_per_scale(self) -> bool:
        return not isinstance(self._value, int)

    @property
    def max(self) -> int:
        """The most steps at any one scale."""
        return self._value if isinstance(self._value, int) else max(self._value)

    @property
    def cost(self) -> int:
        """The count, or the sum of a per-scale list: the order in which settings are compared
        ("the costliest setting") without knowing J."""
        return self._value if isinstance(self._value, int) else sum(self._value)

    def per_scale(self, J: int) -> list[int]:
        """Steps of models 0..J: the count at every scale, or the list, which must have J+1 entries."""
        if isinstance(self._value, int):
            return [self._value] * (J + 1)
        if len(self._value) != J + 1:
            raise ValueError(f"a per-scale step list needs J+1 = {J + 1} entries, got {len(self._value)} "
                             f"({self.label})")
        return list(self._value)

    def total(self, J: int) -> int:
        """Steps summed over scales 0..J (network evaluations per sample for one-step samplers)."""
        return sum(self.per_scale(J))

    def __eq__(self, other) -> bool:
        return isinstance(other, Steps) and self._value == other._value

    def __hash__(self) -> int:
        return hash(("Steps", self._value))

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"Steps({self.label!r})"
