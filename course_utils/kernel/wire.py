"""Plain data between the student's kernel and the referee: what crosses, and the strict decoder on the trusted side.

A value leaves the kernel as a JSON tree plus raw byte buffers: numbers, strings, booleans, None, lists,
tuples, dicts, NumPy arrays and scalars, torch tensors (bytes with dtype and shape, their gradient and
whether they carry an autograd graph), dtypes, sizes and devices. Anything else (a module, an optimizer,
a generator, a class instance) stays in the kernel and crosses as a *handle*: a number the referee can
name in later requests. Nothing is ever unpickled on the trusted side: `decode` rebuilds values from
the tree and refuses any node it does not know, any dtype outside the list, any size that does not add up.

`encode` runs inside the kernel, where the student can change it; that only changes what their own code
appears to return, which they could do honestly. Only `decode` has to hold.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

MAX_DEPTH = 32  # nesting of lists, tuples and dicts
MAX_ITEMS = 1_000_000  # elements of one list, tuple or dict, or of all strings together
MAX_TEXT = 1_000_000  # characters of one string
MAX_BYTES = 128 * 2**20  # raw bytes of all arrays in one message (the grader reads no more)
MAX_INT_DIGITS = 1000

# Element types that may cross, by their NumPy name (torch tensors use the same names).
DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
          "float64", "complex64", "complex128", "bfloat16"}


class WireError(ValueError):
    """A message from the kernel that is not plain data as this module defines it."""


# ---------------------------------------------------------------- encoding (runs in the kernel)

def _float(x: float) -> dict:
    return {"t": "float", "v": float.hex(float(x))}


def encode(value: Any, handle: Callable[[Any], dict]) -> tuple[Any, list[bytes]]:
    """`value` as (tree, buffers); `handle(obj)` turns an object that is not plain data into a handle node."""
    buffers: list[bytes] = []
    return _encode(value, handle, buffers, 0), buffers


def _encode(value: Any, handle: Callable[[Any], dict], buffers: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    torch = _torch()
    cls = f"{type(value).__module__}.{type(value).__qualname__}"
    if value is None:
        return {"t": "none"}
    if isinstance(value, np.generic) and value.dtype.name in DTYPES:  # before float: np.float64 is a float
        buffers.append(np.asarray(value).tobytes())
        return {"t": "npscalar", "dtype": value.dtype.name, "b": len(buffers) - 1, "cls": cls}
    if isinstance(value, bool):
        return {"t": "bool", "v": bool(value), "cls": cls}
    if isinstance(value, int):
        return {"t": "int", "v": str(int.__index__(value))[:MAX_INT_DIGITS + 1], "cls": cls}
    if isinstance(value, float):
        return {**_float(float.__float__(value)), "cls": cls}
    if isinstance(value, complex):
        return {"t": "complex", "re": float.hex(value.real), "im": float.hex(value.imag), "cls": cls}
    if isinstance(value, str):
        return {"t": "str", "v": str.__str__(value)[:MAX_TEXT], "cls": cls}
    if isinstance(value, (bytes, bytearray)):
        buffers.append(bytes(value))
        return {"t": "bytes", "b": len(buffers) - 1, "cls": cls}
    if torch is not None and isinstance(value, torch.Size):
        return {"t": "size", "v": [int(v) for v in value]}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {"t": kind, "v": [_encode(v, handle, buffers, depth + 1) for v in list(value)[:MAX_ITEMS]], "cls": cls}
    if isinstance(value, dict):
        items = list(dict.items(value))[:MAX_ITEMS]
        return {"t": "dict", "v": [[_encode(k, handle, buffers, depth + 1), _encode(v, handle, buffers, depth + 1)]
                                   for k, v in items], "cls": cls}
    if isinstance(value, np.ndarray) and value.dtype.name in DTYPES:
        array = np.ascontiguousarray(np.asarray(value))
        buffers.append(array.tobytes())
        return {"t": "ndarray", "dtype": array.dtype.name, "shape": list(array.shape), "b": len(buffers) - 1,
                "cls": cls}
    if torch is not None:
        if isinstance(value, torch.Tensor) and _tensor_dtype(value) in DTYPES and value.layout == torch.strided:
            return _encode_tensor(value, handle, buffers, depth, cls)
        if isinstance(value, torch.dtype) and str(value).removeprefix("torch.") in DTYPES:
            return {"t": "dtype", "v": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"t": "device", "v": str(value)}
    return handle(value)


def _encode_tensor(value, handle, buffers, depth, cls) -> dict:
    torch = _torch()
    data = torch.Tensor.detach(value).to("cpu").contiguous()
    if data.dtype == torch.bfloat16:
        raw = data.view(torch.int16).numpy().tobytes()
    else:
        raw = data.numpy().tobytes()
    buffers.append(raw)
    grad = value.grad if value.is_leaf else None
    return {"t": "tensor", "dtype": _tensor_dtype(value), "shape": list(value.shape), "b": len(buffers) - 1,
            "requires_grad": bool(value.requires_grad), "graph": value.grad_fn is not None,
            "parameter": isinstance(value, torch.nn.Parameter), "device": str(value.device),
            "grad": None if grad is None else _encode(grad, handle, buffers, depth + 1), "cls": cls}


def _tensor_dtype(tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _torch():
    import sys

    return sys.modules.get("torch")


# ---------------------------------------------------------------- decoding (runs in the referee)

class _Budget:
    def __init__(self, buffers: list[bytes]):
        self.buffers = buffers
        self.items = 0

    def count(self, n: int) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise WireError("too many items in one message")

    def buffer(self, node: dict) -> bytes:
        index = node.get("b")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.buffers):
            raise WireError("a value points at a buffer that does not exist")
        return self.buffers[index]


def decode(tree: Any, buffers: list[bytes], handle: Callable[[int, str, list[str]], Any]) -> Any:
    """Rebuild a value from `encode`'s output; `handle(id, type, mro)` makes the referee's proxy for a handle.

    Raises WireError for anything that is not exactly what `encode` produces for plain data.
    """
    if sum(len(b) for b in buffers) > MAX_BYTES:
        raise WireError(f"more than {MAX_BYTES // 2**20} MiB of array data in one answer")
    return _decode(tree, _Budget([bytes(b) for b in buffers]), handle, 0)


def _node(tree: Any) -> tuple[dict, str]:
    if not isinstance(tree, dict) or not isinstance(tree.get("t"), str):
        raise WireError("malformed value")
    return tree, tree["t"]


def _str(value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WireError("malformed string")
    return value


def _hexfloat(value: Any) -> float:
    try:
        return float.fromhex(_str(value, 64))
    except (ValueError, OverflowError):
        raise WireError("malformed number") from None


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 32 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40 for v in value):
        raise WireError("malformed shape")
    return tuple(value)


def _dtype(value: Any) -> str:
    if value not in DTYPES:
        raise WireError(f"an array of a type that may not cross: {str(value)[:40]}")
    return value


def _decode(tree: Any, budget: _Budget, handle, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    node, kind = _node(tree)
    budget.count(1)
    if kind == "none":
        return None
    if kind == "bool":
        if not isinstance(node.get("v"), bool):
            raise WireError("malformed boolean")
        return node["v"]
    if kind == "int":
        text = _str(node.get("v"), MAX_INT_DIGITS + 1)
        if not (text.lstrip("-").isdigit() and text.isascii()):
            raise WireError("malformed integer")
        return int(text)
    if kind == "float":
        return _hexfloat(node.get("v"))
    if kind == "complex":
        return complex(_hexfloat(node.get("re")), _hexfloat(node.get("im")))
    if kind == "str":
        text = _str(node.get("v"))
        budget.count(len(text) // 64)
        return text
    if kind == "bytes":
        return budget.buffer(node)
    if kind in ("list", "tuple", "size"):
        items = node.get("v")
        if not isinstance(items, list):
            raise WireError("malformed sequence")
        budget.count(len(items))
        if kind == "size":
            import torch

            return torch.Size(_shape(items))
        values = [_decode(v, budget, handle, depth + 1) for v in items]
        return tuple(values) if kind == "tuple" else values
    if kind == "dict":
        items = node.get("v")
        if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
            raise WireError("malformed dict")
        budget.count(len(items))
        out = {}
        for key, value in items:
            key = _decode(key, budget, handle, depth + 1)
            try:
                hash(key)
            except TypeError:
                raise WireError("a dict key that cannot be a key") from None
            out[key] = _decode(value, budget, handle, depth + 1)
        return out
    if kind in ("ndarray", "npscalar"):
        dtype = np.dtype(_dtype(node.get("dtype"))) if node.get("dtype") != "bfloat16" else None
        if dtype is None:
            raise WireError("bfloat16 crosses only as a torch tensor")
        shape = _shape(node.get("shape")) if kind == "ndarray" else ()
        raw = budget.buffer(node)
        if len(raw) != dtype.itemsize * math.prod(shape):
            raise WireError("array bytes do not match its shape")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        return array if kind == "ndarray" else array[()]
    if kind == "tensor":
        return _decode_tensor(node, budget, handle, depth)
    if kind == "dtype":
        import torch

        return getattr(torch, _dtype(node.get("v")))
    if kind == "device":
        import torch

        try:
            return torch.device(_str(node.get("v"), 32))
        except RuntimeError:
            raise WireError("malformed device") from None
    if kind == "handle":
        ident, type_name, mro = node.get("id"), node.get("type"), node.get("mro")
        if not isinstance(ident, int) or isinstance(ident, bool) or not isinstance(mro, list):
            raise WireError("malformed handle")
        return handle(ident, _str(type_name, 300), [_str(m, 300) for m in mro[:64]])
    raise WireError(f"a value of a kind that may not cross: {kind[:40]}")


def _decode_tensor(node: dict, budget: _Budget, handle, depth: int):
    import torch

    name = _dtype(node.get("dtype"))
    shape = _shape(node.get("shape"))
    raw = budget.buffer(node)
    dtype = getattr(torch, name)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != itemsize * math.prod(shape):
        raise WireError("tensor bytes do not match its shape")
    if name == "bfloat16":
        data = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16)
    else:
        data = torch.from_numpy(np.frombuffer(raw, dtype=np.dtype(name)).copy())
    data = data.reshape(shape)
    flags = [node.get(k) for k in ("requires_grad", "graph", "parameter")]
    if not all(isinstance(f, bool) for f in flags):
        raise WireError("malformed tensor flags")
    requires_grad, graph, parameter = flags
    grad = node.get("grad")
    grad = None if grad is None else _decode(grad, budget, handle, depth + 1)
    if grad is not None and (not isinstance(grad, torch.Tensor) or grad.shape != data.shape):
        raise WireError("a gradient that does not match its tensor")
    differentiable = data.is_floating_point() or data.is_complex()
    if parameter:
        out = torch.nn.Parameter(data, requires_grad=requires_grad and differentiable)
    else:
        out = data.requires_grad_(requires_grad and differentiable)
        if graph and out.requires_grad:
            out = out.clone()  # carries an autograd graph, as the kernel's tensor did
    if grad is not None and out.is_leaf:
        out.grad = grad.to(out.dtype) if differentiable else None
    return out
