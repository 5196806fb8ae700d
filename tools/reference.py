"""Write docs/REFERENCE.md from the declarations: the experiment file's keys, the RecBole settings the tool checks,
the scenario commands and their params, the losses and their options.

    python tools/reference.py            # rewrite docs/REFERENCE.md
    python tools/reference.py --check    # exit 1 when docs/REFERENCE.md is not what the declarations give

Nothing here is written by hand: a key, a kind, a default or a line of doc changes in its declaration
(``utils/settings.py``, ``utils/profiles.py``, ``utils/tmanager.py``, ``models/losses.py``, a model class's
``settings``) and this file follows; ``tests/test_declarations.py`` fails while it does not.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's packages

TARGET = ROOT / "docs" / "REFERENCE.md"
HEADER = """# Reference

Generated from the declarations by `python tools/reference.py` (do not edit by hand; `tests/test_declarations.py`
fails when this file is stale). Every value below is checked before anything trains: a wrong one stops the run with
one `error:` line naming the file, the step and the value (see the guide's "Promises", docs/GUIDE.md).
"""


def _section(title, text, summary=""):
    return [f"## {title}", "", *([summary, ""] if summary else []), text, ""]


def _first_line(doc):
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def losses_reference():
    """Every registered loss, one line each, and the options of those that take any."""
    import models.losses as losses
    from utils.params import Schema, reference

    lines = ["| loss | aliases | what it reads |", "|---|---|---|"]
    names = losses.registered_losses()
    for name in names:
        cls = losses.find_loss(name)
        aliases = sorted(key for key, value in losses._LOSSES.items() if value is cls and key != name)
        lines.append(f"| `{name}` | {', '.join(aliases) or '-'} | {_first_line(cls.__doc__)} |")
    for name in names:
        cls = losses.find_loss(name)
        if cls.options:
            lines += ["", reference(Schema(tuple(cls.options)), f"{name} options (wrap_model params next to "
                                                                  f"distil_loss: {name})")]
    return "\n".join(lines)


def model_settings():
    """(title, schema) of each model of models/ that declares its own settings (the class's ``settings``)."""
    from utils.params import Schema
    from utils.registry import get_model_class

    names = sorted(path.stem for path in (ROOT / "models").glob("*.py") if not path.stem.startswith("_"))
    found = []
    for name in names:
        module = __import__(f"models.{name}", fromlist=["*"])
        for cls in vars(module).values():
            if isinstance(cls, type) and cls.__module__ == module.__name__ and cls.__name__.lower() == name:
                if isinstance(getattr(get_model_class(cls.__name__), "settings", None), Schema):
                    found.append((f"model: {cls.__name__} (models/{name}.py)", cls.settings))
    return found


def reference_text():
    """The whole of docs/REFERENCE.md."""
    from utils.params import EVAL_ARGS, reference
    from utils.profiles import LLM_OPTIONS, PROFILE_SPEC
    from utils.settings import COLD_START, LLM_CONFIG, PREPROCESS_FROM_JSON, PREPROCESS_RANDOM, RECBOLE, SETTINGS
    from utils.tmanager import command_reference

    parts = [HEADER]
    for title, schema in (("The experiment file's own keys", SETTINGS), ("llm_config", LLM_CONFIG),
                          ("llm_config.preprocess_from_json", PREPROCESS_FROM_JSON),
                          ("llm_config.preprocess_random", PREPROCESS_RANDOM),
                          ("llm_config.build_profiles", PROFILE_SPEC), ("build_profiles.llm", LLM_OPTIONS),
                          ("cold_start", COLD_START), ("RecBole settings the tool checks", RECBOLE),
                          ("eval_args", EVAL_ARGS), *model_settings()):
        parts += _section(title, reference(schema), schema.summary)
    parts += _section("Scenario commands", command_reference(),
                      "A step is `{command: NAME, params: P}` or `{NAME: P}`; `needs` is the order check's.")
    parts += _section("Distillation losses", losses_reference(),
                      "`wrap_model`'s `distil_loss` names one (or an alias); a model's own file may register more.")
    return "\n".join(parts).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/REFERENCE.md is stale")
    args = parser.parse_args(argv)
    text = reference_text()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        print("docs/REFERENCE.md is " + ("current" if current == text else "stale: run python tools/reference.py"))
        return 0 if current == text else 1
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
