"""Decoding metrics: coefficient of determination, Pearson r, circular error; balanced accuracy and macro-F1.

All functions take ``(T, D)`` (or ``(T,)``) arrays of true and predicted
values and return one value per column plus a mean. Columns whose true values
are constant have an undefined R² and Pearson r: they are reported as NaN and
left out of the means (e.g. the z column of a planar reach, which is all zero).
:func:`classification_metrics` scores predicted labels (the unit probes).
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if a.shape != b.shape:
        raise DataError(f"true and predicted values differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def r2_score(y_true, y_pred) -> np.ndarray:
    """Coefficient of determination per column.

    ``R²_d = 1 - Σ_t (y_td - ŷ_td)² / Σ_t (y_td - ȳ_d)²``, with ``ȳ_d`` the
    mean of the true values over the evaluated samples.

    Parameters
    ----------
    y_true, y_pred : (T,) or (T, D) array
        Finite values.

    Returns
    -------
    (D,) float64
        NaN for columns whose true values are constant (R² undefined) and when T < 2.

    Raises
    ------
    DataError
        Shapes differ.
    """
    a, b = _pair(y_true, y_pred)
    if a.shape[0] < 2:
        return np.full(a.shape[1], np.nan)
    ss_res = np.sum((a - b) ** 2, axis=0)
    ss_tot = np.sum((a - a.mean(axis=0)) ** 2, axis=0)
    scale = np.maximum(np.abs(a).max(axis=0), 1e-300) ** 2 * a.shape[0]
    out = np.full(a.shape[1], np.nan)
    ok = ss_tot > 1e-24 * scale
    out[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return out


def pearson_r(y_true, y_pred) -> np.ndarray:
    """Pearson correlation per column.

    Returns
    -------
    (D,) float64
        NaN where either column is constant.
    """
    a, b = _pair(y_true, y_pred)
    if a.shape[0] < 2:
        return np.full(a.shape[1], np.nan)
    ac = a - a.mean(axis=0)
    bc = b - b.mean(axis=0)
    den = np.sqrt(np.sum(ac**2, axis=0) * np.sum(bc**2, axis=0))
    out = np.full(a.shape[1], np.nan)
    ok = den > 1e-300
    out[ok] = np.sum(ac * bc, axis=0)[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def circular_error_deg(angle_true, angle_pred) -> np.ndarray:
    """Mean absolute angular error per column, in degrees.

    The difference is wrapped to ``(-180, 180]`` before taking its absolute
    value, so 350° vs 10° is an error of 20°.

    Parameters
    ----------
    angle_true, angle_pred : (T,) or (T, D) array
        Angles in radians.

    Returns
    -------
    (D,) float64
        In ``[0, 180]``.
    """
    a, b = _pair(angle_true, angle_pred)
    diff = np.angle(np.exp(1j * (b - a)))
    return np.degrees(np.abs(diff)).mean(axis=0)


def decoding_metrics(y_true, y_pred, *, circular: bool = False, columns: list[str] | None = None) -> dict:
    """All decoding metrics of one prediction, as a JSON-friendly dict.

    Parameters
    ----------
    y_true, y_pred : (T, D) array
        Evaluated samples only (no NaN).
    circular : bool
        Values are angles (radians). R² and Pearson r are then computed on the
        unit vectors (cos, sin) of each angle and averaged over the two, and
        ``circular_error_deg`` is added.
    columns : list of str, optional
        Names of the D columns.

    Returns
    -------
    dict
        ``r2`` (D,), ``r2_mean`` (over defined columns), ``pearson_r`` (D,),
        ``pearson_r_mean``, ``n_samples``, ``columns``; for circular targets
        ``circular_error_deg`` (D,) and ``circular_error_deg_mean``.
    """
    a, b = _pair(y_true, y_pred)
    if circular:
        r2 = 0.5 * (r2_score(np.cos(a), np.cos(b)) + r2_score(np.sin(a), np.sin(b)))
        r = 0.5 * (pearson_r(np.cos(a), np.cos(b)) + pearson_r(np.sin(a), np.sin(b)))
    else:
        r2 = r2_score(a, b)
        r = pearson_r(a, b)
    out = {
        "r2": [float(v) for v in r2],
        "r2_mean": _nanmean(r2),
        "pearson_r": [float(v) for v in r],
        "pearson_r_mean": _nanmean(r),
        "n_samples": int(a.shape[0]),
    }
    if columns is not None:
        out["columns"] = list(columns)
    if circular:
        err = circular_error_deg(a, b)
        out["circular_error_deg"] = [float(v) for v in err]
        out["circular_error_deg_mean"] = _nanmean(err)
    return out


def classification_metrics(y_true, y_pred, classes) -> dict:
    """Balanced accuracy, macro-F1 and chance level of predicted labels, as a JSON-friendly dict.

    Parameters
    ----------
    y_true, y_pred : (n,) str
        True and predicted labels of the evaluated samples.
    classes : list of str
        Every class of the task (chance is ``1 / len(classes)``).

    Returns
    -------
    dict
        ``balanced_accuracy`` (mean per-class recall), ``macro_f1`` (unweighted mean
        of per-class F1), ``chance``.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score

    return {"balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "chance": 1.0 / len(classes)}
