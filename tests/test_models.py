"""The model builders, without data: shapes, parameter counts, cuDNN-ready recurrent layers."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")  # a core dependency (TensorFlow), imported lazily because it is slow

from tasks.core.errors import SettingsError  # noqa: E402
from tasks.learning.models import build_model  # noqa: E402


# Hand-counted: Dense 14→50→20→10→3; GRU(50) on 19 features with reset_after
# (3 × (19·50 + 50·50 + 2·50)) + Dense 50→3; inclusive adds Dense (50+14)→25→3;
# LSTM(50): 4 × (19·50 + 50·50 + 50).
@pytest.mark.parametrize(
    ("name", "params"), [("hlf", 2013), ("gru", 10803), ("inclusive", 12353), ("inclusive_lstm", 15703)]
)
def test_parameter_counts_follow_spec(name, params):
    assert build_model(name).count_params() == params


@pytest.mark.parametrize("name", ["hlf", "gru", "inclusive", "inclusive_lstm", "inclusive_transformer"])
def test_inputs_outputs_and_probabilities(name):
    model = build_model(name)
    names = [t.name for t in model.inputs]
    expected = {"hlf": ["HLF_input"], "gru": ["GRU_input"]}.get(name, ["GRU_input", "HLF_input"])
    assert names == expected
    assert tuple(model.output.shape) == (None, 3)
    rng = np.random.default_rng(0)
    gru = np.zeros((4, 801, 19), np.float32)
    gru[:, :30] = rng.normal(size=(4, 30, 19))
    data = {"HLF_input": rng.uniform(size=(4, 14)).astype(np.float32), "GRU_input": gru}
    out = np.asarray(model([data[n] for n in names] if len(names) > 1 else data[names[0]]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"


@pytest.mark.parametrize("name", ["gru", "inclusive", "inclusive_lstm", "inclusive_transformer"])
def test_sequences_cut_to_their_longest_real_row_score_as_when_padded_to_801(name):
    """The particle input takes any length: a batch cut after its longest real
    sequence gives the 801-row predictions (the padding is masked out)."""
    model = build_model(name)
    rng = np.random.default_rng(1)
    lengths = np.array([3, 40, 117, 9])
    gru = np.zeros((4, 801, 19), np.float32)
    for i, n in enumerate(lengths):
        gru[i, :n] = rng.normal(size=(n, 19))
    hlf = rng.uniform(size=(4, 14)).astype(np.float32)

    def score(particles):
        return np.asarray(model([particles, hlf] if len(model.inputs) > 1 else particles))

    padded, cut = score(gru), score(gru[:, : lengths.max()])
    assert tuple(model.inputs[0].shape) == (None, None, 19)
    np.testing.assert_allclose(cut, padded, atol=1e-6, rtol=0)
    assert not np.allclose(score(gru[:, :2]), padded, atol=1e-3)  # cutting real rows does change them


def test_recurrent_layers_keep_the_cudnn_configuration_and_mask_padding():
    model = build_model("inclusive")
    gru = model.get_layer("gru")
    assert (gru.activation.__name__, gru.recurrent_activation.__name__) == ("tanh", "sigmoid")
    assert gru.recurrent_dropout == 0 and not gru.unroll and gru.use_bias and gru.reset_after
    masking = next(layer for layer in model.layers if isinstance(layer, keras.layers.Masking))
    x = np.zeros((1, 801, 19), np.float32)
    x[0, :5] = 1.0
    mask = np.asarray(masking.compute_mask(x))
    assert mask[0, :5].all() and not mask[0, 5:].any()  # right-padded: what cuDNN needs


def test_transformer_ignores_padding_and_particle_order():
    model = build_model("inclusive_transformer")
    rng = np.random.default_rng(1)
    x = np.zeros((1, 801, 19), np.float32)
    x[0, :10] = rng.normal(size=(10, 19))
    hlf = rng.uniform(size=(1, 14)).astype(np.float32)
    base = np.asarray(model([x, hlf], training=False))
    permuted = x.copy()
    permuted[0, :10] = x[0, rng.permutation(10)]
    # Masked attention and a masked mean: a set function of the real particles.
    np.testing.assert_allclose(np.asarray(model([permuted, hlf], training=False)), base, rtol=1e-5, atol=1e-6)
    more = x.copy()
    more[0, 10:12] = rng.normal(size=(2, 19))
    assert not np.allclose(np.asarray(model([more, hlf], training=False)), base)


def test_saved_models_load_back(tmp_path):
    import tasks.learning.models  # noqa: F401  registers the custom layers

    model = build_model("inclusive_transformer")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = [np.ones((2, 801, 19), np.float32), np.ones((2, 14), np.float32)]
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(loaded(x)), rtol=1e-6)


def test_unknown_model():
    with pytest.raises(SettingsError, match="unknown model 'cnn'"):
        build_model("cnn")


def test_every_record_builds_a_model_with_the_inputs_of_its_kind():
    from tasks.datasets.readers import INPUTS
    from tasks.learning.records import MODEL_NAMES, MODELS

    assert MODEL_NAMES == ("hlf", "gru", "inclusive", "inclusive_lstm", "inclusive_transformer")
    for name, record in MODELS.items():
        assert record.name == name and record.inputs in INPUTS and record.description
        model = build_model(name)
        assert model.name == name
        assert tuple(t.name for t in model.inputs) == INPUTS[record.inputs]


def test_published_aucs_and_paper_hidden_layers():
    from tasks.learning.records import model_record

    assert model_record("hlf").published_auc == {"qcd": 0.987, "ttbar": 0.985, "wjets": 0.981}
    for name in ("inclusive", "inclusive_lstm", "inclusive_transformer"):
        assert model_record(name).published_auc == {"qcd": 0.995, "ttbar": 0.997, "wjets": 0.995}
        assert model_record(name).hidden == (25,)
    assert model_record("gru").published_auc is None and model_record("gru").hidden == ()
    assert model_record("hlf").hidden == (50, 20, 10)


@pytest.mark.parametrize("where", ["model_record", "build_model", "TrainSettings"])
def test_an_unknown_model_name_is_a_clear_error(where):
    from tasks.learning.records import model_record
    from tasks.learning.train import TrainSettings

    call = {
        "model_record": model_record,
        "build_model": build_model,
        "TrainSettings": lambda n: TrainSettings(model=n),
    }[where]
    with pytest.raises(
        SettingsError,
        match="unknown model 'cnn'; choose one of hlf, gru, inclusive, inclusive_lstm, inclusive_transformer",
    ):
        call("cnn")


def test_an_unknown_input_kind_is_a_clear_error_not_a_fall_through():
    from tasks.datasets.readers import _arrange, check_feed_options, in_memory_dataset, input_names, model_input
    from tasks.datasets.scaling import Scaler
    from tasks.learning.scoring import _rescale

    gru, hlf = np.zeros((1, 801, 19), np.float32), np.zeros((1, 14), np.float32)
    assert model_input("gru", gru, hlf) is gru and model_input("hlf", gru, hlf) is hlf
    assert model_input("inclusive", gru, hlf) == (gru, hlf)
    message = "unknown model inputs 'cnn'; choose one of inclusive, hlf, gru"
    for call in (
        lambda: input_names("cnn"),
        lambda: model_input("cnn", gru, hlf),
        lambda: _arrange("cnn", gru, hlf, None),
        lambda: check_feed_options("tfrecord", "cnn", 8),
        lambda: in_memory_dataset({"GRU_input": gru, "HLF_input": hlf, "encoded_label": np.zeros((1, 3))}, "cnn", 8),
        lambda: _rescale("cnn", hlf, Scaler.__new__(Scaler), Scaler.__new__(Scaler)),
    ):
        with pytest.raises(SettingsError, match=message):
            call()
