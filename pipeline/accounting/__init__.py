"""Per-stage accounting that survives Dask's task fusion.

Dask fuses a chain of tasks into one (low-level fusion of linear chains, dask-expr's
blockwise fusion of dataframe partitions), and fused tasks lose their span annotations.
Instead of reading per-stage figures from spans, the runner rewrites the final graph so
that every task callable runs inside :class:`~pipeline.accounting.meter.Metered`, which
meters its time, and the host<->device copies made inside it, under its stage's label.

- :mod:`~pipeline.accounting.stagemap`: which stage each task key belongs to (array
  layers by their span annotation, dataframe expressions by name and provenance).
- :mod:`~pipeline.accounting.graph`: optimizes and materializes the graph (fused or not),
  wraps every task callable, and submits it.
- :mod:`~pipeline.accounting.meter`: the worker side: the wrapper, the labels, and each
  stage's first start and last stop.
"""
