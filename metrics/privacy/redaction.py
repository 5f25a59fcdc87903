"""Secrets never leave: passwords and tokens in URLs and DSNs are replaced by *** before display or export."""

from __future__ import annotations

import re
from typing import Any

# user:password@ in a URL, and key=value secrets in query strings or libpq-style DSNs.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_SECRET_PARAMS = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|sslpassword|"
    r"aws_secret_access_key|sas|sig|signature)=(?P<value>[^&\s;'\"]+)")


def redact_secrets(text: str) -> str:
    """The text with passwords and tokens in URLs and DSNs replaced by ***."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _SECRET_PARAMS.sub(lambda m: f"{m['key']}=***", text)


def redact_document(value: Any) -> Any:
    """Every string of a JSON document redacted (the spec's source path is a string like any other)."""
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {k: redact_document(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_document(v) for v in value]
    return value
