"""Shared estimator machinery: input validation, fitted checks, saving to a store group.

Every model in :mod:`ncli.models` follows the scikit-learn face (DESIGN.md §1):
hyperparameters in ``__init__`` only, ``fit(...)`` returns ``self``, learned
state in attributes with a trailing underscore. This module is the one place
that

- validates array inputs (:func:`check_array`), so every model says the same
  thing about the same mistake;
- checks a model is fitted (:func:`check_fitted`), raising
  :class:`~ncli.core.errors.NotFittedError`;
- saves a model as arrays plus JSON config into a Zarr group and loads it back
  (:meth:`Estimator.to_group`, :meth:`Estimator.from_group`, :func:`load_model`),
  under a stable model id (:mod:`ncli.models.ids`). No pickle;
- checks hyperparameters (:func:`check_params`), raising
  :class:`~ncli.core.errors.ParameterError` with parameter names, never flags.

References
----------
Pedregosa et al. (2011) Scikit-learn: machine learning in Python. JMLR 12, 2825-2830
(the estimator interface).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np

from ncli import __version__
from ncli.core.errors import DataError, NotFittedError, ParameterError
from ncli.core.jsonutil import jsonable


def check_array(
    X: Any,
    name: str = "X",
    *,
    ndim: int | Sequence[int] = 2,
    min_samples: int = 1,
    min_features: int = 1,
    allow_nan: bool = False,
    n_features: int | None = None,
    dtype=np.float64,
) -> np.ndarray:
    """Validate an array input of a model and return it as a float array.

    Parameters
    ----------
    X : array-like
        The input; rows are samples (time bins), columns features.
    name : str
        Name used in error messages (``"X"``, ``"y"``, ...).
    ndim : int or sequence of int
        Allowed numbers of dimensions. A 1-d array is accepted where 2 is
        required only if 1 is listed too.
    min_samples, min_features : int
        Minimum rows and (for 2-d input) columns.
    allow_nan : bool
        Allow NaN (never ±inf).
    n_features : int, optional
        Required number of columns (e.g. the number seen in ``fit``).
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    numpy.ndarray
        ``X`` as a C-contiguous array of ``dtype``.

    Raises
    ------
    DataError
        Wrong number of dimensions, non-numeric values, too few samples or
        features, a feature count that differs from ``n_features``, or
        non-finite values. Messages are exact sentences, e.g.
        ``"X must be 2-d (samples, features), got 1-d"``.
    """
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise DataError(f"{name} cannot be converted to an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim not in allowed:
        shape = "(samples, features)" if 2 in allowed else "(samples,)"
        want = " or ".join(f"{d}-d" for d in allowed)
        raise DataError(f"{name} must be {want} {shape}, got {arr.ndim}-d")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.shape[0] < min_samples:
        raise DataError(f"{name} has {arr.shape[0]} samples; at least {min_samples} are needed")
    if arr.ndim == 2:
        if arr.shape[1] < min_features:
            raise DataError(f"{name} has {arr.shape[1]} features; at least {min_features} are needed")
        if n_features is not None and arr.shape[1] != n_features:
            raise DataError(f"{name} has {arr.shape[1]} features, but the model was fitted with {n_features}")
    if allow_nan:
        if np.isinf(arr).any():
            raise DataError(f"{name} contains infinite values")
    elif not np.isfinite(arr).all():
        raise DataError(f"{name} contains NaN or infinite values",
                        hint="drop invalid bins before fitting")
    return arr


def check_fitted(model: Any, attributes: Sequence[str] | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``model`` has its learned attributes.

    Parameters
    ----------
    model : Estimator
    attributes : sequence of str, optional
        Attributes that must exist; default the model's ``_learned`` list.

    Raises
    ------
    NotFittedError
        ``"<Class> is not fitted yet; call fit() first"``.
    """
    names = list(attributes if attributes is not None else getattr(model, "_learned", ()))
    if not names or any(getattr(model, a, None) is None for a in names):
        raise NotFittedError(f"{type(model).__name__} is not fitted yet; call fit() first")


class Estimator:
    """Base class: config from ``__init__`` arguments, save/load as arrays + JSON.

    Subclasses list their learned array attributes in ``_learned`` (names with
    trailing underscore) and scalar learned values in ``_learned_scalars``.
    Hyperparameters are the ``__init__`` arguments, stored under attributes of
    the same name (as in scikit-learn). Every class that is saved has a
    ``model_id`` (``"ncli/ridge@1"``), registered in :data:`ncli.models.ids.MODEL_IDS`.
    """

    #: Stable id written as the saved ``class`` attribute (see :mod:`ncli.models.ids`).
    model_id: str | None = None
    _learned: tuple[str, ...] = ()
    _learned_scalars: tuple[str, ...] = ()

    def get_config(self) -> dict[str, Any]:
        """Hyperparameters as a JSON-friendly dict (the ``__init__`` arguments)."""
        sig = inspect.signature(type(self).__init__)
        cfg = {}
        for name in sig.parameters:
            if name == "self":
                continue
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, np.generic):
                value = value.item()
            cfg[name] = value
        return cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` has run."""
        return bool(self._learned) and all(getattr(self, a, None) is not None for a in self._learned)

    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save the fitted model into a Zarr group: one array per learned attribute.

        Parameters
        ----------
        group : zarr.Group
            An empty (writable) group, e.g. ``writer.group("models/pca/s0")``.
        metrics : dict, optional
            Stored as the ``metrics`` attribute.
        extra : dict, optional
            More attributes (provenance, e.g. the feature description).

        Raises
        ------
        NotFittedError
            The model is not fitted.
        TypeError
            The class has no registered ``model_id``.
        """
        check_fitted(self)
        if not self.model_id:
            raise TypeError(f"{type(self).__name__} has no model_id; register one in ncli.models.ids")
        for name in self._learned:
            value = np.asarray(getattr(self, name))
            group.create_array(name, data=value, overwrite=True)
        scalars = {name: getattr(self, name, None) for name in self._learned_scalars}
        attrs = {
            "class": self.model_id,
            "config": self.get_config(),
            "version": __version__,
            "metrics": metrics or {},
            "learned": scalars,
        }
        attrs.update(extra or {})
        group.attrs.update(jsonable(attrs, numpy_nonfinite_to_none=True))

    @classmethod
    def from_group(cls, group) -> "Estimator":
        """Load a model saved with :meth:`to_group`.

        The saved ``class`` is a model id (``ncli/possm@1``) or, in a store
        written by ncli 0.1.0, the module path of the class at the time
        (``ncli.models.possm.POSSMDecoder``); both resolve through
        :mod:`ncli.models.ids` only. Called on a base class
        (``Estimator.from_group(group)``), it hands over to the saved class's
        own ``from_group`` (e.g. POSSM restores its weights there).

        Parameters
        ----------
        group : zarr.Group

        Returns
        -------
        Estimator
            An instance of the saved class with its learned attributes restored.

        Raises
        ------
        DataError
            The group holds no model, a class that is not a registered model
            id or alias, a model of another class, or misses arrays.
        """
        from ncli.models.ids import model_class

        attrs = dict(group.attrs)
        qual = attrs.get("class")
        if not qual:
            raise DataError("group holds no saved model (attribute 'class' missing)")
        klass = model_class(str(qual))
        if not (isinstance(klass, type) and issubclass(klass, cls)):
            raise DataError(f"saved model is a {qual}, not a {cls.__name__}")
        if getattr(klass.from_group, "__func__", None) is not getattr(cls.from_group, "__func__", None):
            return klass.from_group(group)  # the saved class restores more than arrays
        clsname = klass.__name__
        config = attrs.get("config", {})
        params = inspect.signature(klass.__init__).parameters
        model = klass(**{k: v for k, v in config.items() if k in params})
        for name in klass._learned:
            try:
                setattr(model, name, np.asarray(group[name][...]))
            except KeyError:
                raise DataError(f"saved {clsname} misses array '{name}'") from None
        for name, value in (attrs.get("learned") or {}).items():
            setattr(model, name, value)
        return model


def load_model(group) -> Estimator:
    """Load whatever model a group holds, through its saved class's own ``from_group``.

    Parameters
    ----------
    group : zarr.Group
        A group written by :meth:`Estimator.to_group` (by this ncli or by 0.1.0).

    Returns
    -------
    Estimator

    Raises
    ------
    DataError
        As :meth:`Estimator.from_group`.
    """
    return Estimator.from_group(group)


def check_params(checks: list[tuple[bool, str, str]]) -> None:
    """Raise a :class:`ParameterError` for the first ``(ok, template, param)`` whose ``ok`` is false.

    Parameters
    ----------
    checks : list of (bool, str, str)
        ``ok``; the message with parameter names as ``{name}`` placeholders
        (``"{n_units} must be at least 2, got 1"``); the parameter at fault.
    """
    for ok, template, param in checks:
        if not ok:
            raise ParameterError(param, template)


def torch_device(device: str):
    """The torch device for ``device`` = ``cpu``, ``cuda`` or ``auto``.

    Raises
    ------
    ParameterError
        ``cuda`` was requested and CUDA is not available (parameter ``device``).
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "{device} cuda was requested but CUDA is not available",
                             hint="use {device} cpu or auto")
    return torch.device(device)


def write_arrays(group, path: str, arrays: dict) -> None:
    """Write a dict of named arrays into the subgroup ``path`` of a Zarr group."""
    g = group.require_group(path)
    for key, value in arrays.items():
        g.create_array(key, data=np.asarray(value), overwrite=True)


def read_arrays(group) -> dict[str, np.ndarray]:
    """Read every array of a Zarr group into a dict (the inverse of :func:`write_arrays`)."""
    return {k: np.asarray(v[...]) for k, v in group.arrays()}
