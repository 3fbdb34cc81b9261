"""The shape of the code: imports follow the data path, and modules stay readable."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["pipeline", "editing", "recognition", "flows"]  # a package may import only those before it
MAX_LINES = 450


def _modules(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ORDER)


@pytest.mark.parametrize("package", ORDER)
def test_no_package_imports_one_later_in_the_data_path(package):
    later = set(ORDER[ORDER.index(package) + 1:])
    offenders = {str(p.relative_to(ROOT)): sorted(_imported_packages(p) & later) for p in _modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_modules_stay_short_or_say_why():
    long = []
    for package in ORDER:
        for path in _modules(package):
            text = path.read_text()
            if text.count("\n") > MAX_LINES and "Longer than" not in (ast.get_docstring(ast.parse(text)) or ""):
                long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert long == []
