"""Pure unit tests for channel rules (relay.protocol.channels)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from relay.config import ChannelConfig, ChannelOptions, Namespace
from relay.errors import ReplyError
from relay.protocol.channels import ChannelRules, Override, SubscribeFeatures

HISTORY = {"history_size": 10, "history_ttl": 60.0}


def _rules(
    *,
    without: ChannelOptions | None = None,
    namespaces: tuple[Namespace, ...] = (),
    insecure: bool = False,
    **cfg: object,
) -> ChannelRules:
    config = ChannelConfig(
        without_namespace=without or ChannelOptions(),
        namespaces=namespaces,
        **cfg,  # type: ignore[arg-type]
    )
    return ChannelRules(config, insecure=insecure)


def _code(fn, *args, **kwargs) -> int | None:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except ReplyError as exc:
        return exc.error.code
    return None


# ---- namespace resolution ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("cfg", "channel", "expected"),
    [
        ({}, "news", ("", "news")),
        ({}, "chat:room", ("chat", "room")),
        ({}, "chat:room:sub", ("chat", "room:sub")),
        ({}, "$chat:room", ("chat", "room")),
        ({}, "$news", ("", "$news")),
        ({}, ":room", ("", "room")),
        ({}, "chat:", ("chat", "")),
        ({}, "", ("", "")),
        ({}, "news#42", ("", "news#42")),
        ({}, "chat:#42", ("chat", "#42")),
        ({"private_prefix": ""}, "$chat:room", ("$chat", "room")),
        ({"private_prefix": "priv-"}, "priv-chat:room", ("chat", "room")),
        ({"private_prefix": "priv-"}, "$chat:room", ("$chat", "room")),
        ({"namespace_boundary": "/"}, "chat/room", ("chat", "room")),
        ({"namespace_boundary": "/"}, "chat:room", ("", "chat:room")),
        ({"namespace_boundary": "::"}, "chat::room", ("chat", "room")),
        ({"namespace_boundary": ""}, "chat:room", ("", "chat:room")),
    ],
)
def test_namespace_of(cfg: dict[str, object], channel: str, expected: tuple[str, str]) -> None:
    assert _rules(**cfg).namespace_of(channel) == expected


def test_resolve_returns_options() -> None:
    without = ChannelOptions(presence=True)
    chat = Namespace(name="chat", join_leave=True)
    r = _rules(without=without, namespaces=(chat, Namespace(name="other")))
    assert r.resolve("news") is without
    assert r.resolve("$news") is without
    assert r.resolve(":news") is without
    assert r.resolve("chat:room") is chat
    assert r.resolve("$chat:room") is chat
    assert r.resolve("other:x").name == "other"  # type: ignore[attr-defined]


@pytest.mark.parametrize("channel", ["missing:room", "$missing:room", "Chat:room", "chat :x"])
def test_resolve_unknown_namespace_102(channel: str) -> None:
    r = _rules(namespaces=(Namespace(name="chat"),))
    assert _code(r.resolve, channel) == 102


def test_resolve_with_custom_boundary() -> None:
    chat = Namespace(name="chat")
    r = _rules(namespaces=(chat,), namespace_boundary="/")
    assert r.resolve("chat/room") is chat
    assert r.resolve("chat:room") is r.cfg.without_namespace


# ---- private channels -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cfg", "channel", "expected"),
    [
        ({}, "$news", True),
        ({}, "$chat:room", True),
        ({}, "news", False),
        ({}, "chat:$room", False),
        ({"private_prefix": ""}, "$news", False),
        ({"private_prefix": "priv-"}, "priv-news", True),
        ({"private_prefix": "priv-"}, "$news", False),
    ],
)
def test_is_private(cfg: dict[str, object], channel: str, expected: bool) -> None:
    assert _rules(**cfg).is_private(channel) is expected


# ---- name checks ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "code"),
    [
        ("news", None),
        ("news:with:colons", None),
        ("$private", None),
        ("news#1,2", None),
        ("", None),
        ("новости", 107),
        ("newsé", 107),
        ("chat:комната", 107),
        ("news\u200b", 107),
    ],
)
def test_check_name_ascii(channel: str, code: int | None) -> None:
    r = _rules(namespaces=(Namespace(name="chat"),))
    assert _code(r.check_name, channel) == code


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        ("ids:123", None),
        ("$ids:123", None),
        ("ids:12a", 107),
        ("ids:", 107),
        ("ids:1234567", 107),
        ("free:абв", 107),  # no regex in this namespace: ASCII rule
        ("free:abc", None),
        ("plain", None),  # without_namespace regex: [a-z]+ (unanchored, as Go's MatchString)
        ("Plain", None),
        ("PLAIN1", 107),
    ],
)
def test_check_name_regex(channel: str, code: int | None) -> None:
    r = _rules(
        without=ChannelOptions(channel_regex=r"[a-z]+"),
        namespaces=(Namespace(name="ids", channel_regex=r"^\d{1,6}$"), Namespace(name="free")),
    )
    assert _code(r.check_name, channel) == code


def test_check_name_regex_may_allow_non_ascii() -> None:
    # a namespace regex replaces the ASCII rule (Centrifugo validChannelName)
    r = _rules(namespaces=(Namespace(name="u", channel_regex=r"^\w+$"),))
    assert _code(r.check_name, "u:привет") is None


def test_check_name_regex_applies_to_rest_of_private_channel() -> None:
    r = _rules(namespaces=(Namespace(name="ids", channel_regex=r"^\d+$"),))
    assert _code(r.check_name, "$ids:42") is None
    assert _code(r.check_name, "$ids:x") == 107


def test_check_name_regex_is_unanchored_like_go() -> None:
    r = _rules(namespaces=(Namespace(name="ns", channel_regex="abc"),))
    assert _code(r.check_name, "ns:xxabcxx") is None


# ---- user-limited channels --------------------------------------------------------------
ULC = ChannelOptions(allow_user_limited_channels=True)


@pytest.mark.parametrize(
    ("channel", "opts", "cfg", "expected"),
    [
        ("news#42", ULC, {}, ["42"]),
        ("news#42,43", ULC, {}, ["42", "43"]),
        ("chat:room#a,b,c", ULC, {}, ["a", "b", "c"]),
        ("a#b#c", ULC, {}, ["c"]),  # last boundary wins
        ("news#", ULC, {}, [""]),  # trailing-empty quirk (Go strings.Split)
        ("news#42,", ULC, {}, ["42", ""]),
        ("news", ULC, {}, None),
        ("news#42", ChannelOptions(), {}, None),  # option off
        ("news#42", ULC, {"user_boundary": ""}, None),
        ("news@42", ULC, {"user_boundary": "@"}, ["42"]),
        ("news#42", ULC, {"user_boundary": "@"}, None),
        ("news#42;43", ULC, {"user_separator": ";"}, ["42", "43"]),
    ],
)
def test_user_limited_users(
    channel: str, opts: ChannelOptions, cfg: dict[str, object], expected: list[str] | None
) -> None:
    assert _rules(**cfg).user_limited_users(channel, opts) == expected


def test_user_limited_empty_separator() -> None:
    r = _rules(user_separator="")
    assert r.user_limited_users("news#42", ULC) == ["42"]


@pytest.mark.parametrize(
    ("channel", "opts", "user", "insecure", "expected"),
    [
        ("news#42", ULC, "42", False, True),
        ("news#42,43", ULC, "43", False, True),
        ("news#42", ULC, "4", False, False),
        ("news#42", ULC, "", False, False),
        # news#: the allowed list is [""], so the anonymous user may subscribe
        ("news#", ULC, "", False, True),
        ("news#", ULC, "42", False, False),
        # user-limited decision ignores insecure and allow_subscribe_for_client
        ("news#42", ULC, "7", True, False),
        (
            "news#42",
            replace(ULC, allow_subscribe_for_client=True, allow_subscribe_for_anonymous=True),
            "7",
            False,
            False,
        ),
        # ordinary channels
        ("news", ChannelOptions(), "42", False, False),
        ("news", ChannelOptions(), "42", True, True),
        ("news", ChannelOptions(), "", True, True),
        ("news", ChannelOptions(allow_subscribe_for_client=True), "42", False, True),
        ("news", ChannelOptions(allow_subscribe_for_client=True), "", False, False),
        (
            "news",
            ChannelOptions(allow_subscribe_for_client=True, allow_subscribe_for_anonymous=True),
            "",
            False,
            True,
        ),
        ("news", ChannelOptions(allow_subscribe_for_anonymous=True), "", False, False),
        # '#' in a channel without the option is an ordinary channel
        ("news#42", ChannelOptions(allow_subscribe_for_client=True), "7", False, True),
    ],
)
def test_can_subscribe_without_token(
    channel: str, opts: ChannelOptions, user: str, insecure: bool, expected: bool
) -> None:
    r = _rules(insecure=insecure)
    assert r.can_subscribe_without_token(channel, opts, user) is expected


# ---- publish / presence / history permissions --------------------------------------------
_KINDS = ("publish", "presence", "history")

# (client, subscriber, anonymous, user, subscribed, insecure) -> allowed
_ACCESS = [
    ((False, False, False), "u", True, False, False),
    ((True, False, False), "u", False, False, True),
    ((True, False, False), "u", True, False, True),
    ((True, False, False), "", False, False, False),
    ((True, False, True), "", False, False, True),
    ((False, True, False), "u", False, False, False),
    ((False, True, False), "u", True, False, True),
    ((False, True, False), "", True, False, False),
    ((False, True, True), "", True, False, True),
    ((False, True, True), "", False, False, False),
    ((False, False, True), "", True, False, False),  # anonymous alone grants nothing
    ((False, False, True), "u", True, False, False),
    ((False, False, False), "", False, True, True),  # insecure allows everything
    ((False, False, False), "u", False, True, True),
]


def _opts_for(kind: str, flags: tuple[bool, bool, bool], **extra: object) -> ChannelOptions:
    client, subscriber, anon = flags
    return ChannelOptions(
        **{
            f"allow_{kind}_for_client": client,
            f"allow_{kind}_for_subscriber": subscriber,
            f"allow_{kind}_for_anonymous": anon,
        },
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize(("flags", "user", "subscribed", "insecure", "allowed"), _ACCESS)
def test_check_access(
    kind: str,
    flags: tuple[bool, bool, bool],
    user: str,
    subscribed: bool,
    insecure: bool,
    allowed: bool,
) -> None:
    opts = _opts_for(kind, flags, presence=True, **HISTORY)
    r = _rules(insecure=insecure)
    check = getattr(r, f"check_{kind}")
    assert _code(check, opts, user, subscribed) == (None if allowed else 103)


def test_permission_flags_are_independent() -> None:
    r = _rules()
    opts = ChannelOptions(allow_publish_for_client=True, presence=True, **HISTORY)
    assert _code(r.check_publish, opts, "u", False) is None
    assert _code(r.check_presence, opts, "u", False) == 103
    assert _code(r.check_history, opts, "u", False) == 103


@pytest.mark.parametrize("insecure", [False, True])
def test_presence_off_is_108(insecure: bool) -> None:
    opts = ChannelOptions(presence=False, allow_presence_for_client=True)
    assert _code(_rules(insecure=insecure).check_presence, opts, "u", True) == 108


@pytest.mark.parametrize(
    "hist",
    [{}, {"history_size": 10}, {"history_ttl": 60.0}],
)
@pytest.mark.parametrize("insecure", [False, True])
def test_history_off_is_108(hist: dict[str, object], insecure: bool) -> None:
    opts = ChannelOptions(allow_history_for_client=True, **hist)  # type: ignore[arg-type]
    assert _code(_rules(insecure=insecure).check_history, opts, "u", True) == 108


def test_publish_needs_no_feature() -> None:
    opts = ChannelOptions(allow_publish_for_client=True)
    assert _code(_rules().check_publish, opts, "u", False) is None


@pytest.mark.parametrize(
    ("flags", "user", "insecure", "expected"),
    [
        ((True, False, False), "u", False, True),
        ((False, True, False), "u", False, True),  # counted as a subscriber
        ((False, True, False), "", False, False),
        ((False, True, True), "", False, True),
        ((False, False, False), "u", False, False),
        ((False, False, False), "u", True, True),
    ],
)
def test_has_history_and_presence_access(
    flags: tuple[bool, bool, bool], user: str, insecure: bool, expected: bool
) -> None:
    r = _rules(insecure=insecure)
    assert r.has_history_access(_opts_for("history", flags), user) is expected
    assert r.has_presence_access(_opts_for("presence", flags), user) is expected


# ---- features ---------------------------------------------------------------------------
def _features(opts: ChannelOptions, user: str = "u", insecure: bool = False, **kw: object):  # type: ignore[no-untyped-def]
    return _rules(insecure=insecure).features(opts, user, **kw)  # type: ignore[arg-type]


def test_features_defaults_all_off() -> None:
    assert _features(ChannelOptions()) == SubscribeFeatures(
        presence=False,
        join_leave=False,
        push_join_leave=False,
        positioned=False,
        recoverable=False,
        cache_recovery=False,
    )


@pytest.mark.parametrize(
    ("opts", "override", "presence", "join_leave"),
    [
        (ChannelOptions(presence=True), None, True, False),
        (ChannelOptions(join_leave=True), None, False, True),
        (ChannelOptions(presence=True), Override(presence=False), False, False),
        (ChannelOptions(), Override(presence=True), True, False),
        (ChannelOptions(join_leave=True), Override(join_leave=False), False, False),
        (ChannelOptions(), Override(join_leave=True), False, True),
        (ChannelOptions(presence=True, join_leave=True), Override(), True, True),
    ],
)
def test_features_presence_join_leave(
    opts: ChannelOptions, override: Override | None, presence: bool, join_leave: bool
) -> None:
    f = _features(opts, override=override)
    assert (f.presence, f.join_leave) == (presence, join_leave)


_PRES = {"allow_presence_for_client": True}


@pytest.mark.parametrize(
    ("opts", "user", "want", "override", "insecure", "expected"),
    [
        (ChannelOptions(join_leave=True, **_PRES), "u", True, None, False, True),
        (ChannelOptions(join_leave=True, **_PRES), "u", False, None, False, False),
        (ChannelOptions(join_leave=False, **_PRES), "u", True, None, False, False),
        (ChannelOptions(join_leave=True), "u", True, None, False, False),  # no presence access
        (ChannelOptions(join_leave=True), "u", True, None, True, True),  # insecure
        (ChannelOptions(join_leave=True, **_PRES), "", True, None, False, False),
        (
            ChannelOptions(join_leave=True, allow_presence_for_subscriber=True),
            "u",
            True,
            None,
            False,
            True,
        ),
        (ChannelOptions(force_push_join_leave=True), "", False, None, False, True),
        (ChannelOptions(), "u", False, Override(force_push_join_leave=True), False, True),
        (
            ChannelOptions(force_push_join_leave=True),
            "u",
            False,
            Override(force_push_join_leave=False),
            False,
            False,
        ),
        (ChannelOptions(**_PRES), "u", True, Override(join_leave=True), False, True),
        (
            ChannelOptions(join_leave=True, **_PRES),
            "u",
            True,
            Override(join_leave=False),
            False,
            False,
        ),
    ],
)
def test_features_push_join_leave(
    opts: ChannelOptions,
    user: str,
    want: bool,
    override: Override | None,
    insecure: bool,
    expected: bool,
) -> None:
    f = _features(opts, user, insecure, want_join_leave=want, override=override)
    assert f.push_join_leave is expected


_HIST_CLIENT = {**HISTORY, "allow_history_for_client": True}


@pytest.mark.parametrize(
    ("opts", "user", "kw", "positioned", "recoverable"),
    [
        # nothing requested
        (ChannelOptions(**_HIST_CLIENT), "u", {}, False, False),
        # requested, granted through history access
        (ChannelOptions(**_HIST_CLIENT), "u", {"want_positioned": True}, True, False),
        (ChannelOptions(**_HIST_CLIENT), "u", {"want_recoverable": True}, True, True),
        # requested, no history access and no allow_* -> refused
        (ChannelOptions(**HISTORY), "u", {"want_positioned": True}, False, False),
        (ChannelOptions(**HISTORY), "u", {"want_recoverable": True}, False, False),
        (ChannelOptions(**_HIST_CLIENT), "", {"want_recoverable": True}, False, False),
        # allow_positioning / allow_recovery grant without history access
        (
            ChannelOptions(allow_positioning=True, **HISTORY),
            "",
            {"want_positioned": True},
            True,
            False,
        ),
        (
            ChannelOptions(allow_recovery=True, **HISTORY),
            "",
            {"want_recoverable": True},
            True,
            True,
        ),
        (
            ChannelOptions(allow_positioning=True, **HISTORY),
            "u",
            {"want_recoverable": True},
            False,
            False,
        ),
        # subscriber history access counts
        (
            ChannelOptions(allow_history_for_subscriber=True, **HISTORY),
            "u",
            {"want_recoverable": True},
            True,
            True,
        ),
        # forced
        (ChannelOptions(force_positioning=True, **HISTORY), "", {}, True, False),
        (ChannelOptions(force_recovery=True, **HISTORY), "", {}, True, True),
        # overrides
        (
            ChannelOptions(**HISTORY),
            "",
            {"override": Override(force_positioning=True)},
            True,
            False,
        ),
        (ChannelOptions(**HISTORY), "", {"override": Override(force_recovery=True)}, True, True),
        (
            ChannelOptions(force_recovery=True, **HISTORY),
            "",
            {"override": Override(force_recovery=False)},
            False,
            False,
        ),
        (
            ChannelOptions(force_positioning=True, **HISTORY),
            "",
            {"override": Override(force_positioning=False)},
            False,
            False,
        ),
        (
            ChannelOptions(force_positioning=True, **_HIST_CLIENT),
            "u",
            {"override": Override(force_positioning=False), "want_positioned": True},
            True,
            False,
        ),
        # history off: never positioned or recoverable, whatever is forced
        (ChannelOptions(force_positioning=True, force_recovery=True), "u", {}, False, False),
        (
            ChannelOptions(allow_positioning=True, allow_recovery=True),
            "u",
            {"want_positioned": True, "want_recoverable": True},
            False,
            False,
        ),
        (
            ChannelOptions(history_size=10, allow_history_for_client=True),
            "u",
            {"want_recoverable": True},
            False,
            False,
        ),
        (
            ChannelOptions(),
            "u",
            {"override": Override(force_recovery=True, force_positioning=True)},
            False,
            False,
        ),
    ],
)
def test_features_positioning_recovery(
    opts: ChannelOptions, user: str, kw: dict[str, object], positioned: bool, recoverable: bool
) -> None:
    f = _features(opts, user, **kw)
    assert (f.positioned, f.recoverable) == (positioned, recoverable)


def test_features_insecure_grants_requested_recovery() -> None:
    f = _features(ChannelOptions(**HISTORY), "", insecure=True, want_recoverable=True)
    assert (f.positioned, f.recoverable) == (True, True)


@pytest.mark.parametrize(("mode", "expected"), [("", False), ("stream", False), ("cache", True)])
def test_features_cache_recovery(mode: str, expected: bool) -> None:
    f = _features(ChannelOptions(force_recovery_mode=mode, **HISTORY))
    assert f.cache_recovery is expected


def test_override_defaults_keep() -> None:
    o = Override()
    assert o == Override(None, None, None, None, None)
