"""Instruction count of the ``/api/batch`` path, for judging a hot-path change.

In one process, without sockets: ``N`` bodies of 1,000 publishes into 100 ``hist:``
channels are decoded (``api.decode_body``), executed (``Executor.call``) and encoded
(``http_api.encode_batch_result``) on the memory engine. Run it under callgrind twice
and take the difference, so start-up is not counted::

    for n in 0 10; do N=$n valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
        .venv/bin/python -m bench.callgrind_batch 2>&1 | grep Collected; done
    # instructions per batch = (Collected(N=10) - Collected(N=0)) / 10

``PERSIST=interval`` (or ``always``, ``none``) runs it with ``engine.memory.persistence``
on, in a temporary directory (the syscalls are counted as one instruction each).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tempfile

from bench.common import make_config
from bench.fanout import batch_template
from relay.api import decode_body
from relay.config import load_config
from relay.server import RelayServer
from relay.transports.http_api import encode_batch_result


async def main() -> None:
    config = make_config()
    if os.environ.get("PERSIST"):  # PERSIST=<sync policy>: engine.memory.persistence on
        history = tempfile.mkdtemp(prefix="relay-cg-history-")
        persistence = {"dir": history, "sync": os.environ["PERSIST"]}
        config["engine"] = {"memory": {"persistence": persistence}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    server = RelayServer(load_config(f.name, {}).config)
    os.unlink(f.name)
    channels = [f"hist:c{i}" for i in range(100)]
    body = batch_template([channels[i % 100] for i in range(1000)], 30)

    async def one() -> None:
        result = await server.executor.call("batch", decode_body("batch", body), decoded=True)
        encode_batch_result(result)

    # the collector as a worker runs it (relay/process/worker.py)
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    for _ in range(3):  # warm-up, counted in both runs alike
        await one()
    for _ in range(int(os.environ.get("N", "10"))):
        await one()


if __name__ == "__main__":
    asyncio.run(main())
