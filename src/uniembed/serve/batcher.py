"""Dynamic micro-batching: requests that arrive together are encoded together.

Request handlers call `arriving()` as soon as a request comes in, then `submit` its job (prepared
inputs) and await the future. One worker thread takes the oldest job and keeps taking queued jobs
until the batch holds `max_batch_tokens` tokens; while requests that have arrived are still being
parsed and tokenised, it waits for them, up to `max_wait` after the oldest job. With nothing on
the way it starts at once, so a lone client pays no batching delay. It encodes the whole batch in
one model call and hands every job exactly its own rows. The queue is bounded in inputs: a job
that does not fit is refused at once (the handler answers 429) rather than growing memory.

Busy streams: when the last batch merged several requests, clients are answering in waves (each
sends its next request when its answer arrives), so the next batch waits, up to `max_wait` from
when it starts forming, until no request has arrived for `QUIET_GAP`. This keeps the waves whole
(batches of all the clients, not two alternating halves) and starts the forward pass when the
event loop has gone quiet: on a 2-core CPU, parsing requests during a forward pass preempts the
model's threads and costs more than it overlaps (bench/serve_load.py measured both; see the
README). A lone client (last batch: one request) never waits.

Fairness: a job larger than `max_part_tokens` (its share of one batch) is cut into parts (by
`split`); the worker encodes one part of it per batch and sends the job to the back of the queue,
so a short request waits for one part of a long one, not for all of it. A job whose client went
away (its future cancelled), or one of whose parts failed, is dropped before its next part.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

# A busy stream's batch starts once no request has arrived for this long (chosen in one-off runs
# of bench/serve_load.py's load at 32 clients on 2 cores: 2, 3, 5 and 10 ms were tried; 3 and 5 ms
# were best and within noise of each other).
QUIET_GAP = 0.003


class QueueFull(Exception):
    """The queue has no room for this job: the caller should answer 429."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new jobs: the caller should answer 503."""


@dataclass
class Part:
    prepared: object  # what ServedModel.prepare returned, or a slice of it
    n_inputs: int
    n_tokens: int


@dataclass(eq=False)  # jobs are compared by identity (`in` the queue)
class Job:
    parts: deque[Part]  # not yet encoded, in order
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)
    done: list[np.ndarray] = field(default_factory=list)  # vectors of the encoded parts
    failed: bool = False  # a batch holding one of its parts failed; set by the worker

    def __post_init__(self) -> None:
        self.n_parts = len(self.parts)

    @property
    def n_tokens(self) -> int:  # of the next part: what it adds to a batch
        return self.parts[0].n_tokens

    @property
    def abandoned(self) -> bool:
        # failed, or cancelled because the client went away (read from the worker: a flag, no lock needed)
        return self.failed or self.future.done()


class MicroBatcher:
    """`embed(list of prepared) -> list of (n_inputs, dim) arrays`, called on one worker thread.

    max_batch_tokens=0 turns batching off: every job is encoded alone (the bench's baseline).
    """

    def __init__(
        self,
        embed: Callable[[Sequence[object]], list[np.ndarray]],
        *,
        max_batch_tokens: int,
        max_wait: float,
        max_queue_inputs: int,
        on_batch: Callable[[int, int, int, float], None] | None = None,
        split: Callable[[object, int], list[Part]] | None = None,
        max_part_tokens: int | None = None,
    ):
        self._embed = embed
        self.max_part_tokens = min(max_part_tokens or max_batch_tokens, max_batch_tokens)
        self._split = split  # (prepared, max tokens) -> parts; None: jobs are never cut
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_queue_inputs = max_queue_inputs
        self._on_batch = on_batch  # (jobs, inputs, tokens, seconds) after each batch, for metrics
        self._queue: deque[Job] = deque()
        self._queued_inputs = 0
        self._arriving = 0  # requests announced by arriving() and not submitted (or abandoned) yet
        self._last_jobs = 0  # requests merged in the last batch: more than one means a busy stream
        self.quiet_gap = min(QUIET_GAP, max_wait)
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="uniembed-batcher", daemon=True)
        self._thread.start()

    @property
    def queued_inputs(self) -> int:
        return self._queued_inputs

    @contextmanager
    def arriving(self):
        """Wrap a request's handling before `submit`: the worker may wait for it to join a batch."""
        with self._cond:
            self._arriving += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify()

    def submit(self, prepared: object, n_inputs: int, n_tokens: int) -> asyncio.Future:
        """Queue a job (from the event loop); await the returned future for its (n_inputs, dim)
        vectors. Raises QueueFull or BatcherClosed at once."""
        loop = asyncio.get_running_loop()
        whole = Part(prepared, n_inputs, n_tokens)
        cut = (
            self._split is not None
            and self.max_batch_tokens > 0
            and n_tokens > self.max_part_tokens
        )
        job = Job(
            deque(self._split(prepared, self.max_part_tokens) if cut else [whole]),
            loop.create_future(),
            loop,
        )
        with self._cond:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            if self._queued_inputs + n_inputs > self.max_queue_inputs:
                raise QueueFull(
                    f"the encoding queue is full ({self._queued_inputs} inputs waiting, "
                    f"limit {self.max_queue_inputs}); retry later"
                )
            self._queue.append(job)
            self._queued_inputs += n_inputs
            self._cond.notify()
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, finish the queued ones, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:  # whatever fails here fails this batch's requests; the worker lives on
                self._encode(batch)
            except BaseException as exc:
                for job, _ in batch:
                    job.failed = True
                    _resolve(job, exc=exc)
                self._requeue(
                    [job for job, _ in batch if job.parts]
                )  # dropped by _pop, inputs uncounted

    def _encode(self, batch: list[tuple[Job, Part]]) -> None:
        started = time.perf_counter()
        results = self._embed([part.prepared for _, part in batch])
        for (job, _), vectors in zip(batch, results):
            job.done.append(vectors)
            if len(job.done) == job.n_parts:  # its last part: the request has all its vectors
                _resolve(
                    job, result=job.done[0] if len(job.done) == 1 else np.concatenate(job.done)
                )
        # behind whatever arrived meanwhile: a short request waits for one part, not all
        self._requeue([job for job, _ in batch if job.parts])
        if self._on_batch is not None:
            self._on_batch(
                len(batch),
                sum(p.n_inputs for _, p in batch),
                sum(p.n_tokens for _, p in batch),
                time.perf_counter() - started,
            )

    def _requeue(self, jobs: list[Job]) -> None:
        if jobs:
            with self._cond:
                self._queue.extend(job for job in jobs if job not in self._queue)
                self._cond.notify()

    def _take_batch(self) -> list[tuple[Job, Part]] | None:
        with self._cond:
            while True:
                while not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                batch = [self._pop()]
                if batch[0] is not None:
                    break
            if self.max_batch_tokens > 0:
                tokens = batch[0][1].n_tokens
                # a busy stream (the last batch merged several requests) waits up to max_wait from now
                # for the clients whose answers just went out: see the module docstring
                busy = self._last_jobs > 1
                deadline = (time.monotonic() if busy else batch[0][0].arrived) + self.max_wait
                while tokens < self.max_batch_tokens:
                    if self._queue:
                        if tokens + self._queue[0].n_tokens > self.max_batch_tokens:
                            break
                        taken = self._pop()
                        if taken is not None:
                            batch.append(taken)
                            tokens += taken[1].n_tokens
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        break
                    if not self._arriving and not busy:
                        break  # nothing is on its way: waiting would only add latency
                    arrived = len(batch)
                    self._cond.wait(remaining if self._arriving else min(remaining, self.quiet_gap))
                    if busy and not self._arriving and not self._queue and len(batch) == arrived:
                        break  # the stream went quiet for a whole gap: start
            self._last_jobs = len({id(job) for job, _ in batch})
            return batch

    def _pop(self) -> tuple[Job, Part] | None:
        """The oldest job's next part (the job rejoins the queue once it is encoded); None, and
        the job forgotten, when its client went away."""
        job = self._queue.popleft()
        if job.abandoned:
            self._queued_inputs -= sum(part.n_inputs for part in job.parts)
            return None
        part = job.parts.popleft()
        self._queued_inputs -= part.n_inputs
        return job, part


def _resolve(job: Job, *, result=None, exc: BaseException | None = None) -> None:
    def settle() -> None:
        if job.future.done():  # the client went away and the handler was cancelled
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the event loop is closed: nobody is waiting any more
        pass
