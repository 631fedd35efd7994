"""``TokenVerifier``: applies the verification steps listed in :mod:`relay.auth` in order."""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from relay.auth.claims import (
    _audience,
    _b64_or_json,
    _numeric_date,
    _opt_int,
    _opt_str,
    _override,
    _raw_json,
    _str_list,
    _subs,
    _truncate,
    _user,
)
from relay.auth.errors import TokenError, TokenExpired, TokenInvalid
from relay.auth.jwks import JwksKeys
from relay.auth.jws import (
    _ALGORITHMS,
    _ECDSA,
    _HMAC,
    _RSA,
    _asymmetric_algorithms,
    _Compact,
    _ecdsa_key,
    _hmac_verify,
    _parse_compact,
    _rsa_key,
)
from relay.config import TokenConfig
from relay.config.jwks import endpoint_safety_error
from relay.protocol.claims import ConnectTokenClaims, SubscribeTokenClaims

if TYPE_CHECKING:  # imported lazily at run time: only RSA/ECDSA keys need it
    from jwt.algorithms import Algorithm

log = logging.getLogger("relay.auth")
_NO_VARS: Mapping[str, str] = MappingProxyType({})


def _compile(pattern: str, name: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name}: invalid regular expression") from exc


class TokenVerifier:
    """Verifies connection and subscription JWTs against one ``TokenConfig``.

    Build one per config: ``client.token``, and a second one from ``client.subscription_token``
    when it is ``enabled``. The constructor raises ``ValueError`` for an unloadable key or an
    invalid regex (config validation should have caught both). With
    ``skip_signature_verify`` (``client.insecure_skip_token_signature_verify``) the token is
    still parsed strictly and all claim rules apply, but any ``alg`` is accepted unverified.

    With ``jwks_public_endpoint`` the static keys are ignored (as in Centrifugo) and the
    signature is checked with a cached JWKS key (:class:`relay.auth.jwks.JwksKeys`); the
    verifier itself never does I/O. A caller first asks :meth:`jwks_key_request` whether
    a token's key must be fetched, fetches it and hands the document to
    :meth:`store_jwks`; a key still missing at verification makes the token invalid.
    """

    def __init__(self, config: TokenConfig, *, skip_signature_verify: bool = False) -> None:
        self._config = config
        self._skip_signature = skip_signature_verify
        self.jwks: JwksKeys | None = (
            JwksKeys(config.jwks_public_endpoint) if config.jwks_public_endpoint else None
        )
        """The JWKS keys when ``jwks_public_endpoint`` is configured."""
        use_keys = self.jwks is None
        self._hmac_key = config.hmac_secret_key.encode("utf-8") if use_keys else b""
        self._hmac_previous = config.hmac_previous_secret_key.encode("utf-8") if use_keys else b""
        self._rsa = _rsa_key(config.rsa_public_key) if use_keys else None
        self._ecdsa = _ecdsa_key(config.ecdsa_public_key) if use_keys else None
        self._ecdsa_bits = self._ecdsa.curve.key_size if self._ecdsa is not None else 0
        self._asymmetric: dict[str, Algorithm] = (
            _asymmetric_algorithms() if self._rsa is not None or self._ecdsa is not None else {}
        )
        self._aud_re = _compile(config.audience_regex, "audience_regex")
        self._iss_re = _compile(config.issuer_regex, "issuer_regex")
        self._want_vars = self.jwks is not None and self.jwks.templated
        if self.jwks is not None:
            self._check_jwks_safety(config)

    def _check_jwks_safety(self, config: TokenConfig) -> None:
        """token_verifier_jwt.go ``Validate``: an unsafe template is fatal unless
        ``insecure_skip_jwks_endpoint_safety_check``, which only logs a warning."""
        problem = endpoint_safety_error(
            config.jwks_public_endpoint, config.issuer_regex, config.audience_regex
        )
        if problem is None:
            return
        if not config.insecure_skip_jwks_endpoint_safety_check:
            raise ValueError(problem)
        log.warning(
            "JWKS endpoint template safety check skipped - this is INSECURE and the escape "
            "hatch will be removed in a future release, please update your regex to use an "
            "explicit list of allowed values: %s",
            problem,
        )

    @property
    def fetches_jwks(self) -> bool:
        """True when verification may need a JWKS key fetched first."""
        return self.jwks is not None and not self._skip_signature

    def jwks_key_request(self, token: str) -> tuple[str, str] | None:
        """(URL, kid) whose key set must be fetched before ``token`` can verify, or None:
        no JWKS, key cached, or the token fails before its signature is checked (no
        fetch, as in Centrifugo: malformed, no ``kid``, regex mismatch, unsafe URL)."""
        if self.jwks is None or self._skip_signature or not isinstance(token, str):
            return None
        try:
            compact, _audience, _issuer, token_vars = self._pre_signature(token)
        except Exception:  # the verification proper reports it
            return None
        return self.jwks.missing(compact.kid, token_vars)

    def store_jwks(self, url: str, body: bytes) -> int:
        """Cache the signing keys of the JWKS document fetched from ``url``; returns how
        many. Raises :class:`relay.auth.jwks.JwksError` for an unusable document."""
        assert self.jwks is not None
        return len(self.jwks.store(url, body))

    def verify_connect_token(self, token: str, now: float | None = None) -> ConnectTokenClaims:
        """Verify a connection token; raise :class:`TokenExpired` or :class:`TokenInvalid`."""
        return _guarded(self._connect, token, now)

    def verify_subscribe_token(self, token: str, now: float | None = None) -> SubscribeTokenClaims:
        """Verify a subscription token; raise :class:`TokenExpired` or :class:`TokenInvalid`."""
        return _guarded(self._subscribe, token, now)

    # ------------------------------------------------------------------ steps

    def _connect(self, token: str, now: float | None) -> ConnectTokenClaims:
        claims, now = self._verified(token, now)
        user = _user(claims, self._config.user_id_claim)
        if _opt_str(claims, "channel"):
            raise TokenInvalid("connection token has a channel claim")
        result = ConnectTokenClaims(
            user=user,
            exp=_truncate(_numeric_date(claims, "exp")),
            expire_at=_opt_int(claims, "expire_at"),
            info=_b64_or_json(claims, "b64info", "info"),
            channels=_str_list(claims, "channels"),
            subs=_subs(claims),
            meta=_raw_json(claims, "meta"),
        )
        _check_time(claims, now)
        return result

    def _subscribe(self, token: str, now: float | None) -> SubscribeTokenClaims:
        claims, now = self._verified(token, now)
        result = SubscribeTokenClaims(
            user=_user(claims, self._config.user_id_claim),
            channel=_opt_str(claims, "channel"),
            client=_opt_str(claims, "client"),
            exp=_truncate(_numeric_date(claims, "exp")),
            expire_at=_opt_int(claims, "expire_at"),
            info=_b64_or_json(claims, "b64info", "info"),
            data=_b64_or_json(claims, "b64data", "data"),
            override=_override(claims),
        )
        _check_time(claims, now)
        if not result.channel:
            raise TokenInvalid("subscription token without channel")
        return result

    def _verified(self, token: str, now: float | None) -> tuple[dict[str, Any], float]:
        """Steps 1-4: parse, registered-claim types, regexes, signature, exact aud/iss."""
        at = time.time() if now is None else now
        compact, audience, issuer, token_vars = self._pre_signature(token)
        if not self._skip_signature:
            self._check_signature(compact, at, token_vars)
        self._check_exact(audience, issuer)
        return compact.claims, at

    def _pre_signature(
        self, token: str
    ) -> tuple[_Compact, tuple[str, ...], str, Mapping[str, str]]:
        """Steps 1-2: parse, registered-claim types, regexes (and the JWKS URL values)."""
        compact = _parse_compact(token)
        claims = compact.claims
        _numeric_date(claims, "exp")
        _numeric_date(claims, "nbf")
        audience = _audience(claims)
        issuer = _opt_str(claims, "iss")
        return compact, audience, issuer, self._check_regexes(audience, issuer)

    def _check_regexes(self, audience: tuple[str, ...], issuer: str) -> Mapping[str, str]:
        """The regex checks; returns the named groups that fill the JWKS URL template
        (``extractTokenVars``: issuer groups, then those of the first matching audience)."""
        token_vars: Mapping[str, str] = _NO_VARS
        if self._iss_re is not None:
            match = self._iss_re.search(issuer)
            if match is None:
                raise TokenInvalid("issuer does not match issuer_regex")
            if self._want_vars:
                token_vars = match.groupdict(default="")
        if self._aud_re is not None:
            pattern = self._aud_re
            for aud in audience:
                match = pattern.search(aud)
                if match is not None:
                    if self._want_vars:
                        token_vars = {**token_vars, **match.groupdict(default="")}
                    break
            else:
                raise TokenInvalid("audience does not match audience_regex")
        return token_vars

    def _check_exact(self, audience: tuple[str, ...], issuer: str) -> None:
        expected_aud = self._config.audience
        if expected_aud and not any(_same(aud, expected_aud) for aud in audience):
            raise TokenInvalid("audience mismatch")
        expected_iss = self._config.issuer
        if expected_iss and not _same(issuer, expected_iss):
            raise TokenInvalid("issuer mismatch")

    def _check_signature(
        self, compact: _Compact, now: float, token_vars: Mapping[str, str]
    ) -> None:
        if self.jwks is not None:
            self.jwks.verify(compact, token_vars)
            return
        entry = _ALGORITHMS.get(compact.alg)
        if entry is None:
            raise TokenInvalid("unsupported algorithm")
        family, digest, curve_bits = entry
        signing_input, signature = compact.signing_input, compact.signature
        if family == _HMAC:
            if not self._hmac_key:
                raise TokenInvalid("disabled algorithm")
            if _hmac_verify(digest, signing_input, self._hmac_key, signature):
                return
            if self._previous_key_usable(now) and _hmac_verify(
                digest, signing_input, self._hmac_previous, signature
            ):
                return
            raise TokenInvalid("bad signature")
        key: object | None = self._rsa if family == _RSA else self._ecdsa
        if key is None:
            raise TokenInvalid("disabled algorithm")
        if family == _ECDSA and self._ecdsa_bits != curve_bits:
            raise TokenInvalid("ecdsa key does not match algorithm")
        if self._asymmetric[compact.alg].verify(signing_input, key, signature):
            return
        raise TokenInvalid("bad signature")

    def _previous_key_usable(self, now: float) -> bool:
        if not self._hmac_previous:
            return False
        until = self._config.hmac_previous_secret_key_valid_until
        return until == 0 or now <= until


_Result = TypeVar("_Result")


def _guarded(
    step: Callable[[str, float | None], _Result], token: str, now: float | None
) -> _Result:
    """Run a verification step, turning any foreign exception into :class:`TokenInvalid`."""
    try:
        return step(token, now)
    except TokenError:
        raise
    except Exception as exc:  # any PyJWT/cryptography/base64/json failure is an invalid token
        raise TokenInvalid(f"malformed token ({type(exc).__name__})") from exc


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _check_time(claims: dict[str, Any], now: float) -> None:
    """Step 6: ``exp <= now`` or ``nbf >= now`` (Centrifugo/cristalhq) -> expired."""
    exp = _numeric_date(claims, "exp")
    if exp is not None and exp <= now:
        raise TokenExpired("token expired")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and nbf >= now:
        raise TokenExpired("token not valid yet (nbf)")
