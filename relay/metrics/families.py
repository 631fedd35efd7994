"""Centrifugo v6.9.1's metric families that relay exposes: names, types, help, labels, buckets.

Taken from centrifugal/centrifuge ``metrics.go`` and centrifugo ``internal/metrics/metrics.go``
(v6.9.1) and checked against the real binary's ``/metrics``. ``NOT_EXPOSED`` lists the
families Centrifugo has that relay does not, and why.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FAMILIES", "Family", "NOT_EXPOSED"]


class Family(NamedTuple):
    name: str
    kind: str  # counter | gauge | summary | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "centrifugo_node_messages_sent_count",
            "counter",
            "Number of messages sent by node to broker.",
            ("type", "channel_namespace"),
        ),
        Family(
            "centrifugo_node_messages_received_count",
            "counter",
            "Number of messages received from broker.",
            ("type", "channel_namespace"),
        ),
        Family(
            "centrifugo_node_action_count",
            "counter",
            "Number of various actions called.",
            ("action", "channel_namespace"),
        ),
        Family("centrifugo_node_num_clients", "gauge", "Number of clients connected.", ()),
        Family("centrifugo_node_num_users", "gauge", "Number of unique users connected.", ()),
        Family("centrifugo_node_num_subscriptions", "gauge", "Number of subscriptions.", ()),
        Family(
            "centrifugo_node_num_channels",
            "gauge",
            "Number of channels with one or more subscribers.",
            (),
        ),
        Family("centrifugo_node_num_nodes", "gauge", "Number of nodes in the cluster.", ()),
        Family("centrifugo_node_build", "gauge", "Node build info.", ("version",)),
        Family(
            "centrifugo_node_survey_duration_seconds",
            "summary",
            "DEPRECATED — use survey_duration_seconds_histogram. Will be removed in future releases. Survey duration summary.",
            ("op",),
        ),
        Family(
            "centrifugo_node_survey_duration_seconds_histogram",
            "histogram",
            "Survey duration histogram. Use for histogram_quantile() and OpenTelemetry export.",
            ("op",),
            (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        Family(
            "centrifugo_node_broadcast_duration_seconds",
            "histogram",
            "Broadcast duration in seconds",
            ("type", "channel_namespace"),
            (
                1e-06,
                5e-06,
                1e-05,
                5e-05,
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
            ),
        ),
        Family(
            "centrifugo_node_client_connection_limit",
            "counter",
            "Number of refused requests due to node client connection limit.",
            (),
        ),
        Family(
            "centrifugo_client_command_duration_seconds",
            "summary",
            "DEPRECATED — use command_duration_seconds_histogram. Will be removed in future releases. Client command duration summary.",
            ("method", "channel_namespace"),
        ),
        Family(
            "centrifugo_client_command_duration_seconds_histogram",
            "histogram",
            "Client command duration histogram. Use for histogram_quantile() and OpenTelemetry export.",
            ("method", "channel_namespace"),
            (
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
            ),
        ),
        Family(
            "centrifugo_client_num_reply_errors",
            "counter",
            "Number of errors in replies sent to clients.",
            ("method", "code", "channel_namespace"),
        ),
        Family(
            "centrifugo_client_num_server_unsubscribes",
            "counter",
            "Number of server initiated unsubscribes.",
            ("code", "channel_namespace"),
        ),
        Family(
            "centrifugo_client_num_server_disconnects",
            "counter",
            "Number of server initiated disconnects.",
            ("code",),
        ),
        Family(
            "centrifugo_client_recover",
            "counter",
            "Count of recover operations with success/fail resolution.",
            ("recovered", "channel_namespace", "has_recovered_publications"),
        ),
        Family(
            "centrifugo_client_ping_pong_duration_seconds",
            "histogram",
            "Ping/Pong duration in seconds",
            ("transport",),
            (
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
            ),
        ),
        Family(
            "centrifugo_client_connections_accepted",
            "counter",
            "Count of accepted transports.",
            ("transport", "accept_protocol", "client_name", "client_version"),
        ),
        Family(
            "centrifugo_client_connections_inflight",
            "gauge",
            "Number of inflight client connections.",
            ("transport", "accept_protocol", "client_name", "client_version"),
        ),
        Family(
            "centrifugo_client_subscriptions_inflight",
            "gauge",
            "Number of inflight client subscriptions.",
            ("client_name", "channel_namespace"),
        ),
        Family(
            "centrifugo_transport_messages_sent",
            "counter",
            "Number of messages sent to client connections over specific transport.",
            ("transport", "frame_type", "channel_namespace"),
        ),
        Family(
            "centrifugo_transport_messages_sent_size",
            "counter",
            "MaxSize in bytes of messages sent to client connections over specific transport (uncompressed and does not include framing overhead).",
            ("transport", "frame_type", "channel_namespace"),
        ),
        Family(
            "centrifugo_transport_messages_received",
            "counter",
            "Number of messages received from client connections over specific transport.",
            ("transport", "frame_type", "channel_namespace"),
        ),
        Family(
            "centrifugo_transport_messages_received_size",
            "counter",
            "MaxSize in bytes of messages received from client connections over specific transport (uncompressed and does not include framing overhead).",
            ("transport", "frame_type", "channel_namespace"),
        ),
        Family(
            "centrifugo_transport_outgoing_close_count",
            "counter",
            "Number of close frames sent to clients, by transport and code.",
            ("transport", "code"),
        ),
        Family(
            "centrifugo_broker_publish_suppressed_count",
            "counter",
            "Number of suppressed publish operations.",
            ("reason", "channel_namespace"),
        ),
        Family(
            "centrifugo_api_command_errors_total",
            "counter",
            "Total errors in API commands.",
            ("protocol", "method", "error"),
        ),
        Family(
            "centrifugo_consumers_messages_processed_total",
            "counter",
            "Total number of processed messages in consumer",
            ("consumer_name",),
        ),
        Family(
            "centrifugo_consumers_errors_total",
            "counter",
            "Total number of errors in consumer",
            ("consumer_name",),
        ),
        Family(
            "centrifugo_proxy_duration_seconds",
            "summary",
            "DEPRECATED — use centrifugo_proxy_duration_seconds_histogram. Will be removed in Centrifugo v7. Duration of proxy call.",
            ("protocol", "type", "name"),
        ),
        Family(
            "centrifugo_proxy_duration_seconds_histogram",
            "histogram",
            "Histogram of duration of proxy call.",
            ("protocol", "type", "name"),
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        Family(
            "centrifugo_proxy_errors",
            "counter",
            "Proxy call error count.",
            ("protocol", "type", "name"),
        ),
        Family(
            "centrifugo_proxy_inflight_requests",
            "gauge",
            "Number of inflight proxy requests.",
            ("protocol", "type", "name"),
        ),
        Family(
            "centrifugo_api_command_duration_seconds",
            "summary",
            "DEPRECATED — use centrifugo_api_command_duration_seconds_histogram. Will be removed in Centrifugo v7. Duration of API per command.",
            ("protocol", "method"),
        ),
        Family(
            "centrifugo_api_command_duration_seconds_histogram",
            "histogram",
            "Histogram of duration of API per command.",
            ("protocol", "method"),
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
    )
}

#: Centrifugo's other families: the features they measure are not in relay yet.
NOT_EXPOSED: dict[str, str] = {
    "centrifugo_node_tags_filter_dropped_publications": "publication tags filters (not implemented)",
    "centrifugo_client_recovered_publications": "registered only with prometheus.recovered_publications_histogram (not implemented)",
    "centrifugo_client_subscriptions_accepted": "registered by Centrifugo but never incremented: never shown",
    "centrifugo_node_pub_sub_lag_seconds": "broker lag of publications with a time: not measured yet",
    "centrifugo_map_broker_publish_suppressed_count": "map subscriptions (not implemented)",
    "centrifugo_map_broker_remove_suppressed_count": "map subscriptions (not implemented)",
    "centrifugo_map_broker_cleanup_lag_seconds": "map subscriptions (not implemented)",
    "centrifugo_map_broker_cleanup_removed_count": "map subscriptions (not implemented)",
    "centrifugo_map_broker_cleanup_errors_count": "map subscriptions (not implemented)",
    "centrifugo_shared_poll_cycle_duration_seconds": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_cycle_work_duration_seconds": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_handler_duration_seconds": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_sem_wait_duration_seconds": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_handler_error_count": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_items_count": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_notify_count": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_dropped_notify_count": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_publish_count": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_num_channels": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_num_keys": "shared poll channels (not implemented)",
    "centrifugo_broker_redis_pub_sub_errors": "Redis PUB/SUB processor metrics (not measured yet)",
    "centrifugo_broker_redis_pub_sub_dropped_messages": "Redis PUB/SUB processor metrics (not measured yet)",
    "centrifugo_broker_redis_pub_sub_buffered_messages": "Redis PUB/SUB processor metrics (not measured yet)",
    "centrifugo_map_broker_redis_pub_sub_errors": "map subscriptions (not implemented)",
    "centrifugo_map_broker_redis_pub_sub_dropped_messages": "map subscriptions (not implemented)",
    "centrifugo_map_broker_redis_pub_sub_buffered_messages": "map subscriptions (not implemented)",
    "centrifugo_api_rpc_duration_seconds": "API RPC extensions: none exist in OSS, never shown",
    "centrifugo_api_rpc_duration_seconds_histogram": "API RPC extensions: none exist in OSS, never shown",
    "centrifugo_shared_poll_proxy_request_items": "shared poll channels (not implemented)",
    "centrifugo_shared_poll_proxy_response_items": "shared poll channels (not implemented)",
    "centrifugo_node_incoming_http_requests_total": "only with prometheus.instrument_http_handlers (not implemented)",
    "centrifugo_broker_postgres_cleanup_removed_total": "PostgreSQL broker (not implemented)",
    "centrifugo_broker_postgres_outbox_cursor_lag_seconds": "PostgreSQL broker (not implemented)",
    "centrifugo_map_broker_postgres_outbox_cursor_lag_seconds": "map subscriptions (not implemented)",
    "centrifugo_broker_postgres_partitions": "PostgreSQL broker (not implemented)",
    "centrifugo_map_broker_postgres_partitions": "map subscriptions (not implemented)",
}
