"""Token verification: core.jwt_hmac's fast path must agree with PyJWT, token by token.

The fast path only ever accepts; whatever it does not accept goes to PyJWT. So the
one way it can be wrong is accepting a token PyJWT refuses (or reading other claims
from it): each token below is verified both ways and the outcomes compared.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from typing import Any

import jwt
import pytest

from core.jwt_hmac import plainly_valid
from core.tokens import Claims, InvalidToken, TokenCodec

SECRET = "a-shared-secret-long-enough-for-hs512-" + "x" * 40  # PyJWT warns under 64 bytes
NOW = int(time.time())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make(
    payload: Any,
    header: Any = None,
    *,
    key: str = SECRET,
    alg: str = "HS256",
    raw: bool = False,
) -> str:
    """A token signed with ``key``; ``raw`` takes header and payload as JSON text."""
    header = {"alg": alg, "typ": "JWT"} if header is None else header
    head = b64((header if raw else json.dumps(header)).encode())
    body = b64((payload if raw else json.dumps(payload)).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), digest.get(alg, hashlib.sha256))
    return f"{head}.{body}.{b64(signature.digest())}"


GOOD = {"sub": "alice", "iat": NOW - 5, "exp": NOW + 3600}


def crafted(alg: str) -> list[str]:
    def claims(**changes: Any) -> dict[str, Any]:
        payload = {**GOOD, **changes}
        return {k: v for k, v in payload.items() if v is not DROP}

    good = make(GOOD, alg=alg)
    plain = json.dumps({"alg": alg})
    head, body, signature = good.split(".")
    payloads = [
        GOOD,
        claims(exp=DROP),
        claims(iat=DROP),
        claims(exp=NOW - 10),
        claims(exp=float(NOW + 3600)),
        claims(exp=str(NOW + 3600)),
        claims(exp=True),
        claims(exp=None),
        claims(exp=10**30),
        claims(iat=NOW + 3600),
        claims(iat=float(NOW)),
        claims(iat="yesterday"),
        claims(nbf=NOW + 3600),
        claims(nbf=NOW - 10),
        claims(nbf=None),
        claims(sub=DROP),
        claims(sub=""),
        claims(sub=42),
        claims(sub=None),
        claims(jti=7),
        claims(jti="id-1"),
        claims(aud="care"),
        claims(aud="other"),
        claims(aud=["other", "care"]),
        claims(aud=["care", 1]),
        claims(aud=[]),
        claims(iss="idp"),
        claims(iss="other"),
        claims(iss=["idp"]),
        claims(iss="idp", aud="care"),
        claims(iss="idp", aud=["care"]),
        claims(iss="", aud=""),
        claims(iss="", aud=[""]),
        claims(role="admin", nested={"a": [1, 2]}),
    ]
    tokens = [make(p, alg=alg) for p in payloads]
    tokens += [
        make(GOOD, {"alg": "none"}, alg=alg),
        make(GOOD, {"alg": "HS512", "typ": "JWT"}, alg="HS512"),
        make(GOOD, {"alg": "HS256", "typ": "JWT"}, alg="HS256"),
        make(GOOD, {"alg": alg}, alg=alg),
        make(GOOD, {"alg": alg, "typ": "JWT", "kid": "k1"}, alg=alg),
        make(GOOD, {"alg": alg, "kid": 5}, alg=alg),
        make(GOOD, {"alg": alg, "crit": ["exp"]}, alg=alg),
        make(GOOD, {"alg": alg, "typ": 1}, alg=alg),
        make(GOOD, {"alg": alg, "b64": False, "crit": ["b64"]}, alg=alg),
        make(GOOD, [alg], alg=alg),
        make(GOOD, key=SECRET[::-1], alg=alg),
        make("[1, 2]", plain, alg=alg, raw=True),
        make("not json", plain, alg=alg, raw=True),
        make(json.dumps(GOOD), "not json", alg=alg, raw=True),
        make('{"sub": "a", "sub": "b"}', plain, alg=alg, raw=True),
        make(json.dumps(GOOD), plain[:-1] + ', "alg": "none"}', alg=alg, raw=True),
        f"{head}.{body}",
        f"{head}.{body}.{signature}.{signature}",
        f"{head}.{body}.",
        f"{head}.{body}.{signature[:-2]}",
        f"{head}.{body}.{signature}=",
        f"{head}.{body}.{signature[:-1]}",
        f"{head}.{body}x.{signature}",
        f" {good}",
        f"{good}\n",
        f"{head}.{body}.{signature}é",
        good.replace("-", "+"),
        "",
        "...",
    ]
    # Every last character for each segment: those the decoder reads as the same bytes
    # (bits past the last byte differ) are other tokens to PyJWT.
    alphabet64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for segment in range(3):
        for char in alphabet64:
            parts = good.split(".")
            parts[segment] = parts[segment][:-1] + char
            tokens.append(".".join(parts))
    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
    for _ in range(300):
        position = rng.randrange(len(good))
        tokens.append(good[:position] + rng.choice(alphabet) + good[position + 1 :])
    return tokens


DROP = object()


def outcome(verify: Any, token: str) -> Claims | str:
    try:
        claims: Claims = verify(token)
    except InvalidToken as exc:
        return f"refused: {exc}"
    return claims


@pytest.mark.parametrize(
    "options",
    [
        {"algorithm": "HS256"},
        {"algorithm": "HS384"},
        {"algorithm": "HS512"},
        {"algorithm": "HS256", "audience": "care", "issuer": "idp"},
        {"algorithm": "HS256", "audience": "", "issuer": ""},
    ],
    ids=lambda options: "-".join(map(str, options.values())),
)
def test_the_fast_path_agrees_with_pyjwt(options: dict[str, str]) -> None:
    codec = TokenCodec(secret=SECRET, **options)
    accepted = 0
    for token in crafted(options["algorithm"]):
        expected = outcome(codec.verify_with_pyjwt, token)
        assert outcome(codec.verify, token) == expected, token
        accepted += isinstance(expected, Claims)
    # The comparison covered valid tokens, not only refusals (with an empty audience
    # configured, PyJWT accepts none: an empty `aud` counts as missing).
    assert accepted >= (0 if options.get("audience") == "" else 2)


def test_the_fast_path_takes_the_tokens_wsgen_issues() -> None:
    """Not vacuous: the common token is decided without PyJWT."""
    codec = TokenCodec("HS256", secret=SECRET)
    token = codec.issue("alice")
    claims = plainly_valid(token, SECRET.encode(), "HS256", time.time())
    assert claims is not None and claims["sub"] == "alice"
    assert codec.verify(token) == codec.verify_with_pyjwt(token)


def test_a_key_pyjwt_refuses_is_never_used_on_the_fast_path() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"
    codec = TokenCodec("HS256", secret=pem)
    token = make(GOOD, key=pem)
    assert plainly_valid(token, pem.encode(), "HS256", time.time()) is not None
    for verify in (codec.verify, codec.verify_with_pyjwt):
        with pytest.raises(jwt.InvalidKeyError):
            verify(token)
