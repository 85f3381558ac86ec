"""The micro-batcher under failure, large jobs and clients that go away (issue 13)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from uniembed.serve.batcher import MicroBatcher, Part


def split_ints(prepared, max_tokens):
    """Jobs here are lists of ints (one input each, its value is its token count)."""
    parts, current = [], []
    for value in prepared:
        if current and sum(current) + value > max_tokens:
            parts.append(Part(current, len(current), sum(current)))
            current = []
        current.append(value)
    return parts + [Part(current, len(current), sum(current))]


def embed_ints(batch):
    return [np.array(job, dtype=np.float32)[:, None] for job in batch]


def test_a_failing_metrics_callback_fails_its_batch_and_the_worker_lives_on():
    calls = {"n": 0}

    def on_batch(*_):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("metrics exploded")

    batcher = MicroBatcher(
        embed_ints, max_batch_tokens=100, max_wait=0.0, max_queue_inputs=100, on_batch=on_batch
    )

    async def scenario():
        first = batcher.submit([1], 1, 1)
        outcome = await asyncio.gather(first, return_exceptions=True)
        second = await asyncio.wait_for(
            batcher.submit([2], 1, 2), timeout=5
        )  # would hang with a dead worker
        return outcome[0], second

    first, second = asyncio.run(scenario())
    batcher.close()
    assert isinstance(first, RuntimeError) or first.shape == (
        1,
        1,
    )  # answered either way, never left hanging
    assert second.tolist() == [[2.0]]


def test_a_large_job_is_encoded_in_parts_and_a_short_one_goes_in_between():
    started = threading.Event()
    release = threading.Event()
    batches = []

    def embed(batch):
        batches.append([list(job) for job in batch])
        if len(batches) == 1:
            started.set()
            release.wait(10)
        return embed_ints(batch)

    batcher = MicroBatcher(
        embed, max_batch_tokens=10, max_wait=0.0, max_queue_inputs=1000, split=split_ints
    )
    big = [5] * 8  # 40 tokens: four parts of 10

    async def scenario():
        finished = []
        large = batcher.submit(big, len(big), sum(big))
        await asyncio.to_thread(started.wait, 10)
        short = batcher.submit([1], 1, 1)
        release.set()

        async def note(name, future):
            result = await future
            finished.append(name)
            return result

        large_vectors, short_vectors = await asyncio.gather(
            note("large", large), note("short", short)
        )
        return finished, large_vectors, short_vectors

    finished, large_vectors, short_vectors = asyncio.run(scenario())
    batcher.close()
    assert finished == ["short", "large"]
    assert large_vectors[:, 0].tolist() == big  # every part, in order
    assert short_vectors.tolist() == [[1.0]]
    assert all(sum(sum(job) for job in batch) <= 10 for batch in batches)
    assert [1] in batches[1]  # the short job went in right after the first part


def test_the_remaining_parts_of_a_cancelled_job_are_not_encoded():
    started = threading.Event()
    release = threading.Event()
    encoded = []

    def embed(batch):
        encoded.extend(value for job in batch for value in job)
        started.set()
        release.wait(10)
        return embed_ints(batch)

    batcher = MicroBatcher(
        embed, max_batch_tokens=10, max_wait=0.0, max_queue_inputs=1000, split=split_ints
    )

    async def scenario():
        job = batcher.submit([5] * 20, 20, 100)
        await asyncio.to_thread(started.wait, 10)
        job.cancel()  # the client went away while its first part was being encoded
        release.set()
        after = await asyncio.wait_for(batcher.submit([3], 1, 3), timeout=5)
        return after

    assert asyncio.run(scenario()).tolist() == [[3.0]]
    batcher.close()
    assert encoded == [5, 5, 3]  # one part of the cancelled job, then the next request
    assert batcher.queued_inputs == 0


@pytest.mark.parametrize("lengths", [[3] * 10, [1, 50, 2, 2, 30], [7]])
def test_served_model_slices_cover_every_input_once(tiny_model, lengths):
    from uniembed.serve.model import ServedModel

    served = ServedModel(tiny_model)
    texts = [" ".join(["word"] * n) for n in lengths]
    prepared = served.prepare(texts)
    parts = served.split(prepared, 8)
    assert sum(p.n_inputs for p in parts) == len(texts)
    whole = served.embed([prepared])[0]
    pieces = np.concatenate(served.embed([p.prepared for p in parts]))
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


def test_a_failing_batch_releases_the_queue_room_of_its_jobs_remaining_parts():
    calls = {"n": 0}

    def embed(batch):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model failed")
        return embed_ints(batch)

    batcher = MicroBatcher(
        embed, max_batch_tokens=10, max_wait=0.0, max_queue_inputs=20, split=split_ints
    )

    async def scenario():
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.submit([5] * 20, 20, 100)  # ten parts; the first fails
        return await asyncio.wait_for(
            batcher.submit([1] * 20, 20, 20), timeout=5
        )  # needs the whole queue

    assert len(asyncio.run(scenario())) == 20
    batcher.close()
    assert batcher.queued_inputs == 0 and calls["n"] == 3  # the failed job's other parts never ran


def test_a_busy_stream_waits_for_its_whole_wave_and_a_lone_client_never_waits():
    """After a batch that merged several requests, the next batch collects requests until none
    has come for the quiet gap (the clients answered in the last wave come back whole); a lone
    client's request (the last batch held one) starts at once, however long max_wait is."""
    batches = []

    def embed(batch):
        batches.append([job[0] for job in batch])
        return embed_ints(batch)

    batcher = MicroBatcher(embed, max_batch_tokens=1000, max_wait=2.0, max_queue_inputs=100)
    batcher.quiet_gap = 0.2  # generous, so a loaded test machine cannot split the wave

    async def scenario():
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit([0], 1, 1)  # a lone client: no wait at all
        lone = loop.time() - started
        with batcher._cond:  # one wave of three, queued together (the worker cannot take one alone)
            first_wave = [batcher.submit([i], 1, 1) for i in (1, 2, 3)]
        await asyncio.gather(*first_wave)
        wave = [batcher.submit([4], 1, 1)]
        await asyncio.sleep(0.05)  # the rest of the wave trickles in, within the quiet gap
        wave += [batcher.submit([i], 1, 1) for i in (5, 6)]
        started = loop.time()
        await asyncio.gather(*wave)
        return lone, loop.time() - started

    lone, wave_seconds = asyncio.run(scenario())
    batcher.close()
    assert lone < 1.0  # max_wait is 2 s: the lone request did not wait for it
    assert batches[0] == [0] and batches[1] == [1, 2, 3] and batches[2] == [4, 5, 6]
    assert wave_seconds < 1.5  # it started once the stream went quiet, not at max_wait
