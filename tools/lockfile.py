"""Turn pyproject.toml + poetry.lock into pip input, so that `make` installs exactly the locked versions.

    python tools/lockfile.py requirements [--extra NAME]  # what to install: the project's dependencies + dev group
    python tools/lockfile.py constraints                  # every locked package as name==version

pip installs the requirements under the constraints. The lock pins versions only (no file paths, no local build
labels), so the same constraints work everywhere: torch==2.13.0 installs the public index's wheel for the platform
(on Linux the CUDA build, whose nvidia-* dependencies are locked too), or a local CPU build of that version where
pip's configuration offers one (a local label such as +cpu satisfies ==2.13.0). Packages locked only for other
platforms are constraints pip never needs. Standard library only (Python 3.11's tomllib).
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
    """``name==version`` for every package the lock holds at one version.

    A package locked at several versions for overlapping platforms (poetry does this for some of torch's CUDA
    libraries) gets no line: two pins of one name would make pip's resolution impossible on that platform, and
    torch's own metadata pins those libraries exactly.
    """
    lock = tomllib.loads((ROOT / "poetry.lock").read_text())
    versions = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return sorted(f"{name}=={next(iter(found))}" for name, found in versions.items() if len(found) == 1)


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
