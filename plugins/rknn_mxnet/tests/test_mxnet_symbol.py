"""Reading the symbol JSON and its attribute strings; MXNet's Reshape codes on the examples of MXNet's own
documentation (``mx.sym.Reshape``)."""

from __future__ import annotations

import pytest

from rknn_core.errors import RknnError
from rknn_mxnet import attr_values as av
from rknn_mxnet.ops_tensor import legacy_target_shape, reshape_shape
from rknn_mxnet.symbol import parse_symbol


@pytest.mark.parametrize(("text", "value"), [("(3, 3)", (3, 3)), ("[1,2]", (1, 2)), ("3", (3,)), ("(2,)", (2,)),
                                             ("()", ()), ("(1L, 2L)", (1, 2)), ("(2.0, 3)", (2, 3))])
def test_integer_tuples(text, value):
    assert av.ints({"k": text}, "k") == value


def test_scalars_booleans_choices_and_defaults():
    attrs = {"b": "True", "f": "0", "n": "1e-05", "i": "-4", "none": "None", "mode": "MAX", "opt": "(None, 2)"}
    assert av.boolean(attrs, "b", False) is True and av.boolean(attrs, "f", True) is False
    assert av.boolean(attrs, "absent", True) is True
    assert av.number(attrs, "n") == 1e-05 and av.integer(attrs, "i") == -4
    assert av.opt_integer(attrs, "none") is None and av.integer(attrs, "none", 7) == 7
    assert av.choice(attrs, "mode", ("max", "avg"), "avg") == "max"
    assert av.opt_ints(attrs, "opt") == (None, 2)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: av.ints({"kernel": "(3, x)"}, "kernel"), r"attribute kernel='\(3, x\)' is not a number"),
    (lambda: av.integer({"num_filter": "2.5"}, "num_filter"), "is not an integer"),
    (lambda: av.boolean({"no_bias": "maybe"}, "no_bias", False), "is not a boolean"),
    (lambda: av.choice({"pool_type": "median"}, "pool_type", ("max", "avg"), "max"), "is not one of max, avg"),
    (lambda: av.integer({}, "num_hidden"), "needs the attribute 'num_hidden'"),
    (lambda: av.number({"eps": "nan"}, "eps"), "is not a finite number"),
])
def test_bad_attributes_name_the_attribute(call, message):
    with pytest.raises(RknnError, match=message):
        call()


def test_old_files_keep_parameters_under_param_and_attr():
    """MXNet < 0.9.5 wrote the op parameters as 'param' and annotations as 'attr', and two-value entries."""
    doc = {"nodes": [{"op": "null", "name": "data", "inputs": []},
                     {"op": "null", "name": "w", "attr": {"__shape__": "(4, 3, 1, 1)"}, "inputs": []},
                     {"op": "Convolution", "name": "c", "param": {"kernel": "(1,1)", "num_filter": "4"},
                      "attr": {"__lr_mult__": "2"}, "inputs": [[0, 0], [1, 0]]}],
           "arg_nodes": [0, 1], "heads": [[2, 0]]}
    sym = parse_symbol(doc, "old.json")
    conv = sym.nodes[2]
    assert conv.attrs == {"kernel": "(1,1)", "num_filter": "4"}
    assert conv.annotations == {"__lr_mult__": "2"} and conv.inputs == ((0, 0), (1, 0))
    assert sym.nodes[1].annotations == {"__shape__": "(4, 3, 1, 1)"} and sym.heads == ((2, 0),)
    assert sym.version is None


@pytest.mark.parametrize(("doc", "message"), [
    ([], "not an MXNet symbol file"),
    ({"nodes": [{"op": "null", "name": "x", "inputs": []}], "heads": []}, "has no heads"),
    ({"nodes": [{"op": "relu", "name": "r", "inputs": [[1, 0, 0]]}], "heads": [[0, 0, 0]]},
     r"node 0 'r' \(relu\) input \[1, 0, 0\] names node 1"),
    ({"nodes": [{"op": "null", "inputs": []}], "heads": [[0, 0, 0]]}, "node 0 is not an object with 'op' and 'name'"),
    ({"nodes": [{"op": "null", "name": "x", "inputs": []}], "heads": [["a", 0, 0]]}, "is not a .node, output"),
])
def test_malformed_symbols(doc, message):
    with pytest.raises(RknnError, match=message):
        parse_symbol(doc, "m.json")


# MXNet's documentation of Reshape, example by example
@pytest.mark.parametrize(("shape", "spec", "reverse", "out"), [
    ((2, 3, 4), (4, 0, 2), False, (4, 3, 2)),
    ((2, 3, 4), (2, 0, 0), False, (2, 3, 4)),
    ((2, 3, 4), (6, 1, -1), False, (6, 1, 4)),
    ((2, 3, 4), (3, -1, 8), False, (3, 1, 8)),
    ((2, 3, 4), (-1,), False, (24,)),
    ((2, 3, 4), (-2,), False, (2, 3, 4)),
    ((2, 3, 4), (2, -2), False, (2, 3, 4)),
    ((2, 3, 4), (-2, 1, 1), False, (2, 3, 4, 1, 1)),
    ((2, 3, 4), (-3, 4), False, (6, 4)),
    ((2, 3, 4, 5), (-3, -3), False, (6, 20)),
    ((2, 3, 4), (0, -3), False, (2, 12)),
    ((2, 3, 4), (-3, -2), False, (6, 4)),
    ((2, 3, 4), (-4, 1, 2, -2), False, (1, 2, 3, 4)),
    ((2, 3, 4), (2, -4, -1, 3, -2), False, (2, 1, 3, 4)),
    ((10, 5, 4), (-1, 0), False, (40, 5)),
    ((10, 5, 4), (-1, 0), True, (50, 4)),
])
def test_reshape_codes_as_mxnet_documents_them(shape, spec, reverse, out):
    assert reshape_shape(shape, spec, reverse) == out


@pytest.mark.parametrize(("spec", "message"), [
    ((-1, -1), "more than one -1"), ((5, -1), "cannot hold"), ((0, 0, 0, 0), "needs input axis 3"),
    ((-4, -1, -1, 4), "the two sizes after -4"), ((-4, 5, -1, -2), "does not fit"), ((7, 7), "does not hold"),
    ((-5,), "invalid code -5"), ((-4, 2), "must be followed by two sizes"),
])
def test_bad_reshape_codes(spec, message):
    with pytest.raises(RknnError, match=message):
        reshape_shape((2, 3, 4), spec)


def test_legacy_target_shape():
    assert legacy_target_shape((2, 3, 4), (0, 4), keep_highest=False) == (6, 4)
    assert legacy_target_shape((2, 3, 4), (7, 0), keep_highest=True) == (2, 12)
    with pytest.raises(RknnError, match="does not hold"):
        legacy_target_shape((2, 3, 4), (5, 5), keep_highest=False)
