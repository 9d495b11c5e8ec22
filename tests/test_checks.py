"""The shared argument checks: one message shape for every int option of the package."""

import pytest

from supcon.checks import check_int, first_line, is_int


@pytest.mark.parametrize("value, kwargs, message", [
    (0, {}, "k must be >= 1, got 0"),
    (True, {}, "k must be an int >= 1, got True"),
    (2.0, {}, "k must be an int >= 1, got 2.0"),
    ("3", {}, "k must be an int >= 1, got '3'"),
    (1, {"low": 2}, "k must be >= 2, got 1"),
    (0, {"allow_none": True}, "k must be None or >= 1, got 0"),
])
def test_check_int_names_the_argument_the_value_and_the_range(value, kwargs, message):
    with pytest.raises(ValueError) as caught:
        check_int("k", value, **kwargs)
    assert str(caught.value) == message


def test_valid_values_pass():
    check_int("k", 1)
    check_int("k", 0, low=0)
    check_int("k", None, allow_none=True)
    assert is_int(5) and not is_int(False) and not is_int(0) and is_int(0, low=0)


def test_first_line():
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError("\n  ")) == "ValueError"
