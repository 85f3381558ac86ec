"""An optimizer's state as flat tensors and back: what a resumable run keeps in its checkpoint
(safetensors holds flat named tensors, never pickle). Shared by `train` and `bind`."""

from __future__ import annotations


def optimizer_tensors(optimizer) -> tuple[dict, list]:
    """The optimizer's per-parameter tensors named "index.name", and its parameter groups."""
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.contiguous()
        for index, entry in state["state"].items()
        for name, value in entry.items()
    }
    return tensors, state["param_groups"]


def load_optimizer(optimizer, tensors: dict, groups: list) -> None:
    """Restore what `optimizer_tensors` gave into `optimizer`."""
    state: dict = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
