"""Channel rules as pure functions: namespaces, names, permissions, features.

Sources: centrifugo ``internal/config/container.go`` (namespace resolution),
``internal/client/handler.go`` (OnSubscribe / OnPublish / OnPresence / OnHistory),
spec/server-surface.md §5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.config import ChannelConfig, ChannelOptions
from relay.errors import (
    ERROR_BAD_REQUEST,
    ERROR_NOT_AVAILABLE,
    ERROR_PERMISSION_DENIED,
    ERROR_UNKNOWN_CHANNEL,
    ReplyError,
)

__all__ = ["ChannelRules", "SubscribeFeatures", "Override", "check_data_format"]


@dataclass(frozen=True, slots=True)
class Override:
    """Per-subscription overrides from a token or the server API (``None`` = keep)."""

    presence: bool | None = None
    join_leave: bool | None = None
    force_push_join_leave: bool | None = None
    force_recovery: bool | None = None
    force_positioning: bool | None = None


@dataclass(frozen=True, slots=True)
class SubscribeFeatures:
    """What one subscription gets once it is allowed (spec client-protocol §7.4)."""

    presence: bool
    join_leave: bool
    push_join_leave: bool
    positioned: bool
    recoverable: bool
    cache_recovery: bool
    #: the subscriber asked ``delta: "fossil"`` and the namespace allows it
    delta: bool = False


class ChannelRules:
    """Namespace lookup and permission decisions for one config."""

    def __init__(self, cfg: ChannelConfig, insecure: bool = False) -> None:
        self.cfg = cfg
        self.insecure = insecure
        self._namespaces = {ns.name: ns for ns in cfg.namespaces}
        self._regex: dict[str, re.Pattern[str]] = {}
        for ns in cfg.namespaces:
            if ns.channel_regex:
                self._regex[ns.name] = re.compile(ns.channel_regex)
        if cfg.without_namespace.channel_regex:
            self._regex[""] = re.compile(cfg.without_namespace.channel_regex)

    # ---- names ------------------------------------------------------------------------
    def namespace_of(self, channel: str) -> tuple[str, str]:
        """Split a channel into (namespace name, rest); ``""`` for no namespace."""
        name = channel
        prefix = self.cfg.private_prefix
        if prefix and name.startswith(prefix):
            name = name[len(prefix) :]
        boundary = self.cfg.namespace_boundary
        if boundary and boundary in name:
            ns, rest = name.split(boundary, 1)
            return ns, rest
        return "", channel

    def resolve(self, channel: str) -> ChannelOptions:
        """Return the options that apply to ``channel`` or raise 102."""
        ns, _ = self.namespace_of(channel)
        if not ns:
            return self.cfg.without_namespace
        opts = self._namespaces.get(ns)
        if opts is None:
            raise ReplyError(ERROR_UNKNOWN_CHANNEL)
        return opts

    def check_name(self, channel: str) -> None:
        """Client-command name check: ASCII or the namespace's ``channel_regex`` (107)."""
        ns, rest = self.namespace_of(channel)
        regex = self._regex.get(ns)
        if regex is not None:
            # Go's regexp.MatchString: a match anywhere in the name (not anchored).
            if regex.search(rest) is None:
                raise ReplyError(ERROR_BAD_REQUEST)
        elif not channel.isascii():
            raise ReplyError(ERROR_BAD_REQUEST)

    def is_private(self, channel: str) -> bool:
        prefix = self.cfg.private_prefix
        return bool(prefix) and channel.startswith(prefix)

    def user_limited_users(self, channel: str, opts: ChannelOptions) -> list[str] | None:
        """Users allowed in a ``#``-limited channel, or None when it is not one."""
        boundary = self.cfg.user_boundary
        if not opts.allow_user_limited_channels or not boundary or boundary not in channel:
            return None
        users = channel.rsplit(boundary, 1)[1]
        separator = self.cfg.user_separator
        return users.split(separator) if separator else [users]

    # ---- permissions ------------------------------------------------------------------
    def can_subscribe_without_token(self, channel: str, opts: ChannelOptions, user: str) -> bool:
        users = self.user_limited_users(channel, opts)
        if users is not None:
            return user in users
        if opts.allow_subscribe_for_client and (user or opts.allow_subscribe_for_anonymous):
            return True
        return self.insecure

    def check_publish(self, opts: ChannelOptions, user: str, subscribed: bool) -> None:
        self._check_access(
            opts.allow_publish_for_client,
            opts.allow_publish_for_subscriber,
            opts.allow_publish_for_anonymous,
            user,
            subscribed,
        )

    def check_presence(self, opts: ChannelOptions, user: str, subscribed: bool) -> None:
        if not opts.presence:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        self._check_access(
            opts.allow_presence_for_client,
            opts.allow_presence_for_subscriber,
            opts.allow_presence_for_anonymous,
            user,
            subscribed,
        )

    def check_history(self, opts: ChannelOptions, user: str, subscribed: bool) -> None:
        if not opts.history_enabled:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        self._check_access(
            opts.allow_history_for_client,
            opts.allow_history_for_subscriber,
            opts.allow_history_for_anonymous,
            user,
            subscribed,
        )

    def has_history_access(self, opts: ChannelOptions, user: str) -> bool:
        """History access as a subscriber, used to grant requested positioning/recovery."""
        return self._allowed(
            opts.allow_history_for_client,
            opts.allow_history_for_subscriber,
            opts.allow_history_for_anonymous,
            user,
            True,
        )

    def has_presence_access(self, opts: ChannelOptions, user: str) -> bool:
        return self._allowed(
            opts.allow_presence_for_client,
            opts.allow_presence_for_subscriber,
            opts.allow_presence_for_anonymous,
            user,
            True,
        )

    def _allowed(
        self, for_client: bool, for_subscriber: bool, for_anon: bool, user: str, subscribed: bool
    ) -> bool:
        if (for_client or (for_subscriber and subscribed)) and (user or for_anon):
            return True
        return self.insecure

    def _check_access(
        self, for_client: bool, for_subscriber: bool, for_anon: bool, user: str, subscribed: bool
    ) -> None:
        if not self._allowed(for_client, for_subscriber, for_anon, user, subscribed):
            raise ReplyError(ERROR_PERMISSION_DENIED)

    # ---- features ---------------------------------------------------------------------
    def features(
        self,
        opts: ChannelOptions,
        user: str,
        *,
        want_positioned: bool = False,
        want_recoverable: bool = False,
        want_join_leave: bool = False,
        override: Override | None = None,
    ) -> SubscribeFeatures:
        """Decide presence, join/leave, positioning and recovery for a subscription."""
        o = override or Override()
        presence = _pick(o.presence, opts.presence)
        join_leave = _pick(o.join_leave, opts.join_leave)
        force_push = _pick(o.force_push_join_leave, opts.force_push_join_leave)
        history_access = opts.history_enabled and self.has_history_access(opts, user)
        positioned = _pick(o.force_positioning, opts.force_positioning) or (
            want_positioned and (opts.allow_positioning or history_access)
        )
        recoverable = _pick(o.force_recovery, opts.force_recovery) or (
            want_recoverable and (opts.allow_recovery or history_access)
        )
        if not opts.history_enabled:
            positioned = recoverable = False
        push_join_leave = force_push or (
            want_join_leave and join_leave and self.has_presence_access(opts, user)
        )
        return SubscribeFeatures(
            presence=presence,
            join_leave=join_leave,
            push_join_leave=push_join_leave,
            positioned=positioned or recoverable,
            recoverable=recoverable,
            cache_recovery=opts.force_recovery_mode == "cache",
        )


def _pick(override: bool | None, default: bool) -> bool:
    return default if override is None else override


def check_data_format(opts: ChannelOptions, default: str, data: bytes, data_json: bool) -> None:
    """``publication_data_format`` of the namespace (else ``default``): 107 on mismatch."""
    fmt = opts.publication_data_format or default
    if fmt == "binary":
        return
    if fmt == "":
        if not data:
            raise ReplyError(ERROR_BAD_REQUEST)
        return
    if not data_json or not data:
        raise ReplyError(ERROR_BAD_REQUEST)
    if fmt == "json_object" and not data.lstrip().startswith(b"{"):
        raise ReplyError(ERROR_BAD_REQUEST)
