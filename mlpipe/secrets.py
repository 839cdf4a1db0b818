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
    r"secret[_-]?key|auth|signature|sig|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|x-goog-signature|x-goog-credential)=)(?P<value>[^&\s;,'\"]+)",
    re.IGNORECASE,
)


# Passwords seen in URLs this process uses. A driver's error may quote a piece of one outside
# any URL ('could not translate host name "rest-of-password@db"' when the password holds an
# unescaped "@"); those pieces are hidden wherever they appear.
_known: set[str] = set()
MIN_PIECE = 4


def remember(text: str) -> None:
    """Learn the passwords with an unescaped "@" in the URLs of ``text``, and their pieces.

    Only those: a driver splits such a password and quotes a piece outside any URL. Other
    passwords only ever appear inside URLs, where the URL pattern hides them.
    """
    for match in _USERINFO.finditer(text):
        secret = match["secret"]
        if "@" in secret:
            _known.update(p for p in (secret, *secret.split("@")) if len(p) >= MIN_PIECE)


def hide(secret: str) -> None:
    """Hide ``secret`` wherever it appears from now on (a password taken out of a URL)."""
    if len(secret) >= MIN_PIECE:
        _known.add(secret)


def _structural(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KEYWORD.sub(lambda m: f"{m['key']}{MASK}", text)


def redact(text: str) -> str:
    """Hide every password in ``text`` (URLs, query parameters, keyword connection strings).

    Args:
        text: Any text: a URL, an error message, a config dump.

    Returns:
        The text with each secret replaced by ``***``; user names and hosts are kept.
    """
    remember(text)
    text = _structural(text)
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def has_secret(text: str) -> bool:
    """Whether ``text`` holds a credential (a password in a URL, ``password=...``)."""
    return _structural(text) != text


def redact_obj(value: Any) -> Any:
    """Redact every string inside nested dicts, lists and tuples (a config dump, parameters)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v) for v in value]
    return value
