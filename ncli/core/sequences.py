"""Per-trial label sequences: tokenising against a vocabulary, edit distance, error rates.

A sequence target is a trials-table column of space-separated tokens
(``trials/phonemes`` = ``"HH AH L OW"``) whose attributes declare
``{"sequence": true, "vocabulary": [...]}`` (docs/store.md). Class id ``i + 1``
is ``vocabulary[i]``; id 0 is the CTC blank (Graves et al. 2006, ICML), never in
the vocabulary. A word separator token (``|``, ``SIL`` or ``<sp>``) in the
vocabulary splits a sequence into words for the word error rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ncli.core.errors import DataError

#: Tokens recognised as word separators, in order of preference.
SEPARATORS = ("|", "SIL", "<sp>", " ")


def separator_of(vocabulary: Sequence[str]) -> str | None:
    """The word separator token of ``vocabulary`` (the first of :data:`SEPARATORS` it holds), or None."""
    vocab = set(vocabulary)
    return next((s for s in SEPARATORS if s in vocab), None)


def encode(text: str, vocabulary: Sequence[str], where: str = "") -> np.ndarray:
    """Space-separated tokens -> class ids (1-based; 0 is the CTC blank).

    Parameters
    ----------
    text : str
        ``"HH AH L OW"``.
    vocabulary : sequence of str
    where : str
        Location for the error message (``"session day0, trial 3"``).

    Returns
    -------
    (L,) int64

    Raises
    ------
    DataError
        A token not in the vocabulary.
    """
    index = {t: i + 1 for i, t in enumerate(vocabulary)}
    out = []
    for tok in str(text).split():
        if tok not in index:
            raise DataError(f"token '{tok}' is not in the column's vocabulary", where or None,
                            hint="list every token in the column's attrs 'vocabulary'")
        out.append(index[tok])
    return np.asarray(out, dtype=np.int64)


def decode_ids(ids: Sequence[int], vocabulary: Sequence[str]) -> str:
    """Class ids (1-based, no blanks) -> space-separated tokens."""
    return " ".join(vocabulary[int(i) - 1] for i in ids)


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions; unit costs) between two sequences.

    Dynamic programming over one row, O(len(ref) · len(hyp)) time (Levenshtein 1966;
    Wagner & Fischer 1974, J. ACM 21, 168-173).
    """
    ref, hyp = list(ref), list(hyp)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def words(tokens: Sequence[str], separator: str) -> list[tuple[str, ...]]:
    """Split a token sequence at ``separator`` into words (tuples of tokens; empty words dropped)."""
    out, cur = [], []
    for t in list(tokens) + [separator]:
        if t == separator:
            if cur:
                out.append(tuple(cur))
            cur = []
        else:
            cur.append(t)
    return out


def error_rates(refs: Sequence[str], hyps: Sequence[str], separator: str | None = None) -> dict:
    """Token and word error rates of decoded sequences, pooled over trials.

    ``per`` = sum of token edit distances / sum of reference lengths, with the
    separator removed from both sides (a phoneme or character error rate);
    ``wer`` the same over words when ``separator`` is given (Willett et al. 2023).

    Parameters
    ----------
    refs, hyps : sequence of str
        Space-separated tokens per trial, same length.
    separator : str, optional

    Returns
    -------
    dict
        ``per``, ``token_errors``, ``n_tokens``, and with a separator ``wer``,
        ``word_errors``, ``n_words``; ``per_trial`` (list of float) per trial.

    Raises
    ------
    ValueError
        ``refs`` and ``hyps`` of different lengths.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errs = n = werrs = nw = 0
    per_trial = []
    for r, h in zip(refs, hyps):
        rt, ht = str(r).split(), str(h).split()
        rp, hp = [t for t in rt if t != separator], [t for t in ht if t != separator]
        e = edit_distance(rp, hp)
        errs, n = errs + e, n + len(rp)
        per_trial.append(e / max(1, len(rp)))
        if separator is not None:
            rw, hw = words(rt, separator), words(ht, separator)
            werrs, nw = werrs + edit_distance(rw, hw), nw + len(rw)
    out = {"per": errs / max(1, n), "token_errors": int(errs), "n_tokens": int(n), "per_trial": per_trial}
    if separator is not None:
        out.update({"wer": werrs / max(1, nw), "word_errors": int(werrs), "n_words": int(nw)})
    return out
