"""dlviz_gpu.checks: the shared argument checks name the argument they were given."""

import numpy as np
import pytest

from dlviz_gpu.checks import (MAX_SIDE, check_choice, check_flag, check_range, check_size,
                              check_smoothing)


def test_size():
    assert check_size(np.int16(7), "width") == 7 and type(check_size(np.int16(7), "w")) is int
    with pytest.raises(TypeError, match=r"^height: expected a positive integer; got True"):
        check_size(True, "height")
    with pytest.raises(ValueError, match=f"^w: expected a positive integer no larger than "
                                         f"{MAX_SIDE}; got 0"):
        check_size(0, "w")


def test_range():
    assert check_range((np.float32(1), 2), "x_range") == (1.0, 2.0)
    with pytest.raises(ValueError, match=r"^x_range: expected low < high; got \(5.0, 2.0\)"):
        check_range((5, 2), "x_range")
    with pytest.raises(TypeError, match="^y_range: expected a \\(low, high\\) pair"):
        check_range("ab", "y_range")
    with pytest.raises(ValueError, match="^r: expected finite bounds; got a number beyond"):
        check_range((0, 10**400), "r")
    # the width times the pixels must stay finite (the kernels' index arithmetic)
    assert check_range((-1e307, 1e307), "r") == (-1e307, 1e307)
    with pytest.raises(ValueError, match="^window: "):
        check_range((-1e307, 1e307), "window", 100)
    with pytest.raises(ValueError, match="^window: "):
        check_range((-1e308, 1e308), "window")          # the width itself overflows


def test_flag():
    assert check_flag(np.bool_(True), "logy") is True
    with pytest.raises(TypeError, match="^sort: expected True or False; got 1$"):
        check_flag(1, "sort")


def test_choice_lists_the_choices_quoted_or_as_words():
    assert check_choice("log", "scale", ("linear", "log")) == "log"
    with pytest.raises(ValueError, match="^scale: expected one of 'linear', 'log'; got 'ln'$"):
        check_choice("ln", "scale", ("linear", "log"))
    with pytest.raises(ValueError, match="^norm: expected one of linear, log; got None$"):
        check_choice(None, "norm", ("linear", "log"), quoted=False)


def test_smoothing():
    assert check_smoothing(0) == 0.0 and check_smoothing(np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"^alpha: expected a weight in \[0, 1\)"):
        check_smoothing(1.0, "alpha")
    with pytest.raises(ValueError, match=r"^smoothing: expected a weight in \[0, 1\)"):
        check_smoothing(float("nan"))
    with pytest.raises(TypeError, match=r"^smoothing: expected a number in \[0, 1\); got '0.5'"):
        check_smoothing("0.5")
