"""rknn_core.errors.first_few: the shortened lists that error messages name (unsupported ops, layers ...)."""

from rknn_core.errors import first_few


def test_short_lists_are_given_whole():
    assert first_few(["'Mish' at node 'a'", "'Swish' at node 'b'"]) == "'Mish' at node 'a', 'Swish' at node 'b'"
    assert first_few([f"op{i}" for i in range(8)]) == ", ".join(f"op{i}" for i in range(8))


def test_long_lists_say_how_many_more():
    assert first_few([f"op{i}" for i in range(11)]) == "op0, op1, op2, op3, op4, op5, op6, op7 and 3 more"
    assert first_few(list("abcdefg"), 6) == "a, b, c, d, e, f and 1 more"
