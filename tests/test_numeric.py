"""One validator for every numeric setting (workbench.numeric): numbers that are not numbers -- NaN, infinities,
bools, text, integers beyond 64 bits, lists -- are refused with an error naming the setting and the value at every
entry point (the validator, Python API, study files, checkpoint specs, command-line flags), and values a study
reads as names are never hashed before they are known to be strings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.checkpoints import build_from_spec, check_spec, save_checkpoint
from workbench.cli import main
from workbench.compression import Retraining
from workbench.datasets.batches import Batches
from workbench.errors import CompressionError, ConfigError, StudyError, WorkbenchError
from workbench.numeric import INT64_MAX, as_float, as_int, unusable_numbers
from workbench.quantize.sharing import check_bits
from workbench.study import load_study
from workbench.surgery.budgets import check_budget
from workbench.zoo import create_model

# --------------------------------------------------------------------------------------------------
# the validator


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, 3),
        (np.int8(3), 3),
        (np.uint64(3), 3),
        (np.array(3), 3),
        (torch.tensor(3), 3),
        (INT64_MAX, INT64_MAX),
    ],
)
def test_as_int_takes_python_numpy_and_0d_integers_as_plain_ints(value, expected):
    found = as_int(value, "n")
    assert found == expected and type(found) is int


@pytest.mark.parametrize(
    "value, shown",
    [
        (True, "True"),
        (np.bool_(False), "False"),
        ("3", "'3'"),
        (None, "None"),
        ([3], "[3]"),
        (2.5, "2.5"),
        (3.0, "3.0"),  # a float is not an int setting unless whole-number floats are allowed
        (math.nan, "nan"),
        (math.inf, "inf"),
        (2**63, str(2**63)),
        (np.uint64(2**64 - 1), str(2**64 - 1)),
        (-(2**63) - 1, str(-(2**63) - 1)),
        (complex(1, 0), "(1+0j)"),
    ],
)
def test_as_int_refuses_what_is_not_a_64_bit_integer_and_names_setting_and_value(value, shown):
    with pytest.raises(ConfigError) as info:
        as_int(value, "epochs", low=0)
    message = str(info.value)
    assert message.startswith("epochs must be an integer >= 0") and shown in message


def test_as_int_bounds_whole_floats_and_the_error_class():
    assert as_int(1, "n", low=1, high=3) == 1 and as_int(3, "n", low=1, high=3) == 3
    with pytest.raises(ConfigError, match=r"n must be an integer in \[1, 3\], got 4"):
        as_int(4, "n", low=1, high=3)
    assert as_int(2.0, "n", integral_floats=True) == 2 and as_int(np.float32(8), "n", integral_floats=True) == 8
    for value in (2.5, math.nan, math.inf, 1e300):  # 1e300 is whole, but not a 64-bit integer
        with pytest.raises(ConfigError):
            as_int(value, "n", integral_floats=True)
    with pytest.raises(CompressionError, match="bits for layer 'fc'"):
        as_int(True, "bits for layer 'fc'", error=CompressionError)
    with pytest.raises(ConfigError, match=r"--finetune is a number of epochs, an integer >= 0; got -1\."):
        as_int(-1, "--finetune", low=0, what="a number of epochs")
    assert "does not fit in 64 bits" in str(pytest.raises(ConfigError, as_int, 2**64, "seed").value)


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.5, 0.5),
        (1, 1.0),
        (np.float32(0.5), 0.5),
        (np.float16(1.0), 1.0),
        (np.array(0.25), 0.25),
        (torch.tensor(0.5), 0.5),
    ],
)
def test_as_float_takes_python_numpy_and_0d_reals_as_plain_floats(value, expected):
    found = as_float(value, "keep", low=0.0, high=1.0, low_open=True)
    assert found == expected and type(found) is float


@pytest.mark.parametrize(
    "value, shown",
    [
        (math.nan, "nan"),
        (np.float32("nan"), "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (np.float64("inf"), "inf"),
        (10**400, "1" + "0" * 20),  # beyond the float range
        (True, "True"),
        ("0.5", "'0.5'"),
        (None, "None"),
        ([0.5], "[0.5]"),
        (0.0, "0.0"),  # the open end
        (1.5, "1.5"),
        (1e308, "1e+308"),
    ],
)
def test_as_float_refuses_what_is_not_a_finite_number_in_range(value, shown):
    with pytest.raises(ConfigError) as info:
        as_float(value, "keep", low=0.0, high=1.0, low_open=True)
    message = str(info.value)
    assert message.startswith("keep must be a finite number in (0, 1]") and shown in message


def test_as_float_open_and_closed_ends():
    assert as_float(0.0, "x", low=0.0) == 0.0 and as_float(1.0, "x", high=1.0) == 1.0
    for value, bounds in ((0.0, {"low": 0.0, "low_open": True}), (1.0, {"high": 1.0, "high_open": True})):
        with pytest.raises(ConfigError):
            as_float(value, "x", **bounds)
    with pytest.raises(ConfigError, match=r"must be a finite number in \[-1, 1\) \(a cosine\), got 1\.0"):
        as_float(1.0, "", low=-1.0, high=1.0, high_open=True, what="a cosine")


def test_unusable_numbers_finds_nan_infinities_and_long_integers_with_their_paths():
    tree = {"widths": [64, math.nan, 10], "deep": {"x": [np.float32("inf"), 2**70]}, "name": "ok", "flag": True}
    assert [place for place, _ in unusable_numbers(tree)] == ["widths[1]", "deep.x[0]", "deep.x[1]"]
    assert unusable_numbers({"widths": [64, 16, 10], "dropout": 0.5, "seed": INT64_MAX}) == []


# --------------------------------------------------------------------------------------------------
# every entry point, every bad kind of value

# (id, Python value, TOML text, command-line text, what the message shows of it in lower case); None where the
# form does not exist. The command line's message shows the text given.
BAD_INTS = [
    ("nan", math.nan, "nan", "nan", "nan"),
    ("inf", math.inf, "inf", "inf", "inf"),
    ("bool", True, "true", "true", "true"),
    ("text", "3", '"3"', "three", "'3'"),
    ("none", None, None, None, "none"),
    ("beyond-64-bits", 2**64, str(2**64), "99999999999999999999999", str(2**64)),
    ("fraction", 2.5, "2.5", "2.5", "2.5"),
    ("list", [1], "[1]", "[1]", "[1]"),
]
BAD_FLOATS = [
    ("nan", math.nan, "nan", "nan", "nan"),
    ("inf", math.inf, "inf", "inf", "inf"),
    ("-inf", -math.inf, "-inf", "-inf", "-inf"),
    ("bool", True, "true", "true", "true"),
    ("text", "0.5", '"0.5"', "half", "'0.5'"),
    ("list", [0.5], "[0.5]", "[0.5]", "[0.5]"),
    ("float32-nan", np.float32("nan"), None, None, "nan"),
]


def cases(table, form):
    """pytest parameters of ``table`` whose ``form`` (2: TOML, 3: command line) exists, with their ids."""
    rows = [row for row in table if form is None or row[form] is not None]
    return pytest.mark.parametrize("kind, value, toml, cli, shown", rows, ids=[row[0] for row in rows])


INT_API = {
    "Retraining(epochs)": (lambda v: Retraining(epochs=v), "epochs"),
    "Batches(batch_size)": (lambda v: Batches((torch.zeros(4, 2), torch.zeros(4)), v), "batch_size"),
    "create_model(mlp, widths)": (lambda v: create_model("mlp", widths=[8, v, 2]), "widths[1]"),
    "check_budget(batch)": (lambda v: check_budget({"latency": 0.5, "batch": v}), "batch"),
    "check_bits": (lambda v: check_bits(v, "fc"), "bits for layer 'fc'"),
    "checkpoint spec kwargs": (lambda v: build_from_spec({"name": "mlp", "kwargs": {"widths": [8, v, 2]}}), "widths"),
}
FLOAT_API = {
    "Retraining(lr)": (lambda v: Retraining(lr=v), "lr"),
    "Retraining(temperature)": (lambda v: Retraining(temperature=v), "temperature"),
    "create_model(mobilenet_v1, width)": (lambda v: create_model("mobilenet_v1", width=v), "width"),
    "check_budget(macs)": (lambda v: check_budget({"macs": v}), "macs"),
    "checkpoint spec kwargs": (
        lambda v: build_from_spec({"name": "mobilenet_v1", "kwargs": {"width": v, "resolution": 32}}),
        "width",
    ),
}


@pytest.mark.parametrize("entry", list(INT_API))
@cases(BAD_INTS, None)
def test_api_integer_settings_refuse_every_bad_kind(entry, kind, value, toml, cli, shown):
    call, name = INT_API[entry]
    with pytest.raises(WorkbenchError) as info:
        call(value)
    message = str(info.value)
    assert name in message and shown in message.lower() and "unhashable" not in message, message


@pytest.mark.parametrize("entry", list(FLOAT_API))
@cases(BAD_FLOATS, None)
def test_api_real_settings_refuse_every_bad_kind(entry, kind, value, toml, cli, shown):
    call, name = FLOAT_API[entry]
    with pytest.raises(WorkbenchError) as info:
        call(value)
    message = str(info.value)
    assert name in message and shown in message.lower(), message


def test_api_settings_take_numpy_scalars_as_plain_numbers():
    retrain = Retraining(epochs=np.int64(2), lr=np.float32(0.5), batch_size=torch.tensor(8))
    assert (retrain.epochs, retrain.lr, retrain.batch_size) == (2, 0.5, 8)
    assert type(retrain.epochs) is int and type(retrain.lr) is float and type(retrain.batch_size) is int
    assert check_budget({"keep": np.float32(0.5)})["keep"] == 0.5
    assert create_model("mlp", widths=[np.int64(8), np.int32(4), 2]).layers[1].out_features == 4


STUDY = """
[study]
name = "t"
seeds = SEEDS

[[models]]
name = "mlp"
args = { widths = [64, WIDTH, 10] }
data = "digits"
training = { epochs = EPOCHS, lr = LR }

[selectors]
random = {}

[compression]
budgets = [KEEP]

[pipelines]
dc = [{ do = "iterative-prune", rates = [0.5], retrain_epochs = RETRAIN }]

[cluster]
worker_timeout = TIMEOUT
"""
GOOD = {"SEEDS": "[0]", "WIDTH": "16", "EPOCHS": "2", "LR": "0.01", "KEEP": "0.5", "RETRAIN": "1", "TIMEOUT": "60.0"}


def study_error(tmp_path, **changes):
    text = STUDY
    for key, value in {**GOOD, **changes}.items():
        text = text.replace(key, value)
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(StudyError) as info:
        load_study(path)
    return str(info.value)


def test_the_study_template_is_valid(tmp_path):
    text = STUDY
    for key, value in GOOD.items():
        text = text.replace(key, value)
    (tmp_path / "s.toml").write_text(text)
    study = load_study(tmp_path / "s.toml")
    assert study.study.seeds == [0] and study.models[0].training.epochs == 2


STUDY_INTS = {
    "SEEDS": ("study.seeds[0]", "[{}]"),
    "EPOCHS": ("models[0].training.epochs", "{}"),
    "WIDTH": ("models[0].args", "{}"),  # free-form: NaN, infinities and long integers refused when read
    "RETRAIN": ("pipelines", "{}"),
}
STUDY_REALS = {
    "LR": ("models[0].training.lr", "{}"),
    "KEEP": ("compression.budgets[0].keep", "{}"),
    "TIMEOUT": ("cluster.worker_timeout", "{}"),
}
#: Free-form settings (model arguments, pipeline steps) are checked by what reads them when the study runs,
#: except for numbers no setting can use.
FREE_FORM = {"WIDTH", "RETRAIN"}


@pytest.mark.parametrize("key", list(STUDY_INTS))
@cases(BAD_INTS, 2)
def test_study_integer_settings_refuse_every_bad_kind(tmp_path, key, kind, value, toml, cli, shown):
    if key in FREE_FORM and kind not in ("nan", "inf", "beyond-64-bits"):
        pytest.skip("a free-form setting's type is checked by the model or transform when the study runs")
    where, form = STUDY_INTS[key]
    message = study_error(tmp_path, **{key: form.format(toml)})
    assert where in message and shown in message.lower() and "unhashable" not in message, message


@pytest.mark.parametrize("key", list(STUDY_REALS))
@cases(BAD_FLOATS, 2)
def test_study_real_settings_refuse_every_bad_kind(tmp_path, key, kind, value, toml, cli, shown):
    where, form = STUDY_REALS[key]
    message = study_error(tmp_path, **{key: form.format(toml)})
    assert where in message and shown in message.lower(), message


def test_study_seeds_fit_in_64_bits_and_whole_floats_still_read(tmp_path):
    text = STUDY
    for key, value in {**GOOD, "SEEDS": f"[{INT64_MAX}, 1.0]", "EPOCHS": "2.0"}.items():
        text = text.replace(key, value)
    (tmp_path / "s.toml").write_text(text)
    study = load_study(tmp_path / "s.toml")
    assert study.study.seeds == [INT64_MAX, 1] and study.models[0].training.epochs == 2


@pytest.mark.parametrize(
    "old, new, where",
    [
        ("random = {}", 'dpp = { preset = ["x"] }', "dpp.preset"),
        ("random = {}", "dpp = { preset = { a = 1 } }", "dpp.preset"),
        ('do = "iterative-prune"', 'do = ["iterative-prune"]', "dc[0].do"),
        ('do = "iterative-prune"', "do = { x = 1 }", "dc[0].do"),
    ],
    ids=["preset-list", "preset-table", "do-list", "do-table"],
)
def test_a_list_or_table_where_a_name_is_expected_is_named_not_hashed(tmp_path, old, new, where):
    message = study_error(tmp_path, **{old: new})
    assert where in message and "a string" in message and "unhashable" not in message, message


# --------------------------------------------------------------------------------------------------
# checkpoint specs and the command line


def test_check_spec_refuses_unusable_numbers_in_the_arguments():
    with pytest.raises(ConfigError, match=r"kwargs\.widths\[1\] = nan"):
        check_spec({"name": "mlp", "kwargs": {"widths": [64, math.nan, 10]}})
    with pytest.raises(ConfigError, match=r"kwargs\.width = inf"):
        check_spec({"name": "mobilenet_v1", "kwargs": {"width": math.inf}})
    assert check_spec({"name": "mlp", "kwargs": {"widths": [64, 16, 10]}})["name"] == "mlp"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("numeric") / "m.pt"
    return str(save_checkpoint(path, create_model("mlp", widths=[64, 8, 10]), metadata={"data": "digits"}))


TRAIN = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--quiet"]
CLI_INTS = {
    "--epochs": TRAIN,
    "--batch-size": TRAIN,
    "--seed": TRAIN,
    "--finetune": ["compress", "CKPT", "--quiet"],
    "--round-to": ["compress", "CKPT", "--quiet"],
    "--jobs": ["study", "run", "nowhere.toml"],
    "--local-cluster": ["study", "run", "nowhere.toml"],
}
CLI_REALS = {
    "--lr": TRAIN,
    "--keep": ["compress", "CKPT", "--quiet"],
    "--macs": ["compress", "CKPT", "--quiet"],
    "--merge-threshold": ["compress", "CKPT", "--quiet"],
    "--timeout": ["study", "run", "nowhere.toml"],
    "--worker-timeout": ["study", "run", "nowhere.toml"],
}


def cli_error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("flag", list(CLI_INTS))
@cases(BAD_INTS, 3)
def test_integer_flags_refuse_every_bad_kind_before_any_work(capsys, checkpoint, flag, kind, value, toml, cli, shown):
    argv = [checkpoint if a == "CKPT" else a for a in CLI_INTS[flag]]
    err = cli_error([*argv, f"{flag}={cli}"], capsys)
    assert flag in err and "no study file" not in err and cli.lower() in err.lower(), err


@pytest.mark.parametrize("flag", list(CLI_REALS))
@cases(BAD_FLOATS, 3)
def test_real_flags_refuse_every_bad_kind_before_any_work(capsys, checkpoint, flag, kind, value, toml, cli, shown):
    argv = [checkpoint if a == "CKPT" else a for a in CLI_REALS[flag]]
    err = cli_error([*argv, f"{flag}={cli}"], capsys)
    assert flag in err and "no study file" not in err and cli.lower() in err.lower(), err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["compress", "CKPT", "--keep", "1e308"], "--keep must be a finite number in (0, 1], got 1e+308"),
        (["study", "run", "nowhere.toml", "--timeout", "-1"], "--timeout must be a finite number in (0, 604800]"),
        (["study", "run", "nowhere.toml", "--jobs", "100000"], "--jobs must be an integer in [1, "),
        (["study", "run", "nowhere.toml", "--local-cluster", "0"], "--local-cluster must be an integer in [1, "),
        (["profile", "--checkpoint", "CKPT", "--batch-size", "-3", "--no-latency"], "--batch-size must be an integer"),
        (["profile", "--checkpoint", "CKPT", "--batch-size", "0", "--no-latency"], "--batch-size must be an integer"),
        (["profile", "--checkpoint", "CKPT", "--batch-size", str(10**12), "--no-latency"], "GB of memory"),
        (["export", "CKPT", "--batch-size", str(10**12)], "GB of memory"),
        (["profile", "--model", "mobilenet_v1", "--width", "Infinity", "--no-latency"], "width must be a finite"),
        (["profile", "--model", "mobilenet_v1", "--width", "1e30", "--no-latency"], "width must be a finite"),
    ],
    ids=[
        "keep-1e308",
        "timeout",
        "jobs",
        "local-cluster",
        "batch-3",
        "batch-0",
        "batch-1e12",
        "export-1e12",
        "width-inf",
        "width-1e30",
    ],
)
def test_out_of_range_flags_are_one_error_line(capsys, checkpoint, argv, words):
    err = cli_error([checkpoint if a == "CKPT" else a for a in argv], capsys)
    assert words in err, err
