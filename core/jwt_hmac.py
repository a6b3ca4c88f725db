"""A fast path for the common shared-secret token: only ever says "valid", never "invalid".

PyJWT spends about 21 us on an HS256 token (generic header handling, key
preparation on every call, character-by-character base64 checks), a tenth of a
handshake's CPU. :func:`plainly_valid` checks the one shape of token wsgen's clients
carry in 4 us with the standard library: three base64url segments, a header of only
``alg`` (the configured one) and ``typ``, a good HMAC, integer time claims, a string
``sub``. It returns the claims when the token is valid under every rule PyJWT applies
with wsgen's options, and None for anything else, including every invalid token:
:class:`core.tokens.TokenCodec` then asks PyJWT, which decides and words the error.
So this path can only be wrong by accepting what PyJWT refuses, and
``tests/test_tokens.py`` checks it against PyJWT token by token.
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
from typing import Any

DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
_SEGMENTS = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_HEADER_KEYS = frozenset(("alg", "typ"))
_TIME_CLAIMS = ("exp", "iat", "nbf")
_json = json.JSONDecoder()  # what json.loads uses for a str
_plain_headers: dict[str, str] = {}
"""Header segments seen before, and the algorithm each names: a client's tokens all
carry the same header, so it is decoded once, not per handshake."""
_PLAIN_HEADERS_MAX = 64


_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
"""The characters that may end a segment of length 2 or 3 modulo 4: those whose bits
past the last whole byte are zero. The decoder ignores those bits; PyJWT refuses a
segment that does not re-encode to itself, so another last character is a different
token to it (and would let anyone make copies of a valid token)."""


def _segment(text: str) -> bytes:
    last = _LAST.get(len(text) % 4)
    if last is not None and text[-1] not in last:
        raise binascii.Error("not canonical base64")
    return binascii.a2b_base64(text.encode().translate(_URLSAFE) + b"=" * (-len(text) % 4))


def _header_algorithm(segment: str) -> str | None:
    """The ``alg`` of a header of only ``alg`` and a string ``typ``, else None."""
    alg = _plain_headers.get(segment)
    if alg is not None:
        return alg
    header = _json.decode(_segment(segment).decode())
    if (
        type(header) is not dict
        or not header.keys() <= _HEADER_KEYS
        or type(alg := header.get("alg")) is not str
        or not isinstance(header.get("typ", ""), str)
    ):
        return None
    if len(_plain_headers) >= _PLAIN_HEADERS_MAX:
        _plain_headers.clear()
    _plain_headers[segment] = alg
    return alg


def plainly_valid(
    token: str,
    key: bytes,
    algorithm: str,
    now: float,
    audience: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any] | None:
    """The claims of a token that is valid beyond doubt, else None (let PyJWT decide)."""
    match = _SEGMENTS.fullmatch(token)
    if match is None:
        return None
    header_part, payload_part, signature_part = match.groups()
    try:
        if _header_algorithm(header_part) != algorithm:
            return None
        signature = _segment(signature_part)
        payload = _json.decode(_segment(payload_part).decode())
    except (binascii.Error, ValueError, RecursionError):
        return None
    signed = token[: len(header_part) + 1 + len(payload_part)].encode()
    expected = hmac.digest(key, signed, DIGESTS[algorithm])  # one-shot, in C
    if not hmac.compare_digest(signature, expected) or type(payload) is not dict:
        return None
    sub = payload.get("sub")
    if type(sub) is not str or not sub:
        return None
    for claim in _TIME_CLAIMS:
        if claim in payload and type(payload[claim]) is not int:
            return None  # null, floats, strings, booleans: PyJWT's int() decides
    if (
        ("exp" in payload and payload["exp"] <= now)
        or ("iat" in payload and payload["iat"] > now)
        or ("nbf" in payload and payload["nbf"] > now)
        or ("jti" in payload and type(payload["jti"]) is not str)
    ):
        return None
    if audience is not None:
        aud = payload.get("aud")
        if not aud or not (
            aud == audience
            or (type(aud) is list and audience in aud and all(type(a) is str for a in aud))
        ):
            return None
    if issuer is not None and payload.get("iss") != issuer:
        return None
    return payload
