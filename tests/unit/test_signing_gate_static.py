"""Nothing but the signing gate reaches the cosigner key: a scan of the server's source.

The server's packages (everything but the reference client, devnet, benches and tests)
may sign a PSBT (`.sign_with(`) or open a sealed cosigner key (`CosignerKey` together
with `open_secret`) only in cosigner/gate.py, and `_cosign` is referred to nowhere else.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SERVER = {"client", "devnet", "bench", "tests", ".venv", "var", "migrations"}
GATE = ROOT / "cosigner" / "gate.py"


def _server_modules():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in NOT_SERVER:
            yield path, ast.parse(path.read_text(), filename=str(rel))


def _names(tree) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.FunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found.add(node.name.split(".")[-1])
    return found


def test_the_scan_sees_the_gate_itself():
    names = _names(ast.parse(GATE.read_text()))
    assert {"sign_with", "_cosign", "open_secret", "CosignerKey", "authorize_and_sign"} <= names


def test_only_the_gate_signs_or_opens_a_cosigner_key():
    offenders = []
    for path, tree in _server_modules():
        if path == GATE:
            continue
        names = _names(tree)
        if "sign_with" in names or "_cosign" in names or {"CosignerKey", "open_secret"} <= names:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_every_signing_path_ends_in_the_gate():
    """submit, approve and release (the bump and the sweep are submitted) call the gate."""
    tree = ast.parse((ROOT / "cosigner" / "spends.py").read_text())
    calls = {fn.name: {n.func.attr for n in ast.walk(fn) if isinstance(n, ast.Call)
                       and isinstance(n.func, ast.Attribute)}
             for fn in tree.body if isinstance(fn, ast.FunctionDef)}
    for path in ("submit", "approve", "release"):
        assert "authorize_and_sign" in calls[path], path
