"""``jwks_public_endpoint``: the URL template, its safety rule and Go's URL checks (pure).

Sources (Centrifugo v6.9.1): ``internal/jwks/manager.go`` (``NewManager``: the URL must
parse and use http/https; ``resolveURL``: ``{{name}}`` placeholders filled from the token,
then a path that ``path.Clean`` would change is refused) and ``internal/jwtverify/validate.go``
(``validateJWKSEndpointSafety``: a placeholder filled from an ``issuer_regex`` /
``audience_regex`` named group needs that group to be a fixed list of alternatives).
Go's ``net/url.Parse`` (Go 1.26, the version Centrifugo 6.9.1 is built with) is followed
for what it refuses: control bytes, a bad scheme, bad ``%`` escapes, host characters
outside its table, a non-numeric port, a bracketed host that is not an IPv6 address.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.errors import ConfigError

__all__ = [
    "EndpointTemplate",
    "endpoint_safety_error",
    "go_url_path",
    "go_clean_path",
    "validate_jwks_endpoint",
]

_START, _END = "{{", "}}"
# ASCII bytes Go's net/url leaves unescaped in a host (encoding_table.go, encodeHost).
_HOST_BYTES = frozenset(
    b"!\"$&'()*+,-.0123456789:;<=>ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz~"
)
_USERINFO_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._:~!$&'()*+,;=%@"
)
_HEX = frozenset(b"0123456789abcdefABCDEF")


# --------------------------------------------------------------------------- template


@dataclass(frozen=True, slots=True)
class EndpointTemplate:
    """A ``{{tag}}`` template as valyala/fasttemplate parses it (``texts`` around ``tags``)."""

    texts: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> EndpointTemplate:
        """Split ``template``; ``ValueError`` on a ``{{`` without its ``}}``
        (fasttemplate's ``New`` panics there, so Centrifugo does not start)."""
        texts: list[str] = []
        tags: list[str] = []
        rest = template
        while True:
            start = rest.find(_START)
            if start < 0:
                texts.append(rest)
                break
            texts.append(rest[:start])
            rest = rest[start + len(_START) :]
            end = rest.find(_END)
            if end < 0:
                raise ValueError(f"cannot find end tag {_END!r} in the JWKS endpoint template")
            tags.append(rest[:end])
            rest = rest[end + len(_END) :]
        return cls(tuple(texts), tuple(tags))

    @property
    def static(self) -> str | None:
        """The URL itself when the template has no placeholder."""
        return self.texts[0] if not self.tags else None

    def execute(self, values: Mapping[str, str]) -> str:
        """Fill the placeholders; an unknown one becomes "" (fasttemplate ``ExecuteString``)."""
        out = [self.texts[0]]
        for tag, text in zip(self.tags, self.texts[1:], strict=True):
            out.append(values.get(tag, ""))
            out.append(text)
        return "".join(out)


def _placeholders(template: str) -> list[str]:
    """``extractTemplatePlaceholders`` of validate.go: stops quietly at an unclosed tag."""
    names: list[str] = []
    rest = template
    while (start := rest.find(_START)) >= 0:
        rest = rest[start + len(_START) :]
        end = rest.find(_END)
        if end < 0:
            break
        names.append(rest[:end])
        rest = rest[end + len(_END) :]
    return names


# --------------------------------------------------------------------------- safety rule


def _char_class_error(pattern: str) -> str | None:
    """``rejectCharClassSyntax``: no ``[...]`` nor ``\\d \\w \\s \\p`` (and capitals)."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            return (
                "contains character class syntax which is not allowed when JWKS endpoint "
                "URL template is used"
            )
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in "dDwWsSpP":
                return (
                    f"contains character class shorthand (\\{nxt}) which is not allowed "
                    "when JWKS endpoint URL template is used"
                )
            i += 1
        i += 1
    return None


def _sre_parse() -> Any:
    """The stdlib regex parser behind ``re.compile`` (``re._parser``, no stubs)."""
    return importlib.import_module("re._parser")


def _named_groups(pattern: str) -> dict[str, list[tuple[object, object]]]:
    """Named group -> the parsed body of that group (Python's own regex parser)."""
    sre_parse = _sre_parse()
    parsed = sre_parse.parse(pattern)
    by_number = {num: name for name, num in parsed.state.groupdict.items()}
    found: dict[str, list[tuple[object, object]]] = {}

    def walk(items: object) -> None:
        for op, av in items:  # type: ignore[attr-defined]
            if op is sre_parse.SUBPATTERN:
                group, _add, _del, body = av
                if group in by_number:
                    found[by_number[group]] = list(body)
                walk(body)
            elif op is sre_parse.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
                walk(av[2])
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                walk(av[1])
            elif op is sre_parse.ATOMIC_GROUP:
                walk(av)
            elif op is sre_parse.GROUPREF_EXISTS:
                walk(av[1])
                if av[2] is not None:
                    walk(av[2])

    walk(parsed)
    return found


def _literal_only(items: object) -> bool:
    """``isLiteralTree``: only literals, alternations, groups and (parser-made) one-char
    sets; no wildcard, repetition, anchor or reference."""
    sre_parse = _sre_parse()
    for op, av in items:  # type: ignore[attr-defined]
        if op is sre_parse.LITERAL:
            continue
        if op is sre_parse.IN:  # "a|b" becomes a set of literals in the parser
            if all(sub_op is sre_parse.LITERAL for sub_op, _ in av):
                continue
            return False
        if op is sre_parse.SUBPATTERN:
            if not _literal_only(av[3]):
                return False
            continue
        if op is sre_parse.BRANCH:
            if not all(_literal_only(branch) for branch in av[1]):
                return False
            continue
        return False
    return True


def endpoint_safety_error(endpoint: str, issuer_regex: str, audience_regex: str) -> str | None:
    """``validateJWKSEndpointSafety``: why the template is unsafe, or None.

    A placeholder's value comes from an unverified claim, so a regex group that fills one
    must be an explicit list of fixed values (``a|b|c``)."""
    placeholders = set(_placeholders(endpoint))
    if not placeholders:
        return None
    for name, pattern in (("issuer_regex", issuer_regex), ("audience_regex", audience_regex)):
        if not pattern:
            continue
        problem = _char_class_error(pattern)
        if problem is not None:
            return (
                f"{name} {problem} — use an explicit list of allowed values "
                "(e.g., value1|value2|value3)"
            )
        try:
            groups = _named_groups(pattern)
        except re.error as exc:
            return f"error parsing {name} for JWKS safety check: {exc}"
        for group, body in groups.items():
            if group in placeholders and not _literal_only(body):
                return (
                    f'{name} named group "{group}" is used in JWKS endpoint URL template — '
                    "only an explicit list of allowed values is permitted "
                    "(e.g., value1|value2|value3)"
                )
    return None


# --------------------------------------------------------------------------- Go net/url


def _unescape(part: bytes, host: bool = False, zone: bool = False) -> bytes:
    """Go's ``unescape``: every ``%`` needs two hex digits; a host may escape only
    non-ASCII bytes (and ``%25``) and may hold only the bytes of its table."""
    out = bytearray()
    i = 0
    while i < len(part):
        c = part[i]
        if c == 0x25:  # %
            hx = part[i + 1 : i + 3]
            if len(hx) < 2 or hx[0] not in _HEX or hx[1] not in _HEX:
                raise ValueError(f"invalid URL escape {part[i : i + 3]!r}")
            value = int(hx, 16)
            if host and not zone and value < 0x80 and part[i : i + 3] != b"%25":
                raise ValueError(f"invalid URL escape {part[i : i + 3]!r}")
            if zone and part[i : i + 3] != b"%25" and value != 0x20 and value not in _HOST_BYTES:
                raise ValueError(f"invalid URL escape {part[i : i + 3]!r}")
            out.append(value)
            i += 3
            continue
        if (host or zone) and c < 0x80 and c not in _HOST_BYTES:
            raise ValueError(f"invalid character {chr(c)!r} in host name")
        out.append(c)
        i += 1
    return bytes(out)


def _valid_port(port: bytes) -> bool:
    return port == b"" or (port[:1] == b":" and all(0x30 <= b <= 0x39 for b in port[1:]))


def _check_host(scheme: bytes, host: bytes) -> None:
    """Go 1.26 ``parseHost`` (strict colons for http/https: the default of Go 1.26)."""
    open_idx = host.rfind(b"[")
    if open_idx > 0:
        raise ValueError("invalid IP-literal")
    if open_idx == 0:
        close_idx = host.rfind(b"]")
        if close_idx < 0:
            raise ValueError("missing ']' in host")
        port = host[close_idx + 1 :]
        if not _valid_port(port):
            raise ValueError(f"invalid port {port!r} after host")
        name = host[1:close_idx]
        zone_idx = name.find(b"%25")
        if zone_idx >= 0:
            text = _unescape(name[:zone_idx], host=True) + _unescape(name[zone_idx:], zone=True)
        else:
            text = _unescape(name, host=True)
        try:
            ipaddress.IPv6Address(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("invalid host: not an IPv6 address") from exc
        return
    first = host.find(b":")
    if first >= 0:
        last = host.rfind(b":")
        idx = first if scheme in (b"http", b"https") else last
        if not _valid_port(host[idx:]):
            raise ValueError(f"invalid port {host[idx:]!r} after host")
    _unescape(host, host=True)


def _split_scheme(raw: bytes) -> tuple[bytes, bytes]:
    """Go's ``getScheme``: (scheme, rest), scheme empty when there is none."""
    for i, c in enumerate(raw):
        if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
            continue
        if 0x30 <= c <= 0x39 or c in b"+-.":
            if i == 0:
                return b"", raw
            continue
        if c == 0x3A:  # :
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return b"", raw
    return b"", raw


def go_url_path(url: str) -> tuple[str, bytes]:
    """``net/url.Parse(url)``: (lower-case scheme, unescaped path); ``ValueError`` where
    Go's parser refuses the URL."""
    raw = url.encode("utf-8", "surrogatepass")
    if any(b < 0x20 or b == 0x7F for b in raw):
        raise ValueError("net/url: invalid control character in URL")
    raw, _, fragment = raw.partition(b"#")
    if fragment:
        _unescape(fragment)
    if raw == b"*":
        return "", b"*"
    scheme, rest = _split_scheme(raw)
    scheme = scheme.lower()
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition(b"?")[0]
    if not rest.startswith(b"/"):
        if scheme:
            return scheme.decode("ascii"), b""  # opaque: no path
        if b":" in rest.partition(b"/")[0]:
            raise ValueError("first path segment in URL cannot contain colon")
    if (scheme or not rest.startswith(b"///")) and rest.startswith(b"//"):
        authority, slash, tail = rest[2:].partition(b"/")
        rest = slash + tail
        at = authority.rfind(b"@")
        _check_host(scheme, authority[at + 1 :])
        if at >= 0:
            userinfo = authority[:at]
            if any(b < 0x80 and b not in _USERINFO_BYTES for b in userinfo):
                raise ValueError("net/url: invalid userinfo")
            for piece in userinfo.split(b":", 1):
                _unescape(piece)
    return scheme.decode("ascii"), _unescape(rest)


def go_clean_path(path: bytes) -> bytes:
    """Go's ``path.Clean``: one slash between names, no ``.``, resolved ``..``, no
    trailing slash ("" becomes ".")."""
    if not path:
        return b"."
    rooted = path.startswith(b"/")
    parts: list[bytes] = []
    for name in path.split(b"/"):
        if name in (b"", b"."):
            continue
        if name == b"..":
            if parts and parts[-1] != b"..":
                parts.pop()
            elif not rooted:
                parts.append(name)
            continue
        parts.append(name)
    cleaned = b"/".join(parts)
    if rooted:
        return b"/" + cleaned
    return cleaned or b"."


# --------------------------------------------------------------------------- config check


def validate_jwks_endpoint(
    endpoint: str,
    issuer_regex: str,
    audience_regex: str,
    *,
    skip_safety_check: bool,
    section: str,
) -> str | None:
    """Start-up checks of one token section's ``jwks_public_endpoint``.

    Raises :class:`ConfigError` where Centrifugo refuses to start; returns the safety
    problem that ``insecure_skip_jwks_endpoint_safety_check`` let through (to be logged
    as a warning), else None."""
    if not endpoint:
        return None
    problem = endpoint_safety_error(endpoint, issuer_regex, audience_regex)
    if problem is not None and not skip_safety_check:
        raise ConfigError(f"{section}: {problem}")
    try:
        scheme, _ = go_url_path(endpoint)
    except ValueError as exc:
        raise ConfigError(
            f"{section}.jwks_public_endpoint: invalid url value or format ({exc})"
        ) from None
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"{section}.jwks_public_endpoint: endpoint must have http:// or https:// scheme, "
            f"got: {endpoint}"
        )
    try:
        EndpointTemplate.parse(endpoint)
    except ValueError as exc:
        raise ConfigError(f"{section}.jwks_public_endpoint: {exc}") from None
    return problem
