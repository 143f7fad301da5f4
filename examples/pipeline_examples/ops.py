"""A third-party op, registered through the ``pipeline.ops`` entry point of this package
(see pyproject.toml): ``python -m pipeline ops`` lists it once the package is installed."""

from __future__ import annotations

from pipeline.errors import OpError
from pipeline.ops import op


@op("zscore", family="array")
def zscore(ctx, x, *, axis: int | list[int] | None = None, ddof: int = 0):
    """Standardize: ``(x - mean) / std`` over ``axis`` (all axes when null).

    Constant slices (std 0) become 0 rather than NaN.

    ```yaml
    - id: normalized
      op: zscore               # from the pipeline-examples package
      input: images
      axis: [1, 2]             # each image on its own
    ```
    """
    axes = tuple(range(x.ndim)) if axis is None else \
        (axis,) if isinstance(axis, int) else tuple(axis)
    if any(not -x.ndim <= a < x.ndim for a in axes):
        raise OpError(f"axis {list(axes)} is out of range for {x.ndim} axes", where="axis")
    if ddof < 0:
        raise OpError(f"ddof must be >= 0, got {ddof}", where="ddof")
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True, ddof=ddof)
    return ((x - mean) / std.map_blocks(_nonzero, dtype=std.dtype)).astype(x.dtype)


def _nonzero(std):
    """std with zeros replaced by 1: a constant slice standardizes to 0, not NaN."""
    std = std.copy()
    std[std == 0] = 1
    return std
