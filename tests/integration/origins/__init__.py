"""Misbehaving HTTP/1.1 origins for cairn's integration tests (stdlib only)."""
from .server import (  # noqa: F401
    BadFraming, Behaviour, Blob, Chunked, Echo, Func, HugeHeaders, Normal, Numbered, Origin, Raw,
    RecordedRequest, Reset, Sequence, Slow, Stream, Truncated, Validating, blob, rst_close,
)
