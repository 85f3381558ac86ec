"""Creating a folder collection: the options checked (the index, the parts and how they combine,
the model), then the folder built in a temporary place and renamed into place, so a crash never
leaves half a collection. `FolderCollection.create` is `create_folder`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from uniembed._atomic import atomic_folder
from uniembed.encoders.base import Encoder
from uniembed.errors import ConflictError, InputError
from uniembed.index.base import check_index_params
from uniembed.multivector import FDEConfig
from uniembed.store import lance_backend  # noqa: F401  (registers the "lance" backend)
from uniembed.store.backend import backend_class, base_schema
from uniembed.store.collection import Collection, load_model, model_name, vector_dim
from uniembed.store.images import ImageSpec
from uniembed.store.meta import CollectionMeta, write_meta
from uniembed.store.multivector import make_fde
from uniembed.store.parts import RelativePart, TokenVectors, check_combination
from uniembed.store.rows import check_vector_fields

# (index, quantize) as users say it -> (index kind, its parameters)
INDEX_CHOICES = {
    ("exact", "none"): ("exact", {}),
    ("exact", "int8"): ("int8", {}),
    ("exact", "binary"): ("binary", {}),
    ("hnsw", "none"): ("hnsw", {}),
    ("hnsw", "int8"): ("hnsw", {"quantize": "int8"}),
    ("hnsw", "binary"): ("binary", {"graph": "hnsw"}),
    ("ivfpq", "none"): ("ivfpq", {}),
}


def resolve_index(index: str, quantize: str) -> tuple[str, dict]:
    if (index, quantize) not in INDEX_CHOICES:
        choices = ", ".join(f"{i}+{q}" for i, q in INDEX_CHOICES)
        raise InputError(
            f"unsupported index {index!r} with quantize {quantize!r}; choose one of: {choices}"
        )
    kind, params = INDEX_CHOICES[(index, quantize)]
    return kind, dict(params)


def create_folder(
    cls,
    path: str | Path,
    *,
    model: str | Encoder | None = "default",
    dim: int | None = None,
    fields: list[str] | None = None,
    index: str = "exact",
    quantize: str = "none",
    index_params: dict | None = None,
    backend: str = "lance",
    multivector: str | None = None,
    fde: FDEConfig | dict | None = None,
    token_storage: str = "float16",
    images: str | None = None,
    image_root: str | Path | None = None,
    max_image_bytes: int | None = None,
    relative_anchors: list[str] | None = None,
) -> Collection:
    """Make a new collection folder. model=None makes a vectors-only collection of `dim` dims;
    with a model, `dim` truncates its vectors (Matryoshka). Built in a temporary folder and
    renamed into place, so a crash never leaves half a collection.

    multivector="muvera": each item keeps its token vectors (token_storage "float16" or "int8")
    and their MUVERA FDE (parameters `fde`), which the index searches for candidates that exact
    MaxSim then ranks. Without a model, `dim` is the token vectors' dimension.

    images="bytes" or "path": the collection keeps each item's image (its bytes, up to
    `max_image_bytes`, default 4 MiB; or its path relative to `image_root`, default the
    collection folder), and `add(ids, images=[...])` embeds them with an image model (CLIP,
    SigLIP, a bound model). Search by text, image or both (see `search`).

    relative_anchors=[texts]: store each vector as its cosines to these anchor texts (relative
    representations, uniembed.spaces.relative; one dimension per anchor). Any later model that
    embeds the same anchors searches the collection at once: `open(path, model=new)`, no adapter."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConflictError(f"{path} already exists and is not empty")
    options = {
        "multivector": multivector,
        "images": images,
        "relative_anchors": relative_anchors,
        "dim": dim,
        "fde": fde,
        "image_root": image_root,
        "max_image_bytes": max_image_bytes,
    }
    given = {name for name, value in options.items() if value is not None}
    kind, params = resolve_index(index, quantize)
    encoder = load_model(model)
    anchors = RelativePart.checked(relative_anchors, encoder)
    check_combination(given | ({"token_storage"} if token_storage != "float16" else set()))
    image_spec = None
    if images is not None:
        image_spec = ImageSpec.make(images, max_image_bytes, image_root)
        if encoder is not None and "image" not in encoder.modalities:
            raise InputError(
                f"images={images!r} needs an image model (CLIP, SigLIP, a bound model); "
                f"{encoder.name} embeds text only"
            )
        if encoder is not None:
            image_spec = dataclasses.replace(
                image_spec, image_fingerprint=encoder.image_fingerprint
            )
    names = check_vector_fields(fields)
    if multivector is None:
        if encoder is not None and encoder.token_head is not None:
            raise InputError(
                f"model {encoder.name} is a late-interaction (ColBERT) model: it makes token vectors; "
                "create the collection with multivector='muvera'"
            )
        spec, dims = None, len(anchors) if anchors else vector_dim(encoder, dim)
        fingerprint = encoder.fingerprint if encoder else None
    else:
        spec = TokenVectors.make_spec(multivector, encoder, dim, names, fde, token_storage)
        dims = make_fde(spec).output_dim
        fingerprint = encoder.token_fingerprint if encoder else None
    if index_params is not None and not isinstance(index_params, dict):
        raise InputError(f"index_params must be a dict, got {type(index_params).__name__}")
    given = {**params, **(index_params or {})}
    checked = check_index_params(kind, given, dims)  # type and range, before anything is written
    meta = CollectionMeta(
        model=model_name(model, encoder),
        fingerprint=fingerprint,
        fields={name: dims for name in names},
        index=kind,
        index_params={k: checked[k] for k in given},
        quantize=quantize,
        dim=dim if encoder and not spec else None,
        backend=backend,
        multivector=spec.to_dict() if spec else None,
        images=image_spec.to_dict() if image_spec else None,
    )
    store = backend_class(backend)
    with atomic_folder(path) as staging:
        store.create(
            staging / meta.data_dir,
            base_schema(
                meta.fields,
                tokens=spec is not None,
                image=image_spec.storage if image_spec else None,
            ),
        )
        if anchors:
            from uniembed.spaces.relative import write_anchors

            meta = dataclasses.replace(meta, relative=write_anchors(staging, anchors))
        write_meta(staging, meta)
    return cls(path, meta, store.open(path / meta.data_dir), encoder)
