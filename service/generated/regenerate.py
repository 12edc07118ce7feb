"""Regenerate the gRPC stubs in this package from ``protos/nlu_bootstrap/v1/*.proto``.

    python -m service.generated.regenerate

protoc names the stubs' cross-file imports after the proto import paths
(``from nlu_bootstrap.v1 import utterance_pb2``), a top-level package that does not exist
once nlu-bootstrap is installed. The generated imports are therefore rewritten to live under
``service.generated`` (``from service.generated.nlu_bootstrap.v1 import utterance_pb2``).
The descriptors keep their proto names (``nlu_bootstrap/v1/utterance.proto``), which is what
server reflection and other languages' clients see.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPOSITORY_ROOT / "protos"
PROTO_PACKAGE = "nlu_bootstrap/v1"
GENERATED_ROOT = Path(__file__).resolve().parent
PYTHON_PACKAGE = "service.generated"

_PROTO_IMPORT = re.compile(r"^(\s*)from nlu_bootstrap\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))


def generate(output_root: Path | str = GENERATED_ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) on every proto; write ``<output_root>/nlu_bootstrap/v1/*``.

    Returns the generated files. Raises ``RuntimeError`` with protoc's message on failure.
    """
    from grpc_tools import protoc
    import grpc_tools

    output_root = Path(output_root)
    well_known_types = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        arguments = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known_types}",
                     f"--python_out={scratch}", f"--pyi_out={scratch}",
                     f"--grpc_python_out={scratch}",
                     *(str(path.relative_to(PROTO_ROOT)) for path in proto_files())]
        if protoc.main(arguments) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(arguments)}")
        generated: list[Path] = []
        for source in sorted((Path(scratch) / PROTO_PACKAGE).iterdir()):
            target = output_root / PROTO_PACKAGE / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = _PROTO_IMPORT.sub(rf"\1from {PYTHON_PACKAGE}.nlu_bootstrap.v1 import ",
                                     source.read_text(encoding="utf-8"))
            target.write_text(text, encoding="utf-8")
            generated.append(target)
    for package in (output_root / "nlu_bootstrap", output_root / PROTO_PACKAGE):
        (package / "__init__.py").touch()
    return generated


def main() -> int:
    stale = GENERATED_ROOT / "nlu_bootstrap"
    if stale.exists():
        shutil.rmtree(stale)
    for path in generate():
        print(path.relative_to(REPOSITORY_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
