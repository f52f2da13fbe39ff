"""The backup a killed training resumes from, made of whole epochs only.

Keras' BackupAndRestore writes its weights file in place. A worker killed
while writing it (a preempted node, a container killed as an epoch ended)
left a file that no retry could read: every retry then failed on "bad object
header version number" (seen in the compose test). Here each epoch's weights,
optimizer state included, go to a partial file that is renamed into place, and
the epoch count is in the file's name, so whatever moment the kill comes, the
backup is the last epoch that was written whole. The two newest epochs are
kept: workers training one model together may be killed one epoch apart, and
they resume from the newest epoch all of them hold (hardware.agree_on_resume).

The per-epoch metrics file (train.py's progress file) is written just after
the backup: metrics that show an epoch mean its backup is whole (what a person,
or a test, waiting to kill a worker can rely on). A kill between the two
leaves a backup one epoch ahead of the metrics; the resumed run then takes the
newest backup the metrics cover, the one kept before it.
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


def backup_epochs(backup: Path) -> list[int]:
    """The numbers of finished epochs the backup can resume after, oldest first
    (at most two; empty when there is no backup)."""
    return [epochs for epochs, _ in _complete(backup)]


def epoch_backup(backup: Path, resume_after: int = 0):
    """A Keras callback: when training begins, restore the backup taken after
    ``resume_after`` epochs (0: start afresh); write one after every epoch."""
    import keras

    class EpochBackup(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            for partial in backup.glob("partial-*") if backup.is_dir() else ():
                partial.unlink()  # a write the kill cut short
            if not resume_after:
                return
            [weights] = [p for epochs, p in _complete(backup) if epochs == resume_after]
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)  # its state is in the file too
            self.model.load_weights(weights)
            self.model._initial_epoch = resume_after  # what fit() starts from (as BackupAndRestore does)

        def on_epoch_end(self, epoch, logs=None):
            backup.mkdir(parents=True, exist_ok=True)
            done = epoch + 1
            partial = backup / f"partial-{done:05d}.weights.h5"  # Keras wants the .weights.h5 ending
            self.model.save_weights(partial, overwrite=True)
            os.replace(partial, backup / f"epoch-{done:05d}.weights.h5")
            for epochs, other in _complete(backup):
                if epochs not in (done - 1, done):
                    other.unlink()

    return EpochBackup()
