"""The training backup (tasks/learning/backup.py): a kill while an epoch's
backup is written leaves the previous epoch whole, and a retry resumes from it."""

from __future__ import annotations

import numpy as np

from tasks.learning.backup import backup_epochs, epoch_backup


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_a_write_cut_short_leaves_the_last_whole_epoch_and_a_retry_resumes_from_it(tmp_path):
    import keras

    backup = tmp_path / "hlf.backup"
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    trained = _model(1)
    trained.fit(x, y, epochs=2, verbose=0, callbacks=[epoch_backup(backup)])
    trained.fit(x, y, epochs=3, initial_epoch=2, verbose=0, callbacks=[epoch_backup(backup)])
    assert backup_epochs(backup) == [2, 3]  # the two newest: workers killed an epoch apart share one

    # Killed while writing epoch 4: a partial file with what had been written so far.
    (backup / "partial-00004.weights.h5").write_bytes((backup / "epoch-00003.weights.h5").read_bytes()[:300])
    assert backup_epochs(backup) == [2, 3]

    retry = _model(2)  # other initial weights: what is restored must come from the backup
    started = []

    class FirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)
            self.model.stop_training = True

    retry.fit(x, y, epochs=6, verbose=0, callbacks=[epoch_backup(backup, 3), FirstEpoch()])
    assert started[0] == 3  # resumed after the three whole epochs, not from 0
    assert not list(backup.glob("partial-*"))
    assert backup_epochs(backup) == [3, 4]  # the resumed epoch ran, and was backed up whole


def test_the_restored_weights_and_optimizer_state_are_the_backed_up_ones(tmp_path):
    backup = tmp_path / "gru.backup"
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    trained = _model(1)
    trained.fit(x, y, epochs=1, verbose=0, callbacks=[epoch_backup(backup)])
    restored = _model(2)
    callback = epoch_backup(backup, 1)
    callback.set_model(restored)
    callback.on_train_begin()
    for a, b in zip(trained.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(restored.optimizer.iterations.numpy()) == int(trained.optimizer.iterations.numpy()) == 1
    assert restored._initial_epoch == 1
