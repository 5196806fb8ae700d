"""The command table and the scenario check that runs before anything trains."""

from pathlib import Path

import pytest

from utils.errors import UserError
from utils.settings import parse_settings, parse_steps
from utils.tmanager import ALIASES, COMMANDS, check_scenario, command_reference

SPEC_COMMANDS = {
    "print", "set", "init_model", "reduce_dim", "wrap_model", "set_config", "init_trainer", "info", "break",
    "set_train_dataset", "set_outputs", "set_trainable", "train", "test_eval", "remove_outputs", "load_from_file",
    "save_datasets", "debug_model",
}  # fmt: skip

GOOD = [
    {"command": "set", "params": {"train_part": 0}},
    {"command": "init_model", "params": None},
    {"command": "wrap_model", "params": {"distil_loss": "NeumfUserRMSE", "users_emb_file": "u.pt",
                                         "particular": True}},
    {"command": "set_outputs", "params": [9]},
    {"command": "init_trainer"},
    {"command": "train"},
    {"command": "test_eval", "params": None},
]


def check(steps, model="NeuMF"):
    return check_scenario(parse_steps(steps), model_name=model)


def error_of(steps, model="NeuMF"):
    with pytest.raises(UserError) as info:
        check(steps, model)
    return info.value


def test_the_table_holds_every_command_of_the_spec_and_the_alias():
    assert set(COMMANDS) == SPEC_COMMANDS
    assert ALIASES["set_output"] == "set_outputs"
    assert all(command.summary for command in COMMANDS.values())
    reference = command_reference()
    for name, command in COMMANDS.items():  # each command's row, and each param of the mapping-taking ones
        assert f"| `{name}` |" in reference
        if name != "set_config":  # its keys are the RecBole settings: their own table in docs/REFERENCE.md
            assert all(f"| `{param}` |" in reference for param in getattr(command.params, "names", ()))


def test_a_valid_scenario_passes_in_both_step_forms():
    long_form = check(GOOD)
    short_form = check([{step["command"]: step.get("params")} for step in GOOD])
    assert [(c.name, p) for _, c, p in long_form] == [(c.name, p) for _, c, p in short_form]


def test_the_seed_spelling_set_output_is_accepted():
    steps = GOOD[:3] + [{"set_output": [9]}] + GOOD[4:]
    assert [c.name for _, c, _ in check(steps)][3] == "set_outputs"


def test_params_written_as_the_string_none_mean_none():
    assert check([{"command": "init_model", "params": "None"}])[0][2] is None


def test_unknown_command_names_step_and_suggests():
    err = error_of(GOOD[:4] + [{"command": "init_trainr"}] + GOOD[5:])
    assert err.step == 5 and "unknown command 'init_trainr'" in err.line()
    assert "did you mean 'init_trainer'" in err.line()


def test_train_before_init_trainer_is_refused():
    err = error_of([{"init_model": None}, {"train": None}])
    assert err.step == 2 and "needs init_trainer" in err.line()


def test_set_outputs_before_wrap_model_is_refused():
    err = error_of([{"init_model": None}, {"set_outputs": [9]}])
    assert "needs wrap_model" in err.line()


def test_wrap_model_before_init_model_is_refused():
    err = error_of([{"wrap_model": {"distil_loss": "NeumfUserRMSE"}}])
    assert "needs init_model" in err.line()


def test_re_initializing_the_model_needs_a_new_trainer():
    err = error_of([{"init_model": None}, {"init_trainer": None}, {"init_model": None}, {"train": None}])
    assert err.step == 4


def test_steps_after_break_are_not_checked():
    checked = check([{"init_model": None}, {"break": None}, {"bogus": 1}])
    assert [c.name for _, c, _ in checked] == ["init_model", "break"]


@pytest.mark.parametrize("params", [[[4, 5], "Train"], [[4], 1], [[4], "true"], [["*", 3], False], "all"])
def test_set_trainable_wants_layers_and_a_real_bool(params):
    err = error_of([{"init_model": None}, {"set_trainable": params}])
    assert err.step == 2 and err.command == "set_trainable"


def test_set_trainable_star():
    assert check([{"init_model": None}, {"set_trainable": [["*"], False]}])[1][2] == [["*"], False]


def test_wrap_model_misspelled_loss_lists_the_available():
    err = error_of([{"init_model": None}, {"wrap_model": {"distil_loss": "NeumfUserRMS"}}])
    assert "did you mean 'NeumfUserRMSE'" in err.line() and "available:" in err.line()


def test_wrap_model_unknown_param_suggests():
    err = error_of([{"init_model": None}, {"wrap_model": {"distil_loss": "NeumfUserRMSE", "particullar": True}}])
    assert "did you mean 'particular'" in err.line()


@pytest.mark.parametrize("step", [
    {"info": 3}, {"info": True}, {"set_train_dataset": -1}, {"set_outputs": []}, {"set_outputs": [0]},
    {"reduce_dim": {"file_in": "a.pt", "file_out": "b.pt"}},
    {"reduce_dim": {"file_in": "a.pt", "file_out": "b.pt", "dimension": "64"}},
    {"reduce_dim": {"file_in": "a.pt", "file_out": "b.pt", "dimension": 64, "method": "tsne"}},
    {"set_config": {}}, {"set": {"train_part": "one"}}, {"init_trainer": {"epochs": 3}},
])
def test_bad_params_are_refused_before_running(step):
    err = error_of([{"init_model": None}, step])
    assert err.step == 2


@pytest.mark.parametrize("raw,message", [
    ({"distil_loss_weight": 1.7}, r"distil_loss_weight must be a number in \[0, 1\], got 1.7"),
    ({"distil_loss_weight": "half"}, "distil_loss_weight"),
    ({"add_train_split": [0.5]}, "add_train_split"),
    ({"add_train_shuffle": "yes"}, "add_train_shuffle"),
    ({"logger_level": "LOUD"}, "logger_level"),
    ({"llm_config": {"use_user_embs": True}}, "did you mean 'use_user_emb'"),
    ({"llm_config": {"preprocess_from_json": {"from": "a.json", "to": "a.pt", "by": "magic"}}},
     "preprocess_from_json.by must be an alignment, got 'magic'"),
    ({"scenario": [{"command": "print", "param": "x"}]}, "unexpected key"),
    ({"scenario": [42]}, "cannot read 42"),
])
def test_bad_distillation_settings_are_refused(raw, message):
    with pytest.raises(UserError, match=message):
        parse_settings({"model": "NeuMF", "dataset": "ml-100k", **raw})


def test_settings_split_recbole_keys_from_ours():
    settings, recbole = parse_settings({"model": "NeuMF", "epochs": 3, "distil_loss_weight": 0.3,
                                        "journal_name": "j.csv", "scenario": [{"init_model": None}]})
    assert recbole == {"model": "NeuMF", "epochs": 3}
    assert settings.distil_loss_weight == 0.3 and settings.journal_name == "j.csv"
    assert settings.scenario[0].command == "init_model"


def test_the_reference_documents_every_command_and_the_readme_stays_one_screen_of_links():
    root = Path(__file__).resolve().parent.parent
    reference = (root / "docs" / "REFERENCE.md").read_text()
    for name in COMMANDS:
        assert f"| `{name}`" in reference, name
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    for doc in ("GUIDE", "REFERENCE", "ARCHITECTURE", "RESULTS"):
        assert f"(docs/{doc}.md" in readme and (root / "docs" / f"{doc}.md").is_file(), doc
    guide = (root / "docs" / "GUIDE.md").read_text()
    assert "\n## Promises: mistakes, interruptions, what is never lost\n" in guide
    assert "(docs/GUIDE.md#promises-mistakes-interruptions-what-is-never-lost)" in readme


@pytest.mark.parametrize("text, value", [
    ("1e-5", 1e-5), ("1E3", 1000.0), (".5", 0.5), ("[1, 2]", [1, 2]), ("{'a': 1}", {"a": 1}), ("True", True),
    ("false", False), ("None", None),
])  # fmt: skip
def test_literal_strings_of_the_recbole_part_become_values_before_the_check(text, value):
    _, recbole = parse_settings({"model": "SimpleX", "reg_weight": text})
    assert recbole["reg_weight"] == value and type(recbole["reg_weight"]) is type(value)


@pytest.mark.parametrize("text", ["SimpleX", "[20,60)", "MRR@10", "ml-100k", "id", "__import__('os')", "1j"])
def test_strings_that_are_no_plain_literal_stay_strings(text):
    assert parse_settings({"model": "SimpleX", "x": text})[1]["x"] == text


def test_the_readmes_two_phase_scenario_passes_the_check():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("## The two-phase scenario", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    import yaml

    raw = yaml.safe_load(block)
    settings, _ = parse_settings({"model": "NeuMF", **raw})
    names = [command.name for _, command, _ in check_scenario(settings.scenario, model_name="NeuMF")]
    assert names.count("train") == 2 and names.index("wrap_model") < names.index("set_outputs")
    assert settings.distil_loss_weight == 0.5
