"""The one training loop of the torch estimators (POSSM, POYO, GRU, NuCLR, CANDY).

:func:`fit_loop` runs ``n_steps`` optimisation steps of a loss the caller
computes (the caller draws its mini-batches, so each model keeps its own
order of random draws). Per step, in this order: the loss, ``zero_grad``,
``backward``, gradient-norm clipping (optional), the optimiser step, the
learning-rate schedule step (optional), the progress callback, the
early-stopping test (optional). A step whose loss is ``None`` is skipped
entirely: no optimiser or schedule step.

:func:`seed_torch`, :func:`select_device`, :func:`make_optimizer` and
:func:`warmup_cosine` are the other pieces every estimator's ``fit`` needs.
torch is imported inside the functions, never at import time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ncli.models.base import torch_device


def seed_torch(seed: int, deterministic: bool | None = None) -> None:
    """Seed torch's global generator; optionally switch deterministic kernels on or off.

    Parameters
    ----------
    seed : int
    deterministic : bool, optional
        ``torch.use_deterministic_algorithms(deterministic, warn_only=True)``
        when given (a process-wide setting); left as it is when ``None``.
    """
    import torch

    torch.manual_seed(int(seed))
    if deterministic is not None:
        torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)


def select_device(device: str):
    """The torch device for ``"cpu"``, ``"cuda"`` or ``"auto"`` (see :func:`ncli.models.base.torch_device`).

    Raises
    ------
    ParameterError
        ``cuda`` was requested and CUDA is not available (parameter ``device``).
    """
    return torch_device(device)


def make_optimizer(params, kind: str = "adamw", lr: float = 1e-3, weight_decay: float = 0.0):
    """Adam or AdamW over ``params``.

    Parameters
    ----------
    params : iterable of tensors or of parameter-group dicts
    kind : {"adamw", "adam"}
        AdamW (decoupled weight decay, Loshchilov & Hutter 2019, ICLR) or Adam
        (Kingma & Ba 2015, ICLR; L2 weight decay).
    lr, weight_decay : float
        Defaults of the groups that do not set their own.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    import torch

    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimiser '{kind}'")


def warmup_cosine(optimizer, steps: int, floor: float = 0.0):
    """Learning-rate schedule: linear warm-up over 10 % of ``steps``, then cosine decay to ``floor``.

    The factor of the peak rate after ``k`` schedule steps is
    ``min(1, (k + 1) / w) · (floor + (1 - floor) · (1 + cos(π min(k, steps) / steps)) / 2)``,
    ``w = max(1, steps // 10)`` (SGDR, Loshchilov & Hutter 2017, ICLR, Eq. 5, one cycle, with warm-up).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    steps : int
        Total optimisation steps (>= 1).
    floor : float
        Final learning rate as a fraction of the peak.

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
        Call ``step()`` once per optimisation step.
    """
    import torch

    warm = max(1, steps // 10)

    def factor(k: int) -> float:
        decay = 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps))
        return min(1.0, (k + 1) / warm) * (floor + (1 - floor) * decay)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class EarlyStopping:
    """Stop when the monitored loss has not improved by ``min_delta`` for ``patience`` steps.

    Parameters
    ----------
    patience : int
        Steps without improvement before stopping (>= 1).
    min_delta : float
        Smallest decrease that counts as an improvement.
    monitor : callable, optional
        ``monitor(step, loss) -> float``: the value to watch (e.g. a
        validation loss); default the training loss of the step.

    Attributes
    ----------
    best : float
        Best value seen.
    best_step : int
        Step of ``best`` (-1 before the first).
    """

    patience: int = 10
    min_delta: float = 0.0
    monitor: Callable[[int, float], float] | None = None
    best: float = field(default=math.inf, init=False)
    best_step: int = field(default=-1, init=False)

    def update(self, step: int, loss: float) -> bool:
        """Record step ``step``; True when training should stop."""
        value = float(self.monitor(step, loss) if self.monitor is not None else loss)
        if value < self.best - self.min_delta:
            self.best, self.best_step = value, step
        return step - self.best_step >= self.patience


@dataclass
class TrainResult:
    """What :func:`fit_loop` did.

    Attributes
    ----------
    losses : list of float or None
        Loss of each step run (``loss.item()``); ``None`` for a skipped step.
    seconds : float
        Wall time of the loop (s).
    stopped_early : bool
        True when early stopping ended the loop before ``n_steps``.
    """

    losses: list = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def fit_loop(step_loss: Callable[[int], object], optimizer, n_steps: int, *, schedule=None,
             clip_norm: float | None = None, clip_params: Sequence | None = None,
             progress: Callable[[int, float], None] | None = None,
             early_stopping: EarlyStopping | None = None) -> TrainResult:
    """Run ``n_steps`` optimisation steps.

    Parameters
    ----------
    step_loss : callable
        ``step_loss(step) -> loss`` (a scalar tensor) or ``None`` to skip the
        step. It draws the step's mini-batch and runs the forward pass.
    optimizer : torch.optim.Optimizer
        E.g. from :func:`make_optimizer`.
    n_steps : int
    schedule : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped once after every optimiser step (e.g. :func:`warmup_cosine`).
    clip_norm : float, optional
        Clip the global gradient norm of ``clip_params`` to this value
        (Pascanu et al. 2013, ICML) before each optimiser step.
    clip_params : sequence of tensors, optional
        Default: every parameter of ``optimizer``, group by group.
    progress : callable, optional
        ``progress(step, loss)`` after each step that ran.
    early_stopping : EarlyStopping, optional
        Tested after each step that ran.

    Returns
    -------
    TrainResult
    """
    import torch

    if clip_norm is not None and clip_params is None:
        clip_params = [p for g in optimizer.param_groups for p in g["params"]]
    result = TrainResult()
    t0 = time.perf_counter()
    for step in range(int(n_steps)):
        loss = step_loss(step)
        if loss is None:
            result.losses.append(None)
            continue
        optimizer.zero_grad()
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(clip_params, clip_norm)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        value = loss.item()
        result.losses.append(value)
        if progress is not None:
            progress(step, value)
        if early_stopping is not None and early_stopping.update(step, value):
            result.stopped_early = step < n_steps - 1
            break
    result.seconds = time.perf_counter() - t0
    return result
