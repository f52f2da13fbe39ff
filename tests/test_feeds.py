"""TFRecord shards and the tf.data readers of both formats."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.datasets.feeds import _bytes_feature, _float_feature, _int64_feature, serialize_example, write_feeds
from tasks.datasets.prepare import GRU_SIZE
from tasks.datasets.readers import FeedError, open_feed
from tasks.datasets.scaling import ScalerError

tf = pytest.importorskip("tensorflow")  # a core dependency; imported lazily because it is slow


@pytest.fixture(scope="module", params=["gzip", "none"])
def tfrecords(request, prepared, dask_client, tmp_path_factory):
    out, _, _ = prepared
    target = tmp_path_factory.mktemp("tfrecord") / request.param
    return target, write_feeds(out, target, dask_client, compression=request.param)


def read_all(path, fmt, inputs, batch_size=4, **kw):
    with open_feed(path, fmt, inputs, batch_size=batch_size, **kw) as dataset:
        batches = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset]
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches), [len(b[1]) for b in batches]


def test_our_serialisation_is_a_valid_example():
    values = np.array([1.5, -2.25, 3e-8], np.float32)
    data = serialize_example(
        {
            "GRU_input": _float_feature(values),
            "empty": _float_feature(values[:0]),
            "event_id": _bytes_feature(b"ttbar/f.root:7"),
            "label": _int64_feature(300),
        }
    )
    example = tf.train.Example.FromString(data)
    assert list(example.features.feature["GRU_input"].float_list.value) == values.tolist()
    assert list(example.features.feature["empty"].float_list.value) == []
    assert example.features.feature["event_id"].bytes_list.value == [b"ttbar/f.root:7"]
    assert example.features.feature["label"].int64_list.value == [300]  # a multi-byte varint


@pytest.mark.parametrize("inputs", ["inclusive", "hlf", "gru"])
def test_petastorm_and_tfrecord_give_identical_tensors(prepared, tfrecords, inputs):
    out, summary, _ = prepared
    target, feeds = tfrecords
    for split in ("train", "test"):
        (x_pq, y_pq), sizes = read_all(out / split, "petastorm", inputs)
        (x_tf, y_tf), _ = read_all(target / split, "tfrecord", inputs)
        assert len(y_pq) == len(y_tf) == summary[split]["events"] == feeds[split]["events"]
        assert set(sizes[:-1]) == {4}, "batches have the requested size"
        np.testing.assert_array_equal(y_pq, y_tf)
        for a, b in zip(tf.nest.flatten(x_pq), tf.nest.flatten(x_tf), strict=True):
            np.testing.assert_array_equal(a, b)
    table = pq.read_table(out / "test")
    expected_label = np.asarray(table.column("encoded_label").combine_chunks().values).reshape(-1, 3)
    np.testing.assert_array_equal(y_pq, expected_label)  # evaluation order is the stored order
    if inputs != "hlf":
        gru = x_pq[0] if inputs == "inclusive" else x_pq
        assert gru.shape[1:] == (schema.LLF_ROWS, schema.LLF_FEATURES)
        np.testing.assert_array_equal(
            gru.reshape(len(gru), -1),
            np.asarray(table.column("GRU_input").combine_chunks().values).reshape(-1, GRU_SIZE),
        )


def feed_path(prepared, tfrecords, fmt, split):
    return {"petastorm": prepared[0], "tfrecord": tfrecords[0], "hlf": tfrecords[0] / "hlf"}[fmt] / split


@pytest.mark.parametrize("fmt", ["petastorm", "tfrecord", "hlf"])
def test_training_reshuffles_every_epoch_and_covers_every_row(prepared, tfrecords, fmt):
    _, summary, _ = prepared
    path = feed_path(prepared, tfrecords, fmt, "train")
    (x, _), _ = read_all(path, fmt, "hlf", batch_size=8, training=True, seed=1, num_epochs=3)
    n = summary["train"]["events"]
    epochs = [x[i * n : (i + 1) * n] for i in range(3)]
    assert len(x) == 3 * n
    for epoch in epochs:  # every row once per epoch
        np.testing.assert_array_equal(np.unique(epoch, axis=0), np.unique(epochs[0], axis=0))
    assert not all(np.array_equal(epochs[0], e) for e in epochs[1:]), "the same order every epoch"
    (resumed, _), _ = read_all(path, fmt, "hlf", batch_size=8, training=True, seed=1, num_epochs=1, first_epoch=2)
    np.testing.assert_array_equal(resumed, epochs[2])  # an epoch's order is a function of (seed, epoch)


def test_the_hlf_only_feed_holds_the_prepared_rows_without_particle_data(prepared, tfrecords):
    from tasks.datasets.feeds import HLF_FEED_COLUMNS
    from tasks.datasets.readers import feed_event_ids

    out, summary, _ = prepared
    target, feeds = tfrecords
    hlf = json.loads((target / "hlf" / "_summary.json").read_text())
    assert hlf["prepared"] == str(out) and hlf["scaler"] == summary["scaler"]
    for split in ("train", "test"):
        shards = sorted((target / "hlf" / split).glob("*.parquet"))
        assert [s.name for s in shards] == [p.split("/")[-1] for p in sorted(summary[split]["shards"])]
        assert all(pq.read_schema(s).names == list(HLF_FEED_COLUMNS) for s in shards)
        assert hlf[split]["events"] == feeds["hlf"][split]["events"] == summary[split]["events"]
        (x_pq, y_pq), _ = read_all(out / split, "petastorm", "hlf")
        (x_hlf, y_hlf), sizes = read_all(target / "hlf" / split, "hlf", "hlf")
        assert set(sizes[:-1]) == {4}
        np.testing.assert_array_equal(x_hlf, x_pq)  # same rows, same stored order
        np.testing.assert_array_equal(y_hlf, y_pq)
        assert feed_event_ids(target / "hlf" / split, "hlf") == feed_event_ids(out / split, "petastorm")
    with pytest.raises(SettingsError, match="holds no particle data"):
        with open_feed(target / "hlf" / "test", "hlf", "inclusive"):
            pass


@pytest.mark.parametrize("fmt", ["petastorm", "tfrecord"])
def test_bucketed_training_batches_are_trimmed_sorted_windows_of_the_same_epoch(prepared, tfrecords, fmt):
    """Sorting windows of 3 batches: each batch is cut after its longest real
    sequence (rounded up to BUCKET_ROWS), nothing real is lost, an epoch has
    the same number of batches and events as unbucketed, and the order is a
    function of (seed, epoch)."""
    from tasks.datasets.readers import BUCKET_ROWS, steps_per_epoch

    out, summary, _ = prepared
    path = (out if fmt == "petastorm" else tfrecords[0]) / "train"
    n = summary["train"]["events"]

    def epoch(number, **kw):
        with open_feed(path, fmt, "inclusive", batch_size=4, training=True, seed=3, first_epoch=number, **kw) as data:
            return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in data]

    plain, bucketed = epoch(1), epoch(1, bucket_batches=3)
    assert len(bucketed) == len(plain) == steps_per_epoch(n, 4)
    assert sum(len(y) for _, y in bucketed) == n
    rows, spans = [], []
    for (gru, _hlf), _ in bucketed:
        lengths = [np.flatnonzero(np.any(event != 0, axis=1)).max(initial=-1) + 1 for event in gru]
        spans.append((min(lengths), max(lengths)))
        real = np.flatnonzero(np.any(gru != 0, axis=(0, 2)))
        assert gru.shape[1] % BUCKET_ROWS == 0 or gru.shape[1] == schema.LLF_ROWS
        assert gru.shape[1] - BUCKET_ROWS < real.max() + 1 <= gru.shape[1]  # cut after the longest, no shorter
        rows.append(gru.shape[1])
    assert np.mean(rows) < schema.LLF_ROWS
    for start in range(0, len(spans), 3):  # a window's batches hold consecutive lengths (emitted in any order)
        window = sorted(spans[start : start + 3])
        assert all(a[1] <= b[0] for a, b in zip(window, window[1:], strict=False)), window
    # the same events and values: trimming drops zero rows only
    (plain_gru, plain_hlf), _ = tf.nest.map_structure(lambda *p: np.concatenate(p), *plain)
    hlf = np.concatenate([h for (_, h), _ in bucketed])
    np.testing.assert_array_equal(np.unique(hlf, axis=0), np.unique(plain_hlf, axis=0))
    assert np.isclose(sum(np.abs(g).sum() for (g, _), _ in bucketed), np.abs(plain_gru).sum(), rtol=1e-5)
    again, other = epoch(1, bucket_batches=3), epoch(2, bucket_batches=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(bucketed, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(bucketed, other, strict=True))


def test_training_directly_on_published_tfrecords(tmp_path):
    """The published files come without our _summary.json or scaler: counted from the files."""
    from tasks.learning.train import TrainSettings, count_events, train

    rng = np.random.default_rng(2)
    for split, n in (("train", 24), ("test", 9)):
        (tmp_path / "published" / split).mkdir(parents=True)
        with tf.io.TFRecordWriter(str(tmp_path / "published" / split / "part-r-00000")) as writer:
            for i in range(n):
                gru = np.zeros(GRU_SIZE, np.float32)
                gru[: 19 * 5] = rng.normal(size=19 * 5)
                feature = {
                    "HLF_input": tf.train.Feature(float_list=tf.train.FloatList(value=rng.uniform(size=14))),
                    "GRU_input": tf.train.Feature(float_list=tf.train.FloatList(value=gru)),
                    "encoded_label": tf.train.Feature(float_list=tf.train.FloatList(value=np.eye(3)[i % 3])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        (tmp_path / "published" / split / "_SUCCESS").touch()  # as Spark leaves it
    assert count_events(str(tmp_path / "published" / "train" / "part-r-00000"), "tfrecord") == 24
    result = train(
        None,
        tmp_path / "model",
        TrainSettings(model="inclusive", feed="tfrecord", epochs=1, batch_size=8),
        tfrecord=tmp_path / "published",
    )
    assert (result["train_events"], result["test_events"], result["scaler_sha256"]) == (24, 9, None)
    assert not (tmp_path / "model" / "scaler.json").exists()


def test_published_sparkdltrigger_layouts_are_read(tmp_path):
    rng = np.random.default_rng(0)
    gru = np.zeros((3, GRU_SIZE), np.float32)
    gru[:, :57] = rng.normal(size=(3, 57))
    hlf, label = rng.uniform(size=(3, 14)).astype(np.float32), np.eye(3, dtype=np.float32)
    # TFRecord as Spark's connector wrote it: every value of the flattened 801 × 19 matrix, no ids.
    (tmp_path / "tfr").mkdir()
    with tf.io.TFRecordWriter(str(tmp_path / "tfr" / "part-r-00000.tfrecord")) as writer:
        for i in range(3):
            feature = {
                "HLF_input": tf.train.Feature(float_list=tf.train.FloatList(value=hlf[i])),
                "GRU_input": tf.train.Feature(float_list=tf.train.FloatList(value=gru[i])),
                "encoded_label": tf.train.Feature(float_list=tf.train.FloatList(value=label[i])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    ((g, h), y), _ = read_all(tmp_path / "tfr", "tfrecord", "inclusive")
    np.testing.assert_array_equal(g.reshape(3, -1), gru)
    np.testing.assert_array_equal(h, hlf)
    np.testing.assert_array_equal(y, label)
    # The published HLF Parquet: lists of doubles.
    (tmp_path / "pq").mkdir()
    pq.write_table(
        pa.table({"HLF_input": hlf.astype(np.float64).tolist(), "encoded_label": label.astype(np.float64).tolist()}),
        tmp_path / "pq" / "part-0.parquet",
    )
    (h, y), _ = read_all(tmp_path / "pq", "petastorm", "hlf")
    assert h.dtype == np.float32
    np.testing.assert_array_equal(h, hlf)
    # The full published Parquet nests GRU_input (801 lists of 19): petastorm cannot, and says so.
    nested = pa.table(
        {
            "GRU_input": [gru[0].reshape(801, 19).tolist()],
            "HLF_input": [hlf[0].tolist()],
            "encoded_label": [label[0].tolist()],
        }
    )
    pq.write_table(nested, tmp_path / "nested.parquet")
    with pytest.raises(FeedError, match="column GRU_input is list<element: list"):
        with open_feed(tmp_path / "nested.parquet", "petastorm", "inclusive"):
            pass


def test_bad_feed_requests(prepared, tmp_path, dask_client):
    out, _, _ = prepared
    with pytest.raises(SettingsError, match="unknown feed format 'hdf5'"):
        with open_feed(out / "train", "hdf5"):
            pass
    with pytest.raises(SettingsError, match="unknown model inputs"):
        with open_feed(out / "train", "tfrecord", inputs="jets"):
            pass
    with pytest.raises(FeedError, match=r"no \.tfrecord"):
        with open_feed(out / "train", "tfrecord"):
            pass
    with pytest.raises(SettingsError, match="compression"):
        write_feeds(out, tmp_path / "x", dask_client, compression="lzma")
    # Data and scaler from different runs: nothing is written.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    scaler = json.loads((copy / "scaler.json").read_text())
    scaler["hlf"]["min"][0] -= 1.0
    (copy / "scaler.json").write_text(json.dumps(scaler))
    with pytest.raises(ScalerError):
        write_feeds(copy, tmp_path / "feeds", dask_client)
    assert not (tmp_path / "feeds").exists()
