"""``ncli embed --method pca|fa``: latents layer, saved models, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.store import Store, StoreWriter
from ncli.models.base import Estimator
from ncli.simulators import PoissonLDS

runner = CliRunner()


def make_lds_store(location: Path, *, n_units=40, duration=60.0, bin_size=0.05, rate=20.0,
                   epochs=((0.0, 25.0), (27.0, 60.0)), seed=0) -> str:
    """A simulated session written with write_session; bins between the epochs are invalid."""
    sess = PoissonLDS(n_units=n_units, latent_dim=3, bin_size=bin_size, baseline_rate=rate,
                      seed=seed).init_params().sample(duration)[0]
    b = sess.behavior["velocity"]
    with StoreWriter(str(location), command="convert") as w:
        write_session(w, "s0", units=UnitsSource(sess.ids, sess.areas, lambda u: sess.spike_times[u]),
                      bin_size=bin_size, t_start=0.0, t_stop=duration, epochs=np.array(epochs),
                      behavior={"velocity": BehaviorSeries(b["timestamps"], b["data"], unit="cm/s",
                                                           columns=["x", "y"])})
        w.array("sessions/s0/latents/truth", sess.latents)
    return str(location)


def run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


@pytest.mark.parametrize("method", ["pca", "fa"])
def test_embed_writes_latents_and_model_as_a_layer(tmp_path, monkeypatch, method):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_lds_store(tmp_path / "in.zarr")
    out = tmp_path / "emb.zarr"
    res = run(["embed", src, "--method", method, "--dim", 3, "-o", out])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    st = Store.open(out)
    assert len(st.layers) == 2 and st.layers[1].location == src
    assert st.root["sessions/s0"].__contains__("latents")  # the layer holds only what embed made
    assert "binned" not in list(st.root["sessions/s0"].keys())
    Z = st.read(f"sessions/s0/latents/{method}")
    valid = st.read("sessions/s0/binned/valid")
    assert Z.shape == (1200, 3) and Z.dtype == np.float32
    assert (~valid).sum() == 40 and np.isnan(Z[~valid]).all() and np.isfinite(Z[valid]).all()
    g = st.root[f"models/{method}/s0"]
    attrs = dict(g.attrs)
    assert attrs["class"] == ("ncli/pca@1" if method == "pca" else "ncli/fa@1")
    assert attrs["config"] == {"n_components": 3, "seed": 0} and "version" in attrs
    assert attrs["metrics"]["n_bins_fitted"] == int(valid.sum())
    assert g["components_"].shape == (3, 40) and g["mean_"].shape == (40,)
    assert g["noise_variance_"].shape == (40,) and g["explained_variance_"].shape == (3,)
    assert "s0" in st.attrs(f"models/{method}")["metrics"]
    # the saved model reproduces the stored latents
    model = Estimator.from_group(g)
    X = np.sqrt(st.read("sessions/s0/binned/counts")[valid].astype(float))
    assert np.allclose(model.transform(X), Z[valid], atol=1e-4)
    # and spans the true latent's subspace in feature space
    B = np.linalg.lstsq(np.column_stack([st.read("sessions/s0/latents/truth")[valid], np.ones(len(X))]),
                        X, rcond=None)[0][:3]
    assert np.degrees(subspace_angles(model.components_.T, B.T)).max() < 15


def test_smoothing_and_no_sqrt_change_the_features(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_lds_store(tmp_path / "in.zarr")
    outs = {}
    for name, extra in {"plain": [], "smooth": ["--smooth", "0.1"], "raw": ["--no-sqrt"]}.items():
        res = run(["embed", src, "--dim", 2, "-o", tmp_path / f"{name}.zarr", *extra])
        assert res.exit_code == 0, res.stderr
        st = Store.open(tmp_path / f"{name}.zarr")
        outs[name] = st.read("sessions/s0/latents/pca")
        assert st.read("sessions/s0/latents/pca").shape == (1200, 2)
    v = np.isfinite(outs["plain"][:, 0])
    assert np.nanstd(np.diff(outs["smooth"][v, 0])) < 0.5 * np.nanstd(np.diff(outs["plain"][v, 0]))
    assert not np.allclose(outs["raw"][v], outs["plain"][v])
    assert Store.open(tmp_path / "smooth.zarr").attrs("sessions/s0/latents/pca")["smooth_s"] == 0.1


@pytest.mark.parametrize("args, message", [
    (["--method", "tsne"], "ncli embed: error: invalid value 'tsne' for --method (--method); "
                           "hint: choose one of: pca, fa"),
    (["--dim", "41"], "ncli embed: error: --dim 41 is larger than the number of units (40) in session 's0'"),
    (["--dim", "0"], "ncli embed: error: --dim must be a positive integer, got 0"),
    (["--smooth", "-1"], "ncli embed: error: --smooth must be >= 0, got -1"),
])
def test_bad_options_are_one_line_usage_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_lds_store(tmp_path / "in.zarr", duration=20.0, epochs=((0.0, 20.0),))
    res = run(["embed", src, "-o", tmp_path / "o.zarr", *args])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_embed_reads_the_store_from_stdin_and_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_lds_store(tmp_path / "in.zarr", duration=20.0, epochs=((0.0, 20.0),))
    a = run(["embed", "--method", "fa", "--dim", 2, "-o", tmp_path / "a.zarr"], input=src + "\n")
    b = run(["embed", src, "--method", "fa", "--dim", 2, "-o", tmp_path / "b.zarr"])
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr
    za = Store.open(tmp_path / "a.zarr").read("sessions/s0/latents/fa")
    zb = Store.open(tmp_path / "b.zarr").read("sessions/s0/latents/fa")
    assert np.array_equal(za, zb, equal_nan=True)


# ----------------------------------------------------------------------------- bounded memory (blocked fits)


def _embed_both(tmp_path, monkeypatch, method, args):
    """``embed`` on the whole matrix and with blocks of 30 bins; return both layers and the input store."""
    import ncli.formats.view as view_mod
    from ncli.formats.view import SessionView

    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_lds_store(tmp_path / "in.zarr", n_units=20)
    whole = run(["embed", src, "--method", method, *args, "-o", tmp_path / "w.zarr", "--no-cache", "-q"])
    assert whole.exit_code == 0, whole.output
    calls = []
    real = SessionView.blocks
    monkeypatch.setattr(SessionView, "blocks", lambda self, n, **kw: (calls.append(n), real(self, n, **kw))[1])
    monkeypatch.setattr(view_mod, "BLOCK_BYTES", 8 * 20 * 30)
    blocked = run(["embed", src, "--method", method, *args, "-o", tmp_path / "b.zarr", "--no-cache", "-q"])
    assert blocked.exit_code == 0, blocked.output
    assert calls and max(calls) == 30  # 1200 bins > one block: the blocked path ran
    return Store.open(tmp_path / "w.zarr"), Store.open(tmp_path / "b.zarr"), Store.open(src)


def test_blocked_pca_equals_the_whole_matrix_fit(tmp_path, monkeypatch):
    w, b, _ = _embed_both(tmp_path, monkeypatch, "pca", ["--dim", "3", "--smooth", "0.1"])
    for name in ("components_", "mean_", "explained_variance_", "explained_variance_ratio_", "noise_variance_"):
        ref, got = w.read(f"models/pca/s0/{name}"), b.read(f"models/pca/s0/{name}")
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)
    assert np.max(subspace_angles(w.read("models/pca/s0/components_").T, b.read("models/pca/s0/components_").T)) < 1e-8
    zw, zb = w.read("sessions/s0/latents/pca"), b.read("sessions/s0/latents/pca")
    assert np.array_equal(np.isnan(zw), np.isnan(zb)) and np.isnan(zw).any()  # the invalid gap
    np.testing.assert_allclose(zb, zw, rtol=1e-5, atol=1e-5)


def test_blocked_fa_matches_scikit_learn(tmp_path, monkeypatch):
    from sklearn.decomposition import FactorAnalysis

    from ncli.formats.view import SessionView

    w, b, src = _embed_both(tmp_path, monkeypatch, "fa", ["--dim", "3"])
    X, usable, _ = SessionView(src, "s0").activity(sqrt=True)
    fa = FactorAnalysis(n_components=3, svd_method="lapack", max_iter=1000, tol=1e-4).fit(X[usable])
    ref = fa.components_[np.argsort(-np.sum(fa.components_**2, axis=1), kind="stable")]
    ref = ref * np.sign(ref[np.arange(3), np.argmax(np.abs(ref), axis=1)])[:, None]
    got = b.read("models/fa/s0/components_")
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)  # same solution, not merely the same subspace
    np.testing.assert_allclose(b.read("models/fa/s0/noise_variance_"), fa.noise_variance_, rtol=1e-6)
    np.testing.assert_allclose(b.read("sessions/s0/latents/fa"), w.read("sessions/s0/latents/fa"),
                               rtol=1e-5, atol=1e-5)
