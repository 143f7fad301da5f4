"""The op catalogue: one module per family, each registering its ops when imported.

This package imports none of them: workers import an op module to run its tasks, and a
worker running array tasks must not pay for pandas, pyarrow, SciPy and matplotlib.
:func:`get` and :func:`catalogue` import every op module on first use.
"""

from pipeline.ops.registry import OpInfo, catalogue, get, op

__all__ = ["OpInfo", "catalogue", "get", "op"]
