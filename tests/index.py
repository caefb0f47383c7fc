"""Which test files cover a module: ``python tests/index.py src/descentlab/run/resume.py ...``.

Prints the test files (one per line) that import the module, directly or through the
package that holds it, or whose name or text names the module (its last part as a
word, e.g. ``penalties`` in ``model.penalties``); a test that runs the real CLI
covers the run and config layers too. ``make test-for FILES=...`` runs them. With no
argument, prints the whole index (module: test files).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
CLI_LAYERS = ("descentlab.run", "descentlab.config")


def module_of(path: Path) -> str:
    parts = list(path.resolve().relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(test: Path) -> set[str]:
    names = set()
    tree = ast.parse(test.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    if "run_cli" in test.read_text():
        names.update(CLI_LAYERS)
    return names


def covers(test: Path, module: str) -> bool:
    leaf = module.rpartition(".")[2]
    if test.stem == f"test_{leaf}" or re.search(rf"\b{re.escape(leaf)}\b", test.read_text()):
        return True
    return any(
        name == module or name.startswith(module + ".") or module.startswith(name + ".")
        for name in imported(test)
        if name.startswith("descentlab.")
    )


def tests_for(module: str) -> list[Path]:
    return [t for t in sorted(TESTS.glob("test_*.py")) if covers(t, module)]


def main(argv: list[str]) -> int:
    if not argv:
        for path in sorted((SRC / "descentlab").rglob("*.py")):
            module = module_of(path)
            print(f"{module}: {' '.join(t.name for t in tests_for(module))}")
        return 0
    found = sorted({t for arg in argv for t in tests_for(module_of(Path(arg)))})
    for test in found:
        print(test.relative_to(TESTS.parent))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
