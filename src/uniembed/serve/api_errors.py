"""Every error the service returns, in OpenAI's envelope:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "input", "code": "empty_input"}}

with the status that says what happened (400 bad field, 401 bad key, 404 unknown model or
collection, 409 conflict, 413 too large, 429 overloaded, 503 not ready). Nothing the client
sends may produce a 500; if something still does, the client gets the envelope, not a traceback.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger("uniembed.serve")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    421: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def envelope(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def envelope_bytes(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> bytes:
    return json.dumps(envelope(status, message, param, code)).encode()


def path_redactor(root):
    """A function that removes the collections root from messages: the client names collections,
    and the server's absolute paths are none of its business ("/srv/data/docs: ..." -> "docs: ...")."""
    import os
    from pathlib import Path

    if root is None:
        return lambda message: message
    prefixes = sorted(
        {
            str(Path(root)) + os.sep,
            str(Path(root).resolve()) + os.sep,
            str(Path(root).absolute()) + os.sep,
        },
        key=len,
        reverse=True,
    )

    def redact(message: str) -> str:
        for prefix in prefixes:
            message = message.replace(prefix, "")
        return message

    return redact


def install_handlers(app, redact=lambda message: message) -> None:
    """Map every exception the app can raise to the envelope; `redact` cleans library messages."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from uniembed.errors import (
        CollectionDamagedError,
        CollectionLockedError,
        ConflictError,
        InputError,
        ModelOutputError,
        NotFoundError,
        StoreUnavailableError,
    )
    from uniembed.images.decode import ImageTooLarge

    def respond(status: int, message: str, param=None, code=None, headers=None) -> JSONResponse:
        return JSONResponse(
            envelope(status, message, param, code), status_code=status, headers=headers
        )

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return respond(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type.lower():
            return respond(
                400,
                f"send the body as JSON with 'Content-Type: application/json' (got {content_type!r:.80})",
                code="unsupported_content_type",
            )
        return respond(400, *_describe(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:
            message = "the request body could not be read as JSON"
        return respond(exc.status_code, message, headers=getattr(exc, "headers", None))

    # uniembed's own errors: (status, code, extra headers) per class. Starlette picks the handler
    # of the nearest class in the exception's MRO, so NotFoundError and ConflictError (both
    # InputErrors) and ImageTooLarge get their own status, and every other InputError is a 400.
    statuses = {
        InputError: (400, None, None),
        NotFoundError: (404, "not_found", None),
        ConflictError: (409, "conflict", None),
        ImageTooLarge: (413, "image_too_large", None),
        CollectionLockedError: (409, "collection_locked", None),
        # the request is fine; the collection's files are not, and the operator must repair them
        CollectionDamagedError: (409, "collection_damaged", None),
        # a mounted collection's database is down or refuses us: the request may succeed later
        StoreUnavailableError: (503, "store_unavailable", {"Retry-After": "5"}),
    }

    async def library_error(request, exc: Exception):
        status, code, headers = next(
            statuses[kind] for kind in type(exc).__mro__ if kind in statuses
        )
        return respond(status, redact(str(exc)), code=code, headers=headers)

    for kind in statuses:
        app.add_exception_handler(kind, library_error)

    @app.exception_handler(ModelOutputError)
    async def broken_model(request, exc: ModelOutputError):
        log.error("%s", exc)
        return respond(500, str(exc), code="model_output_invalid")

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(
            500,
            f"internal error ({type(exc).__name__}); the server log has the details",
            code="internal_error",
        )


def _describe(errors: list) -> tuple[str, str | None, str | None]:
    """(message, param, code) for pydantic's errors: param is the top-level request field, the
    message names the full location and what was wrong."""
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    kind = first.get("type")
    if kind == "json_invalid":
        return "the request body is not valid JSON", None, kind
    if not location:
        return "the request body is missing or is not a JSON object", None, kind
    param = location[0]
    if (
        param == "input" and kind != "missing"
    ):  # pydantic lists one error per union member: say it once
        from uniembed.serve.openapi import INPUT_SHAPES

        return f"input must be {INPUT_SHAPES}", "input", "invalid_input"
    where = ".".join(location)
    return f"{where}: {first.get('msg', 'invalid value')}", param, kind
