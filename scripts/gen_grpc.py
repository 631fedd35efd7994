"""Generate the protobuf modules of relay's ``.proto`` files: the gRPC server API
(``relay/api/grpc/``) and the proxy service relay calls (``relay/proxy/proxy.proto``).

``python scripts/gen_grpc.py`` rewrites the ``*_pb2.py`` and ``*_pb2.pyi`` beside them with
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
PROXY_DIR = ROOT / "relay" / "proxy"
PROXY_PROTOS = ("proxy.proto",)
#: each folder of .proto files and the files in it (generated modules land beside them)
SOURCES = ((PROTO_DIR, PROTOS), (PROXY_DIR, PROXY_PROTOS))


def include_dir() -> str:
    """The well-known protos (``google/protobuf/any.proto``) shipped with grpcio-tools."""
    return str(resources.files("grpc_tools") / "_proto")


def protoc(args: list[str], proto_dir: Path = PROTO_DIR) -> None:
    from grpc_tools import protoc as grpc_protoc

    code = grpc_protoc.main(["protoc", f"-I{proto_dir}", f"-I{include_dir()}", *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}): {' '.join(args)}")


def generate(
    out: Path, proto_dir: Path = PROTO_DIR, protos: tuple[str, ...] = PROTOS
) -> dict[str, bytes]:
    """Run protoc into ``out``; the generated files by name."""
    protoc([f"--python_out={out}", f"--pyi_out={out}", *protos], proto_dir)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def descriptor_set(
    out: Path, proto_dir: Path = PROTO_DIR, protos: tuple[str, ...] = PROTOS
) -> bytes:
    """The serialized ``FileDescriptorSet`` of relay's protos (no source info)."""
    target = out / "descriptors.pb"
    protoc([f"--descriptor_set_out={target}", *protos], proto_dir)
    return target.read_bytes()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale: list[Path] = []
    fresh: dict[Path, bytes] = {}
    for proto_dir, protos in SOURCES:
        with tempfile.TemporaryDirectory() as tmp:
            files = generate(Path(tmp), proto_dir, protos)
        for name, data in files.items():
            if _read(proto_dir / name) != data:
                stale.append(proto_dir / name)
                fresh[proto_dir / name] = data
    if check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run make grpc-proto")
        return 1 if stale else 0
    for path in stale:
        path.write_bytes(fresh[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
