"""Stand-in for ``cupy.random``: CuPy's Generator API over NumPy's generator.

The numbers differ from the real CuPy's (cuRAND's XORWOW is not NumPy's PCG64), as they
differ between CuPy and NumPy; what is emulated is the API Dask drives: a bit generator
holding a ``SeedSequence`` in ``_seed_seq`` (Dask spawns one per chunk), ``default_rng``
of a seed or a bit generator, and Generator methods returning device arrays.
"""

import numpy

from cupy._core import CATALOG, _strict, resolve


class BitGenerator:
    def __init__(self, seed=None):
        self._seed_seq = seed if isinstance(seed, numpy.random.SeedSequence) \
            else numpy.random.SeedSequence(seed)
        self._numpy = numpy.random.PCG64(self._seed_seq)


class XORWOW(BitGenerator):
    pass


class MRG32k3a(BitGenerator):
    pass


class Philox4x3210(BitGenerator):
    pass


class Generator:
    """Draws device arrays; each method takes CuPy's keywords (``dtype``, ``out``...)."""

    def __init__(self, bit_generator):
        if not isinstance(bit_generator, BitGenerator):
            raise TypeError("bit_generator must be a cupy.random BitGenerator")
        self.bit_generator = bit_generator
        self._numpy = numpy.random.Generator(bit_generator._numpy)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        target = getattr(self._numpy, name)  # AttributeError for unknown methods
        return _strict(f"cupy.random.Generator.{name}", target,
                       {"params": None, "varkw": True})


def default_rng(seed=None):
    if isinstance(seed, Generator):
        return seed
    return Generator(seed if isinstance(seed, BitGenerator) else XORWOW(seed))


# (CuPy 14 does not export its Generator class: default_rng is the way to one.)
OWN = {"BitGenerator": BitGenerator, "XORWOW": XORWOW, "MRG32k3a": MRG32k3a,
       "Philox4x3210": Philox4x3210, "default_rng": default_rng}
assert set(OWN) <= set(CATALOG["modules"]["cupy.random"])


def __getattr__(name):
    return resolve(globals(), name, OWN)
