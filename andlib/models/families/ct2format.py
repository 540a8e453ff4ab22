"""Reading CTranslate2 ``model.bin`` files (the format the Whisper wheels ship) without
CTranslate2: :func:`read_model_bin`.

The layout (little-endian): a ``u32`` format version, the spec name, a ``u32`` revision and
the number of variables; then per variable its name, a ``u8`` rank, ``rank`` ``u32`` dims, a
``u8`` dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), a ``u32`` byte count and the raw
bytes; then a ``u32`` alias count and ``(alias, target)`` name pairs. A string is a ``u16``
length (including its NUL), the bytes and the NUL. A model may be split into parts that
concatenate to one such file; :func:`read_model_bin` reads the parts as one stream and checks
that they parse to their exact end.

Public surface: :func:`read_model_bin`, :class:`ModelBin`, :class:`FormatError`, :data:`DTYPES`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: the upper half of a float32 (see _to_array)
}
_MAX_RANK = 8


class FormatError(ValueError):
    """The bytes are not a CTranslate2 model file; ``truncated`` when they end too early."""

    def __init__(self, message: str, truncated: bool = False):
        super().__init__(message)
        self.truncated = truncated


@dataclass
class ModelBin:
    """A parsed model file: its spec, revision, variables (numpy arrays) and aliases."""

    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


class _Reader:
    def __init__(self, data: bytes | memoryview):
        self.data = memoryview(data)
        self.offset = 0

    def take(self, n: int, what: str) -> memoryview:
        end = self.offset + n
        if end > len(self.data):
            raise FormatError(
                f"ends after {len(self.data):,} bytes while reading {what} "
                f"({n:,} bytes at offset {self.offset:,})",
                truncated=True,
            )
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def unpack(self, fmt: str, what: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0])

    def string(self, what: str) -> str:
        n = self.unpack("<H", f"the length of {what}")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise FormatError(f"{what} at offset {self.offset - n:,} is not a NUL-ended string")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{what} at offset {self.offset - n:,} is not UTF-8") from exc


def _to_array(raw: memoryview, dtype_code: int, dims: list[int]) -> np.ndarray:
    arr = np.frombuffer(raw, dtype=DTYPES[dtype_code])
    if dtype_code == 5:  # bfloat16 -> float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.reshape(dims) if dims else arr.reshape(())


def read_model_bin(data: bytes | memoryview, expect_spec: str | None = None) -> ModelBin:
    """Parse a whole model file (or its concatenated parts); :class:`FormatError` names what
    does not parse and where (``truncated`` when the bytes end too early)."""
    r = _Reader(data)
    version = r.unpack("<I", "the format version")
    if not 1 <= version <= 64:
        raise FormatError(f"format version {version} is not a CTranslate2 model version")
    spec = r.string("the spec name")
    if expect_spec is not None and spec != expect_spec:
        raise FormatError(f"spec {spec!r}, expected {expect_spec!r}")
    revision = r.unpack("<I", "the spec revision")
    count = r.unpack("<I", "the variable count")
    variables: dict[str, np.ndarray] = {}
    for i in range(count):
        name = r.string(f"the name of variable {i}")
        rank = r.unpack("<B", f"the rank of {name}")
        if rank > _MAX_RANK:
            raise FormatError(f"variable {name!r}: rank {rank} is not a tensor rank")
        dims = [r.unpack("<I", f"the dims of {name}") for _ in range(rank)]
        code = r.unpack("<B", f"the dtype of {name}")
        if code not in DTYPES:
            raise FormatError(f"variable {name!r}: unknown dtype code {code}")
        nbytes = r.unpack("<I", f"the byte count of {name}")
        expected = int(np.prod(dims, dtype=np.int64)) * DTYPES[code].itemsize
        if nbytes != expected:
            raise FormatError(
                f"variable {name!r}: {nbytes:,} bytes for shape {dims} of dtype code {code} "
                f"(expected {expected:,})"
            )
        variables[name] = _to_array(r.take(nbytes, f"the values of {name}"), code, dims)
    aliases: dict[str, str] = {}
    if r.offset < len(r.data):
        n_aliases = r.unpack("<I", "the alias count")
        for i in range(n_aliases):
            alias = r.string(f"alias {i}")
            aliases[alias] = r.string(f"the target of alias {alias!r}")
    if r.offset != len(r.data):
        raise FormatError(
            f"{len(r.data) - r.offset:,} bytes left after the last alias (offset {r.offset:,})"
        )
    return ModelBin(version, spec, revision, variables, aliases)
