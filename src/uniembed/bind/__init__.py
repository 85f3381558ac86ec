"""Binding a new modality into an existing embedding space: a small image encoder (or a projector
over another encoder's vectors) trained into a frozen text model's space. See training.py for
how, pairs.py for the data it reads; the model it makes is `uniembed.encoders.bound`."""

from uniembed.bind.training import BindConfig, BindResult, bind

__all__ = ["BindConfig", "BindResult", "bind"]
