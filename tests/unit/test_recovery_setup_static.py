"""One way to replace a recovery setup: a scan of the server's source.

Storing a setup (`recovery.setup.store`, which deletes the one in force with its operator
share) is reached only from `recovery.setup.put` when the account has no setup yet and from
`recovery.setup_changes.apply_change` (the pending replacement, after its delay and
confirmation); no other server module deletes recovery setups.
"""
from __future__ import annotations

import ast

from tests.unit.test_signing_gate_static import ROOT, _server_modules

SETUP = ROOT / "recovery" / "setup.py"
CHANGES = ROOT / "recovery" / "setup_changes.py"


def _calls_in(tree) -> dict[str, set[str]]:
    """function name → the names it calls (plain or attribute calls)."""
    out = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            out[fn.name] = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
                            for n in ast.walk(fn) if isinstance(n, ast.Call)}
    return out


def _mentions_store_of_setup(tree) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "recovery.setup" and \
                any(a.name == "store" for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "store" and isinstance(node.value, ast.Name) and \
                node.value.id in ("setup", "setups"):
            return True
    return False


def _deletes_setups(tree) -> bool:
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "delete" and n.args and
               isinstance(n.args[0], ast.Name) and n.args[0].id == "RecoverySetup" for n in ast.walk(tree))


def test_the_scan_sees_the_two_callers():
    assert "store" in _calls_in(ast.parse(SETUP.read_text()))["put"]
    changes = ast.parse(CHANGES.read_text())
    assert _mentions_store_of_setup(changes) and "store" in _calls_in(changes)["apply_change"]
    assert _deletes_setups(ast.parse(SETUP.read_text()))


def test_only_put_and_the_pending_change_store_a_setup():
    offenders = []
    for path, tree in _server_modules():
        if path in (SETUP, CHANGES):
            continue
        if _mentions_store_of_setup(tree) or _deletes_setups(tree):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
    callers = [name for name, called in _calls_in(ast.parse(CHANGES.read_text())).items() if "store" in called]
    assert callers == ["apply_change"]
    callers = [name for name, called in _calls_in(ast.parse(SETUP.read_text())).items() if "store" in called]
    assert callers == ["put"]


def test_put_stores_at_once_only_without_a_setup():
    """In `put`, the only `store(...)` call sits in the branch of `existing is None`."""
    put = next(f for f in ast.walk(ast.parse(SETUP.read_text())) if isinstance(f, ast.FunctionDef) and f.name == "put")
    branches = [n for n in ast.walk(put) if isinstance(n, ast.If) and isinstance(n.test, ast.Compare)
                and getattr(n.test.left, "id", None) == "existing" and isinstance(n.test.ops[0], ast.Is)]
    assert len(branches) == 1
    inside = {id(n) for n in ast.walk(branches[0]) if isinstance(n, ast.Call)}
    stores = [n for n in ast.walk(put) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "store"]
    assert stores and all(id(n) in inside for n in stores)
