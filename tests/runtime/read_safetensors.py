#!/usr/bin/env python3
"""A minimal, independent safetensors reader in NumPy, proving Kiln's checkpoints interoperate.

usage: read_safetensors.py FILE NAME SHAPE [NAME SHAPE ...] [--expect-ramp NAME]
Checks each named tensor exists with the given comma-separated shape; --expect-ramp NAME checks
that tensor holds 0, 1, 2, ... (as written by the C++ test). Prints a summary; exit 1 on mismatch.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "U8": np.uint8}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(body[begin:end], dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"])
    return out, meta


def main(argv):
    path, rest = argv[1], argv[2:]
    ramp = None
    if "--expect-ramp" in rest:
        i = rest.index("--expect-ramp")
        ramp = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    tensors, meta = read(path)
    ok = True
    for name, shape in zip(rest[::2], rest[1::2]):
        want = tuple(int(s) for s in shape.split(",") if s)
        if name not in tensors or tensors[name].shape != want:
            print(f"MISMATCH {name}: got {tensors.get(name, np.zeros(0)).shape}, want {want}")
            ok = False
    if ramp is not None:
        t = tensors[ramp].ravel()
        if not np.array_equal(t, np.arange(t.size, dtype=t.dtype)):
            print(f"MISMATCH {ramp}: values {t[:5]}...")
            ok = False
    print("numpy read", {k: v.shape for k, v in tensors.items()}, "metadata", meta)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
