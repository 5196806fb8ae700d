"""Turn pyproject.toml + poetry.lock into pip input, so that `make` installs exactly the locked versions.

    python tools/lockfile.py requirements [--extra umap]  # what to install: the project's dependencies + dev group
    python tools/lockfile.py constraints                  # every locked package as name==version

pip installs the requirements under the constraints. Packages that the lock holds only for other platforms
(e.g. CUDA wheels of torch) are constraints that pip never needs, so nothing extra is installed; torch 2.13.0
resolves to the CPU build these machines provide. Standard library only (Python 3.11's tomllib).
"""

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirements(extras=()):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = list(project["project"]["dependencies"])
    for extra in extras:
        lines += project["project"].get("optional-dependencies", {}).get(extra, [])
    lines += project.get("dependency-groups", {}).get("dev", [])
    return lines


def constraints():
    lock = tomllib.loads((ROOT / "poetry.lock").read_text())
    return sorted(f"{package['name']}=={package['version']}" for package in lock["package"])


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["requirements", "constraints"])
    parser.add_argument("--extra", action="append", default=[])
    args = parser.parse_args(argv)
    lines = requirements(args.extra) if args.what == "requirements" else constraints()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
