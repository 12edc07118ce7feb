"""Decoding strategies (greedy, temperature, top-k, nucleus) and a fast categorical sampler.

All strategies reduce to: reshape the (already masked) logits, then draw one index per row.
The draw is inverse-CDF sampling — a cumulative sum, one uniform number per row and
``torch.searchsorted`` — which on a CPU is many times faster than ``torch.multinomial``
(see DEPENDENCIES.md) and, because it consumes one uniform per row,
lets a test feed the same random numbers to two implementations and compare them (the
rollout rewards do). Nucleus sampling is rejection sampling on top of that draw (see
``_nucleus``): a rejected row draws again from the seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

SamplingMethod = Literal["greedy", "temperature", "top-k", "top-p"]
METHODS = ("greedy", "temperature", "top-k", "top-p")


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick each tag and token. ``temperature`` applies to every method but greedy."""

    method: SamplingMethod = "top-p"
    temperature: float = 1.0
    top_k: int = 0  # only for "top-k": keep the k most likely entries
    top_p: float = 0.9  # only for "top-p": keep the smallest set holding this probability mass

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {', '.join(METHODS)}")
        for name, kinds in (("temperature", (int, float)), ("top_k", int), ("top_p", (int, float))):
            value = getattr(self, name)
            if not isinstance(value, kinds) or isinstance(value, bool):
                kind = "an integer" if kinds is int else "a number"
                raise ValueError(f"{name}: must be {kind}, got {type(value).__name__}")
        # inf passed `> 0` and turned every row's probabilities into NaN (an IndexError later)
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature: must be a finite number > 0, got {self.temperature}")
        if self.method == "top-k" and self.top_k < 1:
            raise ValueError(f"top_k: must be >= 1 for top-k sampling, got {self.top_k}")
        if self.top_k < 0:
            raise ValueError(f"top_k: must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {self.top_p}")


UNRESTRICTED = SamplingConfig(method="temperature", temperature=1.0)  # sampling from the policy


class RandomStreams:
    """Random numbers for draws that belong to independent streams, e.g. requests merged into
    one sampling batch: draw i takes its numbers from ``generators[streams[i]]``.

    Each generator serves its own draws in order and a stream's draws are contiguous, so a
    request merged into a shared batch draws exactly the numbers it would draw alone.
    """

    def __init__(self, generators: Sequence[torch.Generator | None], streams: torch.Tensor):
        self.generators = list(generators)
        self.streams = streams

    def subset(self, draws: torch.Tensor) -> "RandomStreams":
        """The streams of some of the draws (``draws`` ascending)."""
        return RandomStreams(self.generators, self.streams[draws.to(self.streams.device)])

    def rand(self, *trailing: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Uniforms in [0, 1), (draws, *trailing), on ``device``."""
        counts = torch.bincount(self.streams, minlength=len(self.generators)).tolist()
        return torch.cat([torch.rand(count, *trailing, generator=generator, dtype=dtype)
                          for generator, count in zip(self.generators, counts)]).to(device)


Random = torch.Generator | RandomStreams | None  # None: torch's global generator


def _uniforms(random: Random, draws: int, subset: torch.Tensor | None = None, *trailing: int,
              dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Uniforms for ``draws`` draws, or for the ``subset`` of them, (draws, *trailing), on
    ``device``. Drawn on the CPU (seeded generators are CPU ones), so a seed gives the same
    samples on every device; moving them is free on the CPU."""
    if isinstance(random, RandomStreams):
        return (random if subset is None else random.subset(subset)).rand(
            *trailing, dtype=dtype, device=device)
    return torch.rand(draws if subset is None else subset.numel(), *trailing, generator=random,
                      dtype=dtype).to(device)


def inverse_cdf_sample(probabilities: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One index per row of ``probabilities`` (rows need not sum to 1; zeros are never
    picked), using ``uniforms`` in [0, 1) of shape ``probabilities.shape[:-1]``."""
    return _draw(probabilities.cumsum(dim=-1), uniforms, None)


def _search(cumulative: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """(..., V) cumulative sums and (..., K) uniforms -> (..., K) indices."""
    total = cumulative[..., -1:]
    # Strictly below the total, so that a row always lands on an entry with mass.
    target = torch.minimum(uniforms * total, torch.nextafter(total, total.new_zeros(())))
    return torch.searchsorted(cumulative, target, right=True)


def _draw(cumulative: torch.Tensor, uniforms: torch.Tensor,
          rows: torch.Tensor | None) -> torch.Tensor:
    """Inverse-CDF draws from (P, V) cumulative sums: draw i uses ``uniforms[i]`` and row
    ``rows[i]`` (None: row i)."""
    if rows is None:
        return _search(cumulative, uniforms.unsqueeze(-1)).squeeze(-1)
    if rows.numel() * cumulative.size(-1) < GATHER_LIMIT:
        return _search(cumulative.index_select(0, rows), uniforms.unsqueeze(-1)).squeeze(-1)
    # The draws of a row are searched in that row together, as a (P, most draws of a row)
    # grid: a copy of the row per draw (the gather above) would move R x V floats.
    order = torch.argsort(rows, stable=True)
    ordered_rows = rows[order]
    counts = torch.bincount(rows, minlength=cumulative.size(0))
    rank = (torch.arange(rows.numel(), device=rows.device)
            - (counts.cumsum(0) - counts)[ordered_rows])
    grid = uniforms.new_zeros(cumulative.size(0), int(counts.max()))
    grid[ordered_rows, rank] = uniforms[order]
    draws = torch.empty_like(rows)
    draws[order] = _search(cumulative, grid)[ordered_rows, rank]
    return draws


GATHER_LIMIT = 1 << 18  # floats: below this, copying rows per draw costs less than the grid


def pick(logits: torch.Tensor, config: SamplingConfig, uniforms: torch.Tensor | None = None,
         generator: Random = None, *, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Choose indices from masked ``logits`` (``-inf`` = impossible) by ``config``: one per
    row, or with ``rows`` (R,) R of them, the i-th from row ``rows[i]`` (a row several
    draws share is normalised once).

    Random numbers come from ``uniforms`` (one per draw) if given, else from ``generator``
    (seeded runs); top-p's redraws of rejected draws always come from ``generator``.
    """
    if config.method == "greedy":
        best = logits.argmax(dim=-1)
        return best if rows is None else best[rows]
    if uniforms is None:
        shape = logits.shape[:-1] if rows is None else rows.shape
        uniforms = _uniforms(generator, shape.numel(), dtype=logits.dtype,
                             device=logits.device).view(shape)
    if config.temperature != 1.0:
        logits = _tempered(logits, config.temperature)
    if config.method == "top-k" and config.top_k < logits.size(-1):
        kth_best = logits.topk(config.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    if config.method == "top-p":
        # A top_p below the smallest normal float compares as 0 against the probabilities and
        # would empty every nucleus; the top entry alone holds any such mass, as it holds tiny.
        top_p = max(config.top_p, torch.finfo(probabilities.dtype).tiny)
        return _nucleus(probabilities, top_p, uniforms, generator, rows)
    return _draw(probabilities.cumsum_(dim=-1), uniforms, rows)


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``, correct for every finite temperature > 0.

    The row's best logit is subtracted first, so the best entry becomes 0 and the others
    <= 0 (``-inf`` when a tiny temperature sends them far below it): softmax never meets
    ``inf - inf`` (NaN, then an index past the row). A temperature the logits' float type
    cannot hold (below its smallest normal number, above its largest) is applied in float64,
    which holds every finite Python float.
    """
    best = logits.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(logits.dtype).min)
    shifted = logits - best  # a fully masked row stays -inf, not NaN
    precision = torch.finfo(logits.dtype)
    if precision.tiny <= temperature <= precision.max:
        return shifted.div_(temperature)
    return shifted.double().div_(temperature).to(logits.dtype)


NUCLEUS_ATTEMPTS = 3  # draws per row (each accepted with p >= top_p); then a full sort


def _nucleus(probabilities: torch.Tensor, top_p: float, uniforms: torch.Tensor,
             generator: Random, rows: torch.Tensor | None) -> torch.Tensor:
    """Sample from the nucleus — the smallest set of best entries holding ``top_p`` of the mass
    — by rejection: draw from the whole distribution and keep the draw if it is in the
    nucleus; draws that are not take the first accepted of ``NUCLEUS_ATTEMPTS - 1`` more
    (all made at once), then, if none is, a full sort.

    Accepted draws follow the nucleus distribution exactly, and each is accepted with
    probability >= ``top_p``. Membership costs one pass over the row, where sorting it (the
    textbook method) costs many times more and made top-p sampling much slower than
    temperature sampling. ``uniforms`` serve the first draw, ``generator`` the
    others. An entry tied with the nucleus' smallest is kept with it. ``rows`` as in ``pick``.
    """
    shape = probabilities.shape[:-1] if rows is None else rows.shape
    probabilities = probabilities.reshape(-1, probabilities.size(-1))
    cumulative = probabilities.cumsum(dim=-1)
    choice = _draw(cumulative, uniforms.reshape(-1), rows)
    if rows is None:
        rows = torch.arange(probabilities.size(0), device=probabilities.device)
    # A draw holding more than 1 - top_p is in the nucleus whatever the rest hold (the
    # likelier entries have less than top_p): most draws of a trained model need no check.
    chosen = probabilities.view(-1).index_select(0, rows * probabilities.size(1) + choice)
    unsure = (chosen <= 1 - top_p + 1e-6).nonzero().squeeze(1)
    in_nucleus = _in_nucleus(probabilities.index_select(0, rows[unsure]),
                             choice[unsure].unsqueeze(1), top_p)
    rejected = unsure[~in_nucleus.squeeze(1)]
    if rejected.numel() and NUCLEUS_ATTEMPTS > 1:
        rejected_rows = rows[rejected]
        draws = _search(cumulative.index_select(0, rejected_rows), _uniforms(
            generator, choice.numel(), rejected, NUCLEUS_ATTEMPTS - 1, dtype=probabilities.dtype,
            device=probabilities.device))
        accepted = _in_nucleus(probabilities.index_select(0, rejected_rows), draws, top_p)
        found = accepted.any(dim=1)
        first = accepted[found].int().argmax(dim=1)
        choice[rejected[found]] = draws[found].gather(1, first.unsqueeze(1)).squeeze(1)
        rejected = rejected[~found]
    if rejected.numel():
        ordered, order = probabilities.index_select(0, rows[rejected]).sort(dim=-1,
                                                                             descending=True)
        fresh = _uniforms(generator, choice.numel(), rejected,  # the used ones are biased
                          dtype=ordered.dtype, device=ordered.device)  # by the rejection
        choice[rejected] = _pick_in_order(ordered, order, top_p, fresh)
    return choice.view(shape)


def _in_nucleus(probabilities: torch.Tensor, choices: torch.Tensor, top_p: float) -> torch.Tensor:
    """(R, V) probabilities, (R, K) chosen indices -> (R, K): is each choice in its row's
    nucleus, i.e. do the strictly likelier entries hold less than ``top_p``?"""
    rows = probabilities.unsqueeze(1)
    # sign(relu(p - chosen)) is 1 exactly where p > chosen: this costs a quarter of a
    # torch.where over the same rows on this CPU build.
    likelier = (rows - probabilities.gather(-1, choices).unsqueeze(-1)).clamp_min_(0).sign_()
    return torch.linalg.vecdot(rows, likelier) < top_p


def _pick_in_order(ordered: torch.Tensor, order: torch.Tensor, top_p: float,
                   uniforms: torch.Tensor) -> torch.Tensor:
    """The textbook nucleus: inverse-CDF sampling over the sorted entries, cut at ``top_p``."""
    mass_before = ordered.cumsum(dim=-1) - ordered
    ordered = ordered.masked_fill(mass_before >= top_p, 0.0)  # the top entry always stays
    return order.gather(-1, inverse_cdf_sample(ordered, uniforms).unsqueeze(-1)).squeeze(-1)
