"""POST /v1/embeddings and GET /v1/models, following OpenAI's API reference to the letter:

- `input`: a string, an array of strings, an array of token ids, or an array of token-id arrays
  (ids in the served model's own vocabulary, without special tokens);
- `encoding_format`: "float" (JSON numbers) or "base64" (little-endian float32 bytes);
- `dimensions`: keep the first n coordinates and renormalise (Matryoshka);
- `usage.prompt_tokens` / `total_tokens`: the tokens the model ran on, special tokens included.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Annotated, Literal

import numpy as np
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from uniembed.serve.api_errors import ApiError
from uniembed.serve.disconnect import CLIENT_CLOSED, ClientGone, unless_client_gone

try:
    import orjson
except ImportError:  # optional: the standard json module gives the same vectors, slower
    orjson = None
from uniembed.serve.openapi import ERROR_RESPONSES, INPUT_SHAPES, JsonInt

NonEmptyText = Annotated[str, Field(min_length=1)]
TokenIds = Annotated[list[Annotated[JsonInt, Field(ge=0)]], Field(min_length=1)]
INLINE_CHARS = 4096  # requests up to this size are tokenised on the event loop


class InputItem(BaseModel):
    """An image, a text, or both (fused: the mean of the normalised vectors, renormalised)."""

    model_config = ConfigDict(extra="forbid")

    image: NonEmptyText | None = Field(
        None,
        description="a data URI (data:image/png;base64,...) or bare base64; never a URL or a path",
    )
    text: NonEmptyText | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI ignores fields it does not know; so do we

    input: (
        NonEmptyText
        | Annotated[list[NonEmptyText], Field(min_length=1)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1)]
        | Annotated[list[InputItem], Field(min_length=1)]
    ) = Field(
        description=f"What to embed: {INPUT_SHAPES}; or, for image models, an array of {{image, text}} items."
    )
    model: str = Field(description="A model id from GET /v1/models.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: JsonInt | None = Field(
        None, ge=1, description="Keep this many leading dimensions, renormalised."
    )
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


async def embed_through_batcher(
    state, inputs: list, *, prompt: str | None = None, dimensions: int | None = None, receive=None
) -> tuple[np.ndarray | None, int]:
    """(vectors exactly as encode(inputs, prompt=prompt, dim=dimensions) gives them, tokens used),
    through the micro-batcher: 400 for inputs the model cannot take, 429 when its queue is full,
    503 while shutting down. With `receive` (the ASGI channel), a client that disconnects first
    cancels the work and gets (None, 0)."""
    from uniembed.serve.batcher import BatcherClosed, QueueFull
    from uniembed.serve.model import InputRejected

    model = state.require_model()
    with state.batcher.arriving():  # the batcher may wait for this request to join a batch
        try:
            if inputs and isinstance(
                inputs[0], dict
            ):  # image items: decoding images is slow work, off the loop
                prepared = await asyncio.to_thread(_prepare_items, state, inputs, prompt)
            else:
                # tokenising a few short texts takes microseconds: a thread hop would cost more
                small = len(inputs) <= 16 and sum(len(item) for item in inputs) <= INLINE_CHARS
                prepared = (
                    model.prepare(inputs, prompt)
                    if small
                    else await asyncio.to_thread(model.prepare, inputs, prompt)
                )
            vectors_ready = state.batcher.submit(prepared, prepared.n_inputs, prepared.n_tokens)
        except InputRejected as exc:
            raise ApiError(400, str(exc), param=exc.param, code="invalid_input") from exc
        except QueueFull as exc:
            state.metrics.rejected.inc()
            raise ApiError(429, str(exc), code="queue_full", headers={"Retry-After": "1"}) from exc
        except BatcherClosed as exc:
            raise ApiError(503, "the server is shutting down", code="shutting_down") from exc
    if receive is None:
        raw = await vectors_ready
    else:
        try:
            raw = await unless_client_gone(receive, vectors_ready)
        except ClientGone:
            return None, 0
    return model.finish(raw, dimensions), prepared.n_tokens


def _prepare_items(state, items: list[dict], prompt: str | None):
    """Decode the items' images (400 / 413 naming the item) and wrap them for the batcher."""
    from uniembed.serve.images import decode_request_images
    from uniembed.serve.model import InputRejected

    model = state.require_model()
    if "image" not in model.encoder.modalities:
        raise InputRejected(f"model {model.id} embeds text only; it cannot take images")
    with_image = [i for i, item in enumerate(items) if "image" in item]
    decoded = decode_request_images(
        [items[i]["image"] for i in with_image],
        [f"input[{i}]" for i in with_image],
        state.image_limits,
        model.encoder.preprocessing,
    )  # every image model has one (ImageTower)
    ready = [dict(item) for item in items]
    for i, image in zip(with_image, decoded):
        ready[i]["image"] = image
    return model.prepare_items(ready, prompt)


def embedding_routes(state):
    from fastapi import APIRouter
    from fastapi.responses import Response

    router = APIRouter(tags=["embeddings"])
    started = int(time.time())

    @router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERROR_RESPONSES)
    async def create_embeddings(request: EmbeddingRequest, http: Request):
        settings = state.settings
        model = state.require_model()
        if request.model not in model.names:
            raise ApiError(
                404,
                f"the model {request.model!r} does not exist; this server serves {model.id!r}",
                param="model",
                code="model_not_found",
            )
        inputs = _as_list(request.input)
        if isinstance(inputs[0], InputItem):
            inputs = _items(inputs)
        _check_sizes(inputs, settings)
        if request.dimensions is not None and request.dimensions > model.dim:
            raise ApiError(
                400,
                f"dimensions must be in [1, {model.dim}] for {model.id}, got {request.dimensions}",
                param="dimensions",
                code="invalid_dimensions",
            )
        vectors, n_tokens = await embed_through_batcher(
            state, inputs, dimensions=request.dimensions, receive=http.receive
        )
        if vectors is None:
            return Response(status_code=CLIENT_CLOSED)
        body = _response_body(vectors, request.encoding_format, model.id, n_tokens)
        return Response(body, media_type="application/json")

    @router.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES)
    async def list_models():
        model = state.require_model()
        return {
            "object": "list",
            "data": [
                {"id": model.id, "object": "model", "created": started, "owned_by": "uniembed"}
            ],
        }

    @router.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=ERROR_RESPONSES)
    async def get_model(model_id: str):
        model = state.require_model()
        if model_id not in model.names:
            raise ApiError(
                404,
                f"the model {model_id!r} does not exist; this server serves {model.id!r}",
                param="model",
                code="model_not_found",
            )
        return {"id": model.id, "object": "model", "created": started, "owned_by": "uniembed"}

    return router


def _as_list(value) -> list:
    return (
        [value]
        if isinstance(value, str)
        else value
        if isinstance(value[0], (str, list, InputItem))
        else [value]
    )


def _items(items: list[InputItem]) -> list:
    """Items as dicts; a list of text-only items is plain texts (the text path, batched with others)."""
    out = []
    for index, item in enumerate(items):
        given = {
            key: value
            for key, value in (("image", item.image), ("text", item.text))
            if value is not None
        }
        if not given:
            raise ApiError(
                400,
                f"input[{index}] has neither an image nor a text",
                param="input",
                code="invalid_input",
            )
        out.append(given)
    if all("image" not in item for item in out):
        return [item["text"] for item in out]
    return out


def _check_sizes(inputs: list, settings) -> None:
    if len(inputs) > settings.max_inputs:
        raise ApiError(
            413,
            f"input holds {len(inputs)} items, over the limit of {settings.max_inputs} per request",
            param="input",
            code="too_many_inputs",
        )
    for index, item in enumerate(inputs):
        if isinstance(item, dict) and len(item.get("text", "")) > settings.max_input_chars:
            raise ApiError(
                413,
                f"input[{index}].text is {len(item['text'])} characters, over the limit of "
                f"{settings.max_input_chars}",
                param="input",
                code="input_too_large",
            )
        if isinstance(item, str) and len(item) > settings.max_input_chars:
            raise ApiError(
                413,
                f"input[{index}] is {len(item)} characters, over the limit of {settings.max_input_chars}",
                param="input",
                code="input_too_large",
            )
        if isinstance(item, list) and len(item) > settings.max_input_tokens:
            raise ApiError(
                413,
                f"input[{index}] holds {len(item)} token ids, over the limit of {settings.max_input_tokens}",
                param="input",
                code="input_too_large",
            )


def _response_body(vectors: np.ndarray, encoding_format: str, model_id: str, tokens: int) -> bytes:
    # Serialised here, not by FastAPI's generic encoder, which walks every float through Python.
    # orjson writes each float32 in its shortest form that reads back as the same float32 (25x
    # faster than json on a 384-float vector); json writes the exact double of each float32.
    if encoding_format == "base64":
        items = [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in vectors]
    else:
        items = list(vectors) if orjson is not None else vectors.tolist()
    data = [{"object": "embedding", "index": i, "embedding": item} for i, item in enumerate(items)]
    payload = {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    if orjson is not None:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(payload, separators=(",", ":")).encode()
