"""The package's shape: no import cycle between its modules (imports inside functions count too: they are
how a cycle hides), and the layers point one way: core <- knowledge <- chatbot <- ui, finetune."""

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "knowledge", "chatbot", "ui", "finetune")
LAYER = {"core": 0, "knowledge": 1, "chatbot": 2, "ui": 3, "finetune": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    modules = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for target in targets:
                while target and target not in modules:  # `from a.b import c`: the module a.b
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):  # a package's own __init__
                    graph.add_edge(name, target)
    return graph


def test_no_module_imports_itself_through_others():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, f"import cycles: {sorted(cycles, key=len)[:5]}"


def test_imports_never_run_back_up_the_layers():
    upward = [(a, b) for a, b in import_graph().edges if LAYER[b.split(".")[0]] > LAYER[a.split(".")[0]]]
    assert not upward, upward


def test_the_stand_ins_import_without_pytest():
    probe = "import sys, chatbot.testing, knowledge.testing; print('pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_no_module_is_a_room_of_many_jobs():
    """Files stay under 450 lines (400 in chatbot/records/), functions under 60, outside bench/ and tests/."""
    too_long = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            limit = 400 if "records" in path.parts else 450
            if package != "finetune" and len(source.splitlines()) > limit:
                too_long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
            too_long += [
                f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60
            ]
    assert not too_long, too_long
