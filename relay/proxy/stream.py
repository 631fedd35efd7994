"""The subscribe_stream proxy's gRPC calls: ``SubscribeUnidirectional`` and
``SubscribeBidirectional`` of Centrifugo's ``CentrifugoProxy`` service.

:func:`open_stream` opens the stream on the proxy's channel (``GRPCCaller``: the same
TLS, static metadata, credentials and forwarded headers as the unary calls), sends the
``SubscribeRequest`` (bidirectional: as the first ``StreamSubscribeRequest``) and waits
up to the proxy's ``timeout`` for the first message, which must carry the
``SubscribeResponse``. The stream then stays open, with no deadline, until
:meth:`SubscribeStream.cancel` (unsubscribe, disconnect) or until the backend ends it.
Every failure is a :class:`ProxyFailure`; a failed open cancels its call.

Imported only by ``registry.Proxies.open_stream``, so grpcio stays out of workers that
have no gRPC proxy. Source: centrifugo ``internal/proxy/subscribe_stream_handler.go``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from relay.proxy import proxy_pb2 as pb
from relay.proxy.grpc import SERVICE, GRPCCaller, to_dict
from relay.proxy.messages import ProxyFailure

__all__ = ["SubscribeStream", "open_stream"]

UNIDIRECTIONAL = f"/{SERVICE}/SubscribeUnidirectional"
BIDIRECTIONAL = f"/{SERVICE}/SubscribeBidirectional"

_Call = Any  # grpc.aio.UnaryStreamCall | grpc.aio.StreamStreamCall


def _parse(raw: bytes) -> pb.StreamSubscribeResponse | None:
    """A response message, or None when it does not parse (grpcio would log a traceback
    and hand over None anyway)."""
    try:
        return pb.StreamSubscribeResponse.FromString(raw)
    except DecodeError:
        return None


def _failure(exc: grpc.aio.AioRpcError) -> ProxyFailure:
    return ProxyFailure(f"gRPC error {exc.code().name}: {exc.details()}")


class SubscribeStream:
    """One open stream: the backend's publications in, the subscriber's publishes out."""

    def __init__(self, call: _Call, bidirectional: bool, timeout: float) -> None:
        self._call = call
        self.bidirectional = bidirectional
        self._timeout = timeout

    async def next_publication(self) -> tuple[bytes, dict[str, str]] | None:
        """The next publication (data, tags); None when the backend ended the stream
        (status OK); :class:`ProxyFailure` when it failed (an error status, a message
        that does not parse, the call cancelled under us). Messages without a
        publication are skipped, as in Centrifugo."""
        while True:
            try:
                message = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                raise _failure(exc) from None
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # our reader is being stopped
                raise ProxyFailure("stream cancelled") from None
            if message is grpc.aio.EOF:
                return None
            if message is None:  # it did not parse
                raise ProxyFailure("a message of the stream does not parse")
            if message.HasField("publication"):
                pub = message.publication
                return pub.data, dict(pub.tags)

    async def publish(self, data: bytes) -> None:
        """Send a publication into a bidirectional stream (within the proxy's timeout;
        a stream that does not take it is cancelled)."""
        if not self.bidirectional:
            raise ProxyFailure("not a bidirectional stream")
        message = pb.StreamSubscribeRequest(publication=pb.Publication(data=data))
        try:
            async with asyncio.timeout(self._timeout):
                await self._call.write(message)
        except TimeoutError:
            self.cancel()
            raise ProxyFailure("timeout sending a publication into the stream") from None
        except grpc.aio.AioRpcError as exc:
            raise _failure(exc) from None
        except asyncio.InvalidStateError as exc:  # the call has finished
            raise ProxyFailure(f"stream closed: {exc}") from None

    def cancel(self) -> None:
        """End the call (the backend sees it cancelled); idempotent."""
        self._call.cancel()


def _call(caller: GRPCCaller, bidirectional: bool, message: Any, headers: dict[str, str]) -> _Call:
    channel = caller.channel()
    metadata = caller.call_metadata(headers)
    if bidirectional:
        bidi = channel.stream_stream(
            BIDIRECTIONAL,
            request_serializer=pb.StreamSubscribeRequest.SerializeToString,
            response_deserializer=_parse,
        )
        return bidi(metadata=metadata, compression=caller.compression)
    uni = channel.unary_stream(
        UNIDIRECTIONAL,
        request_serializer=pb.SubscribeRequest.SerializeToString,
        response_deserializer=_parse,
    )
    return uni(message, metadata=metadata, compression=caller.compression)


async def open_stream(
    caller: GRPCCaller, bidirectional: bool, request: dict[str, Any], headers: dict[str, str]
) -> tuple[dict[str, Any], SubscribeStream]:
    """Open the stream and read its first message: the ``SubscribeResponse`` as the dict
    ``outcomes`` reads, and the open stream (the caller owns it from here)."""
    message = pb.SubscribeRequest(**{k: v for k, v in request.items() if v})
    call = _call(caller, bidirectional, message, headers)
    stream = SubscribeStream(call, bidirectional, caller.timeout)
    try:
        first = await _first_message(call, bidirectional, message, caller.timeout)
    except BaseException:  # a failure, or the connection went away meanwhile
        stream.cancel()
        raise
    return to_dict(first.subscribe_response), stream


async def _first_message(
    call: _Call, bidirectional: bool, message: pb.SubscribeRequest, timeout: float
) -> pb.StreamSubscribeResponse:
    """Send the request (bidirectional) and read the first message, which must carry the
    ``SubscribeResponse``; every failure is a :class:`ProxyFailure`."""
    try:
        async with asyncio.timeout(timeout):
            if bidirectional:
                await call.write(pb.StreamSubscribeRequest(subscribe_request=message))
            first = await call.read()
    except TimeoutError:
        raise ProxyFailure("timeout waiting for the first message of the stream") from None
    except grpc.aio.AioRpcError as exc:
        raise _failure(exc) from None
    except asyncio.InvalidStateError as exc:
        raise ProxyFailure(f"stream closed: {exc}") from None
    if first is grpc.aio.EOF:
        raise ProxyFailure("stream ended before its first message")
    if first is None:
        raise ProxyFailure("the first message of the stream does not parse")
    if not first.HasField("subscribe_response"):
        raise ProxyFailure("no subscribe response in first message from stream proxy")
    response: pb.StreamSubscribeResponse = first
    return response
