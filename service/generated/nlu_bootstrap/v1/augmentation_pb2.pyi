from service.generated.nlu_bootstrap.v1 import utterance_pb2 as _utterance_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SamplingMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLING_METHOD_UNSPECIFIED: _ClassVar[SamplingMethod]
    SAMPLING_METHOD_GREEDY: _ClassVar[SamplingMethod]
    SAMPLING_METHOD_TEMPERATURE: _ClassVar[SamplingMethod]
    SAMPLING_METHOD_TOP_K: _ClassVar[SamplingMethod]
    SAMPLING_METHOD_TOP_P: _ClassVar[SamplingMethod]

class SlotValues(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SLOT_VALUES_UNSPECIFIED: _ClassVar[SlotValues]
    SLOT_VALUES_GENERATED: _ClassVar[SlotValues]
    SLOT_VALUES_GENERATOR_LEXICON: _ClassVar[SlotValues]
    SLOT_VALUES_GIVEN_LEXICON: _ClassVar[SlotValues]
SAMPLING_METHOD_UNSPECIFIED: SamplingMethod
SAMPLING_METHOD_GREEDY: SamplingMethod
SAMPLING_METHOD_TEMPERATURE: SamplingMethod
SAMPLING_METHOD_TOP_K: SamplingMethod
SAMPLING_METHOD_TOP_P: SamplingMethod
SLOT_VALUES_UNSPECIFIED: SlotValues
SLOT_VALUES_GENERATED: SlotValues
SLOT_VALUES_GENERATOR_LEXICON: SlotValues
SLOT_VALUES_GIVEN_LEXICON: SlotValues

class SamplingOptions(_message.Message):
    __slots__ = ("method", "temperature", "top_k", "top_p")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    method: SamplingMethod
    temperature: float
    top_k: int
    top_p: float
    def __init__(self, method: _Optional[_Union[SamplingMethod, str]] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ...) -> None: ...

class GateOptions(_message.Message):
    __slots__ = ("deduplicate", "min_discriminator_score", "agree_with")
    DEDUPLICATE_FIELD_NUMBER: _ClassVar[int]
    MIN_DISCRIMINATOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    AGREE_WITH_FIELD_NUMBER: _ClassVar[int]
    deduplicate: bool
    min_discriminator_score: float
    agree_with: str
    def __init__(self, deduplicate: _Optional[bool] = ..., min_discriminator_score: _Optional[float] = ..., agree_with: _Optional[str] = ...) -> None: ...

class AugmentRequest(_message.Message):
    __slots__ = ("generator", "count", "sampling", "intent_quotas", "seed", "language", "gate", "slot_quotas", "slot_values", "lexicon", "catalogue", "catalogue_share")
    class IntentQuotasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SlotQuotasEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    INTENT_QUOTAS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    SLOT_QUOTAS_FIELD_NUMBER: _ClassVar[int]
    SLOT_VALUES_FIELD_NUMBER: _ClassVar[int]
    LEXICON_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_SHARE_FIELD_NUMBER: _ClassVar[int]
    generator: str
    count: int
    sampling: SamplingOptions
    intent_quotas: _containers.ScalarMap[str, int]
    seed: int
    language: str
    gate: GateOptions
    slot_quotas: _containers.ScalarMap[str, int]
    slot_values: SlotValues
    lexicon: _containers.RepeatedCompositeFieldContainer[_utterance_pb2.AnnotatedUtterance]
    catalogue: _containers.RepeatedCompositeFieldContainer[CatalogueValue]
    catalogue_share: float
    def __init__(self, generator: _Optional[str] = ..., count: _Optional[int] = ..., sampling: _Optional[_Union[SamplingOptions, _Mapping]] = ..., intent_quotas: _Optional[_Mapping[str, int]] = ..., seed: _Optional[int] = ..., language: _Optional[str] = ..., gate: _Optional[_Union[GateOptions, _Mapping]] = ..., slot_quotas: _Optional[_Mapping[str, int]] = ..., slot_values: _Optional[_Union[SlotValues, str]] = ..., lexicon: _Optional[_Iterable[_Union[_utterance_pb2.AnnotatedUtterance, _Mapping]]] = ..., catalogue: _Optional[_Iterable[_Union[CatalogueValue, _Mapping]]] = ..., catalogue_share: _Optional[float] = ...) -> None: ...

class CatalogueValue(_message.Message):
    __slots__ = ("slot_type", "value", "language")
    SLOT_TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    slot_type: str
    value: str
    language: str
    def __init__(self, slot_type: _Optional[str] = ..., value: _Optional[str] = ..., language: _Optional[str] = ...) -> None: ...

class RefillRequest(_message.Message):
    __slots__ = ("utterances", "catalogue", "count", "catalogue_share", "seed", "language")
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_SHARE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    utterances: _containers.RepeatedCompositeFieldContainer[_utterance_pb2.AnnotatedUtterance]
    catalogue: _containers.RepeatedCompositeFieldContainer[CatalogueValue]
    count: int
    catalogue_share: float
    seed: int
    language: str
    def __init__(self, utterances: _Optional[_Iterable[_Union[_utterance_pb2.AnnotatedUtterance, _Mapping]]] = ..., catalogue: _Optional[_Iterable[_Union[CatalogueValue, _Mapping]]] = ..., count: _Optional[int] = ..., catalogue_share: _Optional[float] = ..., seed: _Optional[int] = ..., language: _Optional[str] = ...) -> None: ...

class GateReport(_message.Message):
    __slots__ = ("seen", "malformed", "duplicates", "low_score", "kept", "surplus", "disagreement", "train_copies")
    SEEN_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    LOW_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    SURPLUS_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_COPIES_FIELD_NUMBER: _ClassVar[int]
    seen: int
    malformed: int
    duplicates: int
    low_score: int
    kept: int
    surplus: int
    disagreement: int
    train_copies: int
    def __init__(self, seen: _Optional[int] = ..., malformed: _Optional[int] = ..., duplicates: _Optional[int] = ..., low_score: _Optional[int] = ..., kept: _Optional[int] = ..., surplus: _Optional[int] = ..., disagreement: _Optional[int] = ..., train_copies: _Optional[int] = ...) -> None: ...

class AugmentResponse(_message.Message):
    __slots__ = ("utterances", "gate_report")
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    GATE_REPORT_FIELD_NUMBER: _ClassVar[int]
    utterances: _containers.RepeatedCompositeFieldContainer[_utterance_pb2.AnnotatedUtterance]
    gate_report: GateReport
    def __init__(self, utterances: _Optional[_Iterable[_Union[_utterance_pb2.AnnotatedUtterance, _Mapping]]] = ..., gate_report: _Optional[_Union[GateReport, _Mapping]] = ...) -> None: ...

class ListGeneratorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Generator(_message.Message):
    __slots__ = ("name", "alias_versions", "latest_version", "latest_run_id")
    class AliasVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias_versions: _containers.ScalarMap[str, str]
    latest_version: str
    latest_run_id: str
    def __init__(self, name: _Optional[str] = ..., alias_versions: _Optional[_Mapping[str, str]] = ..., latest_version: _Optional[str] = ..., latest_run_id: _Optional[str] = ...) -> None: ...

class ListGeneratorsResponse(_message.Message):
    __slots__ = ("generators",)
    GENERATORS_FIELD_NUMBER: _ClassVar[int]
    generators: _containers.RepeatedCompositeFieldContainer[Generator]
    def __init__(self, generators: _Optional[_Iterable[_Union[Generator, _Mapping]]] = ...) -> None: ...

class DescribeGeneratorRequest(_message.Message):
    __slots__ = ("generator",)
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    generator: str
    def __init__(self, generator: _Optional[str] = ...) -> None: ...

class DescribeGeneratorResponse(_message.Message):
    __slots__ = ("generator", "run_id", "languages", "intents", "slot_types", "metrics", "slot_values")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    SLOT_TYPES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SLOT_VALUES_FIELD_NUMBER: _ClassVar[int]
    generator: str
    run_id: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    intents: _containers.RepeatedScalarFieldContainer[str]
    slot_types: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.ScalarMap[str, float]
    slot_values: SlotValues
    def __init__(self, generator: _Optional[str] = ..., run_id: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ..., intents: _Optional[_Iterable[str]] = ..., slot_types: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., slot_values: _Optional[_Union[SlotValues, str]] = ...) -> None: ...
