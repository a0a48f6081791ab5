"""How a plan is cut into blocks for the generation pool (actors/plan_source.block_rows) and how
many calls an actor then holds (actors.dataflow.synthesis.actor_pool): a tiny plan stays one batch a block,
others take FEED_BATCHES batches a block so the reads keep up with the pool, a big one keeps its
number of blocks bounded, and an actor still holds actor_batches batches."""

from __future__ import annotations

import pytest

from actors.dataflow.plan_source import FEED_BATCHES, MAX_BLOCKS, block_rows
from actors.dataflow.synthesis import actor_pool


@pytest.mark.parametrize(("rows", "actors"), [(0, 1), (1, 1), (64, 1), (64 * 7, 1), (64 * 15, 2), (64 * 31, 4)])
def test_a_plan_too_small_to_give_every_actor_four_blocks_of_two_batches_is_one_batch_a_block(rows, actors):
    assert block_rows(rows, 64, actors) == 64


@pytest.mark.parametrize(
    ("rows", "actors"), [(64 * 8, 1), (64 * 16, 2), (64 * 64, 8), (64 * MAX_BLOCKS, 1), (64 * 2 * MAX_BLOCKS, 32)]
)
def test_a_plan_within_max_blocks_blocks_of_feed_batches_is_feed_batches_a_block(rows, actors):
    assert block_rows(rows, 64, actors) == 64 * FEED_BATCHES
    assert -(-rows // (64 * FEED_BATCHES)) >= 4 * actors, "every actor still gets four blocks or more"


@pytest.mark.parametrize("rows", [64 * FEED_BATCHES * MAX_BLOCKS + 1, 300_000, 1_000_000, 10_000_000])
def test_a_bigger_plan_keeps_within_max_blocks_in_whole_batches(rows):
    size = block_rows(rows, 64)
    assert size % 64 == 0 and size > 64 * FEED_BATCHES
    assert -(-rows // size) <= MAX_BLOCKS
    assert -(-rows // (size - 64)) > MAX_BLOCKS, "the fewest batches a block that keep within the bound"


def test_max_blocks_can_be_given():
    assert block_rows(1000, 10, max_blocks=4) == 250
    assert block_rows(1001, 10, max_blocks=4) == 260
    assert block_rows(1000, 10, max_blocks=1000) == 10 * FEED_BATCHES


@pytest.mark.parametrize(
    ("batches", "per_call", "calls"), [(32, 1, 32), (32, 8, 4), (32, 5, 7), (32, 64, 2), (1, 1, 1), (4, 16, 2)]
)
def test_an_actor_holds_its_batches_in_fewer_calls_and_at_least_two(batches, per_call, calls):
    pool = actor_pool(2, batches, per_call)
    assert pool.max_tasks_in_flight_per_actor == pool.max_concurrent_calls_per_actor == calls
    assert pool.min_size == pool.max_size == 2
