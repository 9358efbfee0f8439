"""The structure the method files keep: no import cycle, infra/ imports no method file, one definition of each
constant, no ctypes in a method file (read from the source with ast, nothing imported)."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = sorted(name[:-3] for name in os.listdir(ROOT) if name.endswith(".py"))  # the method files and entry points
INFRA = sorted(os.path.join("infra", name) for name in os.listdir(os.path.join(ROOT, "infra")) if name.endswith(".py"))


def imported(path):
    """The top-level modules of the repository that the file imports, anywhere in it (inside functions too)."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(TOP)


def test_no_two_modules_import_each_other():
    graph = {name: imported(name + ".py") - {name} for name in TOP}
    mutual = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert not mutual


def test_infra_imports_no_top_level_module():
    assert {path: imported(path) for path in INFRA if imported(path)} == {}


def test_no_ctypes_in_a_method_file():
    assert [name for name in TOP if "ctypes" in open(os.path.join(ROOT, name + ".py")).read()] == []


def test_the_task_prefixes_are_defined_once():
    defined = {}
    for name in TOP:
        with open(os.path.join(ROOT, name + ".py")) as f:
            for node in ast.parse(f.read()).body:
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name) and target.id.endswith("_PREFIX"):
                            defined.setdefault(target.id, []).append(name)
    assert {key: files for key, files in defined.items() if len(files) > 1} == {}
