"""The collections API's request and response shapes (pydantic: types and bounds checked once,
where a request enters), and their translation into the arguments of uniembed.Collection and back.
What the library checks (ids, payloads, vector sizes, images) it checks; nothing is checked twice
except the shape of a JSON body, which only the HTTP layer knows."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from uniembed.serve.api_errors import ApiError
from uniembed.serve.openapi import JsonInt

Number = StrictFloat | StrictInt
PayloadValue = StrictStr | StrictInt | StrictFloat | StrictBool | None
FilterRule = PayloadValue | dict[str, PayloadValue | list[PayloadValue]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class FdeParams(Strict):
    repetitions: JsonInt = Field(20, ge=1, le=256)
    k_sim: JsonInt = Field(5, ge=0, le=12)
    d_proj: JsonInt | None = Field(16, ge=1, le=4096)
    final_dim: JsonInt | None = Field(None, ge=1, le=1_000_000)
    seed: JsonInt = 42


class CreateCollection(Strict):
    name: str = Field(
        description="1-64 letters, digits, '_' or '-', starting with a letter or digit"
    )
    index: Literal["exact", "hnsw", "ivfpq"] = "exact"
    quantize: Literal["none", "binary", "int8"] = "none"
    index_params: dict[str, StrictInt | StrictFloat | StrictStr] | None = None
    fields: list[str] | None = Field(None, min_length=1, max_length=16)
    dim: JsonInt | None = Field(
        None,
        ge=1,
        le=65536,
        description="vectors-only: their dimension; with the model: Matryoshka truncation",
    )
    vectors_only: StrictBool = False
    multivector: Literal["muvera"] | None = Field(
        None, description="keep token vectors and their MUVERA FDE"
    )
    fde: FdeParams | None = None
    token_storage: Literal["float16", "int8"] = "float16"
    images: Literal["bytes"] | None = Field(
        None,
        description="keep each item's image (needs an image model); "
        "path-reference collections are made with the CLI only",
    )
    max_image_bytes: JsonInt | None = Field(None, ge=1, le=1 << 30)
    relative_anchors: list[Annotated[str, Field(min_length=1, max_length=2000)]] | None = Field(
        None,
        min_length=2,
        max_length=10_000,
        description="store each vector as its cosines to these anchor texts: "
        "any later model that embeds them searches the collection with no adapter",
    )


class ItemIn(Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str | None = None
    image: str | None = Field(
        None,
        min_length=1,
        description="image collections: a data URI or base64 "
        "(embedded unless the item brings its vector; the text is then its caption)",
    )
    vector: list[Number] | None = Field(None, min_length=1)
    vectors: dict[str, list[Number]] | None = None
    tokens: list[list[Number]] | None = Field(
        None, description="multi-vector collections: one vector per token"
    )
    payload: dict[str, JsonValue] | None = Field(
        None,
        description="any JSON object; scalar values of "
        "identifier keys become filterable fields, nested ones are kept",
    )


class WriteItems(Strict):
    items: list[ItemIn] = Field(min_length=1)
    upsert: StrictBool = False


class DeleteItems(Strict):
    ids: list[str] = Field(min_length=1)


class SearchRequest(Strict):
    query: str | None = Field(None, min_length=1)
    image: str | None = Field(
        None,
        min_length=1,
        description="search by an image (data URI or base64), "
        "alone or with query (fused with image_weight)",
    )
    image_weight: float = Field(0.5, ge=0, le=1)
    vector: list[Number] | None = Field(None, min_length=1)
    k: JsonInt = Field(10, ge=1, le=10_000)
    filter: str | dict[str, FilterRule] | None = None
    mode: Literal["dense", "text", "hybrid"] = "dense"
    field: str | None = None
    tokens: list[list[Number]] | None = Field(
        None, description="multi-vector collections: query token vectors"
    )
    first_stage: Literal["fde", "exact", "tokens"] | None = None
    candidates: JsonInt | None = Field(None, ge=1, le=100_000)
    token_hits: JsonInt | None = Field(None, ge=1, le=10_000)
    with_items: StrictBool = Field(
        False, description="also return each hit's text and image (a data URI)"
    )


class HitOut(BaseModel):
    id: str
    score: float
    payload: dict
    text: str | None = None
    image: str | None = None
    image_path: str | None = None


class SearchResponse(BaseModel):
    hits: list[HitOut]


class WriteResponse(BaseModel):
    version: int
    count: int


def item_media(item) -> dict:
    if isinstance(item.image, bytes):
        return {"image": data_uri(item.image)}
    if item.image is not None:
        return {"image_path": item.image}
    return {}


def info_of(name: str, collection) -> dict:
    info = collection.info()
    bytes_per_vector = info.bytes_per_vector
    return {
        "name": name,
        "count": info.count,
        "model": info.model,
        "fields": info.fields,
        "index": info.index,
        "quantize": info.quantize,
        "index_params": info.index_params,
        "version": info.version,
        "bytes_per_vector": None if math.isnan(bytes_per_vector) else bytes_per_vector,
        "disk_bytes": info.disk_bytes,
        "payload_fields": info.payload_fields,
        "multivector": info.multivector,
        "token_bytes_per_item": info.token_bytes_per_item,
        "images": info.images,
        "relative": info.relative,
    }


def request_images_decoded(values: list[str], labels: list[str], limits) -> list:
    from uniembed.serve.images import decode_request_images

    return decode_request_images(values, labels, limits)


def request_images(items: list[ItemIn], limits) -> list:
    """Each item's image bytes (None where it has none), checked against the server's limits from
    their headers (400 / 413 naming the item); the collection decodes them once, when it embeds."""
    from uniembed.images.decode import check_image_bytes
    from uniembed.serve.images import request_image_bytes

    out = []
    for index, item in enumerate(items):
        if item.image is None:
            out.append(None)
            continue
        where = f"items[{index}].image"
        data = request_image_bytes(item.image, where)
        check_image_bytes(data, where, limits)
        out.append(data)
    return out


_IMAGE_TYPES = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


def data_uri(data: bytes) -> str:
    import base64

    kind = next((mime for magic, mime in _IMAGE_TYPES if data.startswith(magic)), None)
    if kind is None:
        kind = (
            "image/webp"
            if data[:4] == b"RIFF" and data[8:12] == b"WEBP"
            else "application/octet-stream"
        )
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def multivector_options(request: CreateCollection) -> dict:
    if request.multivector is None:
        if request.fde is not None or request.token_storage != "float16":
            raise ApiError(
                400,
                "fde and token_storage belong to multi-vector collections (multivector: muvera)",
                param="multivector",
            )
        return {}
    fde = request.fde.model_dump() if request.fde else None
    return {"multivector": request.multivector, "fde": fde, "token_storage": request.token_storage}


def token_array(rows: list[list], param: str) -> np.ndarray:
    if len({len(row) for row in rows}) > 1:
        raise ApiError(400, f"{param}: token vectors have different lengths", param=param)
    return finite_array(rows, param)


def finite_array(values: list, param: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused just below
        array = np.asarray(values, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ApiError(
            400, f"{param} holds a value that is not a finite float32 number", param=param
        )
    return array


def data_and_texts(items: list[ItemIn], collection):
    """(data, texts) for Collection.add: every item brings vectors, or every item brings a text to embed."""
    if collection.multivector is not None:
        return token_data(items)
    if any(item.tokens is not None for item in items):
        raise ApiError(
            400,
            "tokens are for multi-vector collections; this one takes vector / vectors or text",
            param="items",
        )
    fields = list(collection.meta.fields)
    with_vectors = [item.vector is not None or item.vectors is not None for item in items]
    if all(with_vectors):
        per_field = {field: [] for field in fields}
        for index, item in enumerate(items):
            given = dict(item.vectors or {})
            if item.vector is not None:
                given[collection.meta.default_field] = item.vector
            if set(given) != set(fields):
                raise ApiError(
                    400,
                    f"items[{index}] has vectors for {sorted(given)}; this collection needs {fields}",
                    param=f"items.{index}.vectors",
                )
            for field in fields:
                per_field[field].append(given[field])
        data = {}
        for field, rows in per_field.items():
            if len({len(row) for row in rows}) != 1:
                raise ApiError(
                    400, f"vectors for field {field!r} have different lengths", param="items"
                )
            data[field] = finite_array(rows, f"vectors of field {field!r}")
        return data, [item.text for item in items]
    if any(with_vectors):
        raise ApiError(
            400,
            "some items have vectors and some do not: send all with vectors or all with text",
            param="items",
        )
    missing = [index for index, item in enumerate(items) if not item.text]
    if missing:
        raise ApiError(400, f"items{missing[:5]} have neither a vector nor a text", param="items")
    texts = [item.text for item in items]
    return {field: texts for field in fields}, None


def token_data(items: list[ItemIn]):
    """(data, texts) for a multi-vector collection: every item brings tokens, or every item a text."""
    if any(item.vector is not None or item.vectors is not None for item in items):
        raise ApiError(
            400,
            "this collection is multi-vector: send tokens (one vector per token) or text, not vector",
            param="items",
        )
    if all(item.tokens is not None for item in items):
        sets = [
            token_array(item.tokens, f"items.{index}.tokens") for index, item in enumerate(items)
        ]
        return sets, [item.text for item in items]
    if any(item.tokens is not None for item in items):
        raise ApiError(
            400,
            "some items have tokens and some do not: send all with tokens or all with text",
            param="items",
        )
    missing = [index for index, item in enumerate(items) if not item.text]
    if missing:
        raise ApiError(400, f"items{missing[:5]} have neither tokens nor a text", param="items")
    return [item.text for item in items], None
