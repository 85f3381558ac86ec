"""What `uniembed serve` runs with: every limit has a default a demanding user would pick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uniembed.errors import InputError


@dataclass
class ServeSettings:
    model: str = "default"  # a catalogue name, a model directory, a hub id or a static model folder
    backend: str = "torch"
    precision: str = "fp32"
    min_cosine: float | None = None  # with an "auto" backend or precision (encoders/auto.py)
    device: str | None = None
    threads: int | None = None
    collections: Path | None = (
        None  # folder holding one sub-folder per collection; None: no collections API
    )
    # collections that live on a database server, served under a name: ((name, url), ...)
    remote_collections: tuple[tuple[str, str], ...] = ()
    # folders the web page's evaluation tab reads (MTEB-shaped results, bench JSON); results/ always
    results_dirs: tuple[Path, ...] = ()
    host: str = "127.0.0.1"  # loopback unless the operator says otherwise
    port: int = 8080
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers at all
    # request limits
    max_body_bytes: int = 8 * 1024 * 1024
    max_inputs: int = 2048  # per request, as OpenAI
    max_input_chars: int = 100_000  # per text input; longer texts answer 413
    max_input_tokens: int = 8192  # per token-id input
    max_image_pixels: int = (
        40_000_000  # per image, decoded (a 40-megapixel photo); larger answer 413
    )
    # micro-batching
    batching: bool = True
    max_batch_tokens: int = 16_384
    # one request's share of a batch: larger requests are encoded in parts with others in between
    # (bench/serve_fairness.py: a short request then waits about 1 s on 2 CPU cores; raise it on a GPU)
    max_part_tokens: int = 4096
    # how long a batch may wait to fill; a busy stream of 32 clients needs about 10 ms to come back whole
    max_wait_ms: float = 10.0
    max_queue_inputs: int = (
        8192  # inputs waiting to be encoded; a request that does not fit gets 429
    )
    shutdown_grace_s: float = 30.0
    collection_threads: int = (
        8  # searches and writes of collections run on these, apart from encoding
    )
    max_collection_queue: int = 256  # collection calls running or waiting; more get 429 at once
    # slow and idle clients (see uniembed.serve.protocol)
    read_timeout_s: float = 30.0  # a request's headers and body must arrive within this
    keep_alive_s: float = 5.0  # an idle kept-alive connection closes after this
    max_connections: int = 1000  # open connections; more are closed at once
    allowed_hosts: tuple[
        str, ...
    ] = ()  # Host header values accepted besides loopback and `host`; "*": any

    def __post_init__(self) -> None:
        for name in (
            "port",
            "max_body_bytes",
            "max_inputs",
            "max_input_chars",
            "max_input_tokens",
            "max_image_pixels",
            "max_batch_tokens",
            "max_part_tokens",
            "max_queue_inputs",
            "collection_threads",
            "max_collection_queue",
            "max_connections",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (0 if name == "port" else 1)
            ):
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise InputError(f"port must be in [0, 65535], got {self.port!r}")
        if (
            not isinstance(self.max_wait_ms, (int, float))
            or isinstance(self.max_wait_ms, bool)
            or not 0 <= self.max_wait_ms <= 1000
        ):
            raise InputError(
                f"max_wait_ms must be a number of milliseconds in [0, 1000], got {self.max_wait_ms!r}"
            )
        for name in ("read_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value <= 3600
            ):
                raise InputError(f"{name} must be a number of seconds in (0, 3600], got {value!r}")
        if self.max_queue_inputs < self.max_inputs:
            raise InputError(
                f"max_queue_inputs ({self.max_queue_inputs}) must be at least max_inputs ({self.max_inputs}): "
                "otherwise a full-size request could never be queued"
            )
        if self.collections is not None:
            self.collections = Path(self.collections)
            if self.collections.exists() and not self.collections.is_dir():
                raise InputError(f"collections must be a folder, got the file {self.collections}")
        self.remote_collections = check_remote_collections(self.remote_collections)
        self.api_keys = tuple(self.api_keys)
        self.results_dirs = tuple(Path(folder) for folder in self.results_dirs)
        for folder in self.results_dirs:
            if not folder.is_dir():
                raise InputError(
                    f"--results must be a folder, got {str(folder)!r}: it does not exist or is a file"
                )
        self.allowed_hosts = tuple(self.allowed_hosts)
        self.cors_origins = tuple(self.cors_origins)
        if self.min_cosine is not None:  # refused here, not later in the model's loading thread
            from uniembed.encoders.auto import check_min_cosine

            if "auto" not in (self.backend, self.precision):
                raise InputError(
                    f"min_cosine={self.min_cosine!r} applies to backend='auto' or precision='auto' only"
                )
            check_min_cosine(self.min_cosine)


def check_remote_collections(pairs) -> tuple[tuple[str, str], ...]:
    """((name, url), ...) with names the collections API accepts, each once, and collection URLs."""
    if not pairs:
        return ()
    from uniembed.serve.collections import NAME
    from uniembed.store.homes import home_of, is_server_location

    checked, seen = [], set()
    for pair in pairs:
        if not (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and all(isinstance(part, str) for part in pair)
        ):
            raise InputError(f"a remote collection is a (name, url) pair, got {pair!r}")
        name, url = pair
        if not NAME.fullmatch(name):
            raise InputError(
                f"remote collection name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
        if name in seen:
            raise InputError(f"remote collection name {name!r} is given twice")
        if not is_server_location(url):
            raise InputError(
                f"remote collection {name!r}: {url.split('@')[-1]!r} is not a postgresql:// or milvus:// "
                "collection URL"
            )
        home_of(url).parse_url(url)  # a URL that names no collection: the home's own clear error
        seen.add(name)
        checked.append((name, url))
    return tuple(checked)


def read_api_keys(path: str | Path) -> tuple[str, ...]:
    """One key per line; blank lines and lines starting with # are skipped. The keys themselves
    never appear in an error message."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the API key file {path}: {type(exc).__name__}") from exc
    keys = tuple(
        line.strip() for line in lines if line.strip() and not line.strip().startswith("#")
    )
    if not keys:
        raise InputError(f"the API key file {path} holds no key")
    short = sum(len(k) < 16 for k in keys)
    if short:
        raise InputError(
            f"the API key file {path} holds {short} key(s) shorter than 16 characters: use long random keys"
        )
    return keys
