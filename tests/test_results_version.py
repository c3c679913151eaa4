"""Results versions: stored runs and cached base models of another version, or that do not match their
configuration, are computed again, not reused; stores written before versions were recorded still open."""

from __future__ import annotations

import copy
import io
import json
import sqlite3

import pytest
import torch

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.study import Store, expand, run_study
from workbench.study.execute import base_model
from workbench.study.runner import cache_dir_for
from workbench.study.schema import study_from_dict
from workbench.study.versions import RESULTS_VERSION
from workbench.zoo import create_model

STUDY = {
    "study": {"name": "versions", "seeds": [0]},
    "models": [{"name": "mlp", "args": {"widths": [64, 8, 10]}, "data": "digits", "training": {"epochs": 1}}],
    "selectors": {"magnitude": {}},
    "compression": {"budgets": [0.5]},
    "finetune": {"epochs": 1, "max_batches": 2},
}
#: The ``runs`` table of stores written before results versions were recorded.
LEGACY_SCHEMA = """CREATE TABLE runs (hash TEXT PRIMARY KEY, study TEXT NOT NULL, kind TEXT NOT NULL, label TEXT,
config_json TEXT NOT NULL, status TEXT NOT NULL, started TEXT, finished TEXT, seconds REAL, metrics_json TEXT,
plan_json TEXT, error TEXT)"""


@pytest.fixture
def study(tmp_path):
    return study_from_dict(copy.deepcopy(STUDY), path=tmp_path / "versions.toml")


def train_run(study):
    return next(run for run in expand(study) if run.kind == "train")


def set_metadata(path, **changes) -> None:
    """Rewrite the metadata of the checkpoint at ``path`` (as a doctored file would)."""
    payload = torch.load(path, weights_only=True)
    payload["metadata"] = json.dumps({**json.loads(payload["metadata"]), **changes})
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())


def test_runs_and_cached_base_models_record_the_results_version(study):
    outcome = run_study(study, quiet=True)
    assert (outcome.done, outcome.failed, outcome.recomputed, outcome.notes) == (2, 0, 0, [])
    with Store(study.store_path(), readonly=True) as db:
        assert {row["version"] for row in db.rows()} == {RESULTS_VERSION}
    run = train_run(study)
    _, meta = load_checkpoint(cache_dir_for(study.store_path()) / f"{run.hash}.pt")
    assert meta["results_version"] == RESULTS_VERSION and meta["run"] == run.hash


def test_stored_runs_and_a_cached_base_of_another_version_are_computed_again(study):
    run_study(study, quiet=True)
    store, run = study.store_path(), train_run(study)
    db = sqlite3.connect(store)
    db.execute("UPDATE runs SET version = 1, finished = 'old'")
    db.commit()
    db.close()
    set_metadata(cache_dir_for(store) / f"{run.hash}.pt", results_version=1)
    with pytest.warns(
        UserWarning, match=f"2 stored runs of results version 1; this workbench computes version {RESULTS_VERSION}"
    ):
        outcome = run_study(study, quiet=True)
    assert (outcome.skipped, outcome.done, outcome.recomputed) == (0, 2, 2)
    assert any("cached base model" in note and "results version 1" in note for note in outcome.notes)
    with Store(store, readonly=True) as db:
        rows = db.rows()
    assert {row["version"] for row in rows} == {RESULTS_VERSION} and "old" not in {row["finished"] for row in rows}
    assert load_checkpoint(cache_dir_for(store) / f"{run.hash}.pt")[1]["results_version"] == RESULTS_VERSION
    again = run_study(study, quiet=True)  # current rows are reused
    assert (again.skipped, again.done, again.recomputed, again.notes) == (2, 0, 0, [])


def test_a_done_row_is_replaced_only_by_a_done_result_of_another_version(tmp_path):
    def result(status, version, accuracy):
        return {"hash": "a", "status": status, "metrics": {"accuracy": accuracy}, "version": version}

    with Store(tmp_path / "s.sqlite") as db:
        for status, version, accuracy in [("done", 1, 0.1), ("not run", None, 0), ("failed", 2, 0), ("done", 2, 0.2)]:
            db.write(result(status, version, accuracy), study="s", kind="train", label="a", config={})
        db.write(result("done", 2, 0.3), study="s", kind="train", label="a", config={})  # same version: kept
        (row,) = db.rows()
    assert (row["status"], row["version"], row["metrics"]) == ("done", 2, {"accuracy": 0.2})


@pytest.mark.parametrize("crafted", ["another architecture", "another run", "unreadable"])
def test_a_cached_base_model_that_does_not_match_its_configuration_is_trained_again(study, tmp_path, crafted):
    config, cache = train_run(study).config, tmp_path / "cache"
    trained, _ = base_model(config, cache)
    path = cache / f"{train_run(study).hash}.pt"
    meta = {"results_version": RESULTS_VERSION, "run": train_run(study).hash}
    if crafted == "another architecture":  # a file under the cache's name, claiming to be this run's base
        save_checkpoint(path, create_model("mlp", widths=[64, 32, 10]), metadata=meta)
    elif crafted == "another run":
        save_checkpoint(path, trained, metadata={**meta, "run": "0" * 64})
    else:
        path.write_bytes(b"not a checkpoint")
    notes: list[str] = []
    model, meta = base_model(config, cache, notes)
    expected = {"another architecture": "architecture", "another run": "saved for run", "unreadable": "cannot be used"}
    assert len(notes) == 1 and expected[crafted] in notes[0] and "trained again" in notes[0]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))
    assert load_checkpoint(path)[1]["run"] == train_run(study).hash  # the file was replaced
    notes.clear()
    base_model(config, cache, notes)
    assert notes == []  # and is used from then on


def test_a_cached_base_with_the_right_spec_but_other_weights_is_trained_again(study, tmp_path):
    """Parameter shapes are checked as well as the spec: a file whose weights have other names is refused."""
    config, cache = train_run(study).config, tmp_path / "cache"
    trained, meta = base_model(config, cache)
    path = cache / f"{train_run(study).hash}.pt"
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {f"extra.{k}": v for k, v in payload["state_dict"].items()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    notes: list[str] = []
    base_model(config, cache, notes)
    assert len(notes) == 1 and "trained again" in notes[0]


def test_a_store_written_before_versions_still_opens_and_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(LEGACY_SCHEMA)
    db.execute(
        "INSERT INTO runs VALUES ('a', 's', 'train', 'run a', '{\"seed\": 0}', 'done', 't0', 't1', 1.0, "
        "'{\"accuracy\": 0.9}', NULL, NULL)"
    )
    db.commit()
    db.close()
    with Store(path, readonly=True) as store:  # read as it is
        (row,) = store.rows()
        assert (row["metrics"], row["version"], store.versions()) == ({"accuracy": 0.9}, None, {"a": None})
    assert "version" not in [c[1] for c in sqlite3.connect(path).execute("PRAGMA table_info(runs)")]
    with Store(path) as store:  # migrated when opened for writing
        assert store.status() == {"a": "done"} and store.versions() == {"a": None}
        store.write(
            {"hash": "b", "status": "done", "version": RESULTS_VERSION}, study="s", kind="train", label="b", config={}
        )
        assert store.versions() == {"a": None, "b": RESULTS_VERSION}
    assert "version" in [c[1] for c in sqlite3.connect(path).execute("PRAGMA table_info(runs)")]
