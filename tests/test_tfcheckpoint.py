"""trainer.tfcheckpoint: a TF V2 checkpoint written here is read back exactly;
truncated or garbled files raise CheckpointError."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from trainer.tfcheckpoint import CheckpointError, crc32c, masked_crc32c, read_checkpoint, read_index

MAGIC = 0xDB4775248B80FB57


# --- a minimal writer: SSTable + BundleEntryProto, as TensorFlow lays them out


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_fixed32(number: int, value: int) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<I", value)


DT = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9}


def entry_proto(array: np.ndarray, offset: int) -> bytes:
    shape = b"".join(field_bytes(2, field_varint(1, d) if d else b"") for d in array.shape)
    raw = array.tobytes()
    msg = field_varint(1, DT[array.dtype]) + field_bytes(2, shape)
    if offset:  # proto3 leaves zero fields out
        msg += field_varint(4, offset)
    if raw:
        msg += field_varint(5, len(raw))
    return msg + field_fixed32(6, masked_crc32c(raw))


HEADER = field_varint(1, 1) + field_bytes(3, field_varint(1, 1))  # num_shards=1, version {producer: 1}


def block(entries: list[tuple[bytes, bytes]], *, restart_interval: int) -> bytes:
    body = bytearray()
    restarts = []
    previous = b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(body))
            shared = 0
        else:
            shared = 0
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        body += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    body += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(body)


def write_table(entries: list[tuple[bytes, bytes]], *, per_block: int, restart_interval: int, compression: int = 0) -> bytes:
    out = bytearray()
    index = []

    def emit(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + bytes([compression]) + struct.pack("<I", masked_crc32c(contents + bytes([compression]))))
        return handle

    for start in range(0, len(entries), per_block):
        chunk = entries[start : start + per_block]
        index.append((chunk[-1][0], emit(block(chunk, restart_interval=restart_interval))))
    meta = emit(block([], restart_interval=1))
    index_handle = emit(block(index, restart_interval=1))
    footer = (meta + index_handle).ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    return bytes(out + footer)


TENSORS = {
    "conv2d/bias": np.arange(4, dtype=np.float32) - 1.5,
    "conv2d/kernel": np.random.default_rng(0).standard_normal((7, 3, 1, 4)).astype(np.float32),
    "conv2d/kernel/Adam": np.full((7, 3, 1, 4), 0.25, dtype=np.float32),
    "conv2d/kernel/Adam_1": np.linspace(-1, 1, 84, dtype=np.float32).reshape(7, 3, 1, 4),
    "conv2d_1/kernel": np.eye(3, dtype=np.float64),
    "dense/bias": np.array([1e-30, -3.0e38, np.inf], dtype=np.float32),
    "dense/kernel": np.arange(12, dtype=np.int32).reshape(2, 6),
    "empty": np.zeros((0, 5), dtype=np.float32),
    "global_step": np.array(123456789012, dtype=np.int64),
    "steps": np.array([-1, 2**62, 7], dtype=np.int64),
}


def write_checkpoint(prefix, tensors=TENSORS, *, per_block=3, restart_interval=2, compression=0):
    data = bytearray()
    entries = [(b"", HEADER)]
    for name in sorted(tensors, key=lambda n: n.encode()):
        array = np.array(tensors[name], order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        entries.append((name.encode(), entry_proto(array, len(data))))
        data += array.tobytes()
    index = write_table(entries, per_block=per_block, restart_interval=restart_interval, compression=compression)
    with open(f"{prefix}.index", "wb") as f:
        f.write(index)
    with open(f"{prefix}.data-00000-of-00001", "wb") as f:
        f.write(bytes(data))
    return prefix


def test_crc32c_known_vector():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@pytest.mark.parametrize("per_block,restart_interval", [(3, 2), (100, 4), (1, 1), (100, 16)])
def test_round_trip(tmp_path, per_block, restart_interval):
    prefix = write_checkpoint(tmp_path / "model.ckpt", per_block=per_block, restart_interval=restart_interval)
    got = read_checkpoint(prefix, verify_data=True)
    assert list(got) == sorted(TENSORS)
    for name, want in TENSORS.items():
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        np.testing.assert_array_equal(got[name], want)
        assert got[name].flags.writeable
    # The .index path and a folder with one .index give the same.
    assert set(read_checkpoint(tmp_path / "model.ckpt.index")) == set(TENSORS)
    assert set(read_checkpoint(tmp_path)) == set(TENSORS)


def test_prefix_compression_is_used(tmp_path):
    """The writer shares prefixes between keys (a reader that ignored
    ``shared`` would get the names wrong)."""
    write_checkpoint(tmp_path / "m", per_block=100, restart_interval=16)
    raw = (tmp_path / "m.index").read_bytes()
    assert b"conv2d/kernel/Adam_1" not in raw  # stored as "_1" after "conv2d/kernel/Adam"
    header, entries = read_index(tmp_path / "m")
    assert header["num_shards"] == 1
    assert entries["conv2d/kernel/Adam_1"].shape == (7, 3, 1, 4)
    assert entries["global_step"].shape == ()


def test_musicnn_style_prefix(tmp_path):
    """musicnn's checkpoints are named '.index' inside their folder."""
    folder = tmp_path / "MTT_musicnn"
    folder.mkdir()
    write_checkpoint(f"{folder}/")
    assert (folder / ".index").is_file()
    assert set(read_checkpoint(folder)) == set(TENSORS)


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(tmp_path / "nothing")
    write_checkpoint(tmp_path / "m")
    (tmp_path / "m.data-00000-of-00001").unlink()
    with pytest.raises(CheckpointError, match=r"m\.data-00000-of-00001: cannot read"):
        read_checkpoint(tmp_path / "m")


@pytest.mark.parametrize("cut", [1, 10, 47, 48, 60, 200])
def test_truncated_index(tmp_path, cut):
    write_checkpoint(tmp_path / "m")
    path = tmp_path / "m.index"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(CheckpointError, match=r"m\.index: "):
        read_checkpoint(tmp_path / "m")


def test_truncated_data(tmp_path):
    write_checkpoint(tmp_path / "m")
    path = tmp_path / "m.data-00000-of-00001"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match=r"m\.data-00000-of-00001: truncated"):
        read_checkpoint(tmp_path / "m")


def test_garbage(tmp_path):
    (tmp_path / "g.index").write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(CheckpointError, match="magic"):
        read_checkpoint(tmp_path / "g")
    (tmp_path / "e.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match="shorter than"):
        read_checkpoint(tmp_path / "e")


def test_flipped_byte_fails_crc(tmp_path):
    write_checkpoint(tmp_path / "m")
    path = tmp_path / "m.index"
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="CRC"):
        read_checkpoint(tmp_path / "m")


def test_flipped_data_byte_caught_when_verifying(tmp_path):
    write_checkpoint(tmp_path / "m")
    path = tmp_path / "m.data-00000-of-00001"
    raw = bytearray(path.read_bytes())
    raw[3] ^= 1
    path.write_bytes(bytes(raw))
    read_checkpoint(tmp_path / "m")  # not checked by default
    with pytest.raises(CheckpointError, match="CRC"):
        read_checkpoint(tmp_path / "m", verify_data=True)


def test_snappy_blocks_are_refused(tmp_path):
    write_checkpoint(tmp_path / "m", compression=1)
    with pytest.raises(CheckpointError, match="snappy"):
        read_checkpoint(tmp_path / "m")


def test_unsupported_dtype(tmp_path):
    entries = [(b"", HEADER), (b"name", field_varint(1, 7) + field_varint(5, 0))]  # DT_STRING
    (tmp_path / "s.index").write_bytes(write_table(entries, per_block=10, restart_interval=1))
    (tmp_path / "s.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(CheckpointError, match="DT_STRING"):
        read_checkpoint(tmp_path / "s")


def test_size_mismatch(tmp_path):
    bad = field_varint(1, 1) + field_bytes(2, field_bytes(2, field_varint(1, 3))) + field_varint(5, 8)
    entries = [(b"", HEADER), (b"x", bad)]
    (tmp_path / "s.index").write_bytes(write_table(entries, per_block=10, restart_interval=1))
    (tmp_path / "s.data-00000-of-00001").write_bytes(bytes(64))
    with pytest.raises(CheckpointError, match="needs 12 bytes"):
        read_checkpoint(tmp_path / "s")
