"""Typed errors for bad input. Every error can carry where it happened (file, line, field)."""

from __future__ import annotations


class NluDataError(ValueError):
    """Base class for every problem with annotated data.

    ``str(error)`` reads ``path:line: field: message`` so a user can jump to the spot.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"

    def at(self, *, path: str | None = None, line: int | None = None) -> "NluDataError":
        """Return a copy of this error located at ``path:line`` (keeps what is already known)."""
        located = type(self).__new__(type(self))
        NluDataError.__init__(located, self.message, path=self.path or path,
                              line=self.line if self.line is not None else line, field=self.field)
        return located


class AnnotationError(NluDataError):
    """An utterance's annotation is inconsistent (empty, length mismatch, bad intent...)."""


class FieldTypeError(AnnotationError):
    """A field holds a value of the wrong type (a number or null where a string belongs...)."""


class LengthMismatchError(AnnotationError):
    """Tokens and tags do not have the same length."""


class IOBError(AnnotationError):
    """A BIO tag sequence is not well-formed IOB2."""


class FormatError(NluDataError):
    """A file does not follow the format it claims (or was detected) to have."""


class EncodingError(FormatError):
    """A file is not valid UTF-8."""


class EmptyFileError(FormatError):
    """A file holds no utterance."""


class SpanAlignmentError(FormatError):
    """A character span does not align with token boundaries."""


class LabelMappingError(NluDataError):
    """A label-schema mapping file is malformed or does not cover a label in strict mode."""
