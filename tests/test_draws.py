"""Each member's draws, a block of steps at a time (disbench.training.draws)."""

import pytest
import torch

from disbench.training.draws import BLOCK_STEPS, BlockDraws
from disbench.training.group import NOISE_SEED_OFFSET, seeded_generator


def draws(seeds, auxiliary=False, batch=8, latent=4):
    return BlockDraws([seeded_generator(s, "cpu") for s in seeds],
                      [seeded_generator(s + NOISE_SEED_OFFSET, "cpu") for s in seeds],
                      num_images=50, batch_size=batch, latent_dim=latent, auxiliary=auxiliary,
                      device=torch.device("cpu"))


def taken(d, steps):
    out = []
    for _ in range(steps):
        d.before_step()
        out.append(d.take())
    return out


def test_a_member_draws_alone_what_it_draws_in_a_group():
    alone = taken(draws([7]), BLOCK_STEPS + 5)
    grouped = taken(draws([3, 7, 11]), BLOCK_STEPS + 5)
    for (i1, n1, _), (i3, n3, _) in zip(alone, grouped):
        assert torch.equal(i1[0], i3[1]) and torch.equal(n1[0], n3[1])
    assert not torch.equal(grouped[0][0][0], grouped[0][0][1])  # members differ


def test_blocks_continue_the_streams_of_one_draw_a_step():
    """On the CPU, with batch x latent a multiple of 16, a block is the draws earlier
    versions made step by step: those runs keep their batches and noise."""
    seed, steps = 5, BLOCK_STEPS + 3
    index, noise = seeded_generator(seed, "cpu"), seeded_generator(seed + NOISE_SEED_OFFSET, "cpu")
    stepwise = [(torch.randint(0, 50, (8,), generator=index), torch.randn(8, 4, generator=noise))
                for _ in range(steps)]
    for (indices, normal, _), (i, n) in zip(taken(draws([seed]), steps), stepwise):
        assert torch.equal(indices[0, 0], i) and torch.equal(normal[0, 0], n)


@pytest.mark.parametrize("auxiliary", [False, True])
@pytest.mark.parametrize("stop", [1, 10, BLOCK_STEPS, BLOCK_STEPS + 1])
def test_a_checkpoint_anywhere_in_a_block_continues_the_same_draws(auxiliary, stop):
    whole = taken(draws([1, 2], auxiliary), stop + BLOCK_STEPS + 2)
    first = draws([1, 2], auxiliary)
    taken(first, stop)
    resumed = draws([1, 2], auxiliary)
    resumed.load_member_states([first.member_state(k) for k in range(2)])
    for a, b in zip(whole[stop:], taken(resumed, BLOCK_STEPS + 2)):
        assert all(torch.equal(x, y) for x, y in zip(a, b) if x is not None)
    if auxiliary:
        assert whole[0][0].shape == (2, 2, 8) and whole[0][2].shape == (2, 8, 4)


def test_a_checkpoint_from_before_blocks_continues_from_its_generators():
    """Saved as generator states after the last step (no block offset): the next step
    starts a new block from them."""
    index, noise = seeded_generator(9, "cpu"), seeded_generator(9 + NOISE_SEED_OFFSET, "cpu")
    for _ in range(3):
        torch.randint(0, 50, (8,), generator=index), torch.randn(8, 4, generator=noise)
    resumed = draws([9])
    resumed.load_member_states([{"sampler": {"generator": index.get_state()}, "noise": noise.get_state()}])
    expected = (torch.randint(0, 50, (8,), generator=index), torch.randn(8, 4, generator=noise))
    indices, normal, _ = taken(resumed, 1)[0]
    assert torch.equal(indices[0, 0], expected[0]) and torch.equal(normal[0, 0], expected[1])
