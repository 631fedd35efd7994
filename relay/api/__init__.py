"""The server API: request decoding (``requests``), payload and result helpers
(``payloads``) and the ``Executor`` that runs each method (``executor``, ``batch``)."""

from relay.api.executor import Executor
from relay.api.payloads import error_dict
from relay.api.requests import METHODS, SCHEMAS, decode_body, decode_request, load_json

__all__ = [
    "Executor",
    "SCHEMAS",
    "METHODS",
    "decode_body",
    "decode_request",
    "error_dict",
    "load_json",
]
