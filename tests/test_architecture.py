"""The layers of README's "Layout" are a contract: import-linter checks that each layer imports
only the layers below it, that no two modules of a package import each other (directly or round
a circle), and that the pure rules use no Django; ruff's PLC0415 keeps imports at the top of
modules. These tests run both on the tree, and on a copy with a violation planted, to prove
that each check fails when it should."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "core", "prescribers", "orders", "pharmacy")
BIN = Path(sys.executable).parent


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "lint-imports", "--no-cache", "--config", root / "pyproject.toml"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": f"{BIN}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def ruff(root: Path, *paths: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "ruff", "check", "--no-cache", *paths],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def copy_of_the_tree(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(path: Path, after: str, line: str) -> None:
    text = path.read_text()
    assert after in text
    path.write_text(text.replace(after, f"{after}{line}\n", 1))


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_the_tree_has_no_import_inside_a_function():
    result = ruff(ROOT, "--select", "PLC0415", ".")
    assert result.returncode == 0, result.stdout


def test_an_upward_import_breaks_the_layers(copy_of_the_tree):
    # The prescriber's pages reaching up into the pharmacy for a label.
    plant(
        copy_of_the_tree / "orders" / "order_views.py",
        "from .dose_check import dose_check_answer\n",
        "from pharmacy.selectors import latest_label  # noqa: F401",
    )
    result = lint_imports(copy_of_the_tree)
    assert result.returncode == 1
    assert "Each layer imports only the layers below it BROKEN" in result.stdout
    assert "orders.order_views -> pharmacy.selectors" in result.stdout
    assert "Contracts: 2 kept, 1 broken." in result.stdout


def test_two_modules_importing_each_other_break_the_cycle_contract(copy_of_the_tree):
    # The tasks calling back into the services that queue them.
    plant(
        copy_of_the_tree / "pharmacy" / "tasks.py",
        "from . import outbox\n",
        "from . import notifications  # noqa: F401",
    )
    result = lint_imports(copy_of_the_tree)
    assert result.returncode == 1
    assert "No import cycle between the modules of a package BROKEN" in result.stdout
    assert "Contracts: 2 kept, 1 broken." in result.stdout


def test_a_pure_rule_importing_django_breaks_its_contract(copy_of_the_tree):
    plant(
        copy_of_the_tree / "orders" / "dosing.py",
        "from itertools import pairwise\n",
        "from django.conf import settings  # noqa: F401",
    )
    result = lint_imports(copy_of_the_tree)
    assert result.returncode == 1
    assert "Pure rules use no Django and no database: fast to test exhaustively BROKEN" in (
        result.stdout
    )


def test_an_import_inside_a_function_is_refused(copy_of_the_tree):
    plant(
        copy_of_the_tree / "pharmacy" / "selectors.py",
        "def latest_label(order) -> LabelDocument | None:\n",
        "    from .models import PrintJob  # noqa: F401",
    )
    result = ruff(copy_of_the_tree, "--select", "PLC0415", "pharmacy/selectors.py")
    assert result.returncode == 1
    assert "PLC0415 `import` should be at the top-level of a file" in result.stdout


LAYERS = {"core": 0, "prescribers": 1, "orders": 2, "pharmacy": 3}
# Migrations that depend on a higher layer's: one from before the layers were drawn (orders'
# prescriptions point at the pharmacy's first catalogue), and the three that moved models down
# to where they belong, after the tables the pharmacy app had made for them. No other may.
UPWARD_MIGRATIONS = {
    (("orders", "0002_prescriptions_and_orders"), ("pharmacy", "0003_formulation")),
    (("core", "0001_initial"), ("pharmacy", "0001_initial")),
    (
        ("core", "0002_access_events"),
        ("pharmacy", "0014_formulation_water_activity_and_preservative"),
    ),
    (
        ("orders", "0006_catalogue_and_event_kinds"),
        ("pharmacy", "0014_formulation_water_activity_and_preservative"),
    ),
}


def test_migrations_depend_only_on_their_layer_and_below():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    upward = {
        (key, dependency)
        for key, migration in loader.disk_migrations.items()
        if key[0] in LAYERS
        for dependency in migration.dependencies
        if dependency[0] in LAYERS and LAYERS[dependency[0]] > LAYERS[key[0]]
    }
    assert upward == UPWARD_MIGRATIONS


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    """`makemigrations --check` finds nothing to write: the models and their migrations agree."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
