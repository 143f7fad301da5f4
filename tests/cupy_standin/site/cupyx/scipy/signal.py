"""Stand-in for ``cupyx.scipy.signal``: SciPy's functions under CuPy's names (see cupy._core).

Two of CuPy 14's ways are kept, both seen on an H200: importing the real module warns (it
builds kernels with ``cupyx.jit.rawkernel``, which CuPy marks experimental), and its
``convolve`` / ``correlate`` with ``method="auto"`` (and ``choose_conv_method``) take 1-d
inputs only, where SciPy's take any."""

import warnings

from cupy._core import _lookup, resolve

warnings.warn("cupyx.jit.rawkernel is experimental. The interface can change in the future.",
              FutureWarning, stacklevel=2)


def _auto_1d_only(name: str):
    strict = _lookup(__name__, name, {})

    def fn(in1, in2, mode="full", method="auto", **kwargs):
        if (name == "choose_conv_method" or method == "auto") and (in1.ndim != 1
                                                                   or in2.ndim != 1):
            raise NotImplementedError("Only 1d inputs are supported currently")
        if name == "choose_conv_method":
            return strict(in1, in2, mode, **kwargs)
        return strict(in1, in2, mode, method, **kwargs)

    fn.__name__ = name
    return fn


_OWN = {name: _auto_1d_only(name) for name in ("convolve", "correlate", "choose_conv_method")}


def __getattr__(name):
    return resolve(globals(), name, _OWN)
