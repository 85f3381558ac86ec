"""Strings must be valid Unicode to be stored, tokenised or sent to SQL.

JSON allows lone surrogate escapes ("\\ud800"), and Python keeps them in a str, but UTF-8 cannot
encode them: LanceDB, tokenizers and file writers would fail deep inside with UnicodeEncodeError
(a 500 over HTTP). Checked where strings enter, with the item named.
"""

from __future__ import annotations


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
