"""Rewrite a real DM3 file as DM4, for tests that need a DM4 with real microscope tags.

No DM4 file with ``Microscope Info`` of a STEM or TEM acquisition ships in a PyPI wheel we
use, and RosettaSciIO cannot write DigitalMicrograph files; the DM3 test files of hyperspy
1.7.6 (``hyperspy/tests/io/dm3_2D_data/test_STEM_image.dm3``, GPL-3) have them. DM4 keeps
DM3's tag tree and widens the counts: the file size and every tag group's tag count to 8
bytes, each info-array entry to 8 bytes, and adds an 8-byte size before each tag's
``%%%%`` and each group's tag count. Data bytes are copied as they are.
"""

from __future__ import annotations

import struct
from pathlib import Path

#: Byte sizes of DigitalMicrograph's simple data types.
SIZES = {2: 2, 3: 4, 4: 2, 5: 4, 6: 4, 7: 8, 8: 1, 9: 1, 10: 1, 11: 8, 12: 8}


def dm3_to_dm4(source: Path, target: Path) -> Path:
    """Write ``source`` (DM3) to ``target`` as a DM4 file with the same tags and pixels."""
    data = Path(source).read_bytes()
    version, _, little = struct.unpack(">III", data[:12])
    if version != 3:
        raise ValueError(f"{source} is not a DM3 file")
    body, _ = _group(data, 12, root=True)
    target = Path(target)
    target.write_bytes(struct.pack(">IQI", 4, len(body) + 8, little) + body + b"\0" * 8)
    return target


def _group(data: bytes, at: int, *, root: bool = False) -> tuple[bytes, int]:
    is_sorted, is_open = data[at], data[at + 1]
    (count,) = struct.unpack(">I", data[at + 2 : at + 6])
    at += 6
    parts = []
    for _ in range(count):
        kind = data[at]
        (name_length,) = struct.unpack(">H", data[at + 1 : at + 3])
        name = data[at + 3 : at + 3 + name_length]
        at += 3 + name_length
        if kind == 20:
            inner, at = _group(data, at)
            parts.append(bytes([20]) + struct.pack(">H", name_length) + name + inner)
        else:
            tag, at = _data_tag(data, at)
            parts.append(bytes([21]) + struct.pack(">H", name_length) + name + struct.pack(">Q", len(tag)) + tag)
    body = b"".join(parts)
    head = bytes([is_sorted, is_open])
    if root:
        return head + struct.pack(">Q", count) + body, at
    return head + struct.pack(">QQ", len(body) + 8, count) + body, at


def _data_tag(data: bytes, at: int) -> tuple[bytes, int]:
    assert data[at : at + 4] == b"%%%%", f"no tag delimiter at {at}"
    (n,) = struct.unpack(">I", data[at + 4 : at + 8])
    info = list(struct.unpack(f">{n}I", data[at + 8 : at + 8 + 4 * n]))
    at += 8 + 4 * n
    length = _data_length(info)
    payload = data[at : at + length]
    return b"%%%%" + struct.pack(f">Q{n}Q", n, *info) + payload, at + length


def _data_length(info: list[int]) -> int:
    if len(info) == 1:
        return SIZES[info[0]]
    if info[0] == 18:  # string
        return info[1]
    if info[0] == 20 and len(info) == 3:  # array of a simple type
        return SIZES[info[1]] * info[2]
    if info[0] == 15:  # struct: 15, name length, n fields, (name length, type) per field
        return sum(SIZES[t] for t in info[4::2])
    if info[0] == 20 and info[1] == 15:  # array of structs
        fields = info[3]
        return sum(SIZES[t] for t in info[5 : 5 + 2 * fields : 2]) * info[-1]
    raise ValueError(f"unsupported DM tag layout {info}")
