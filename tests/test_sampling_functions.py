"""engines/transformers_engine/sampling.py: the pure sampling functions, on small hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from magpie_datasets.engines.transformers_engine.sampling import (
    _CDF_BLOCK,
    apply_first_token_bias,
    apply_repetition_penalty,
    inverse_cdf,
    pick_tokens,
    softmax_at_temperature,
    top_p_filter,
)


def never_draw() -> list[float]:
    raise AssertionError("greedy decoding must not draw a random number")


def test_greedy_picks_the_argmax_of_each_row_without_drawing():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, -1.0, 4.0, 0.0], [-3.0, -2.0, -1.0, -0.5]])
    assert pick_tokens(logits, 0, 1.0, never_draw).tolist() == [1, 0, 3]
    assert pick_tokens(logits, 0, 0.5, never_draw, first=[0, 2], first_temperature=2.0).tolist() == [1, 0, 3]


def test_inverse_cdf_returns_the_token_where_the_mass_passes_u():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).repeat(4, 1)
    # running sums 0.1, 0.3, 0.6, 1.0
    assert inverse_cdf(probs, torch.tensor([0.05, 0.25, 0.5, 0.95])).tolist() == [0, 1, 2, 3]


def test_inverse_cdf_scales_u_by_the_row_mass():
    probs = torch.tensor([[1.0, 0.0, 2.0, 1.0]]).repeat(4, 1)  # mass 4, not normalised (top-p leaves that)
    assert inverse_cdf(probs, torch.tensor([0.1, 0.3, 0.7, 0.8])).tolist() == [0, 2, 2, 3]


def test_inverse_cdf_on_a_vocab_that_is_not_a_multiple_of_the_block():
    vocab = 2 * _CDF_BLOCK + 3  # two full blocks and a short one of 3 tokens
    probs = torch.zeros(7, vocab)
    probs[:, 3] = 1.0
    probs[:, _CDF_BLOCK + 4] = 2.0  # token 260
    probs[:, 2 * _CDF_BLOCK + 1] = 1.0  # token 513, in the short block; 514 has no mass
    uniform = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.7, 0.8, 0.99])
    # targets 0, 0.4, 1.0 (exactly token 3's running sum: the next token with mass), 1.2, 2.8, 3.2, 3.96
    assert inverse_cdf(probs, uniform).tolist() == [3, 3, 260, 260, 260, 513, 513]
    # u = 1 (past the end by rounding): the last token with any mass, never the empty 514
    assert inverse_cdf(probs[:1], torch.tensor([1.0])).tolist() == [513]


def test_inverse_cdf_on_a_vocab_smaller_than_one_block():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.25, 0.25]])
    assert [inverse_cdf(probs, torch.tensor([u])).item() for u in (0.0, 0.49, 0.5, 0.74, 0.75, 0.999)] == [1, 1, 3, 3, 4, 4]


def test_inverse_cdf_of_a_row_does_not_depend_on_the_batch():
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(5, 3 * _CDF_BLOCK + 17, generator=generator)
    uniform = torch.rand(5, generator=generator)
    together = inverse_cdf(probs, uniform).tolist()
    assert together == [inverse_cdf(probs[i : i + 1], uniform[i : i + 1]).item() for i in range(5)]


def test_top_p_keeps_the_head_and_drops_the_tail():
    probs = torch.tensor([[0.0625, 0.5, 0.1875, 0.25]])  # sorted 0.5, 0.25, 0.1875, 0.0625; mass before 0, .5, .75, .9375
    assert top_p_filter(probs, 0.5).tolist() == [[0.0, 0.5, 0.0, 0.0]]
    assert top_p_filter(probs, 0.7).tolist() == [[0.0, 0.5, 0.0, 0.25]]
    assert top_p_filter(probs, 0.75).tolist() == [[0.0, 0.5, 0.0, 0.25]]  # the mass before 0.1875 reaches 0.75
    assert top_p_filter(probs, 0.8).tolist() == [[0.0, 0.5, 0.1875, 0.25]]
    assert top_p_filter(probs, 0.95).tolist() == [[0.0625, 0.5, 0.1875, 0.25]]
    assert probs.tolist() == [[0.0625, 0.5, 0.1875, 0.25]]  # a new tensor, not renormalised


def test_top_p_always_keeps_the_first_token():
    probs = torch.tensor([[0.25, 0.75], [0.625, 0.375]])
    assert top_p_filter(probs, 1e-6).tolist() == [[0.0, 0.75], [0.625, 0.0]]


def test_top_p_of_one_leaves_the_probabilities_alone():
    probs = torch.tensor([[0.0625, 0.5, 0.1875, 0.25]])
    assert top_p_filter(probs, 1.0) is probs


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens_only():
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0, 0.0], [3.0, -1.0, 3.0, -1.0, 0.5]])
    seen = torch.tensor([[True, True, False, False, True], [False, False, True, True, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [
        [1.0, -4.0, 2.0, -2.0, 0.0],
        [3.0, -1.0, 1.5, -2.0, 0.5],
    ]
    assert logits.tolist()[0] == [2.0, -2.0, 2.0, -2.0, 0.0]  # a new tensor


def test_first_token_bias_applies_to_first_token_rows_only():
    logits = torch.zeros(3, 4)
    biased = apply_first_token_bias(logits, [0, 2], [(1, 5.0), (3, -1.5)])
    assert biased.tolist() == [[0.0, 5.0, 0.0, -1.5], [0.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, -1.5]]
    assert logits.tolist() == [[0.0] * 4] * 3  # the batch's logits are not changed in place


def test_first_token_temperature_applies_to_first_token_rows_only():
    logits = torch.tensor([[0.0, 2 * math.log(2)], [0.0, 2 * math.log(2)]])  # odds 1:4
    at_one = [[0.2, 0.8], [0.2, 0.8]]
    torch.testing.assert_close(softmax_at_temperature(logits, 1.0), torch.tensor(at_one))
    # row 1 draws its first token at temperature 2: odds 1:2
    torch.testing.assert_close(softmax_at_temperature(logits, 1.0, [1], 2.0), torch.tensor([[0.2, 0.8], [1 / 3, 2 / 3]]))
    torch.testing.assert_close(softmax_at_temperature(logits, 2.0, [0], 1.0), torch.tensor([[0.2, 0.8], [1 / 3, 2 / 3]]))
    # no first-token rows, or no first-token temperature: every row at the temperature
    torch.testing.assert_close(softmax_at_temperature(logits, 1.0, [], 2.0), torch.tensor(at_one))
    torch.testing.assert_close(softmax_at_temperature(logits, 1.0, [1], None), torch.tensor(at_one))


@pytest.mark.parametrize(("u", "token"), [(0.0, 0), (0.5, 0), (0.66, 0), (0.7, 1), (0.99, 1)])
def test_sampling_draws_once_per_row_and_inverts_the_top_p_cdf(u, token):
    logits = torch.tensor([[0.5, 0.25, 0.125, 0.125]]).log()
    draws = []

    def draw():
        draws.append(u)
        return [u]

    # top-p 0.7 keeps 0.5 and 0.25 (mass 0.75): the cut is at u = 2/3
    assert pick_tokens(logits, 1.0, 0.7, draw).tolist() == [token]
    assert draws == [u]
