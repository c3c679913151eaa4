"""Study files: schema errors name the bad key and what is allowed; the grid and its hashes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.errors import StudyError, WorkbenchError
from workbench.study import expand, load_study

STUDY = """
[study]
name = "t"
seeds = [0, 1]

[[models]]
name = "mlp"
args = { widths = [64, 16, 10] }
data = "digits"
training = { epochs = 2 }

[selectors]
random = {}
magnitude = { criterion = "l2" }

[compression]
budgets = [0.5, { keep = 0.25, per_layer = { "layers.1" = 0.5 } }]
fuse = ["drop", "lsq"]

[baselines]
models = [{ name = "lenet5", data = "digits", training = { epochs = 1 } }]
"""


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, text):
    with pytest.raises(StudyError) as info:
        load_study(write(tmp_path, text))
    return str(info.value)


def test_grid_expands_models_seeds_selectors_budgets_fusions(tmp_path):
    runs = expand(load_study(write(tmp_path, STUDY)))
    kinds = [run.kind for run in runs]
    assert kinds.count("train") == 2 + 2  # base model and baseline, two seeds each
    assert kinds.count("compress") == 1 * 2 * 2 * 2 * 2  # models x seeds x selectors x budgets x fusions
    assert kinds.index("compress") == 4  # training runs come first
    assert len({run.hash for run in runs}) == len(runs)
    bases = {run.hash for run in runs if run.role == "base"}
    assert {run.base_hash for run in runs if run.kind == "compress"} == bases


def test_hash_is_stable_and_follows_what_is_computed(tmp_path):
    first = [run.hash for run in expand(load_study(write(tmp_path, STUDY, "a.toml")))]
    again = [run.hash for run in expand(load_study(write(tmp_path, STUDY, "b.toml")))]
    assert first == again
    relabelled = STUDY.replace('name = "mlp"', 'name = "mlp"\nlabel = "tiny MLP"')
    assert [run.hash for run in expand(load_study(write(tmp_path, relabelled, "c.toml")))] == first
    changed = [
        run.hash for run in expand(load_study(write(tmp_path, STUDY.replace("epochs = 2", "epochs = 3"), "d.toml")))
    ]
    # the MLP's training changed: its base run and all compression runs change, the baseline's runs do not
    assert len(set(changed) & set(first)) == 2


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('name = "mlp"', 'name = "lenet30"', ["models[0].name", "unknown model 'lenet30'", "Did you mean 'lenet300'?"]),
        ('data = "digits"\ntraining', 'data = "digit"\ntraining', ["models[0].data", "Did you mean 'digits'?"]),
        ("random = {}", "randm = {}", ["selectors", "unknown selector 'randm'", "Did you mean 'random'?"]),
        ('criterion = "l2"', 'critrion = "l2"', ["selector 'magnitude'", "critrion", "criterion"]),
        ("budgets = [0.5,", "budgets = [1.5,", ["compression.budgets[0].keep", "(0, 1]", "1.5"]),
        ("budgets = [0.5,", "budgets = [0,", ["compression.budgets[0].keep", "(0, 1]"]),
        ('"layers.1" = 0.5', '"layers.1" = -0.5', ["compression.budgets[1].per_layer.layers.1", "(0, 1]"]),
        (
            "training = { epochs = 2 }",
            "training = { epoch = 2 }",
            ["models[0].training: unknown key 'epoch'", "Did you mean 'epochs'?", "Allowed keys here"],
        ),
        ('fuse = ["drop", "lsq"]', 'fuse = ["drop", "lsqq"]', ["compression.fuse[1]", "'merge'", "lsqq"]),
        ("[selectors]", "[selector]", ["unknown key 'selector'", "Did you mean 'selectors'?"]),
        ("seeds = [0, 1]", "seeds = [0, 0]", ["study.seeds", "distinct"]),
        (
            "args = { widths = [64, 16, 10] }",
            "args = { width = [64, 16, 10] }",
            ["models[0]", "no argument(s) 'width'", "widths"],
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path, old, new, expected):
    assert old in STUDY
    message = error_of(tmp_path, STUDY.replace(old, new, 1))
    for part in expected:
        assert part in message, (part, message)


def test_every_problem_is_listed_at_once(tmp_path):
    message = error_of(tmp_path, STUDY.replace("random = {}", "randm = {}").replace("budgets = [0.5,", "budgets = [2,"))
    assert "randm" in message and "compression.budgets[0].keep" in message


def test_files_that_are_not_studies(tmp_path):
    assert "not a valid TOML" in error_of(tmp_path, "[study\nname = ")
    assert "required, but missing" in error_of(tmp_path, '[study]\nname = "x"\n')
    with pytest.raises(StudyError, match="no study file"):
        load_study(tmp_path / "missing.toml")
    checkpoint = STUDY.replace('name = "mlp"\nargs = { widths = [64, 16, 10] }', 'checkpoint = "nowhere.pt"')
    assert "does not exist" in error_of(tmp_path, checkpoint)


def test_cli_reports_bad_study_without_traceback(tmp_path, capsys):
    path = write(tmp_path, STUDY.replace('name = "mlp"', 'name = "lenet30"'))
    assert main(["study", "run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Did you mean 'lenet300'?" in err and "Traceback" not in err
    assert not (tmp_path / "s.sqlite").exists()  # nothing was created for a bad study
    assert isinstance(StudyError("x"), WorkbenchError)


def test_importing_the_package_is_light():
    code = (
        "import sys, workbench.study; "
        "print(sorted(m for m in ('torch', 'dask', 'distributed', 'pydantic', 'plotly', 'graspologic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
