"""One path check for every reader and writer, outputs that never replace the command's inputs or a read-only
file, and option combinations refused before any work: nothing a user asked for is silently ignored."""

from __future__ import annotations

import os
import stat
import warnings

import pytest

from tests.test_study_inputs import TINY
from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.cli import build_parser, check_options, main
from workbench.errors import CheckpointError, ConfigError, ExportError, StudyError
from workbench.export import export_model, opset_range
from workbench.study import load_study, write_report
from workbench.study.schema import study_from_dict
from workbench.study.store import Store
from workbench.utils import atomic_write_text, check_path, check_writable_target

LONG = "m" * 300 + ".pt"

STUDY = TINY.replace('name = "tiny"', 'name = "paths"')


def _mlp():
    from workbench.zoo import create_model

    return create_model("mlp", widths=[64, 8, 10], random_state=0)


def _snapshot(path):
    info = os.stat(path)
    return stat.S_IMODE(info.st_mode), path.read_bytes()


# ------------------------------------------------------------------------------------------ the path check


@pytest.mark.parametrize(
    "path, words",
    [
        (None, "must be a str or os.PathLike naming a file, got NoneType"),
        (b"model.pt", "got bytes"),
        (3, "got int"),
        ("", "is empty"),
        ("a\0b.pt", "NUL character"),
        (LONG, "303 bytes long, more than the"),
    ],
)
def test_check_path_refuses_what_cannot_name_a_file(path, words):
    with pytest.raises(ConfigError, match=words):
        check_path(path, "the path")
    with pytest.raises(StudyError):  # the caller's own error class
        check_path(path, "the path", StudyError)


def test_check_path_measures_names_in_bytes_and_whole_paths(tmp_path):
    assert check_path(tmp_path / "résumé 🙂.pt") == tmp_path / "résumé 🙂.pt"
    with pytest.raises(ConfigError, match="bytes long"):
        check_path(tmp_path / ("é" * 130))  # 130 characters, 260 bytes
    deep = os.path.join(str(tmp_path), *(["d" * 200] * 25))  # every name fits, the whole path does not
    with pytest.raises(ConfigError, match="the path is .* bytes long"):
        check_path(deep)


def test_readers_refuse_none_and_long_paths_with_their_own_errors(tmp_path):
    with pytest.raises(CheckpointError, match="NoneType"):
        load_checkpoint(None)
    with pytest.raises(CheckpointError, match="bytes long"):
        load_checkpoint(tmp_path / LONG)
    with pytest.raises(StudyError, match="NoneType"):
        load_study(None)
    with pytest.raises(StudyError, match="bytes long"):
        load_study(tmp_path / ("s" * 300 + ".toml"))


def test_writers_refuse_long_names_and_write_names_near_the_limit(tmp_path):
    with pytest.raises(ConfigError, match="bytes long"):
        save_checkpoint(tmp_path / LONG, _mlp())
    assert list(tmp_path.iterdir()) == []
    near = tmp_path / ("n" * 250 + ".pt")  # fits, though a temporary name built from it whole would not
    save_checkpoint(near, _mlp())
    assert load_checkpoint(near)[0].input_shape == (64,)
    assert [p.name for p in tmp_path.iterdir()] == [near.name]


def test_the_cli_refuses_a_long_out_before_training(tmp_path, capsys):
    args = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path / LONG)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: the name") and "Traceback" not in err


# ---------------------------------------------------------------------------- read-only files and inputs


def test_a_read_only_file_is_never_replaced(tmp_path, capsys):
    mine = tmp_path / "protected.pt"
    mine.write_text("the user's own\n")
    mine.chmod(0o444)
    before = _snapshot(mine)
    with pytest.raises(ConfigError, match=r"read-only \(mode 444\).*chmod u\+w"):
        atomic_write_text(mine, "x")
    args = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--quiet", "--out", str(mine)]
    assert main(args) == 2
    assert "read-only" in capsys.readouterr().err
    assert _snapshot(mine) == before
    mine.chmod(0o644)  # made writable, it is replaced as asked
    atomic_write_text(mine, "new")
    assert mine.read_text() == "new"


def test_an_output_is_never_one_of_its_inputs(tmp_path):
    store = tmp_path / "store.sqlite"
    store.write_bytes(b"every stored result")
    link = tmp_path / "link.sqlite"
    link.symlink_to(store)
    for target in (store, link):
        with pytest.raises(ConfigError, match="is the store this command reads"):
            check_writable_target(target, {"the store": store, "the study file": None})
    check_writable_target(tmp_path / "other.html", {"the store": store})  # a new file is fine
    assert store.read_bytes() == b"every stored result"


@pytest.fixture()
def study(tmp_path):
    path = tmp_path / "paths.toml"
    path.write_text(STUDY)
    Store(tmp_path / "paths.sqlite").close()
    return path


@pytest.mark.parametrize("which", ["paths.sqlite", "paths.toml"])
def test_the_report_never_replaces_the_store_or_the_study_file(study, which, capsys):
    folder = study.parent
    target = folder / which
    before = target.read_bytes()
    names = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ConfigError, match="this command reads"):
        write_report(study, out=target)
    assert main(["study", "report", str(study), "--out", str(target)]) == 2
    assert "this command reads" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == names  # nothing written beside it either


def test_the_report_keeps_the_users_own_plotly_min_js(study):
    folder = study.parent
    mine = folder / "plotly.min.js"
    mine.write_text("/* the plotly build my other pages use */\n")
    before = _snapshot(mine)
    with pytest.warns(UserWarning, match="plotly.min.js is already there.*left as it is"):
        page = write_report(study, out=folder / "r.html", plotlyjs="file")
    assert _snapshot(mine) == before
    (script,) = folder.glob("plotly-*.min.js")
    assert f"<script src='{script.name}'>" in page.read_text() and script.stat().st_size > 1_000_000
    written = script.stat().st_mtime_ns
    with pytest.warns(UserWarning, match="left as it is"):
        write_report(study, out=folder / "again.html", plotlyjs="file")
    assert script.stat().st_mtime_ns == written and _snapshot(mine) == before  # the named copy is reused
    mine.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # without a file of the user's, plotly.min.js is written, no word
        page = write_report(study, out=folder / "plain.html", plotlyjs="file")
    assert "<script src='plotly.min.js'>" in page.read_text() and mine.read_bytes() == script.read_bytes()


# -------------------------------------------------------------------------------------- option combinations


@pytest.mark.parametrize(
    "argv, words",
    [
        (["profile", "--checkpoint", "nowhere.pt", "--model", "lenet300"], "--model and --checkpoint cannot go"),
        (["compress", "nowhere.pt", "--merge-threshold", "0.5"], "--merge-threshold goes with --fuse neuron-merging"),
        (["compress", "nowhere.pt", "--fuse", "lsq", "--merge-threshold", "0"], "with --fuse lsq it would be ignored"),
        (["study", "run", "nowhere.toml", "--jobs", "2", "--local-cluster", "1"], "--jobs and --local-cluster"),
        (["study", "run", "nowhere.toml", "--jobs", "2", "--scheduler", "tcp://h:1"], "--jobs and --scheduler"),
        (["study", "report", "nowhere.toml", "--jobs", "2"], "--jobs goes with `study run` only"),
        (["study", "run", "nowhere.toml", "--out", "r.html"], "--out goes with `study report` only"),
        (["study", "report", "nowhere.toml", "--reference", "random/drop"], "--reference goes with `study compare`"),
    ],
)
def test_conflicting_or_ignored_options_are_refused_before_any_work(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "no checkpoint" not in err and "no study file" not in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "c.pt", "--fuse", "neuron-merging", "--merge-threshold", "0.5"],
        ["study", "run", "s.toml", "--jobs", "2"],
        ["study", "run", "s.toml", "--local-cluster", "2", "--worker-timeout", "5"],
        ["study", "compare", "s.toml", "--reference", "random/drop"],
        ["profile", "--model", "mlp"],
    ],
)
def test_options_that_go_together_pass_the_check(argv):
    args, _ = build_parser().parse_known_args(argv)
    check_options(args)


# ----------------------------------------------------------------------------------------------- export


def test_export_refuses_a_file_named_for_another_format(tmp_path):
    for name, fmt in (("m.onnx", "pt2"), ("m.pt2", "onnx"), ("m.ONNX", "module")):
        with pytest.raises(ExportError, match=rf"{name} is named as .* format={fmt!r} writes"):
            export_model(_mlp(), tmp_path / name, format=fmt)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="bytes long"):
        export_model(_mlp(), tmp_path / ("m" * 300 + ".pt2"))


def test_export_honours_the_opset_or_refuses_it(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import onnx

    low, high = opset_range()
    for opset in (1, low - 1, high + 1, True):
        with pytest.raises(ExportError, match=f"from {low} to {high}"):
            export_model(_mlp(), tmp_path / "m.onnx", format="onnx", opset=opset)
    path = export_model(_mlp(), tmp_path / "m.onnx", format="onnx", opset=13)  # the dynamo exporter writes 18
    assert [e.version for e in onnx.load(str(path)).opset_import if e.domain in ("", "ai.onnx")] == [13]


# ------------------------------------------------------------------------------------------- study entries


def _study(models: str):
    import tomllib

    return study_from_dict(tomllib.loads(STUDY.split("[[models]]")[0] + models + STUDY[STUDY.index("[selectors]") :]))


ENTRY = '[[models]]\n{label}name = "mlp"\nargs = {{ widths = [64, {width}, 10] }}\ndata = "digits"\n\n'


def test_one_model_under_two_labels_is_refused_naming_both():
    twice = ENTRY.format(label='label = "first"\n', width=8) + ENTRY.format(label='label = "second"\n', width=8)
    with pytest.raises(StudyError, match=r"models\[0\] \('first'\) and models\[1\] \('second'\) are the same model"):
        _study(twice)
    with pytest.raises(StudyError, match="same model"):  # a labelled and an unlabelled entry, the same
        _study(ENTRY.format(label='label = "first"\n', width=8) + ENTRY.format(label="", width=8))
    distinct = ENTRY.format(label='label = "first"\n', width=8) + ENTRY.format(label='label = "second"\n', width=16)
    assert [m.display for m in _study(distinct).models] == ["first", "second"]
    same_unlabelled = _study(ENTRY.format(label="", width=8) * 2)  # one label: the same runs, stored once
    assert len({m.display for m in same_unlabelled.models}) == 1
