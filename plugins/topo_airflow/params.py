"""DAG Params shared by the DAGs: one definition, one JSON schema, one form.

Airflow validates a run's conf against these schemas when the run is created
(trigger form, REST API, CLI, ``airflow dags test``), so a wrong value is
refused with a message before any task starts. Only light imports here: DAG
files import this at parse time.
"""

from __future__ import annotations

from airflow.sdk import Param

from tasks.datasets.readers import BUCKET_BATCHES
from tasks.learning.metrics import METRICS
from tasks.learning.records import MODEL_NAMES

ALL_MODELS = MODEL_NAMES
PAPER_MODELS = ["hlf", "gru", "inclusive"]
PROMOTION_METRICS = list(METRICS)
SMOKE = {"generate_events": 1000, "max_events_per_file": 500, "files_per_sample": 1, "epochs": 1}
"""What the smoke mode caps: enough events for a test split of a few dozen, one file per sample, one epoch."""

# Sections of the trigger form (Param ``section``), collapsed until opened: the
# settings most runs keep. What a run usually chooses (its input, the models,
# the feed, smoke mode) has no section and shows under "Run Parameters", the
# one section Airflow opens by default.
DATA, TRAINING, PROMOTION = "Data split", "Training", "Promotion"

LEARNING_RATE_PATTERN = r"^\s*(\d+:)?[0-9.eE+-]+(\s*,\s*\d+:[0-9.eE+-]+)*\s*$"


def optional_text(description: str, **schema) -> Param:
    """A text Param that may be left empty. Airflow's trigger form treats an
    empty string field as missing and refuses to trigger, so "empty" is null."""
    return Param(None, type=["null", "string"], description=description, **schema)


def models_param(default: list[str]) -> Param:
    return Param(
        default,
        type="array",
        items={"type": "string", "enum": list(ALL_MODELS)},
        examples=list(ALL_MODELS),  # the trigger form renders an array with examples as a multi-select
        minItems=1,
        uniqueItems=True,
        description="Classifiers to train. The paper (Nguyen et al. 2018) trained hlf, gru and inclusive; "
        "inclusive_lstm and inclusive_transformer are this project's variants.",
    )


def training_params(
    epochs: int = 30, models: list[str] | None = None, feed: bool = True, require_approval: bool = False
) -> dict[str, Param]:
    """Training, registration and promotion: the same in every DAG that trains
    (``feed``: whether the DAG writes both feeds and lets the run choose;
    ``require_approval``: whether a person approves a promotion by default)."""
    choice = (
        {
            "feed_format": Param(
                "tfrecord",
                type="string",
                enum=["tfrecord", "petastorm"],
                description="Which feed training reads.",
            )
        }
        if feed
        else {}
    )
    return {
        "models": models_param(models or PAPER_MODELS),
        **choice,
        # Defaults sized for the embedded demo sample (~800 training events): the
        # paper's 6 epochs of batch 128 at 5e-4 were ~27,000 steps an epoch on
        # 3.4 M events and leave a model trained on this sample near chance.
        "epochs": Param(
            epochs,
            type="integer",
            section=TRAINING,
            minimum=1,
            maximum=1000,
            description="Training epochs. SparkDLTrigger: 6, on 3.4 M events.",
        ),
        "batch_size": Param(
            64,
            type="integer",
            section=TRAINING,
            minimum=1,
            maximum=65536,
            description="Events per batch. SparkDLTrigger: 128.",
        ),
        "learning_rate": Param(
            "0:2e-3,18:5e-4",
            type="string",
            section=TRAINING,
            pattern=LEARNING_RATE_PATTERN,
            description="A rate, or epoch:rate steps. SparkDLTrigger: 0:5e-4,2:2e-4,4:1e-4.",
        ),
        "bucket_batches": Param(
            BUCKET_BATCHES,
            type="integer",
            section=TRAINING,
            minimum=0,
            maximum=1024,
            description="Sequence batches from windows of this many batches sorted by particle count, each cut "
            "after its longest sequence (the same model, faster). 0: every batch padded to 801 particles.",
        ),
        "training_processes": Param(
            1,
            type="integer",
            section=TRAINING,
            minimum=1,
            maximum=64,
            description="Train each model data-parallel in this many processes on the training worker, one GPU "
            "each where it has enough (Keras on JAX, NumPy feed). 1: one process, every GPU it sees.",
        ),
        "train_seed": Param(
            42,
            type="integer",
            section=TRAINING,
            minimum=0,
            description="Random seed of weights, dropout and data order.",
        ),
        "use_tuned": Param(
            True,
            type="boolean",
            section=TRAINING,
            description="Use the best hyperparameters of the last search (tune_hyperparameters) "
            "where one was written: architecture, optimizer, batch size, learning rate.",
        ),
        "promotion_metric": Param(
            "mean_auc",
            type="string",
            section=PROMOTION,
            enum=PROMOTION_METRICS,
            description="What a new model must improve to become champion (fpr99_*: lower is better).",
        ),
        "promotion_margin": Param(
            0.0, type="number", section=PROMOTION, minimum=0, description="By how much it must improve it."
        ),
        "require_approval": Param(
            require_approval,
            type="boolean",
            section=PROMOTION,
            description="A better challenger becomes champion only once a person approves it (the task "
            "approve_promotion, in Required Actions); rejected or unanswered, the champion stays.",
        ),
        "approval_timeout_minutes": Param(
            1440,
            type="integer",
            section=PROMOTION,
            minimum=1,
            maximum=43200,
            description="How long the approval waits; then it counts as rejected.",
        ),
    }


def split_params(test_purpose: str) -> dict[str, Param]:
    """Preparation: the random seed of undersampling and splitting, and the test share."""
    return {
        "split_seed": Param(
            42,
            type="integer",
            minimum=0,
            section=DATA,
            description="Random seed of undersampling, the train/test split and the shuffle.",
        ),
        "test_fraction": Param(
            0.2,
            type="number",
            section=DATA,
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            description=f"Share of each class {test_purpose}.",
        ),
    }


def smoke_param() -> Param:
    return Param(
        False,
        type="boolean",
        description="Smoke mode: a quick check of the whole chain on a small subset (at most 1,000 events "
        "generated, 500 read per file, one file per sample, one epoch).",
    )


def effective(params: dict) -> dict:
    """The run's Params with the smoke caps applied (``smoke`` true)."""
    out = dict(params)
    if out.get("smoke"):
        out["generate_events"] = min(out.get("generate_events", SMOKE["generate_events"]), SMOKE["generate_events"])
        out["epochs"] = min(out["epochs"], SMOKE["epochs"])
        out["max_events_per_file"] = SMOKE["max_events_per_file"]
        out["files_per_sample"] = SMOKE["files_per_sample"]
    return out


def validated_events_asset():
    """The Asset a published daily partition updates; retraining listens to it."""
    from airflow.sdk import Asset

    return Asset("topo://events/daily", group="topology-classifier")
