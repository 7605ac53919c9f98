"""Does plain data cross from a kernel to the referee intact, and is everything else refused on arrival?"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils.kernel import wire
from course_utils.kernel.wire import WireError, decode, encode


def _no_handles(obj):
    raise AssertionError(f"{obj!r} should have crossed as plain data")


def _round_trip(value):
    tree, buffers = encode(value, _no_handles)
    return decode(tree, buffers, lambda *a: ("handle", *a))


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 2**100, 1.5, -0.0, 1e-300, "naïve ✓", b"\x00\xff",
                                   (1, "a"), [1, [2, (3,)]], {"a": 1, 2: [3.0], (1, 2): None}, 3 + 4j])
def test_plain_values_cross_unchanged_with_their_types(value):
    got = _round_trip(value)
    assert got == value and type(got) is type(value)


def test_special_floats_survive():
    got = _round_trip([math.inf, -math.inf, math.nan])
    assert got[:2] == [math.inf, -math.inf] and math.isnan(got[2])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8", "bool", "complex64", "float16"])
def test_arrays_keep_dtype_shape_and_values(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    got = _round_trip(array[:, ::2])  # a strided view crosses as its values
    assert got.dtype == array.dtype and got.shape == (2, 2, 4) and np.array_equal(got, array[:, ::2])
    scalar = _round_trip(array.reshape(-1)[3])
    assert isinstance(scalar, np.generic) and scalar.dtype == array.dtype


def test_tensors_keep_dtype_gradient_graph_and_parameter_flags():
    leaf = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    (leaf ** 2).sum().backward()
    got = _round_trip({"leaf": leaf, "graph": leaf * 2, "plain": torch.arange(4),
                       "param": torch.nn.Parameter(torch.ones(2)), "half": torch.ones(2, dtype=torch.bfloat16)})
    assert got["leaf"].dtype == torch.float64 and got["leaf"].requires_grad and got["leaf"].is_leaf
    assert torch.equal(got["leaf"].grad, 2 * leaf.detach())
    assert got["graph"].grad_fn is not None  # it carried an autograd graph in the kernel
    assert got["plain"].dtype == torch.int64 and not got["plain"].requires_grad
    assert isinstance(got["param"], torch.nn.Parameter)
    assert got["half"].dtype == torch.bfloat16 and torch.equal(got["half"].float(), torch.ones(2))
    assert _round_trip(torch.Size([2, 3])) == torch.Size([2, 3]) and _round_trip(torch.float32) is torch.float32


def test_subclasses_arrive_as_their_plain_base_type():
    class Yes(int):
        def __eq__(self, other):
            return True

    class Always(np.ndarray):
        def __eq__(self, other):
            return np.True_

    got = _round_trip([Yes(0), np.zeros(3).view(Always)])
    assert type(got[0]) is int and got[0] != 3
    assert type(got[1]) is np.ndarray and not np.array_equal(got[1], np.ones(3))


def test_anything_else_becomes_a_handle():
    module = torch.nn.Linear(2, 2)
    tree, buffers = encode({"model": module, "f": print}, lambda obj: {"t": "handle", "id": id(obj) % 1000,
                                                                        "type": type(obj).__qualname__, "mro": []})
    got = decode(tree, buffers, lambda ident, type_name, mro: ("handle", type_name))
    assert got == {"model": ("handle", "Linear"), "f": ("handle", "builtin_function_or_method")}


@pytest.mark.parametrize("tree, buffers, why", [
    ({"t": "pickle", "v": "cos\nsystem\n"}, [], "kind"),
    ({"t": "ndarray", "dtype": "object", "shape": [1], "b": 0}, [b"x" * 8], "type"),
    ({"t": "ndarray", "dtype": "float64", "shape": [3], "b": 0}, [b"x" * 8], "shape"),
    ({"t": "ndarray", "dtype": "float64", "shape": [1], "b": 5}, [b"x" * 8], "buffer"),
    ({"t": "tensor", "dtype": "float32", "shape": [-1], "b": 0, "requires_grad": False, "graph": False,
      "parameter": False}, [b""], "shape"),
    ({"t": "int", "v": "1e9"}, [], "integer"),
    ({"t": "float", "v": "not a number"}, [], "number"),
    ({"t": "dict", "v": [[{"t": "list", "v": []}, {"t": "none"}]]}, [], "key"),
    ("just a string", [], "malformed"),
    ({"t": "handle", "id": "1", "type": "x", "mro": []}, [], "handle"),
])
def test_anything_but_plain_data_is_refused(tree, buffers, why):
    with pytest.raises(WireError, match=why):
        decode(tree, buffers, lambda *a: None)


def test_oversized_and_overly_deep_answers_are_refused():
    deep = {"t": "none"}
    for _ in range(wire.MAX_DEPTH + 2):
        deep = {"t": "list", "v": [deep]}
    with pytest.raises(WireError, match="deeply"):
        decode(deep, [], lambda *a: None)
    with pytest.raises(WireError, match="MiB"):
        decode({"t": "bytes", "b": 0}, [b"\0" * (wire.MAX_BYTES + 1)], lambda *a: None)
