"""Read TensorFlow "V2" checkpoints (tensor bundles) without TensorFlow.

Pure Python + numpy. A checkpoint with prefix ``P`` is two files:

``P.index``
    A LevelDB-style sorted string table (SSTable) mapping tensor names to
    ``BundleEntryProto`` protobuf messages; the entry under the empty key
    is a ``BundleHeaderProto``.
``P.data-00000-of-00001`` (one per shard)
    The tensors' raw bytes, little-endian, row-major (C order), one after
    the other; an entry gives its ``shard_id``, ``offset`` and ``size``.

SSTable layout (all integers little-endian)::

    [data block 1] ... [data block n] [metaindex block] [index block] [footer]

- footer (the file's last 48 bytes): the metaindex BlockHandle and the
  index BlockHandle, each two base-128 varints (offset, size), zero-padded
  to 40 bytes, then the 8-byte magic number ``0xdb4775248b80fb57``;
- a block of ``size`` bytes is followed by a 5-byte trailer: 1 byte of
  compression type (0 = none, 1 = snappy) and the masked CRC-32C of the
  block and the type byte;
- a block holds entries ``varint shared, varint non_shared, varint
  value_length, key[shared:] bytes, value bytes`` where a key shares its
  first ``shared`` bytes with the previous key (prefix compression),
  followed by ``uint32 restarts[num_restarts]`` (offsets of entries stored
  with ``shared == 0``) and ``uint32 num_restarts``;
- the index block maps a separator key (>= every key of a data block) to
  that data block's BlockHandle (its value is the two varints).

``BundleEntryProto`` fields read here: 1 ``dtype`` (a ``DataType`` enum),
2 ``shape`` (a ``TensorShapeProto``: repeated field 2 ``dim`` messages with
field 1 ``size``), 3 ``shard_id``, 4 ``offset``, 5 ``size``, 6 ``crc32c``
(fixed32, masked CRC-32C of the tensor bytes), 7 ``slices`` (partitioned
variables; not supported). ``BundleHeaderProto``: 1 ``num_shards``,
2 ``endianness`` (0 little, 1 big), 3 ``version``.

Every problem with the files raises :class:`CheckpointError`, naming the file
and the cause.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "TensorEntry", "checkpoint_files", "read_checkpoint", "read_index"]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1

# tensorflow/core/framework/types.proto -> numpy (little-endian).
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    8: np.dtype("<c8"),  # DT_COMPLEX64
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
DTYPE_NAMES = {7: "DT_STRING", 14: "DT_BFLOAT16", 20: "DT_RESOURCE", 21: "DT_VARIANT"}


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, garbled or unsupported."""


@dataclass(frozen=True)
class TensorEntry:
    """One ``BundleEntryProto``: where a tensor lies in the data shards.

    ``offset`` and ``size`` are in bytes; ``crc32c`` is the masked CRC-32C
    of the tensor bytes (``None`` when absent).
    """

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None = None


# --- CRC-32C (Castagnoli), as LevelDB and TensorFlow use it ---------------

def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (pure Python; fine for index blocks, slow for MB)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """LevelDB's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --- Low-level decoding ----------------------------------------------------

class _Truncated(Exception):
    pass


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Truncated("varint runs past the end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Truncated("varint longer than 10 bytes")


def _proto_fields(buf: bytes) -> list[tuple[int, int, object]]:
    """The (field number, wire type, value) triples of a protobuf message.

    Varints give ints, fixed32/fixed64 give ints, length-delimited fields
    give bytes. Groups (wire types 3, 4) are not expected and rejected.
    """
    fields = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise _Truncated("fixed64 field runs past the end")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Truncated("length-delimited field runs past the end")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > end:
                raise _Truncated("fixed32 field runs past the end")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise _Truncated(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, value in _proto_fields(buf):
        if number == 2 and wire == 2:  # Dim
            size = 0
            for dnum, dwire, dval in _proto_fields(value):
                if dnum == 1 and dwire == 0:
                    size = dval - (1 << 64) if dval >= 1 << 63 else dval
            dims.append(size)
        elif number == 3 and wire == 0 and value:
            raise _Truncated("tensor shape of unknown rank")
    return tuple(dims)


def _parse_entry(buf: bytes) -> TensorEntry:
    dtype = shard_id = offset = size = 0
    shape: tuple[int, ...] = ()
    crc = None
    for number, wire, value in _proto_fields(buf):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 2 and wire == 2:
            shape = _parse_shape(value)
        elif number == 3 and wire == 0:
            shard_id = value
        elif number == 4 and wire == 0:
            offset = value
        elif number == 5 and wire == 0:
            size = value
        elif number == 6 and wire == 5:
            crc = value
        elif number == 7:
            raise _Truncated("partitioned (sliced) tensors are not supported")
    return TensorEntry(dtype=dtype, shape=shape, shard_id=shard_id, offset=offset, size=size, crc32c=crc)


def _parse_header(buf: bytes) -> dict:
    header = {"num_shards": 0, "endianness": 0}
    for number, wire, value in _proto_fields(buf):
        if number == 1 and wire == 0:
            header["num_shards"] = value
        elif number == 2 and wire == 0:
            header["endianness"] = value
    return header


# --- SSTable ---------------------------------------------------------------

def _read_block(data: bytes, offset: int, size: int, *, what: str) -> bytes:
    """The contents of the block at ``offset`` (without its trailer)."""
    end = offset + size
    if offset < 0 or size < 0 or end + BLOCK_TRAILER_SIZE > len(data):
        raise _Truncated(f"{what} block at {offset}+{size} runs past the end of the file ({len(data)} bytes)")
    kind = data[end]
    if kind == SNAPPY_COMPRESSION:
        raise _Truncated(f"{what} block is snappy-compressed, which this reader does not support")
    if kind != NO_COMPRESSION:
        raise _Truncated(f"{what} block has unknown compression type {kind}")
    block = data[offset:end]
    stored = struct.unpack_from("<I", data, end + 1)[0]
    if masked_crc32c(block + bytes([kind])) != stored:
        raise _Truncated(f"{what} block at {offset} fails its CRC-32C check")
    return block


def _block_entries(block: bytes, *, what: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block, prefix compression undone."""
    if len(block) < 4:
        raise _Truncated(f"{what} block is shorter than its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Truncated(f"{what} block claims {num_restarts} restart points, more than fit")
    restarts = struct.unpack_from(f"<{num_restarts}I", block, limit)
    if any(r >= limit and not r == limit == 0 for r in restarts):
        raise _Truncated(f"{what} block has a restart point past its entries")
    entries = []
    key = b""
    pos = 0
    restart_set = set(restarts)
    while pos < limit:
        at = pos
        shared, pos = _varint(block, pos, limit)
        non_shared, pos = _varint(block, pos, limit)
        value_length, pos = _varint(block, pos, limit)
        if shared > len(key):
            raise _Truncated(f"{what} block entry at {at} shares {shared} bytes of a {len(key)}-byte key")
        if at in restart_set and shared:
            raise _Truncated(f"{what} block entry at restart point {at} shares a prefix")
        if pos + non_shared + value_length > limit:
            raise _Truncated(f"{what} block entry at {at} runs past the block")
        key = key[:shared] + bytes(block[pos : pos + non_shared])
        pos += non_shared
        value = bytes(block[pos : pos + value_length])
        pos += value_length
        entries.append((key, value))
    return entries


def _table_entries(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in ``data``, in key order."""
    if len(data) < FOOTER_SIZE:
        raise _Truncated(f"file is {len(data)} bytes, shorter than the {FOOTER_SIZE}-byte footer")
    footer = data[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, 40)[0]
    if magic != TABLE_MAGIC:
        raise _Truncated(f"bad table magic number {magic:#018x} (expected {TABLE_MAGIC:#018x})")
    pos = 0
    _meta_offset, pos = _varint(footer, pos, 40)
    _meta_size, pos = _varint(footer, pos, 40)
    index_offset, pos = _varint(footer, pos, 40)
    index_size, pos = _varint(footer, pos, 40)
    body = data[:-FOOTER_SIZE]
    index = _block_entries(_read_block(body, index_offset, index_size, what="index"), what="index")
    entries: list[tuple[bytes, bytes]] = []
    for separator, handle in index:
        hpos = 0
        offset, hpos = _varint(handle, hpos, len(handle))
        size, hpos = _varint(handle, hpos, len(handle))
        block = _read_block(body, offset, size, what="data")
        for key, value in _block_entries(block, what="data"):
            if entries and key <= entries[-1][0]:
                raise _Truncated(f"keys out of order: {key!r} after {entries[-1][0]!r}")
            if key > separator:
                raise _Truncated(f"key {key!r} lies past its index separator {separator!r}")
            entries.append((key, value))
    return entries


# --- Public API -----------------------------------------------------------

def checkpoint_files(prefix_or_index_path: str | os.PathLike) -> tuple[Path, str]:
    """The ``.index`` file of a checkpoint and its prefix (as a string).

    Accepts the prefix (``model.ckpt``; musicnn's checkpoints have the
    prefix ``MSD_musicnn/``, so files named ``.index``), the ``.index``
    path, or a directory holding exactly one ``*.index`` file.
    """
    path = Path(prefix_or_index_path)
    text = os.fspath(prefix_or_index_path)
    if text.endswith(".index"):
        return path, text[: -len(".index")]
    if path.is_dir():
        candidates = sorted(path.glob("*.index")) + sorted(path.glob(".index"))
        candidates = sorted(set(candidates))
        if len(candidates) == 1:
            return candidates[0], os.fspath(candidates[0])[: -len(".index")]
        if not candidates:
            raise CheckpointError(f"{path}: no .index file in this directory")
        raise CheckpointError(f"{path}: several .index files; give the checkpoint prefix")
    return Path(text + ".index"), text


def read_index(prefix_or_index_path: str | os.PathLike) -> tuple[dict, dict[str, TensorEntry]]:
    """Parse a checkpoint's ``.index`` file.

    Returns ``(header, entries)``: the ``BundleHeaderProto`` as a dict
    (``num_shards``, ``endianness``) and the tensor name -> :class:`TensorEntry`
    map. Raises CheckpointError naming the file and the cause.
    """
    index_path, _prefix = checkpoint_files(prefix_or_index_path)
    try:
        data = index_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{index_path}: cannot read ({exc.strerror or exc})") from None
    try:
        pairs = _table_entries(data)
        if not pairs or pairs[0][0] != b"":
            raise _Truncated("no header entry (the empty key)")
        header = _parse_header(pairs[0][1])
        entries = {}
        for key, value in pairs[1:]:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise _Truncated(f"tensor name {key!r} is not UTF-8") from None
            entries[name] = _parse_entry(value)
    except _Truncated as exc:
        raise CheckpointError(f"{index_path}: {exc}") from None
    if header["endianness"] != 0:
        raise CheckpointError(f"{index_path}: big-endian checkpoints are not supported")
    if header["num_shards"] < 1:
        raise CheckpointError(f"{index_path}: header gives {header['num_shards']} data shards")
    return header, entries


def read_checkpoint(prefix_or_index_path: str | os.PathLike, *, verify_data: bool = False) -> dict[str, np.ndarray]:
    """All tensors of a TF V2 checkpoint, by variable name.

    Parameters
    ----------
    prefix_or_index_path
        The checkpoint prefix, its ``.index`` file, or a directory holding
        one ``.index`` file.
    verify_data : bool
        Also check each tensor's CRC-32C (pure Python: about a second per
        few MB). Index blocks are always checked.

    Returns
    -------
    dict[str, np.ndarray]
        Each tensor with its stored dtype and shape (a fresh, writable copy).

    Raises
    ------
    CheckpointError
        A file is missing, truncated or garbled, or holds a tensor kind this
        reader does not support (strings, bfloat16, partitioned variables).
    """
    index_path, prefix = checkpoint_files(prefix_or_index_path)
    header, entries = read_index(index_path)
    shards = header["num_shards"]
    cache: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, entry in entries.items():
        if entry.dtype not in DTYPES:
            kind = DTYPE_NAMES.get(entry.dtype, f"DataType {entry.dtype}")
            raise CheckpointError(f"{index_path}: tensor {name!r} has unsupported dtype {kind}")
        if entry.shard_id >= shards:
            raise CheckpointError(f"{index_path}: tensor {name!r} is in shard {entry.shard_id} of {shards}")
        if any(d < 0 for d in entry.shape):
            raise CheckpointError(f"{index_path}: tensor {name!r} has shape {entry.shape}")
        data_path = Path(f"{prefix}.data-{entry.shard_id:05d}-of-{shards:05d}")
        if entry.shard_id not in cache:
            try:
                cache[entry.shard_id] = data_path.read_bytes()
            except OSError as exc:
                raise CheckpointError(f"{data_path}: cannot read ({exc.strerror or exc})") from None
        shard = cache[entry.shard_id]
        dtype = DTYPES[entry.dtype]
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise CheckpointError(
                f"{index_path}: tensor {name!r} of shape {entry.shape} and dtype {dtype} "
                f"needs {count * dtype.itemsize} bytes, the entry says {entry.size}"
            )
        if entry.offset + entry.size > len(shard):
            raise CheckpointError(
                f"{data_path}: truncated: tensor {name!r} lies at bytes {entry.offset}..{entry.offset + entry.size} "
                f"of a {len(shard)}-byte file"
            )
        raw = shard[entry.offset : entry.offset + entry.size]
        if verify_data and entry.crc32c is not None and masked_crc32c(raw) != entry.crc32c:
            raise CheckpointError(f"{data_path}: tensor {name!r} fails its CRC-32C check")
        tensors[name] = np.frombuffer(raw, dtype=dtype, count=count).reshape(entry.shape).copy()
    return tensors
