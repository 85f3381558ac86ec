"""The HTTP service: `create_app(settings)` builds it, `uniembed serve` runs it with uvicorn."""

from __future__ import annotations

from uniembed.serve.settings import ServeSettings, read_api_keys


def create_app(settings: ServeSettings | None = None, *, encoder=None):
    from uniembed.serve.app import create_app as build

    return build(settings, encoder=encoder)


__all__ = ["ServeSettings", "create_app", "read_api_keys"]
