"""Models and shared numerics against ground truth and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy.linalg import subspace_angles

from ncli.core.errors import DataError, NotFittedError, ParameterError, UsageError
from ncli.core.features import angles_to_xy, lag_features, smooth, sqrt_counts, xy_to_angles
from ncli.core.metrics import circular_error_deg, decoding_metrics, pearson_r, r2_score
from ncli.core.splits import blocked_folds, contiguous_segments, cross_val_predict, session_split
from ncli.models.base import Estimator, check_array
from ncli.models.factor import FAEmbedding, PCAEmbedding
from ncli.models.kalman import KalmanDecoder
from ncli.models.ridge import RidgeDecoder
from ncli.simulators import PoissonLDS


def memory_group() -> zarr.Group:
    return zarr.open_group(zarr.storage.MemoryStore(), mode="w")


def bin_centre_velocity(sess) -> np.ndarray:
    centres = sess.t_start + (np.arange(sess.counts.shape[0]) + 0.5) * sess.bin_size
    b = sess.behavior["velocity"]
    return np.column_stack([np.interp(centres, b["timestamps"], b["data"][:, j]) for j in range(2)])


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("X, kwargs, message", [
    (np.zeros(5), {}, "X must be 2-d (samples, features), got 1-d"),
    (np.zeros((2, 2, 2)), {}, "X must be 2-d (samples, features), got 3-d"),
    (np.array([["a", "b"]]), {}, "X must be numeric, got dtype <U1"),
    (np.array([[1.0, np.nan]]), {}, "X contains NaN or infinite values"),
    (np.array([[1.0, np.inf]]), {"allow_nan": True}, "X contains infinite values"),
    (np.zeros((1, 3)), {"min_samples": 2}, "X has 1 samples; at least 2 are needed"),
    (np.zeros((4, 3)), {"n_features": 5}, "X has 3 features, but the model was fitted with 5"),
    (np.zeros((4, 0)), {}, "X has 0 features; at least 1 are needed"),
])
def test_check_array_says_the_same_thing_for_the_same_mistake(X, kwargs, message):
    with pytest.raises(DataError) as err:
        check_array(X, "X", **kwargs)
    assert err.value.what == message


def test_check_array_accepts_nan_when_allowed_and_returns_float():
    out = check_array(np.array([[1, 2], [3, 4]], dtype=np.int32), allow_nan=True)
    assert out.dtype == np.float64 and out.flags.c_contiguous


@pytest.mark.parametrize("model, call", [
    (RidgeDecoder(), lambda m: m.predict(np.zeros((3, 2)))),
    (KalmanDecoder(), lambda m: m.predict(np.zeros((3, 2)))),
    (PCAEmbedding(2), lambda m: m.transform(np.zeros((3, 2)))),
    (FAEmbedding(2), lambda m: m.transform(np.zeros((3, 2)))),
    (PCAEmbedding(2), lambda m: m.to_group(memory_group())),
])
def test_unfitted_models_raise_a_clear_error(model, call):
    with pytest.raises(NotFittedError, match=f"^{type(model).__name__} is not fitted yet; call fit\\(\\) first$"):
        call(model)


def test_predict_with_wrong_feature_count_is_refused():
    rng = np.random.default_rng(0)
    m = RidgeDecoder().fit(rng.standard_normal((50, 4)), rng.standard_normal(50))
    with pytest.raises(DataError, match="X has 3 features, but the model was fitted with 4"):
        m.predict(np.zeros((5, 3)))


# ----------------------------------------------------------------------------- metrics


def test_r2_and_pearson_against_hand_computed_values():
    y = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]])
    p = np.array([[1.5, 0.0], [2.0, 0.5], [2.5, 0.5], [4.0, 1.0]])
    # column 0: ss_res = .25+0+.25+0 = .5; ss_tot = 2.25+.25+.25+2.25 = 5 -> 0.9
    # column 1: ss_res = 0+.25+.25+0 = .5; ss_tot = 4 * .25 = 1 -> 0.5
    assert np.allclose(r2_score(y, p), [0.9, 0.5])
    a, b = y[:, 0] - 2.5, p[:, 0] - 2.5
    assert np.isclose(pearson_r(y, p)[0], (a @ b) / np.sqrt((a @ a) * (b @ b)))
    m = decoding_metrics(y, p, columns=["x", "y"])
    assert m["r2"] == pytest.approx([0.9, 0.5]) and m["r2_mean"] == pytest.approx(0.7)
    assert m["columns"] == ["x", "y"] and m["n_samples"] == 4


def test_constant_column_has_undefined_r2_left_out_of_the_mean():
    y = np.column_stack([np.arange(10.0), np.zeros(10)])
    p = np.column_stack([np.arange(10.0) + 0.1, np.zeros(10)])
    m = decoding_metrics(y, p)
    assert np.isnan(m["r2"][1]) and np.isnan(m["pearson_r"][1])
    assert m["r2_mean"] == pytest.approx(m["r2"][0])


@pytest.mark.parametrize("true_deg, pred_deg, expected", [
    ([0.0], [10.0], 10.0),
    ([350.0], [10.0], 20.0),
    ([10.0], [350.0], 20.0),
    ([0.0], [180.0], 180.0),
    ([90.0, -90.0], [100.0, -100.0], 10.0),
    ([179.0], [-179.0], 2.0),
])
def test_circular_error_on_known_angles(true_deg, pred_deg, expected):
    err = circular_error_deg(np.radians(true_deg), np.radians(pred_deg))
    assert err[0] == pytest.approx(expected)


def test_circular_metrics_and_angle_embedding_round_trip():
    a = np.linspace(-3, 3, 50)[:, None]
    assert np.allclose(xy_to_angles(angles_to_xy(a)), a)
    m = decoding_metrics(a, a + np.radians(5), circular=True)
    assert m["circular_error_deg"][0] == pytest.approx(5.0)
    assert m["r2_mean"] > 0.95


# ----------------------------------------------------------------------------- splits and features


@pytest.mark.parametrize("n_folds, gap", [(2, 0), (5, 0), (5, 6), (3, 20)])
@pytest.mark.parametrize("holes", [False, True])
def test_blocked_folds_are_contiguous_disjoint_and_respect_the_gap(n_folds, gap, holes):
    usable = np.ones(1000, dtype=bool)
    if holes:
        usable[100:130] = False
        usable[::97] = False
    folds = blocked_folds(usable, n_folds, gap)
    assert len(folds) == n_folds
    tests = np.concatenate([t for _, t in folds])
    assert np.array_equal(np.sort(tests), np.flatnonzero(usable))  # every usable bin tested once
    for train, test in folds:
        assert usable[train].all() and usable[test].all()
        assert np.intersect1d(train, test).size == 0
        lo, hi = test[0], test[-1]
        assert np.all(np.diff(np.flatnonzero(usable[lo : hi + 1] | ~usable[lo : hi + 1])) == 1)
        assert not np.any((train >= lo - gap) & (train <= hi + gap))  # gap on both sides
        assert np.all(np.isin(np.flatnonzero(usable)[(np.flatnonzero(usable) < lo - gap)
                                                     | (np.flatnonzero(usable) > hi + gap)], train))


@pytest.mark.parametrize("usable, n_folds, gap, error, message", [
    (np.ones(100, bool), 1, 0, UsageError, "--folds must be at least 2, got 1"),
    (np.ones(5, bool), 5, 0, DataError, "5 usable bins are too few for 5 folds"),
    (np.ones(20, bool), 2, 15, DataError, "fold 1 has no training bins left after the gap of 15 bins"),
])
def test_blocked_folds_errors(usable, n_folds, gap, error, message):
    with pytest.raises(error) as err:
        blocked_folds(usable, n_folds, gap)
    assert err.value.what == message


def test_session_split_errors():
    assert session_split(["a", "b", "c"], ["a", "b"], ["c"]) == (["a", "b"], ["c"])
    with pytest.raises(UsageError, match="unknown session 'd'"):
        session_split(["a", "b"], ["a"], ["d"])
    with pytest.raises(UsageError, match="session 'a' is in both"):
        session_split(["a", "b"], ["a"], ["a", "b"])


def test_lag_features_and_segments():
    X = np.arange(12.0).reshape(6, 2)
    valid = np.array([1, 1, 1, 0, 1, 1], bool)
    F, usable = lag_features(X, 1, valid)
    assert F.shape == (6, 4)
    assert np.array_equal(F[2], [4, 5, 2, 3])  # [x_t, x_{t-1}]
    assert np.array_equal(usable, [False, True, True, False, False, True])
    assert np.array_equal(contiguous_segments(np.array([0, 1, 2, 5, 6, 9])), [0, 0, 0, 1, 1, 2])
    F0, u0 = lag_features(X, 0)
    assert np.array_equal(F0, X) and u0.all()


def test_smoothing_ignores_invalid_bins_and_keeps_constants():
    X = np.ones((200, 3))
    valid = np.ones(200, bool)
    valid[50:60] = False
    X[50:60] = 1000.0  # garbage in invalid bins must not leak
    out = smooth(X, 0.1, 0.02, valid)
    assert np.allclose(out[valid], 1.0) and np.isnan(out[~valid]).all()
    assert np.array_equal(smooth(X, 0.0, 0.02), X)
    assert np.allclose(sqrt_counts(np.array([[4, 9]])), [[2, 3]])


# ----------------------------------------------------------------------------- ridge


@pytest.mark.parametrize("alpha", [0.0, 1e-10])
def test_ridge_with_vanishing_alpha_is_least_squares(alpha):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 8)) * rng.uniform(0.1, 10, 8) + rng.standard_normal(8)
    Y = rng.standard_normal((200, 3))
    m = RidgeDecoder(alphas=alpha).fit(X, Y)
    design = np.column_stack([X, np.ones(200)])
    sol = np.linalg.lstsq(design, Y, rcond=None)[0]
    assert np.allclose(m.coef_, sol[:-1], atol=1e-8)
    assert np.allclose(m.intercept_, sol[-1], atol=1e-8)
    assert np.allclose(m.predict(X), design @ sol, atol=1e-8)


def test_ridge_selects_a_large_penalty_for_noise_and_a_small_one_for_signal():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 20))
    noise = RidgeDecoder().fit(X, rng.standard_normal(300))
    signal = RidgeDecoder().fit(X, X @ rng.standard_normal(20) + 0.01 * rng.standard_normal(300))
    assert noise.alpha_ > 100 * signal.alpha_
    assert len(noise.gcv_score_) == len(noise.alphas)


# ----------------------------------------------------------------------------- Kalman


def linear_gaussian(T=4000, seed=0):
    """A 2-d rotating state observed by 20 noisy linear channels."""
    rng = np.random.default_rng(seed)
    th, r = 0.1, 0.98
    A = r * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    x = np.zeros((T, 2))
    for t in range(1, T):
        x[t] = A @ x[t - 1] + np.sqrt(1 - r**2) * rng.standard_normal(2)
    H = rng.standard_normal((20, 2))
    z = x @ H.T + 3.0 * rng.standard_normal((T, 20)) + 3.0
    return A, H, x, z


def test_kalman_recovers_the_dynamics_and_beats_the_static_readout():
    A, H, x, z = linear_gaussian()
    m = KalmanDecoder(derivative=False, reg=0.0).fit(z[:3000], x[:3000])
    assert np.allclose(m.A_, A, atol=0.03)
    assert np.allclose(m.H_, H, atol=0.3)
    kal = r2_score(x[3000:], m.predict(z[3000:])).mean()
    static = r2_score(x[3000:], RidgeDecoder().fit(z[:3000], x[:3000]).predict(z[3000:])).mean()
    assert kal > static + 0.1 and kal > 0.9


def test_kalman_full_filter_converges_to_the_steady_state_filter():
    _, _, x, z = linear_gaussian(T=1500)
    full = KalmanDecoder(steady_state=False).fit(z, x).predict(z)
    steady = KalmanDecoder(steady_state=True).fit(z, x).predict(z)
    assert np.allclose(full[200:], steady[200:], atol=1e-6)
    assert not np.allclose(full[:2], steady[:2], atol=1e-6)


def test_kalman_derivative_state_and_constant_columns():
    _, _, x, z = linear_gaussian(T=1500)
    y = np.column_stack([x, np.full(1500, 7.0)])
    m = KalmanDecoder(derivative=True).fit(z, y)
    assert m.A_.shape == (4, 4) and list(m.active_) == [True, True, False]
    pred = m.predict(z)
    assert np.all(pred[:, 2] == 7.0) and r2_score(y[:, :2], pred[:, :2]).mean() > 0.85


def test_kalman_segments_restart_the_filter():
    _, _, x, z = linear_gaussian(T=600)
    m = KalmanDecoder().fit(z, x, segments=np.repeat([0, 1, 2], 200))
    seg = m.predict(z, segments=np.repeat([0, 1], 300))
    assert np.allclose(seg[300], m.predict(z[300:])[0])


# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("make", [
    lambda X, y: RidgeDecoder().fit(X, y),
    lambda X, y: KalmanDecoder(derivative=True).fit(X, y),
    lambda X, y: PCAEmbedding(3, seed=1).fit(X),
    lambda X, y: FAEmbedding(3).fit(X),
])
def test_models_round_trip_through_a_zarr_group_without_pickle(make):
    _, _, x, z = linear_gaussian(T=500)
    model = make(z, x)
    g = memory_group()
    model.to_group(g, metrics={"r2_mean": 0.5})
    assert g.attrs["class"] == type(model).model_id and g.attrs["class"].startswith("ncli/")
    assert g.attrs["metrics"] == {"r2_mean": 0.5}
    assert set(model._learned) <= set(g.array_keys())
    back = Estimator.from_group(g)
    assert type(back) is type(model) and back.get_config() == model.get_config()
    run = (lambda m: m.predict(z)) if hasattr(model, "predict") else (lambda m: m.transform(z))
    assert np.allclose(run(back), run(model))


def test_from_group_refuses_classes_outside_ncli():
    g = memory_group()
    g.attrs["class"] = "os.system"
    with pytest.raises(DataError, match="refusing to load model class 'os.system'"):
        Estimator.from_group(g)


# ----------------------------------------------------------------------------- simulator ground truth


def test_simulator_has_the_promised_dynamics_and_exact_spike_bins():
    sim = PoissonLDS(n_units=20, latent_dim=5, bin_size=0.02, seed=3).init_params()
    eig = np.linalg.eigvals(sim.A_)
    want = sim.eigenvalues_[:, 0] + 1j * sim.eigenvalues_[:, 1]
    assert np.allclose(np.sort_complex(eig), np.sort_complex(want))
    assert np.all(np.abs(eig) < 1)
    sess = sim.sample(200.0)[0]
    assert np.allclose(np.cov(sess.latents.T), np.eye(5), atol=0.35)  # stationary covariance = I
    edges = np.arange(sess.counts.shape[0] + 1) * 0.02
    for u in range(20):
        assert np.array_equal(np.histogram(sess.spike_times[u], edges)[0], sess.counts[:, u])
    again = PoissonLDS(n_units=20, latent_dim=5, bin_size=0.02, seed=3).init_params().sample(200.0)[0]
    assert np.array_equal(again.counts, sess.counts)
    assert np.array_equal(again.behavior["velocity"]["data"], sess.behavior["velocity"]["data"])


@pytest.mark.parametrize("kwargs, message, flagged", [
    ({"n_units": 1}, "n_units must be at least 2, got 1", "--units must be at least 2, got 1"),
    ({"latent_dim": 0}, "latent_dim must be at least 1, got 0", "--latent-dim must be at least 1, got 0"),
    ({"n_units": 3, "latent_dim": 4}, "latent_dim 4 exceeds n_units 3", "--latent-dim 4 exceeds --units 3"),
    ({"bin_size": 0.0}, "bin_size must be > 0 s, got 0.0", "--bin-size must be > 0 s, got 0.0"),
])
def test_simulator_rejects_bad_settings(kwargs, message, flagged):
    """Models name parameters; the command layer shows them as its flags (n_units is --units)."""
    from ncli.commands.simulate import FLAGS

    with pytest.raises(ParameterError) as err:
        PoissonLDS(**kwargs).init_params()
    assert isinstance(err.value, UsageError) and err.value.what == message
    assert err.value.render(lambda n: FLAGS.get(n, "--" + n.replace("_", "-"))).what == flagged


@pytest.mark.parametrize("cls", [PCAEmbedding, FAEmbedding])
def test_factor_models_recover_the_true_latent_subspace(cls):
    # In square-root count space the latent acts through the loadings B obtained by
    # regressing the features on the true latent (the linearisation of exp(Cx + b)).
    sim = PoissonLDS(n_units=100, latent_dim=4, bin_size=0.05, baseline_rate=20.0, seed=0).init_params()
    sess = sim.sample(300.0)[0]
    X = sqrt_counts(sess.counts)
    design = np.column_stack([sess.latents, np.ones(len(X))])
    B = np.linalg.lstsq(design, X, rcond=None)[0][:4]
    model = cls(4).fit(X)
    angles = np.degrees(subspace_angles(model.components_.T, B.T))
    assert angles.max() < 8.0, angles
    # and the latents predict the true latent well (linear map, in-sample)
    Z = model.transform(X)
    fit = np.column_stack([Z, np.ones(len(Z))]) @ np.linalg.lstsq(np.column_stack([Z, np.ones(len(Z))]),
                                                                   sess.latents, rcond=None)[0]
    assert r2_score(sess.latents, fit).mean() > 0.6


@pytest.mark.parametrize("make, threshold", [(lambda: RidgeDecoder(), 0.8), (lambda: KalmanDecoder(), 0.8)])
def test_decoders_recover_simulated_velocity(make, threshold):
    sim = PoissonLDS(n_units=60, bin_size=0.05, baseline_rate=10.0, seed=0).init_params()
    sess = sim.sample(300.0)[0]
    vel = bin_centre_velocity(sess)
    X, usable = lag_features(sqrt_counts(sess.counts), 3)
    pred, fold = cross_val_predict(make, X, vel, blocked_folds(usable, 5, 3))
    r2 = r2_score(vel[fold >= 0], pred[fold >= 0])
    assert r2.mean() > threshold, r2


def test_dim_larger_than_units_is_a_usage_error():
    with pytest.raises(UsageError, match=r"n_components 5 is larger than the number of units \(3\)"):
        PCAEmbedding(5).fit(np.random.default_rng(0).standard_normal((20, 3)))
