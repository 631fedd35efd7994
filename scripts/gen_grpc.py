"""Generate the protobuf modules of the gRPC server API from relay's ``.proto`` files.

``python scripts/gen_grpc.py`` rewrites ``relay/api/grpc/*_pb2.py`` and ``*_pb2.pyi`` with
the protoc bundled in ``grpcio-tools`` (``make grpc-proto``); ``--check`` only compares
and exits 1 when a committed file differs from what protoc makes now.
``tests/unit/test_grpc_proto.py`` checks the descriptors, which do not depend on the
protoc version, so a newer ``grpcio-tools`` alone does not fail the tests.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "relay" / "api" / "grpc"
PROTOS = ("centrifugo_api.proto", "rpc_status.proto")


def include_dir() -> str:
    """The well-known protos (``google/protobuf/any.proto``) shipped with grpcio-tools."""
    return str(resources.files("grpc_tools") / "_proto")


def protoc(args: list[str]) -> None:
    from grpc_tools import protoc as grpc_protoc

    code = grpc_protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include_dir()}", *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}): {' '.join(args)}")


def generate(out: Path) -> dict[str, bytes]:
    """Run protoc into ``out``; the generated files by name."""
    protoc([f"--python_out={out}", f"--pyi_out={out}", *PROTOS])
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def descriptor_set(out: Path) -> bytes:
    """The serialized ``FileDescriptorSet`` of relay's protos (no source info)."""
    target = out / "descriptors.pb"
    protoc([f"--descriptor_set_out={target}", *PROTOS])
    return target.read_bytes()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
    stale = [name for name, data in files.items() if _read(PROTO_DIR / name) != data]
    if check:
        for name in stale:
            print(f"relay/api/grpc/{name} is out of date: run make grpc-proto")
        return 1 if stale else 0
    for name in stale:
        (PROTO_DIR / name).write_bytes(files[name])
        print(f"wrote relay/api/grpc/{name}")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
