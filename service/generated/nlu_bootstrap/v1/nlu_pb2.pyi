from service.generated.nlu_bootstrap.v1 import utterance_pb2 as _utterance_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tokens(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class ParseInput(_message.Message):
    __slots__ = ("text", "tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    tokens: Tokens
    def __init__(self, text: _Optional[str] = ..., tokens: _Optional[_Union[Tokens, _Mapping]] = ...) -> None: ...

class ParseRequest(_message.Message):
    __slots__ = ("model", "language", "inputs", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: str
    language: str
    inputs: _containers.RepeatedCompositeFieldContainer[ParseInput]
    top_k: int
    def __init__(self, model: _Optional[str] = ..., language: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[ParseInput, _Mapping]]] = ..., top_k: _Optional[int] = ...) -> None: ...

class SlotSpan(_message.Message):
    __slots__ = ("type", "value", "start", "end", "start_char", "end_char")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    START_CHAR_FIELD_NUMBER: _ClassVar[int]
    END_CHAR_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: str
    start: int
    end: int
    start_char: int
    end_char: int
    def __init__(self, type: _Optional[str] = ..., value: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., start_char: _Optional[int] = ..., end_char: _Optional[int] = ...) -> None: ...

class IntentScore(_message.Message):
    __slots__ = ("intent", "probability")
    INTENT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    intent: str
    probability: float
    def __init__(self, intent: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Parse(_message.Message):
    __slots__ = ("text", "utterance", "probability", "ranking", "slots")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    text: str
    utterance: _utterance_pb2.AnnotatedUtterance
    probability: float
    ranking: _containers.RepeatedCompositeFieldContainer[IntentScore]
    slots: _containers.RepeatedCompositeFieldContainer[SlotSpan]
    def __init__(self, text: _Optional[str] = ..., utterance: _Optional[_Union[_utterance_pb2.AnnotatedUtterance, _Mapping]] = ..., probability: _Optional[float] = ..., ranking: _Optional[_Iterable[_Union[IntentScore, _Mapping]]] = ..., slots: _Optional[_Iterable[_Union[SlotSpan, _Mapping]]] = ...) -> None: ...

class ParseResponse(_message.Message):
    __slots__ = ("run_id", "parses")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARSES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    parses: _containers.RepeatedCompositeFieldContainer[Parse]
    def __init__(self, run_id: _Optional[str] = ..., parses: _Optional[_Iterable[_Union[Parse, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegisteredNluModel(_message.Message):
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

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[RegisteredNluModel]
    def __init__(self, models: _Optional[_Iterable[_Union[RegisteredNluModel, _Mapping]]] = ...) -> None: ...

class DescribeModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class DescribeModelResponse(_message.Message):
    __slots__ = ("model", "run_id", "languages", "intents", "slot_types", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    SLOT_TYPES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model: str
    run_id: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    intents: _containers.RepeatedScalarFieldContainer[str]
    slot_types: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, model: _Optional[str] = ..., run_id: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ..., intents: _Optional[_Iterable[str]] = ..., slot_types: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...
