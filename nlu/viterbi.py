"""Viterbi decoding of a linear-chain CRF for a whole batch at once (inference speed).

``pytorch-crf`` (``torchcrf.CRF``) trains the slot head and is the reference: its ``decode``
walks back through every sequence in Python, one tensor element read at a time, and its
per-step maximum with indices over a middle dimension is slow on a CPU. ``viterbi_decode``
makes the same sums in the same order (so the same floats and the same first-maximum tie
breaking), in numpy, with the previous tag as the last (contiguous) dimension, only for the
rows not yet ended, and walks back for the whole batch with one indexing per time step.
``tests/test_viterbi.py`` checks that it returns exactly what ``CRF.decode`` returns.
"""

from __future__ import annotations

import numpy as np
import torch
from torchcrf import CRF


def viterbi_decode(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """The best tag sequence of each utterance: ``crf.decode(emissions, mask)`` for a
    batch-first CRF. ``emissions`` [B, T, tags]; ``mask`` [B, T] bool, each row's ones a prefix
    (at least one). Returns one list of tag ids per row, as long as the row's ones."""
    lengths = mask.detach().cpu().numpy().sum(axis=1)
    # Longest rows first: at each step the rows still inside are a prefix, and only they are
    # computed (a row's score stays as it is after its end, as in CRF.decode).
    order = np.argsort(-lengths, kind="stable")
    lengths = lengths[order]
    emissions = emissions.detach().cpu().numpy()[order]
    start, end = (crf.start_transitions.detach().cpu().numpy(),
                  crf.end_transitions.detach().cpu().numpy())
    # [next, previous]: the maximum over previous tags runs along contiguous memory
    transitions = np.ascontiguousarray(crf.transitions.detach().cpu().numpy().T)
    rows, steps, tags = emissions.shape
    steps = min(steps, int(lengths[0]))  # padding after the longest row changes nothing
    inside = [int(np.count_nonzero(lengths > step)) for step in range(steps)]
    score = start + emissions[:, 0]  # [B, tags]: the best path's score ending in each tag
    buffer = np.empty((rows, tags, tags), dtype=score.dtype)
    best_previous = [None] * steps  # [rows inside, next tag] per step
    every_candidate = np.arange(rows * tags)
    for step in range(1, steps):
        active = inside[step]
        candidates = buffer[:active]  # [rows inside, next, previous], CRF.decode's sums:
        np.add(score[:active, np.newaxis, :], transitions, out=candidates)
        np.add(candidates, emissions[:active, step, :, np.newaxis], out=candidates)
        best = candidates.argmax(axis=2)  # the first maximum, as torch's max
        score[:active] = candidates.reshape(active * tags, tags)[
            every_candidate[:active * tags], best.ravel()].reshape(active, tags)
        best_previous[step] = best
    score = score + end
    path = np.empty((rows, steps), dtype=np.intp)  # a row's tags after its end: ignored
    tag = score.argmax(axis=1)  # each row's best last tag
    path[:, steps - 1] = tag
    for step in range(steps - 1, 0, -1):  # the tag at step - 1 of the rows still inside
        active = inside[step]
        tag[:active] = best_previous[step][np.arange(active), tag[:active]]
        path[:, step - 1] = tag
    decoded = [None] * rows
    for row, tags_of_row, length in zip(order.tolist(), path.tolist(), lengths.tolist()):
        decoded[row] = tags_of_row[:length]
    return decoded
