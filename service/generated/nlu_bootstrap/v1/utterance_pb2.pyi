from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AnnotatedUtterance(_message.Message):
    __slots__ = ("tokens", "tags", "intent", "language", "id")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    intent: str
    language: str
    id: str
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., intent: _Optional[str] = ..., language: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...
