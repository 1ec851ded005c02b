"""Generates the small PyTorch state-dict fixtures that `tests/torch_bin.rs`
reads with our own pickle reader (`src/weights/pickle.rs`).

Run from the repository root:
    .venv/bin/python scripts/make_torch_fixtures.py

Writes tests/fixtures/torch/ (committed, each file well under 50 KB):
  good files  ordered_dict.pt plain_dict.pt nested.pt legacy.pt fp16.pt
              bf16.pt tied.pt legacy_tied.pt noncontig.pt dtypes.pt
              legacy_dtypes.pt deflated.pt
  expected.safetensors  every tensor of every good file, as a contiguous clone
              under the name "<file>/<key>"; the metadata entry "<file>" holds
              the JSON list of that file's keys in file order.
  bad files   truncated.pt not_torch.pt evil.pkl evil_zip.pt
              huge_storage_legacy.pt big_endian.pt

The output is byte-for-byte deterministic: values come from torch.manual_seed,
zip entries carry fixed timestamps, and the legacy format's storage keys (which
torch takes from memory addresses) are renamed to fixed strings.
"""
import collections
import io
import json
import pathlib
import pickle
import struct
import zipfile

import torch
from safetensors.torch import save_file
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "torch"

# The classic RCE example: GLOBAL os.system, then REDUCE with ("echo",).
EVIL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03."


class Tiny(nn.Module):
    """A BERT-embeddings-like module: its state dict is an OrderedDict with
    `_metadata` (set through BUILD) and an int64 `position_ids` buffer that is
    an expanded view (stride 0 on its first dimension)."""

    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(10, 6)
        self.LayerNorm = nn.LayerNorm(6)
        self.dense = nn.Linear(6, 4)
        self.register_buffer("position_ids", torch.arange(8).expand((1, -1)))


def save_bytes(obj, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    data = buf.getvalue()
    return deterministic_legacy(data) if legacy else data


ELEMENT_SIZES = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1, "UntypedStorage": 1,
}


class _KeyScanner(pickle.Unpickler):
    """Walks the legacy main pickle without building tensors, recording each
    storage key (in first-appearance order) and its element size."""

    def __init__(self, f):
        super().__init__(f)
        self.sizes = {}

    def find_class(self, module, name):
        if name in ELEMENT_SIZES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        return lambda *args: None

    def persistent_load(self, pid):
        self.sizes.setdefault(pid[2], ELEMENT_SIZES[pid[1]])


def deterministic_legacy(data):
    """The legacy format names storages by memory address and writes them
    sorted by that name, so both the names and the data order change from run
    to run. Renames them by first appearance (same length, so the main pickle
    keeps its size) and rewrites the key list and storage data in that order."""
    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys_info
        pickle.load(f)
    main_start = f.tell()
    scanner = _KeyScanner(f)
    scanner.load()
    main_end = f.tell()
    old_order = pickle.load(f)
    blocks = {}
    for key in old_order:
        (count,) = struct.unpack("<Q", f.read(8))
        blocks[key] = struct.pack("<Q", count) + f.read(count * scanner.sizes[key])
    assert f.read() == b""
    main = data[main_start:main_end]
    new_names = {}
    for rank, key in enumerate(scanner.sizes):
        new = str(rank).zfill(len(key))
        new_names[key] = new
        main = main.replace(b"X" + struct.pack("<I", len(key)) + key.encode(),
                            b"X" + struct.pack("<I", len(new)) + new.encode())
    out = data[:main_start] + main + pickle.dumps([new_names[k] for k in scanner.sizes], protocol=2)
    for key in scanner.sizes:
        out += blocks[key]
    return out


def rezip(data, deflate=False, replace=None):
    """Rewrites a torch zip with fixed timestamps, optionally deflating every
    entry or replacing some entries (by name suffix)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            for suffix, new in (replace or {}).items():
                if info.filename.endswith(suffix):
                    content = new
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = method
            dst.writestr(zi, content)
    return out.getvalue()


def zip_of(entries):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, content in entries.items():
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return out.getvalue()


def tied_dict():
    p = nn.Parameter(torch.randn(4, 6))
    flat = p.data.view(-1)
    return {
        "encoder.word_embeddings.weight": p,
        "lm_head.weight": p,  # same Parameter object: a memo reference
        "window": flat[5:17],  # a view at an offset into the same storage
        "row2": p.data[2],
        "other": torch.randn(3),
    }


def noncontig_dict():
    x = torch.randn(3, 5)
    y = torch.randn(4, 6)
    z = torch.randn(4, 7)
    return {
        "transposed": x.t(),
        "strided": y[:, ::2],
        "narrow": z[1:3, 2:5],
        "expanded": torch.arange(4, dtype=torch.float32).expand(3, 4),
        "column": z[:, 3],
    }


def dtypes_dict():
    return {
        "f64": torch.randn(2, 3, dtype=torch.float64),
        "position_ids": torch.arange(12).expand((1, -1)),
        "i32": torch.randint(-1000, 1000, (5,), dtype=torch.int32),
        "i16": torch.randint(-300, 300, (2, 2), dtype=torch.int16),
        "i8": torch.randint(-128, 127, (7,), dtype=torch.int8),
        "u8": torch.randint(0, 255, (3, 3), dtype=torch.uint8),
        "mask": torch.randn(2, 5) > 0,
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


def canonical_safetensors_header(path):
    """safetensors writes its metadata map in hash order; rewrite the JSON
    header with sorted keys (same length, space-padded) so the file is stable."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    assert len(text) <= n
    path.write_bytes(data[:8] + text + b" " * (n - len(text)) + data[8 + n:])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    good = {}
    good["ordered_dict.pt"] = (Tiny().state_dict(), False)
    good["plain_dict.pt"] = ({"weight": torch.randn(3, 5), "bias": torch.randn(5), "step": 7, "note": "tiny"}, False)
    nested_sd = Tiny().state_dict()
    good["nested.pt"] = ({"epoch": 3, "state_dict": nested_sd, "optimizer": {"lr": 0.1}}, False)
    good["legacy.pt"] = (Tiny().state_dict(), True)
    good["fp16.pt"] = (Tiny().half().state_dict(), False)
    good["bf16.pt"] = (Tiny().to(torch.bfloat16).state_dict(), False)
    good["tied.pt"] = (tied_dict(), False)
    good["legacy_tied.pt"] = (tied_dict(), True)
    good["noncontig.pt"] = (noncontig_dict(), False)
    good["dtypes.pt"] = (dtypes_dict(), False)
    good["legacy_dtypes.pt"] = (dtypes_dict(), True)
    deflated_sd = Tiny().state_dict()
    good["deflated.pt"] = (deflated_sd, False)

    expected = {}
    metadata = {}
    ordered_dict_bytes = None
    for name, (obj, legacy) in good.items():
        data = save_bytes(obj, legacy=legacy)
        if name == "deflated.pt":
            data = rezip(data, deflate=True)
        if name == "ordered_dict.pt":
            ordered_dict_bytes = data
        (OUT / name).write_bytes(data)
        sd = obj["state_dict"] if name == "nested.pt" else obj
        keys = [k for k, v in sd.items() if isinstance(v, torch.Tensor)]
        metadata[name] = json.dumps(keys)
        for k in keys:
            expected[f"{name}/{k}"] = sd[k].detach().clone().contiguous()
    save_file(expected, str(OUT / "expected.safetensors"), metadata=metadata)
    canonical_safetensors_header(OUT / "expected.safetensors")

    (OUT / "truncated.pt").write_bytes(ordered_dict_bytes[: len(ordered_dict_bytes) // 2])
    (OUT / "not_torch.pt").write_bytes(b"This is a plain text file, not a PyTorch checkpoint.\n" * 4)
    (OUT / "evil.pkl").write_bytes(EVIL_PICKLE)
    (OUT / "evil_zip.pt").write_bytes(zip_of({
        "archive/data.pkl": EVIL_PICKLE,
        "archive/byteorder": b"little",
        "archive/version": b"3\n",
    }))
    # One float32 storage of 4 elements is the last thing in the file: its
    # 8-byte element count sits just before the final 16 bytes.
    huge = bytearray(save_bytes({"w": torch.zeros(4)}, legacy=True))
    count_at = len(huge) - 16 - 8
    assert struct.unpack("<Q", huge[count_at:count_at + 8])[0] == 4
    huge[count_at:count_at + 8] = struct.pack("<Q", 1 << 62)
    (OUT / "huge_storage_legacy.pt").write_bytes(bytes(huge))
    (OUT / "big_endian.pt").write_bytes(rezip(ordered_dict_bytes, replace={"/byteorder": b"big"}))

    for f in sorted(OUT.iterdir()):
        size = f.stat().st_size
        assert size < 50_000, f"{f} is {size} bytes"
        print(f"{f.relative_to(ROOT)}: {size} bytes")


if __name__ == "__main__":
    main()
