"""Shared pieces of the OpenAPI document: the error envelope (declared on every route) and JSON integers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator

INPUT_SHAPES = (
    "a non-empty string, an array of non-empty strings, an array of token ids or an array of "
    "non-empty token-id arrays"
)  # what /v1/embeddings takes as `input`, for the schema and errors


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


_MEANINGS = {
    400: "a bad field, an empty input or invalid JSON",
    401: "a missing or wrong API key",
    404: "an unknown model, collection or item",
    409: "a conflict (exists already, locked by another writer) or a collection whose files are damaged",
    413: "a body, an input or a batch over the configured limits",
    429: "the encoding queue is full; retry",
    503: "not ready (the model is loading) or shutting down",
}
ERROR_RESPONSES = {
    status: {"model": ErrorEnvelope, "description": meaning}
    for status, meaning in _MEANINGS.items()
}


def _json_integer(value):
    """JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees). Booleans and strings
    are not integers, and neither is 5.5."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
