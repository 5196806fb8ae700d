"""Every ``from utils... import name`` / ``from models... import name`` in the project resolves, including the
imports inside functions that only run in a long benchmark (a module split once left benchmarks/scale.py importing
a module that no longer existed, found only when the benchmark ran)."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN = ("utils", "models", "benchmarks")
FILES = sorted(path for folder in ("", "utils", "models", "benchmarks", "tools", "experiments")
               for path in ((ROOT / folder).rglob("*.py") if folder else ROOT.glob("*.py")))


def own_imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in OWN:
            yield node.module, [alias.name for alias in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OWN:
                    yield alias.name, [], node.lineno


@pytest.mark.parametrize("path", FILES, ids=[str(path.relative_to(ROOT)) for path in FILES])
def test_every_own_import_resolves(path):
    for module_name, names, line in own_imports(path):
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name) or importlib.util.find_spec(f"{module_name}.{name}"), \
                f"{path.relative_to(ROOT)}:{line}: {module_name} has no {name}"
