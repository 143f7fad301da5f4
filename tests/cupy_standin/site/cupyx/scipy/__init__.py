"""Stand-in for ``cupyx.scipy``: the submodules the pipeline reaches (see cupy._core)."""
