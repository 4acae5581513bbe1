"""``#EXTINF`` lines of IPTV channel lists: duration, attributes and display name.

Panels write them loosely: values double-quoted (with spaces, commas and ``|`` inside),
single-quoted or bare, keys repeated, quotes left open, words strewn about. The display
name is what follows the first comma outside quotes.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_extinf", "scan_attributes"]

# First token after ``#EXTINF:``: the duration (unless it is an attribute).
_DURATION = re.compile(r"\s*([^\s,]*)")

# One token of an attribute list. Every non-space character starts some alternative, so
# ``finditer`` never skips a comma: the first ``comma`` match is the one outside quotes.
_ATTR_TOKEN = re.compile(
    r"""
      (?P<key>[^\s=,"']+)\s*=
        (?:\s*"(?P<dq>[^"]*)"|\s*'(?P<sq>[^']*)'|(?P<bare>[^\s,]*))
    | (?P<comma>,)
    | "[^"]*"          # stray quoted text: its commas are inside quotes
    | '[^']*'
    | [^\s,"']+        # stray word
    | ["']             # unmatched quote
    """,
    re.VERBOSE,
)


def scan_attributes(text: str, pos: int, *, stop_at_comma: bool) -> tuple[dict[str, str], str]:
    """Attributes of ``text[pos:]`` and, with ``stop_at_comma``, what follows the comma.

    Values may be double-quoted (spaces, commas, ``|`` allowed), single-quoted or bare
    (up to whitespace or a comma). An unterminated quote is read as a bare value and
    stray words are ignored, so broken lines still yield their other attributes.
    """
    attrs: dict[str, str] = {}
    for token in _ATTR_TOKEN.finditer(text, pos):
        key, dq, sq, bare, comma = token.groups()
        if key is not None:
            key = key.lower()
            if key not in attrs:
                value = dq if dq is not None else sq if sq is not None else bare
                attrs[key] = value.strip()
        elif comma and stop_at_comma:
            return attrs, text[token.end() :].strip()
    return attrs, ""


def parse_extinf(body: str) -> tuple[float, dict[str, str], str]:
    """``(duration, attributes, name)`` of the text after ``#EXTINF:``."""
    match = _DURATION.match(body)
    token = match.group(1) if match else ""
    duration = -1.0
    pos = 0
    if token and "=" not in token:
        pos = match.end() if match else 0
        try:
            value = float(token)
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                duration = value
    attrs, name = scan_attributes(body, pos, stop_at_comma=True)
    return duration, attrs, name
