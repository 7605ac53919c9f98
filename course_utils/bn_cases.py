"""The fixed cases of bn_from_scratch's visible checks: inputs, expected results and typical slips' results, as data.

The visible checks compare a student's answer with these stored results, so the course ships no reference that
could answer an exercise; the hidden tests draw fresh cases from the instructor's oracles. The data
(`bn_cases_data.DATA`) is generated from those oracles by the instructor's `bn_cases` script, and a test proves
that it equals what they compute now.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import zlib
from typing import Any

import numpy as np

SEP = "/"


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts and lists of arrays, numbers, booleans and strings as one flat dict of arrays, keyed by path."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        if not isinstance(tree, (np.ndarray, np.generic, bool, int, float, str)):
            raise TypeError(f"{prefix or 'the data'} is a {type(tree).__name__}; only arrays, numbers, booleans "
                            "and strings (in dicts and lists) can be stored")
        return {prefix: np.asarray(tree)}
    flat: dict[str, np.ndarray] = {}
    for key, value in items:
        if SEP in str(key) or str(key).isdigit() and isinstance(tree, dict):
            raise ValueError(f"the key {key!r} of {prefix or 'the data'} cannot be stored")
        flat.update(flatten(value, f"{prefix}{SEP}{key}" if prefix else str(key)))
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    """The nested dicts and lists that `flatten` flattened; 0-d arrays come back as Python numbers and strings."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, last = path.split(SEP)
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value.item() if value.ndim == 0 else value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[str(i)] for i in range(len(items))]
    return items


def encode(tree: dict[str, Any]) -> str:
    """`tree` as text (what `bn_cases_data.DATA` holds): base64 of the zlib-compressed JSON index of its flattened
    arrays (path, dtype, shape), a NUL byte, and the arrays' bytes one after another."""
    flat = flatten(tree)
    index = [[key, value.dtype.str, list(value.shape)] for key, value in flat.items()]
    payload = json.dumps(index).encode() + b"\0" + b"".join(np.ascontiguousarray(v).tobytes() for v in flat.values())
    return base64.b64encode(zlib.compress(payload, 9)).decode("ascii")


def decode(text: str) -> dict[str, Any]:
    """The tree that `encode` encoded."""
    payload = zlib.decompress(base64.b64decode(text))
    head, _, body = payload.partition(b"\0")
    flat, offset = {}, 0
    for key, dtype, shape in json.loads(head):
        dtype = np.dtype(dtype)
        size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        flat[key] = np.frombuffer(body[offset:offset + size], dtype=dtype).reshape(shape).copy()
        offset += size
    return unflatten(flat)


@functools.lru_cache(maxsize=1)
def _all() -> dict[str, Any]:
    from .bn_cases_data import DATA

    return decode(DATA)


def load(check: str) -> list[dict[str, Any]]:
    """The stored cases of one visible check ("forward_0", "backward_nodes", "softmax", ...), fresh copies."""
    cases = _all()
    if check not in cases:
        raise KeyError(f"no stored cases named {check!r}; there are {', '.join(sorted(cases))}")
    return copy.deepcopy(cases[check])

