"""Argument checks shared by every verb and view.

Each check takes the value and the argument's name as the caller's signature
spells it, and raises with a message of one form: the name, what was
expected, what was received::

    x_range: expected low < high; got (5.0, 2.0)

A check returns the value normalised (a Python ``int``, a ``(float, float)``
pair, ...), so callers write ``width = check_size(width, "width")``.  Checks
that belong to one family only (a histogram's bins, a watch's optimizer) stay
with that family; what two modules need lives here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .kernels import window_problem

__all__ = ["MAX_SIDE", "check_size", "check_range", "check_flag", "check_choice",
           "check_smoothing"]

#: the largest canvas side in pixels
MAX_SIDE = 32768


def check_size(value, name: str) -> int:
    """A canvas side: a positive integer no larger than :data:`MAX_SIDE`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive integer; got {value!r} "
                        f"({type(value).__name__})")
    if not 1 <= int(value) <= MAX_SIDE:
        raise ValueError(f"{name}: expected a positive integer no larger than {MAX_SIDE}; "
                         f"got {int(value)}")
    return int(value)


def check_range(value, name: str, pixels: int | None = None) -> tuple[float, float]:
    """A data range: two finite numbers, low < high, a width ``high - low`` that is finite.

    With ``pixels``, also ``(high - low) * pixels`` finite: the pixel of a
    value is ``floor((v - low) * pixels / (high - low))`` in float64, and that
    product must not overflow inside the window.  A window whose width
    overflows would otherwise send the kernels' index arithmetic to INT64_MIN.
    """
    try:
        lo, hi = value
        lo, hi = float(lo), float(hi)
    except OverflowError:      # an int beyond float64 (its text may be huge: not shown)
        raise ValueError(f"{name}: expected finite bounds; got a number beyond the float64 "
                         f"range") from None
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a (low, high) pair of numbers; got {value!r}") from None
    problem = window_problem(lo, hi, pixels)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return (lo, hi)


def check_flag(value, name: str) -> bool:
    """``True`` or ``False`` (a NumPy bool too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False; got {value!r}")
    return bool(value)


def check_choice(value, name: str, choices: Sequence[str], *, quoted: bool = True) -> str:
    """One of the option strings ``choices``.

    The message lists the choices as Python strings (``'linear', 'log'``), or
    as bare words with ``quoted=False`` (the views' style: ``linear, log``).
    """
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(map(repr, choices)) if quoted else ", ".join(choices)
        raise ValueError(f"{name}: expected one of {listed}; got {value!r}")
    return value


def check_smoothing(value, name: str = "smoothing") -> float:
    """An exponential smoothing weight in [0, 1) (0 = no smoothing)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                    np.floating)):
        raise TypeError(f"{name}: expected a number in [0, 1); got {value!r} "
                        f"({type(value).__name__})")
    w = float(value)
    if not 0.0 <= w < 1.0:  # NaN fails this too
        raise ValueError(f"{name}: expected a weight in [0, 1) (0 = no smoothing); "
                         f"got {w!r}")
    return w
