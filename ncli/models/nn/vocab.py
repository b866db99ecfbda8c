"""Extendable vocabularies of embedding rows (unit keys, session ids) and row-wise fine-tuning.

A model keeps a list of string keys per embedding table, in row order
(``unit_vocab_``, ``session_vocab_``). New sessions add keys: the table grows,
old rows keep their values, new rows are drawn at the scale of the old ones,
and fine-tuning can train only some rows (POYO's unit identification,
Azabou et al. NeurIPS 2023, §3.4; POSSM, Ryoo et al. NeurIPS 2025, §4.3).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence


def new_keys(vocab: Sequence[str], keys: Iterable) -> list[str]:
    """Keys not yet in ``vocab``, as strings, each once, in the order first seen.

    Parameters
    ----------
    vocab : sequence of str
        The known keys.
    keys : iterable
        Candidate keys (converted with ``str``).

    Returns
    -------
    list of str
    """
    known = set(vocab)
    return list(dict.fromkeys(str(k) for k in keys if str(k) not in known))


def grow_state(old: Mapping, new: Mapping, generator) -> dict:
    """A state dict for a network whose embedding tables grew: old rows kept, new rows drawn.

    Parameters
    ----------
    old : mapping name -> tensor
        The trained network's ``state_dict()``.
    new : mapping name -> tensor
        ``state_dict()`` of the same network built with the larger vocabularies.
    generator : torch.Generator
        Draws the new rows, ``N(0, std(old table)²)``, table by table in the
        order of ``old``.

    Returns
    -------
    dict name -> tensor
        ``new`` with every tensor of the same shape replaced by the old one and
        every grown table's first rows replaced by the old rows.
    """
    import torch

    state = dict(new)
    for k, v in old.items():
        if state[k].shape == v.shape:
            state[k] = v
        else:  # an embedding table that grew: keep the old rows, draw the new ones
            grown = torch.randn(state[k].shape, generator=generator) * float(v.std())
            grown[: v.shape[0]] = v
            state[k] = grown
    return state


def train_rows_only(net, rows: Mapping[str, Sequence[int]], device) -> list:
    """Freeze every parameter of ``net`` but the named tables, and of those train only the given rows.

    Parameters
    ----------
    net : torch.nn.Module
    rows : mapping parameter name -> sequence of int
        For each trainable table (a parameter of shape (V, d)), the rows whose
        gradient is kept; the gradients of the other rows are set to zero by a
        hook.
    device : torch.device
        Where the gradient masks live.

    Returns
    -------
    list of torch.nn.Parameter
        The trainable parameters, in ``named_parameters`` order. Call
        ``p.requires_grad_(True)`` on ``net.parameters()`` after training to undo
        the freezing (the hooks stay: the module is for this training only).
    """
    import torch

    params = []
    for n, p in net.named_parameters():
        p.requires_grad_(n in rows)
        if n in rows:
            mask = torch.zeros(p.shape[0], 1, device=device)
            mask[list(rows[n])] = 1.0
            p.register_hook(lambda g, m=mask: g * m)
            params.append(p)
    return params
