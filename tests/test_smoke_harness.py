import dask.array as da
import numpy as np

from tests.helpers import call, host


def test_rfft_matches_numpy(make_ctx, backend):
    rng = np.random.default_rng()
    x = rng.standard_normal((37, 50))
    xp_x = da.from_array(backend.xp.asarray(x), chunks=(10, 7))
    got = host(call(make_ctx("rfft"), "rfft", xp_x, axis=1))
    np.testing.assert_allclose(got, np.fft.rfft(x, axis=1), rtol=1e-10, atol=1e-10)
