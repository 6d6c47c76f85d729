"""The code version of a stage: a hash of exactly the code the stage runs.

A stage runs its own module and every ``wsgm`` module that imports, transitively, and it runs
through the CLI: ``wsgm/__main__.py``, the parts of ``wsgm/cli.py`` every command shares (the
parser, ``main``, the spec and device helpers) and its own ``cmd_<stage>`` function, together
with the shared modules these import (provenance, atomic writes, runtime, errors). Other stages'
``cmd_*`` functions are not part of it, so editing one command reruns only that stage.
``wsgm.config`` and ``wsgm.specs`` are planning code: what they decide reaches a stage only as its
spec, which Snakemake already compares through ``params:``, so the CLI's import of them does not
count (a stage module that imports them itself still hashes them).

Each module is hashed as its syntax tree without docstrings (:func:`code_fingerprint`): comments,
blank lines, line breaks and docstrings rerun nothing; any change to what runs reruns the stage.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PLANNING_MODULES = frozenset({"wsgm.config", "wsgm.specs"})
CLI, MAIN = "wsgm.cli", "wsgm.__main__"


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    if not parts:
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*parts)
    for cand in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _wsgm_imports(tree: ast.AST) -> set[str]:
    """Every wsgm module (or module.name) imported anywhere in ``tree``, lazily imported included."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "wsgm"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "wsgm":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree with the docstrings of its module, classes and functions removed."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_fingerprint(source: str | ast.AST) -> str:
    """What a code hash sees of a module: its syntax tree without docstrings. Comments, blank
    lines, line breaks and docstrings change nothing; any change to what runs changes it."""
    tree = ast.parse(source) if isinstance(source, str) else source
    return ast.dump(_without_docstrings(tree), include_attributes=False)


def _cli_tree(commands: tuple[str, ...]) -> ast.Module:
    """wsgm/cli.py without the ``cmd_*`` functions of the other commands."""
    tree = ast.parse(_module_file(CLI).read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")}
    if not set(commands) <= defined:
        raise KeyError(f"wsgm/cli.py has no command function {sorted(set(commands) - defined)}; "
                       f"it has {sorted(defined)}")
    tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")
                                              and n.name not in commands)]
    return tree


Summary = tuple[str, frozenset[str]]  # (code fingerprint, wsgm modules imported)


def _summary(tree: ast.AST) -> Summary:
    imports = frozenset(_wsgm_imports(tree))  # before the fingerprint, which drops docstrings in place
    return code_fingerprint(tree), imports


@functools.cache
def _module(name: str) -> Summary | None:
    """A module's summary, parsed once per process (None: an imported name, not a module)."""
    path = _module_file(name)
    return None if path is None else _summary(ast.parse(path.read_text()))


@functools.cache
def _cli_entry(commands: tuple[str, ...]) -> Summary:
    return _summary(_cli_tree(commands))


def _hash(roots: dict[str, Summary], skip: frozenset[str] = frozenset()) -> str:
    """Hash of the given modules and, transitively, of every wsgm module they import (but ``skip``)."""
    seen: dict[str, Summary] = dict(roots)
    todo = [m for _, imports in roots.values() for m in imports if m not in skip]
    while todo:
        name = todo.pop()
        if name in seen or (summary := _module(name)) is None:
            continue
        seen[name] = summary
        todo.extend(summary[1])
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + seen[name][0].encode() + b"\0")
    return h.hexdigest()[:16]


@functools.cache
def code_hash(module: str) -> str:
    """Hash of a wsgm module's code and of every wsgm module it imports, transitively."""
    return _hash({module: _module(module)})


@functools.cache
def stage_code_hash(module: str, commands: str | tuple[str, ...]) -> str:
    """Hash of all the code a stage runs: ``module`` (transitively) and its CLI entry, the
    function(s) ``commands`` of wsgm/cli.py it goes through (see the module docstring)."""
    commands = (commands,) if isinstance(commands, str) else tuple(commands)
    stage = _hash({module: _module(module)})
    entry = _hash({CLI: _cli_entry(commands), MAIN: _module(MAIN)}, skip=PLANNING_MODULES)
    return hashlib.sha256(f"{stage}:{entry}".encode()).hexdigest()[:16]


def clear_cache() -> None:
    for cached in (_module, _cli_entry, code_hash, stage_code_hash):
        cached.cache_clear()
