"""Prometheus metrics, one registry per app (several apps in one process, as in tests, don't mix)."""

from __future__ import annotations

from collections.abc import Callable


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.process_collector import ProcessCollector

        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # resident memory, CPU seconds, open files
        self.requests = Counter(
            "uniembed_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "uniembed_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.inputs = Counter("uniembed_embedded_inputs", "inputs embedded", registry=self.registry)
        self.tokens = Counter("uniembed_embedded_tokens", "tokens embedded", registry=self.registry)
        self.batch_inputs = Histogram(
            "uniembed_batch_inputs",
            "inputs per micro-batch",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        )
        self.batch_requests = Histogram(
            "uniembed_batch_requests",
            "requests merged per micro-batch",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.batch_seconds = Histogram(
            "uniembed_batch_seconds", "model time per micro-batch", registry=self.registry
        )
        self.rejected = Counter(
            "uniembed_rejected",
            "requests refused because the queue was full",
            registry=self.registry,
        )
        self._queue = Gauge(
            "uniembed_queue_inputs", "inputs waiting to be encoded", registry=self.registry
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, jobs: int, inputs: int, tokens: int, seconds: float) -> None:
        self.batch_requests.observe(jobs)
        self.batch_inputs.observe(inputs)
        self.batch_seconds.observe(seconds)
        self.inputs.inc(inputs)
        self.tokens.inc(tokens)

    def queue_depth(self, read: Callable[[], int]) -> None:
        self._queue.set_function(read)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
