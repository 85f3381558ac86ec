"""`create_app(settings)`: the HTTP service as an ASGI app (FastAPI). Nothing loads at import
time or in create_app: the model loads on a thread at startup, and /ready answers 503 until it has.

    /v1/embeddings, /v1/models            OpenAI-compatible (the official client works unchanged)
    /v1/collections/...                   create, list, drop; add, upsert, get, delete items; search
    /health, /ready, /metrics             liveness, readiness, Prometheus text format
    /openapi.json, /docs                  the OpenAPI document and its browser
    /, /page/*, /v1/results               the web page (search, map, evaluation charts) and what it reads
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager, contextmanager

from uniembed.serve.api_errors import ApiError, install_handlers, path_redactor
from uniembed.serve.settings import ServeSettings

log = logging.getLogger("uniembed.serve")


class ServiceState:
    """What the routes share: settings, the loaded model, its batcher, collections, metrics."""

    def __init__(self, settings: ServeSettings, encoder=None):
        from uniembed.serve.metrics import Metrics

        self.settings = settings
        self.model = None  # ServedModel once loaded
        self.load_error: str | None = None
        self.batcher = None
        self.metrics = Metrics()
        self._preloaded = encoder
        self.on_load_failure = None  # called when the model cannot load (the CLI stops the server)
        self.collections = None
        self.collection_pool = None
        from uniembed.projection import ProjectionCache

        self.projections = ProjectionCache()  # the page's maps, one per collection version
        self._collection_calls = 0  # in the pool or waiting for it
        from uniembed.images.decode import ImageLimits

        # an image's bytes cannot exceed the request body; its pixels are capped separately (413)
        self.image_limits = ImageLimits(
            max_bytes=settings.max_body_bytes, max_pixels=settings.max_image_pixels
        )
        if settings.collections is not None or settings.remote_collections:
            from uniembed.serve.collections import CollectionRegistry

            self.collections = CollectionRegistry(
                settings.collections,
                lambda: self.model.encoder if self.model else None,
                dict(settings.remote_collections),
            )

    def start(self) -> None:
        if self.collections is not None:
            from concurrent.futures import ThreadPoolExecutor

            # collection work has its own threads: slow searches cannot starve embedding requests
            self.collection_pool = ThreadPoolExecutor(
                self.settings.collection_threads, thread_name_prefix="uniembed-collections"
            )
        if self._preloaded is not None:
            self._install(self._preloaded)
        else:
            threading.Thread(target=self._load, name="uniembed-model-loader", daemon=True).start()

    def _load(self) -> None:
        from uniembed.encoders.load import load

        settings = self.settings
        try:
            encoder = load(
                None if settings.model == "default" else settings.model,
                backend=settings.backend,
                precision=settings.precision,
                min_cosine=settings.min_cosine,
                device=settings.device,
                threads=settings.threads,
            )
            if getattr(encoder, "auto_choice", None) is not None:
                log.info("%s", encoder.auto_choice.reason)
        except Exception as exc:  # reported by /ready and every embeddings call
            self.load_error = (
                f"the model {settings.model!r} failed to load: {type(exc).__name__}: {exc}"
            )
            log.error(self.load_error)
            if self.on_load_failure is not None:
                self.on_load_failure()
            return
        self._install(encoder)

    def _install(self, encoder) -> None:
        from uniembed.serve.batcher import MicroBatcher
        from uniembed.serve.model import ServedModel

        settings = self.settings
        model = ServedModel(encoder, aliases=[settings.model])
        self.batcher = MicroBatcher(
            model.embed,
            max_batch_tokens=settings.max_batch_tokens if settings.batching else 0,
            max_wait=settings.max_wait_ms / 1000,
            max_queue_inputs=settings.max_queue_inputs,
            on_batch=self.metrics.observe_batch,
            split=model.split,
            max_part_tokens=settings.max_part_tokens,
        )
        self.metrics.queue_depth(lambda: self.batcher.queued_inputs)
        self.model = model  # last: readiness flips only when everything is in place
        log.info("model %s ready (%d dims)", model.id, model.dim)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close(self.settings.shutdown_grace_s)
        if self.collection_pool is not None:
            self.collection_pool.shutdown(wait=True)
            self.collection_pool = None

    @contextmanager
    def collection_admission(self):
        """Yields whether one more collection call may run or wait (counted on the event loop)."""
        admitted = self._collection_calls < self.settings.max_collection_queue
        if admitted:
            self._collection_calls += 1
        try:
            yield admitted
        finally:
            if admitted:
                self._collection_calls -= 1

    def require_model(self):
        if self.model is None:
            message = self.load_error or "the model is still loading; retry when /ready answers 200"
            raise ApiError(
                503,
                message,
                code="model_load_failed" if self.load_error else "not_ready",
                headers=None if self.load_error else {"Retry-After": "1"},
            )
        return self.model


def create_app(settings: ServeSettings | None = None, *, encoder=None):
    """The ASGI app. `encoder`: an already loaded Encoder to serve (tests, embedding in a
    program); by default `settings.model` is loaded on a thread at startup."""
    from uniembed._extras import require

    require("serve")
    from fastapi import FastAPI

    from uniembed import __version__
    from uniembed.serve import routes_collections
    from uniembed.serve.guard import Guard
    from uniembed.serve.routes_embeddings import embedding_routes
    from uniembed.serve.routes_ops import ops_routes
    from uniembed.serve.routes_page import page_routes

    settings = settings or ServeSettings()
    state = ServiceState(settings, encoder)

    @asynccontextmanager
    async def lifespan(app):
        state.start()
        yield
        # uvicorn has stopped accepting and waited for in-flight requests: finish the queue, stop
        await asyncio.to_thread(state.stop)

    app = FastAPI(
        title="uniembed",
        version=__version__,
        lifespan=lifespan,
        description="Universal embeddings: OpenAI-compatible /v1/embeddings, collections with ANN and "
        "hybrid search, health and metrics.",
    )
    app.state.service = state
    install_handlers(app, path_redactor(settings.collections))
    app.include_router(embedding_routes(state))
    if state.collections is not None:
        app.include_router(routes_collections.router)
    app.include_router(ops_routes(state))
    app.include_router(page_routes(state))
    app.add_middleware(Guard, settings=settings, metrics=state.metrics)
    if settings.cors_origins:  # outermost (added last), so preflight requests need no key
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app
