"""User functions for tests/test_user_ops.py, named as ``tests.userfuncs:<name>``
(importable on the workers: they inherit the test process's sys.path)."""

import numpy as np

NOT_A_FUNCTION = 42


def scale(block, *, factor=1.0):
    return block * factor


def row_sums(block):
    return block.sum(axis=1)


def with_moments(block):
    """[rows, cols] -> [rows, 1, 2]: each row's mean and max, on a new axis."""
    return np.stack([block.mean(axis=1), block.max(axis=1)], axis=-1)[:, None, :]


def halve_rows(block):
    return block[::2]


def as_float64(block):
    return block.astype(np.float64)


def as_list(block):
    return block.tolist()


def explode(block, *, message="boom"):
    if block.size:
        raise ValueError(message)
    return block


def kind_and_sum(block):
    """The block's library and sum, per row: proves what a function receives."""
    module = type(block).__module__.partition(".")[0]
    code = {"numpy": 1.0, "cupy": 2.0}.get(module, 0.0)
    return block.sum(axis=1, keepdims=True) * 0 + code


def speed(part, *, unit_factor=60.0):
    out = part[["a", "b"]].copy()
    out["ratio"] = out["a"] / out["b"] * unit_factor
    return out


def drop_all(part):
    return part.iloc[:, :1]


def fail_on_data(part):
    if len(part):
        raise KeyError("no such column 'zz'")
    return part
