"""Connection and subscription JWT verification (layer 1: pure, no asyncio, no I/O).

Follows Centrifugo v6 ``internal/jwtverify/token_verifier_jwt.go`` (spec server-surface §6):

1. the compact JWS is parsed strictly (3 unpadded base64url segments, JSON object header with a
   string ``alg``, JSON object claims); every claim is type-checked (null means absent);
2. ``issuer_regex`` / ``audience_regex`` are applied (unanchored search, like Go's ``MatchString``);
3. the signature is checked: the algorithm *family* is chosen from the configured keys, never
   from the token; the header ``alg`` merely has to name an enabled member of it;
4. exact ``audience`` / ``issuer`` checks;
5. a connection token must not carry a non-empty ``channel``; a subscription token must;
6. time: ``exp <= now`` or ``nbf >= now`` raise :class:`TokenExpired`. ``nbf == now`` counts
   as "not yet valid", as in cristalhq/jwt's ``IsValidNotBefore`` (``nbf.Before(now)``); no
   leeway, fractional dates allowed, ``iat`` is not checked.

Every malformation is reported as :class:`TokenInvalid` *before* expiry is considered, so an
expired token that is also malformed is invalid. HMAC signatures are checked with the standard
library (``hmac.digest`` + constant-time ``hmac.compare_digest``); RSA/ECDSA signatures with PyJWT's
algorithm implementations picked from a fixed table (never PyJWT's header-driven selection nor its
claim checks). ``cryptography`` and PyJWT are imported only when an RSA or ECDSA key is configured,
so an HMAC-only worker never loads them (several MiB of memory per process). With
``jwks_public_endpoint`` the key comes from a JSON Web Key Set by the header's ``kid``
(``jwks``: parsing, cache, check); fetching it is I/O and happens above this layer.

Layout: ``errors`` (exception classes), ``jws`` (compact parsing, algorithm table, key loading,
HMAC check), ``jwks`` (key sets), ``claims`` (claim type checks), ``verifier``
(:class:`TokenVerifier`) and ``encode`` (:func:`encode_hmac_token`); this module re-exports
the public names.
"""

from __future__ import annotations

from relay.auth.claims import SubscriptionOverride
from relay.auth.encode import encode_hmac_token
from relay.auth.errors import TokenError, TokenExpired, TokenInvalid
from relay.auth.jwks import JwksError
from relay.auth.jws import MAX_TOKEN_LENGTH
from relay.auth.verifier import TokenVerifier
from relay.protocol.claims import ConnectTokenClaims, SubOptions, SubscribeTokenClaims

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "JwksError",
    "SubscriptionOverride",
    "SubOptions",
    "ConnectTokenClaims",
    "SubscribeTokenClaims",
    "TokenVerifier",
    "encode_hmac_token",
]
