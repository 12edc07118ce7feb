"""The committed gRPC stubs are exactly what the protos generate, and import as a package."""

from pathlib import Path

from service.generated import regenerate


def test_committed_stubs_match_the_protos(tmp_path: Path):
    generated = regenerate.generate(tmp_path)
    assert {path.name for path in generated} >= {"augmentation_pb2.py", "augmentation_pb2_grpc.py",
                                                  "training_pb2.py", "training_pb2_grpc.py",
                                                  "utterance_pb2.py"}
    for fresh in generated:
        committed = regenerate.GENERATED_ROOT / fresh.relative_to(tmp_path)
        assert committed.read_text() == fresh.read_text(), (
            f"{committed} is stale: run python -m service.generated.regenerate")


def test_stubs_import_from_the_package_not_top_level():
    from service.generated.nlu_bootstrap.v1 import augmentation_pb2, training_pb2

    assert augmentation_pb2.DESCRIPTOR.package == "nlu_bootstrap.v1"
    assert "nlu_bootstrap/v1/utterance.proto" in {
        dependency.name for dependency in training_pb2.DESCRIPTOR.dependencies}
    for path in (regenerate.GENERATED_ROOT / "nlu_bootstrap" / "v1").glob("*.py"):
        assert "\nfrom nlu_bootstrap" not in path.read_text(), path
