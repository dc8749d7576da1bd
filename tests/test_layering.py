"""The dependency runs one way: tfrecords_tools (the Kaggle data tools) imports nothing from monet_keras."""

import ast
import os

import tfrecords_tools


def _imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_tfrecords_tools_imports_nothing_from_monet_keras():
    folder = os.path.dirname(tfrecords_tools.__file__)
    sources = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".py"))
    assert len(sources) >= 10
    upward = [(os.path.basename(path), module) for path in sources for module in _imported_modules(path)
              if module == "monet_keras" or module.startswith("monet_keras.")]
    assert upward == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from monet_keras.errors import MonetKerasError\n    import monet_keras\n")
    assert list(_imported_modules(str(path))) == ["monet_keras.errors", "monet_keras"]
