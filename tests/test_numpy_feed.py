"""The NumPy feed (tasks/datasets/numpy_feed.py): the batches Keras trains on without tf.data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core import schema
from tasks.datasets.feeds import FeedError
from tasks.datasets.numpy_feed import NumpyFeed, real_lengths
from tasks.datasets.readers import BUCKET_ROWS, open_feed


def epoch_of(feed, epoch=0):
    return list(feed.epoch(epoch))


def stored(split_dir):
    table = pq.read_table(split_dir, columns=["HLF_input", "encoded_label", "n_particles"])
    hlf = np.asarray(table.column("HLF_input").combine_chunks().flatten(), np.float32).reshape(len(table), -1)
    return hlf, table


def rows_of(hlf):
    return sorted(map(tuple, np.round(hlf, 6).tolist()))


def test_an_epoch_holds_every_event_once_in_trimmed_sorted_batches(prepared):
    out, summary, _ = prepared
    hlf, table = stored(out / "train")
    feed = NumpyFeed(out / "train", "inclusive", batch_size=4, training=True, seed=5, bucket_batches=3)
    batches = epoch_of(feed)
    assert len(batches) == len(feed) == -(-summary["train"]["events"] // 4)
    assert rows_of(np.concatenate([x[1] for x, _ in batches])) == rows_of(hlf), "every event exactly once"
    rows = [x[0].shape[1] for x, _ in batches]
    assert max(rows) <= schema.LLF_ROWS and min(rows) < schema.LLF_ROWS, "batches are cut to what they hold"
    for (gru, _), _ in batches:
        assert gru.shape[1] % BUCKET_ROWS == 0 or gru.shape[1] == schema.LLF_ROWS
        assert real_lengths(gru).max() > gru.shape[1] - BUCKET_ROWS, "cut just after its longest sequence"
    # The order is a function of (seed, epoch).
    again = epoch_of(NumpyFeed(out / "train", "inclusive", 4, training=True, seed=5, bucket_batches=3))
    assert all(np.array_equal(a[0][1], b[0][1]) for a, b in zip(batches, again, strict=True))
    other = epoch_of(feed, 1)
    assert not all(np.array_equal(a[0][1], b[0][1]) for a, b in zip(batches, other, strict=True))
    # Evaluation without windows reads in stored order.
    plain = epoch_of(NumpyFeed(out / "train", "hlf", 4))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in plain]), hlf)


def test_the_batches_match_the_tf_data_reader_of_the_same_files(prepared):
    tf = pytest.importorskip("tensorflow")  # a core dependency; imported lazily because it is slow
    out, _, _ = prepared
    with open_feed(out / "test", "petastorm", "inclusive", batch_size=4) as dataset:
        expected = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset]
    got = epoch_of(NumpyFeed(out / "test", "inclusive", 4))
    assert len(got) == len(expected)
    for ((gru, hlf), y), ((gru_tf, hlf_tf), y_tf) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(gru, gru_tf)
        np.testing.assert_array_equal(hlf, hlf_tf)
        np.testing.assert_array_equal(y, y_tf)
    from tasks.datasets.readers import real_lengths as tf_real_lengths

    gru = np.concatenate([g for (g, _), _ in got])
    np.testing.assert_array_equal(real_lengths(gru), tf_real_lengths(tf.constant(gru)).numpy())


def test_processes_share_each_batch_padded_and_weighted_so_the_loss_is_the_real_events(prepared):
    out, _, _ = prepared
    options = dict(inputs="inclusive", batch_size=5, training=True, seed=2, bucket_batches=2)
    whole = epoch_of(NumpyFeed(out / "train", **options))
    shares = [epoch_of(NumpyFeed(out / "train", **options, replicas=4, shard=(i, 2))) for i in range(2)]
    assert any(len(y) % 4 for _, y in whole), "some batch does not divide among 4 devices"
    rng = np.random.default_rng(0)
    for ((gru, hlf), y), *parts in zip(whole, *shares, strict=True):
        (gru_0, hlf_0), y_0, w_0 = parts[0]
        (gru_1, hlf_1), y_1, w_1 = parts[1]
        assert len(y_0) == len(y_1) and (len(y_0) * 2) % 4 == 0, "equal shares that divide among the devices"
        assert gru_0.shape[1] == gru_1.shape[1] == gru.shape[1], "every share is cut to the batch's length"
        joined_y, joined_w = np.concatenate([y_0, y_1]), np.concatenate([w_0, w_1])
        np.testing.assert_array_equal(joined_y[: len(y)], y)
        np.testing.assert_array_equal(np.concatenate([hlf_0, hlf_1])[: len(y)], hlf)
        assert (joined_w[len(y) :] == 0).all()
        # Keras: sum(weight * loss) / padded size. With these weights, the mean loss of the real events.
        loss = rng.random(len(joined_y))
        assert np.sum(joined_w * loss) / len(joined_w) == pytest.approx(loss[: len(y)].mean())


def test_models_of_hlf_inputs_draw_a_permutation_of_all_events_per_epoch(prepared):
    out, _, _ = prepared
    hlf, _ = stored(out / "train")
    feed = NumpyFeed(out / "train", "hlf", batch_size=3, training=True, seed=9)
    first = np.concatenate([x for x, _ in feed.epoch(0)])
    assert rows_of(first) == rows_of(hlf) and not np.array_equal(first, hlf)
    assert not np.array_equal(first, np.concatenate([x for x, _ in feed.epoch(1)]))
    seen = sum(len(y) for _, y in NumpyFeed(out / "train", "hlf", 3, training=True, num_epochs=2))
    assert seen == 2 * len(hlf), "iterating gives num_epochs epochs"


def test_bad_files_and_layouts_are_named(prepared, tmp_path):
    out, _, _ = prepared
    first = sorted((out / "train").glob("*.parquet"))[0]
    hlf_only = tmp_path / "hlf"
    hlf_only.mkdir()
    pq.write_table(pq.read_table(first, columns=["HLF_input", "encoded_label"]), hlf_only / "part.parquet")
    with pytest.raises(FeedError, match=r"part\.parquet lacks column\(s\) GRU_input"):
        NumpyFeed(hlf_only, "inclusive")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "bad.parquet").write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    with pytest.raises(FeedError, match=r"bad\.parquet is not a readable Parquet file"):
        NumpyFeed(corrupt, "hlf")
    ragged = tmp_path / "ragged"
    ragged.mkdir()
    table = pa.table({"HLF_input": [[1.0] * 13], "encoded_label": [[1.0, 0.0, 0.0]]})
    pq.write_table(table, ragged / "short.parquet")
    with pytest.raises(FeedError, match=r"short\.parquet, row group 0: column HLF_input does not hold 14"):
        NumpyFeed(ragged, "hlf")
    with pytest.raises(FeedError, match="no .parquet files"):
        NumpyFeed(tmp_path / "nothing", "hlf")
    with pytest.raises(FeedError, match="not a data-parallel layout"):
        NumpyFeed(out / "train", "hlf", replicas=3, shard=(0, 2))


def test_an_error_while_reading_ahead_reaches_the_reader(prepared, monkeypatch):
    out, _, _ = prepared
    feed = NumpyFeed(out / "train", "inclusive", batch_size=4, training=True, num_epochs=None)
    calls = []

    def failing(group):
        calls.append(group)
        if len(calls) > 2:
            raise FeedError(f"{group[0]}: lost")
        return original(group)

    original = feed._read
    monkeypatch.setattr(feed, "_read", failing)
    with pytest.raises(FeedError, match="lost"):
        for _ in feed:
            pass
