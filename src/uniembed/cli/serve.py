"""`uniembed serve`: run the HTTP service (a thin shell over uniembed.serve.create_app + uvicorn)."""

from __future__ import annotations

import argparse

from uniembed.cli.common import add_backend_options


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the HTTP service: OpenAI-compatible /v1/embeddings, collections, metrics",
        description="Serve MODEL over HTTP. Binds 127.0.0.1 unless --host says otherwise. /health answers at once; "
        "/ready and the API answer 503 until the model has loaded. SIGTERM or Ctrl-C drain in-flight requests.",
    )
    parser.add_argument(
        "--model",
        "-m",
        default="default",
        help="catalogue name, model directory, hub id or static "
        "model folder (default: all-MiniLM-L6-v2)",
    )
    add_backend_options(parser)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    parser.add_argument(
        "--collections",
        default=None,
        metavar="DIR",
        help="folder of collections to serve (created if missing); without it, no collections API",
    )
    parser.add_argument(
        "--remote-collection",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="serve the collection at URL (postgresql://...#name or milvus://host:port/name) as NAME "
        "(repeatable); created and dropped with the CLI only",
    )
    parser.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of results for the web page's evaluation tab: `uniembed eval` output or "
        "bench JSON (python -m bench.run --json DIR); repeatable; ./results is always read",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument("--port", type=int, default=8080, help="(default: 8080)")
    parser.add_argument(
        "--api-key-file",
        default=None,
        metavar="FILE",
        help="file of API keys, one per line: requests must send 'Authorization: Bearer <key>'",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser calls from ORIGIN (repeatable; default: CORS off)",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=16_384,
        help="token budget of one micro-batch (default: 16384)",
    )
    parser.add_argument(
        "--max-part-tokens",
        type=int,
        default=4096,
        help="a request's share of one batch: larger requests are encoded in parts, other requests "
        "in between (default: 4096)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long a batch waits to fill (default: 10)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=8192,
        help="inputs waiting before requests get 429 (default: 8192)",
    )
    parser.add_argument(
        "--no-batching", action="store_true", help="encode every request alone (for comparison)"
    )
    parser.add_argument(
        "--max-body-mb", type=float, default=8.0, help="largest request body in MiB (default: 8)"
    )
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        default=40_000_000,
        help="largest decoded image, in pixels; larger ones answer 413 (default: 40000000)",
    )
    parser.add_argument(
        "--collection-threads",
        type=int,
        default=8,
        help="threads for collection searches and writes, apart from encoding (default: 8)",
    )
    parser.add_argument(
        "--max-collection-queue",
        type=int,
        default=256,
        help="collection requests running or waiting; more get 429 at once (default: 256)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="accept requests whose Host header names HOST (repeatable; '*': any). Loopback names and "
        "--host are always accepted; others are refused, against DNS rebinding",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a request's headers and body must arrive within this (default: 30)",
    )
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="idle kept-alive connections close after this (default: 5)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open connections at most; more are closed at once (default: 1000)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace):
    from uniembed.errors import InputError
    from uniembed.serve.settings import ServeSettings, read_api_keys

    if not 0 < args.max_body_mb <= 1024:  # also refuses nan, which compares false with everything
        raise InputError(
            f"--max-body-mb must be a number of MiB in (0, 1024], got {args.max_body_mb}"
        )
    return ServeSettings(
        model=args.model,
        backend=args.backend,
        precision=args.precision,
        min_cosine=args.min_cosine,
        device=args.device,
        threads=args.threads,
        collections=args.collections,
        remote_collections=tuple(_name_and_url(v) for v in args.remote_collection),
        results_dirs=tuple(args.results),
        host=args.host,
        port=args.port,
        api_keys=read_api_keys(args.api_key_file) if args.api_key_file else (),
        cors_origins=tuple(args.cors_origin),
        batching=not args.no_batching,
        max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms,
        max_part_tokens=args.max_part_tokens,
        max_queue_inputs=args.max_queue,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        allowed_hosts=tuple(args.allowed_host),
        read_timeout_s=args.read_timeout,
        keep_alive_s=args.keep_alive,
        max_connections=args.max_connections,
        collection_threads=args.collection_threads,
        max_collection_queue=args.max_collection_queue,
        max_image_pixels=args.max_image_pixels,
    )


def _name_and_url(value: str) -> tuple[str, str]:
    from uniembed.errors import InputError

    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise InputError(f"--remote-collection takes NAME=URL, got {value.split('@')[-1]!r}")
    return name, url


def run(args: argparse.Namespace) -> int:
    from uniembed._extras import require

    require("serve")
    import uvicorn

    from uniembed.errors import ModelLoadError
    from uniembed.serve import create_app
    from uniembed.serve.protocol import guarded_protocol

    settings = settings_from_args(args)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        server_header=False,
        http=guarded_protocol(settings.read_timeout_s, settings.max_connections),
        timeout_keep_alive=settings.keep_alive_s,
    )
    server = uvicorn.Server(config)
    service = app.state.service
    service.on_load_failure = lambda: setattr(
        server, "should_exit", True
    )  # a model that cannot load: stop
    server.run()
    if service.load_error:
        raise ModelLoadError(service.load_error)
    return 0
