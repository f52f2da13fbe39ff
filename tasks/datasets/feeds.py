"""The feeds of a prepared dataset, written in parallel on Dask.

The prepared Parquet shards (tasks/datasets/prepare.py) are themselves the Petastorm
feed. This stage writes one TFRecord shard per Parquet shard, same rows in the
same order, so the two formats can be compared row for row; and the
**HLF-only feed** (``hlf/{train,test}/part-NNNNN.parquet``: ``event_id``,
``HLF_input``, ``encoded_label``, again the same rows in the same order), so
that models of the 14 HLF never read particle data: 68 bytes an event
instead of ~19 KB.

Each record is a ``tf.train.Example`` with the published SparkDLTrigger
features ``HLF_input`` (14 floats), ``GRU_input`` and ``encoded_label`` (3),
plus ``event_id`` and ``label``. ``GRU_input`` holds only the real particle
rows (19 floats each, padding is at the end and zero): the reader pads it back
to 801 × 19, and the published files, which store all 15,219 values, parse
the same way.

Building one ``tf.train.Example`` per event in Python runs at a few hundred
events/s. The records here are serialised directly (the protobuf wire format
of Example is small and fixed) and framed with CRC32C, without importing
TensorFlow on the workers: tens of thousands of events/s per core.
"""

from __future__ import annotations

import logging
import struct
import time
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError, TopoError
from tasks.core.storage import atomic_directory, write_json
from tasks.core.summaries import FeedsSummary
from tasks.datasets.prepare import GRU_SIZE, SPLITS, PrepareError, load_prepared

log = logging.getLogger(__name__)


# --- protobuf wire format of tf.train.Example ------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _float_feature(values: np.ndarray) -> bytes:
    packed = np.ascontiguousarray(values, "<f4").tobytes()
    return _field(2, _field(1, packed) if packed else b"")  # Feature.float_list { packed value }


def _int64_feature(value: int) -> bytes:
    return _field(3, _field(1, _varint(value)))  # Feature.int64_list (non-negative values only)


def _bytes_feature(value: bytes) -> bytes:
    return _field(1, _field(1, value))  # Feature.bytes_list


def serialize_example(features: dict[str, bytes]) -> bytes:
    """An Example from already-encoded Features (name → Feature bytes)."""
    entries = b"".join(_field(1, _field(1, name.encode()) + _field(2, feature)) for name, feature in features.items())
    return _field(1, entries)


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """TFRecord framing: length, its masked CRC32C, data, its masked CRC32C."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


# --- reading back (the feeds contract; training reads with tf.data) -------------------
class FeedError(TopoError):
    """A feed that cannot be opened or read: unknown format, missing files,
    wrong columns, a truncated or corrupt shard (named, with the record)."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message, in order."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


_KINDS = {1: "bytes_list", 2: "float_list", 3: "int64_list"}


def parse_example(data: bytes) -> dict[str, tuple[str, object]]:
    """A serialised ``tf.train.Example`` as {feature name: (kind, values)}:
    float_list as float32 array, int64_list as int64 array, bytes_list as a
    list of bytes. Packed and unpacked encodings both parse."""
    out = {}
    for _, _, features in _fields(data):  # Example.features
        for _, _, entry in _fields(features):  # Features.feature map entries
            name, feature = "", b""
            for number, _, value in _fields(entry):
                if number == 1:
                    name = value.decode()
                else:
                    feature = value
            kind, values = "empty", None
            for number, _, inner in _fields(feature):  # Feature oneof kind
                kind = _KINDS[number]
                parts = [(wire, value) for _, wire, value in _fields(inner)]
                if kind == "bytes_list":
                    values = [bytes(v) for _, v in parts]
                elif kind == "float_list":
                    values = np.frombuffer(b"".join(v for _, v in parts), "<f4")
                else:
                    ints = []
                    for wire, value in parts:
                        if wire == 0:
                            ints.append(value)
                        else:  # packed
                            pos = 0
                            while pos < len(value):
                                v, pos = _read_varint(value, pos)
                                ints.append(v)
                    values = np.array([v - (1 << 64) if v >= 1 << 63 else v for v in ints], np.int64)
            out[name] = (kind, values)
    return out


def iter_records(path: str | Path):
    """The records of a TFRecord shard (gzip when the name ends in .gz), each
    checked against its CRC32C; a truncated or corrupt shard raises FeedError
    naming the shard and the record."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    index = 0
    try:
        with opener(path, "rb") as f:
            while True:
                head = f.read(12)
                if not head:
                    return
                if len(head) < 12:
                    raise FeedError(f"{path}: truncated at record {index} (incomplete length header)")
                (length,) = struct.unpack("<Q", head[:8])
                if struct.unpack("<I", head[8:])[0] != _masked_crc(head[:8]):
                    raise FeedError(f"{path}: record {index} has a corrupt length header (CRC mismatch)")
                body = f.read(length + 4)
                if len(body) < length + 4:
                    raise FeedError(f"{path}: truncated in record {index}")
                if struct.unpack("<I", body[length:])[0] != _masked_crc(body[:length]):
                    raise FeedError(f"{path}: record {index} is corrupt (data CRC mismatch)")
                yield body[:length]
                index += 1
    except (OSError, EOFError) as exc:
        raise FeedError(f"{path}: cannot read record {index}: {exc}") from None


# --- writing ------------------------------------------------------------------------
HLF_FEED = "hlf"
"""The HLF-only feed's directory inside the feeds directory, with its own ``_summary.json``."""
HLF_FEED_COLUMNS = ("event_id", "HLF_input", "encoded_label")

COMPRESSIONS = {"none": ".tfrecord", "gzip": ".tfrecord.gz"}
"""TFRecord compression → shard suffix; readers pick the codec from the suffix."""


def _write_shard(parquet: str, out: str, compression: str) -> dict:
    """One TFRecord shard from one prepared Parquet shard (on a worker)."""
    import gzip

    import pyarrow.parquet as pq

    started = time.perf_counter()
    events = 0
    tmp = Path(out).with_name(Path(out).name + ".partial")
    # mtime=0: the gzip header carries no timestamp, so re-runs give identical bytes.
    opener = (
        (lambda p: gzip.GzipFile(p, "wb", compresslevel=1, mtime=0))
        if compression == "gzip"
        else (lambda p: open(p, "wb"))
    )
    with opener(tmp) as f:
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=512):
            n = batch.num_rows
            ids = batch.column("event_id").to_pylist()
            labels = np.asarray(batch.column("label"), np.int64)
            n_particles = np.asarray(batch.column("n_particles"), np.int64)
            hlf = np.asarray(batch.column("HLF_input").values, np.float32).reshape(n, schema.HLF_FEATURES)
            gru = np.asarray(batch.column("GRU_input").values, np.float32).reshape(n, GRU_SIZE)
            onehot = np.asarray(batch.column("encoded_label").values, np.float32).reshape(n, -1)
            for i in range(n):
                example = serialize_example(
                    {
                        "HLF_input": _float_feature(hlf[i]),
                        "GRU_input": _float_feature(gru[i, : n_particles[i] * schema.LLF_FEATURES]),
                        "encoded_label": _float_feature(onehot[i]),
                        "event_id": _bytes_feature(ids[i].encode()),
                        "label": _int64_feature(int(labels[i])),
                    }
                )
                f.write(frame_record(example))
            events += n
    tmp.rename(out)
    return {"path": out, "events": events, "bytes": Path(out).stat().st_size, "seconds": time.perf_counter() - started}


def _write_hlf_shard(parquet: str, out: str) -> dict:
    """One HLF-only shard from one prepared Parquet shard (on a worker): the
    three columns by projection, so no particle data is decoded."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pq.read_table(parquet, columns=list(HLF_FEED_COLUMNS))
    tmp = Path(out).with_name(Path(out).name + ".partial")
    pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1))
    tmp.rename(out)
    return {
        "path": out,
        "events": table.num_rows,
        "bytes": Path(out).stat().st_size,
        "seconds": time.perf_counter() - started,
    }


def _split_summary(results: list[dict], split: str, expected: int, what: str) -> dict:
    mine = [r for r in results if Path(r["path"]).parent.name == split]
    written = sum(r["events"] for r in mine)
    if written != expected:
        raise PrepareError(f"{split}: wrote {written} {what} events but the prepared data has {expected}")
    return {
        "events": written,
        "bytes": sum(r["bytes"] for r in mine),
        "shards": {f"{split}/{Path(r['path']).name}": r["events"] for r in sorted(mine, key=lambda r: r["path"])},
    }


def write_feeds(prepared: str | Path, output: str | Path, client, compression: str = "gzip") -> FeedsSummary:
    """Write ``output/{train,test}/part-NNNNN.tfrecord[.gz]`` and the HLF-only
    feed ``output/hlf/{train,test}/part-NNNNN.parquet`` from a prepared dataset."""
    if compression not in COMPRESSIONS:
        raise SettingsError(f"unknown TFRecord compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    started = time.perf_counter()
    prepared, output = Path(prepared), Path(output)
    summary, _ = load_prepared(prepared)  # also checks that the scaler belongs to the data
    with atomic_directory(output) as tmp:
        jobs, hlf_jobs = [], []
        for split in SPLITS:
            (tmp / split).mkdir()
            (tmp / HLF_FEED / split).mkdir(parents=True)
            for shard in sorted(summary[split]["shards"]):
                if not (prepared / shard).exists():
                    raise PrepareError(f"prepared shard {prepared / shard} listed in _summary.json is missing")
                stem = Path(shard).stem
                jobs.append((str(prepared / shard), str(tmp / split / (stem + COMPRESSIONS[compression]))))
                hlf_jobs.append((str(prepared / shard), str(tmp / HLF_FEED / split / f"{stem}.parquet")))
        log.info("writing %d TFRecord and %d HLF-only shards from %s", len(jobs), len(hlf_jobs), prepared)
        tfrecords = client.map(
            _write_shard, [j[0] for j in jobs], [j[1] for j in jobs], compression=compression, pure=False
        )
        hlf = client.map(_write_hlf_shard, [j[0] for j in hlf_jobs], [j[1] for j in hlf_jobs], pure=False)
        results, hlf_results = client.gather(tfrecords), client.gather(hlf)
        head = {"prepared": str(prepared), "scaler": summary["scaler"]}
        hlf_summary = {"output": str(output / HLF_FEED), **head, "columns": list(HLF_FEED_COLUMNS)}
        out: dict = {"output": str(output), **head, "compression": compression}
        for split in SPLITS:
            out[split] = _split_summary(results, split, summary[split]["events"], "TFRecord")
            hlf_summary[split] = _split_summary(hlf_results, split, summary[split]["events"], "HLF-only")
        write_json(tmp / HLF_FEED / "_summary.json", hlf_summary)
        sizes = {s: {k: hlf_summary[s][k] for k in ("events", "bytes")} for s in SPLITS}
        out[HLF_FEED] = {"path": HLF_FEED, **sizes}
        out["seconds"] = round(time.perf_counter() - started, 2)
        write_json(tmp / "_summary.json", out)
    log.info(
        "wrote %d + %d events as TFRecord in %.1f s -> %s",
        out["train"]["events"],
        out["test"]["events"],
        out["seconds"],
        output,
    )
    return out
