"""The backup a killed training resumes from, made of whole epochs only.

Keras' BackupAndRestore writes its weights file in place. A worker killed
while writing it (a preempted node, a container killed as an epoch ended)
left a file that no retry could read: every retry then failed on "bad object
header version number" (seen in the compose test). Here each epoch's weights,
optimizer state included, go to a partial file that is renamed into place, and
the epoch count is in the file's name, so whatever moment the kill comes, the
backup is the last epoch that was written whole. The older file is removed
only once the newer one is in place.

The per-epoch metrics file (train.py's progress file) is written before the
backup, so it is never behind it; a resumed run keeps the metrics of the
backup's epochs and trains the rest again.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_COMPLETE = re.compile(r"epoch-(\d+)\.weights\.h5")


def _complete(backup: Path) -> list[tuple[int, Path]]:
    if not backup.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in backup.iterdir() if (m := _COMPLETE.fullmatch(p.name))]
    return sorted(found)


def backup_epochs(backup: Path) -> int:
    """Epochs the backup holds whole (0 when there is none)."""
    complete = _complete(backup)
    return complete[-1][0] if complete else 0


def epoch_backup(backup: Path):
    """A Keras callback: restore from ``backup`` when training begins, write
    it after every epoch."""
    import keras

    class EpochBackup(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            for partial in backup.glob("partial-*") if backup.is_dir() else ():
                partial.unlink()  # a write the kill cut short
            complete = _complete(backup)
            if not complete:
                return
            epochs, weights = complete[-1]
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)  # its state is in the file too
            self.model.load_weights(weights)
            self.model._initial_epoch = epochs  # what fit() starts from (as BackupAndRestore does)

        def on_epoch_end(self, epoch, logs=None):
            backup.mkdir(parents=True, exist_ok=True)
            done = epoch + 1
            partial = backup / f"partial-{done:05d}.weights.h5"  # Keras wants the .weights.h5 ending
            self.model.save_weights(partial, overwrite=True)
            os.replace(partial, backup / f"epoch-{done:05d}.weights.h5")
            for epochs, older in _complete(backup):
                if epochs != done:
                    older.unlink()

    return EpochBackup()
