"""The one redaction function: no credential in any log line, artifact, param, tag or message.

Credentials belong in the environment. Everything mlpipe prints or stores that may hold a URL or a
connection string goes through :func:`redact`.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@host..., also an empty user (scheme://:password@host) and libpq
# multi-host URLs (scheme://user:password@h1:5432,h2:5433/db). The password runs to the last
# "@" of the URL, so an unescaped "@" or "/" inside it is still hidden (users paste such
# passwords unescaped and drivers accept them); quotes end a URL inside a JSON or repr dump.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<secret>[^\s'\"]*)@")
# ?password=...&, ;password=..., and keyword connection strings "host=x password=y".
_KEYWORD = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
    r"secret[_-]?key|auth)=)(?P<value>[^&\s;,'\"]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Hide every password in ``text`` (URLs, query parameters, keyword connection strings).

    Args:
        text: Any text: a URL, an error message, a config dump.

    Returns:
        The text with each secret replaced by ``***``; user names and hosts are kept.
    """
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KEYWORD.sub(lambda m: f"{m['key']}{MASK}", text)


def has_secret(text: str) -> bool:
    """Whether ``text`` holds something :func:`redact` would hide."""
    return redact(text) != text


def redact_obj(value: Any) -> Any:
    """Redact every string inside nested dicts, lists and tuples (a config dump, parameters)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v) for v in value]
    return value
