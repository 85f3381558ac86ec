"""Reading texts from files and writing vectors to files, streaming and atomically."""

from uniembed.io.embed_file import EmbedFileReport, embed_file
from uniembed.io.records import iter_records, read_texts

__all__ = ["EmbedFileReport", "embed_file", "iter_records", "read_texts"]
