"""Bearer tokens: JWT verification for handshakes and minting for local use (SPEC §4)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from core.errors import ConfigError
from core.jwt_hmac import DIGESTS, plainly_valid
from core.settings import Settings

_SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})


class InvalidToken(Exception):
    """The token is missing a claim, malformed, badly signed or expired."""


def bearer_from_header(value: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    Raises:
        InvalidToken: the header is not of that form.
    """
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("the Authorization header must be `Bearer <token>`")
    return token


@dataclass(slots=True, frozen=True)
class Claims:
    user_id: str
    expires_at: float | None


class TokenCodec:
    """Verifies tokens with the configured key; mints them when the key is a shared secret.

    ``sub`` is the user id and is required; ``exp`` is honoured when present;
    ``aud`` and ``iss`` are checked when configured.
    """

    def __init__(
        self,
        algorithm: str,
        secret: str | None = None,
        public_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if algorithm in _SYMMETRIC:
            if not secret:
                raise ConfigError(f"WSGEN_JWT_SECRET is required for {algorithm}")
            self._verify_key: Any = secret
        else:
            if not public_key:
                raise ConfigError(f"WSGEN_JWT_PUBLIC_KEY (PEM) is required for {algorithm}")
            self._verify_key = public_key
        self._secret = secret if algorithm in _SYMMETRIC else None
        self._algorithm = algorithm
        self._audience = audience
        self._issuer = issuer
        self._hmac_key: bytes | None = None  # core.jwt_hmac's fast path, when PyJWT takes the key
        if self._secret is not None and algorithm in DIGESTS:
            try:
                jwt.get_algorithm_by_name(algorithm).prepare_key(self._secret)
            except jwt.InvalidKeyError:
                pass  # every decode fails; PyJWT says why
            else:
                self._hmac_key = self._secret.encode()

    @classmethod
    def from_settings(cls, settings: Settings, jwt_secret: str | None) -> TokenCodec:
        """The codec the settings describe; ``jwt_secret`` may come from the secrets file."""
        return cls(
            settings.jwt_algorithm,
            secret=jwt_secret,
            public_key=settings.jwt_public_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )

    def verify(self, token: str) -> Claims:
        """Raises:
        InvalidToken: with a reason safe to show the client (never the token).
        """
        if self._hmac_key is not None:
            claims = plainly_valid(
                token, self._hmac_key, self._algorithm, time.time(), self._audience, self._issuer
            )
            if claims is not None:
                exp = claims.get("exp")
                return Claims(claims["sub"], float(exp) if exp is not None else None)
        return self.verify_with_pyjwt(token)

    def verify_with_pyjwt(self, token: str) -> Claims:
        """:meth:`verify` without the fast path: PyJWT decides every token."""
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad token signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token has no `{exc.claim}` claim") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {type(exc).__name__}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("token `sub` must be a non-empty string")
        exp = claims.get("exp")
        return Claims(sub, float(exp) if exp is not None else None)

    def issue(self, user_id: str, ttl: float = 3600) -> str:
        """A signed token for ``user_id`` valid for ``ttl`` seconds (shared-secret algorithms)."""
        if self._secret is None:
            raise ConfigError(
                f"cannot mint {self._algorithm} tokens: the server only holds the public key"
            )
        now = int(time.time())
        claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + int(ttl)}
        if self._audience:
            claims["aud"] = self._audience
        if self._issuer:
            claims["iss"] = self._issuer
        return jwt.encode(claims, self._secret, algorithm=self._algorithm)
