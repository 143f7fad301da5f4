"""Examples of bringing your own code to the pipeline.

- :mod:`pipeline_examples.ops`: a third-party op (``zscore``) registered through the
  ``pipeline.ops`` entry-point group;
- :mod:`pipeline_examples.tiles`: a user function running a small PyTorch CNN over image
  tiles, for ``op: map_blocks``;
- :mod:`pipeline_examples.tables`: a user function for ``op: map_partitions``.
"""
