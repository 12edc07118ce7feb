"""The batched Viterbi decode (``nlu.viterbi``) against pytorch-crf's own ``CRF.decode``."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchcrf import CRF

from nlu.viterbi import viterbi_decode


def crf_with_random_weights(num_tags: int, generator: torch.Generator, whole: bool) -> CRF:
    crf = CRF(num_tags, batch_first=True)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(random_scores(parameter.shape, generator, whole))
    return crf


def random_scores(shape, generator: torch.Generator, whole: bool) -> torch.Tensor:
    """Normal scores, or small whole numbers: many ties, where the first maximum must win."""
    if whole:
        return torch.randint(-2, 3, tuple(shape), generator=generator).float()
    return torch.randn(tuple(shape), generator=generator) * 3


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 31), num_tags=st.integers(1, 12),
       lengths=st.lists(st.integers(1, 9), min_size=1, max_size=7), padding=st.integers(0, 3),
       whole=st.booleans())
def test_the_batched_decode_returns_exactly_what_pytorch_crf_decodes(seed, num_tags, lengths,
                                                                     padding, whole):
    generator = torch.Generator().manual_seed(seed)
    crf = crf_with_random_weights(num_tags, generator, whole)
    steps = max(lengths) + padding  # a batch padded beyond its longest row, too
    emissions = random_scores((len(lengths), steps, num_tags), generator, whole)
    mask = torch.arange(steps).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    with torch.no_grad():
        decoded = viterbi_decode(crf, emissions, mask)
        assert decoded == crf.decode(emissions, mask=mask)
    assert [len(tags) for tags in decoded] == lengths


def test_the_batched_decode_matches_pytorch_crf_on_a_model_sized_batch():
    generator = torch.Generator().manual_seed(0)
    crf = crf_with_random_weights(67, generator, whole=False)  # xSID's tag count
    lengths = torch.randint(1, 31, (256,), generator=generator)
    emissions = random_scores((256, 30, 67), generator, whole=False)
    mask = torch.arange(30).unsqueeze(0) < lengths.unsqueeze(1)
    with torch.inference_mode():
        assert viterbi_decode(crf, emissions, mask) == crf.decode(emissions, mask=mask)
