"""Binding a new modality into an existing embedding space: a small image encoder (or a projector
over another encoder's vectors) trained into a frozen text model's space. See training.py for
how, encoder.py for the model it makes, pairs.py for the data it reads."""
