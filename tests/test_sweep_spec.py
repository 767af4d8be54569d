"""The sweep spec: its search space, and every way it is refused before a trial starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workbench.errors import ConfigError
from workbench.sweep.spec import (
    boundary_values,
    check_spec,
    field_kind,
    grid_points,
    load_spec,
    parse_spec,
    with_params,
)
from workbench.sweep.store import (
    SweepDir,
    TrialView,
    best_trial,
    expand_url,
    grid_size,
    make_pruner,
    make_sampler,
    safe_url,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "sample_data" / "configs" / "tiny.yaml"


def spec_text(**fields) -> str:
    data = {
        "base_config": str(TINY),
        "space": {"train.learning_rate": {"low": 1e-4, "high": 2e-3, "log": True}, "lora.r": {"choices": [4, 8]}},
    }
    data.update(fields)
    return yaml.safe_dump(data, sort_keys=False)


def check(**fields):
    return check_spec(parse_spec(spec_text(**fields), source="s.yaml"), source="s.yaml", rules=False)


def test_the_sample_spec_is_clean():
    spec = load_spec(ROOT / "sample_data" / "sweeps" / "tiny.yaml")
    report = check_spec(spec, source="tiny.yaml", rules=False)
    assert report.errors == [] and report.warnings == []
    assert spec.base_path.resolve() == TINY.resolve()
    assert spec.direction == "minimize" and spec.trials == 3 and spec.pruner.kind == "median"


def test_a_field_that_does_not_exist_gets_a_did_you_mean():
    report = check(space={"train.learnig_rate": {"low": 1e-4, "high": 1e-3}, "nosuch.x": {"choices": [1]}})
    assert "s.yaml: space.train.learnig_rate: not a field of the run config; did you mean 'train.learning_rate'?" in (
        report.errors
    )
    assert any("space.nosuch.x" in e and "sections: data, " in e and "train" in e for e in report.errors)


def test_a_bound_the_config_types_refuse():
    report = check(space={"lora.r": {"low": 4, "high": 2048}, "train.warmup_ratio": {"choices": [0.1, 0.9]}})
    assert any("space.lora.r: the value 2048 is refused" in e and "1024" in e for e in report.errors)
    assert any("space.train.warmup_ratio: the value 0.9 is refused" in e for e in report.errors)


@pytest.mark.slow  # the rules read the data and the bundled tokenizer
def test_a_bound_a_rule_refuses():
    spec = parse_spec(spec_text(space={"train.learning_rate": {"low": 1e-4, "high": 0.1, "log": True}}))
    report = check_spec(spec, source="s.yaml")
    assert len(report.errors) == 1, report.errors
    assert report.errors[0].startswith("s.yaml: space.train.learning_rate = 0.1: train.learning_rate:")
    assert "far outside the usual range" in report.errors[0]


def test_a_range_for_a_field_that_takes_no_numbers():
    report = check(space={"lora.target_modules": {"low": 1, "high": 2}, "lora.rslora": {"low": 0, "high": 1}})
    assert report.errors == [
        "s.yaml: space.lora.target_modules: not a number: give choices (a list of values), not a range",
        "s.yaml: space.lora.rslora: not a number: give choices (a list of values), not a range",
    ]


def test_parse_errors_name_the_line_and_field():
    text = "base_config: x.yaml\nsampler: tpee\nspac: {}\nspace:\n  lora.r: {low: 3}\nobjective: {metric: f1_score}\n"
    with pytest.raises(ConfigError) as err:
        parse_spec(text, source="s.yaml")
    msg = str(err.value)
    assert "s.yaml:2: sampler: Input should be 'tpe', 'random' or 'grid'" in msg
    assert "s.yaml:3: unknown field 'spac'; did you mean 'space'?" in msg
    assert "s.yaml:5: space.lora.r: give low and high (a range) or choices (a list of values)" in msg
    assert "s.yaml:6: objective: unknown metric 'f1_score'" in msg
    with pytest.raises(ConfigError, match="low 3 is above high 1"):
        parse_spec("base_config: x\nspace: {lora.r: {low: 3, high: 1}}\n")
    with pytest.raises(ConfigError, match="log-scale range needs low > 0"):
        parse_spec("base_config: x\nspace: {lora.dropout: {low: 0, high: 0.1, log: true}}\n")
    with pytest.raises(ConfigError, match="no such sweep spec"):
        load_spec("/nonexistent/sweep.yaml")


def test_objective_direction_follows_the_metric():
    assert parse_spec(spec_text(objective={"metric": "token_f1"})).direction == "maximize"
    assert parse_spec(spec_text(objective={"metric": "refusal"})).direction == "minimize"
    assert parse_spec(spec_text(objective={"metric": "eval_loss", "direction": "maximize"})).direction == "maximize"


def test_grid_needs_points_and_counts_them():
    report = check(sampler="grid")
    assert any("grid sampler needs choices or a step" in e for e in report.errors)
    spec = parse_spec(
        spec_text(
            sampler="grid",
            space={
                "train.learning_rate": {"choices": [1e-4, 5e-4]},
                "train.batch_size": {"low": 2, "high": 8, "step": 2},
            },
        )
    )
    assert grid_points("train.batch_size", spec.space["train.batch_size"]) == [2, 4, 6, 8]
    assert grid_size(spec) == 8
    assert type(make_sampler(spec)).__name__ == "GridSampler"


def test_first_trials_must_name_searched_fields():
    report = check(first_trials=[{"train.learning_rate": 1e-3, "lora.alpha": 8}])
    assert report.errors == ["s.yaml: first_trials[0]: lora.alpha not in the space (train.learning_rate, lora.r)"]


def test_warnings_do_not_stop_a_sweep():
    base = TINY.parent / "tmp-noval.yaml"
    try:
        text = TINY.read_text().replace("  val: ../support/val.jsonl\n", "") + "\n"
        base.write_text(text.replace("data:\n", "data:\n  val_ratio: 0\n"))
        report = check(base_config=str(base), parallel=5, trials=2)
        assert report.errors == []
        assert any("nothing can be pruned" in w for w in report.warnings)
        assert any("parallel 5 is more than the 2 trials" in w for w in report.warnings)
        metric = check(base_config=str(base), objective={"metric": "token_f1"})
        assert any("no validation split" in e for e in metric.errors)
    finally:
        base.unlink(missing_ok=True)


def test_field_kinds_and_boundaries():
    assert [field_kind(f) for f in ("train.learning_rate", "lora.r", "train.max_steps", "lora.rslora")] == [
        "float",
        "int",
        "int",
        "bool",
    ]
    spec = parse_spec(spec_text(space={"lora.r": {"low": 3.5, "high": 16.7}}))
    assert boundary_values("lora.r", spec.space["lora.r"]) == [4, 16]


def test_with_params_sets_dotted_fields_and_checks_them():
    from pydantic import ValidationError

    from workbench.config.schema import load_config

    base = load_config(TINY)
    config = with_params(base, {"train.learning_rate": 3e-4, "lora.r": 4}, name="t-7")
    assert (config.train.learning_rate, config.lora.r, config.name) == (3e-4, 4, "t-7")
    assert config.base_dir == base.base_dir and base.lora.r == 8  # the base is untouched
    with pytest.raises(ValidationError):
        with_params(base, {"lora.r": 0})


def test_pruners_and_samplers_are_optunas():
    assert type(make_pruner(parse_spec(spec_text()))).__name__ == "MedianPruner"
    assert type(make_pruner(parse_spec(spec_text(pruner={"kind": "hyperband"})))).__name__ == "HyperbandPruner"
    assert type(make_pruner(parse_spec(spec_text(pruner={"kind": "none"})))).__name__ == "NopPruner"
    assert type(make_sampler(parse_spec(spec_text()))).__name__ == "TPESampler"
    assert type(make_sampler(parse_spec(spec_text(sampler="random")))).__name__ == "RandomSampler"


def test_storage_passwords_stay_in_the_environment(monkeypatch):
    from workbench.sweep.store import SweepError

    url = "postgresql://sweeper:${WB_DB_PASSWORD}@db.internal:5432/optuna"
    monkeypatch.delenv("WB_DB_PASSWORD", raising=False)
    with pytest.raises(SweepError, match="WB_DB_PASSWORD is not set"):
        expand_url(url)
    monkeypatch.setenv("WB_DB_PASSWORD", "s3cret")
    assert expand_url(url) == "postgresql://sweeper:s3cret@db.internal:5432/optuna"
    assert safe_url("postgresql://sweeper:s3cret@db/optuna") == "postgresql://sweeper:***@db/optuna"
    assert safe_url("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"


def test_trial_views_round_trip_and_the_best_follows_the_direction(tmp_path):
    sweep = SweepDir(tmp_path)
    views = [
        TrialView(0, "COMPLETE", {"lora.r": 4}, 1.5, "r0", intermediate={2: 1.7, 4: 1.5}),
        TrialView(1, "PRUNED", {"lora.r": 8}, 1.9, "r1", pruned_at=2, intermediate={2: 1.9}),
        TrialView(2, "COMPLETE", {"lora.r": 16}, 1.2, "r2"),
        TrialView(3, "FAIL", {"lora.r": 16}, error="boom"),
    ]
    sweep.write_trials(views)
    assert sweep.trials() == views
    assert best_trial(views, "minimize").number == 2
    assert best_trial(views, "maximize").number == 0
    sweep.trials_path.write_text("{not json")
    assert sweep.trials() == []


def test_a_seeded_sampler_started_again_draws_anew():
    import optuna

    spec = parse_spec(spec_text(sampler="random", seed=3))

    def first(sampler) -> float:
        return optuna.create_study(sampler=sampler).ask().suggest_float("x", 0, 1)

    assert first(make_sampler(spec)) == first(make_sampler(spec))  # the seed repeats a sweep
    assert first(make_sampler(spec, 2)) != first(make_sampler(spec))  # a resumed driver moves on
