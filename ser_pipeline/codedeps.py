"""Which package code a job runs, found by reading the imports, and its digest.

A job must rerun when any code it runs changes, and only then. Snakemake's ``code``
trigger sees only a rule's own text, so each job carries in its ``params`` a digest of the
package modules it can execute: the static import closure of its entry modules (every
``import ser_pipeline...`` / ``from ser_pipeline... import ...`` / relative import anywhere
in a module, function-level imports included), plus every parent package (importing
``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``), plus the package data files whose
names appear as string literals in those modules. Nothing is kept by hand, so nothing can
go stale: a new import is followed the moment it is written.

Imports by computed name (``importlib.import_module(f"...{x}")``) cannot be followed
statically. The registries that do this (model archs, extractors, corpus loaders, demo
generators) are themselves derived here from the decorators that register each entry
(``@register_model("ma_crnn")`` and so on): :func:`registered` maps every name to its
module without importing anything, the runtime lookup uses the same map, and
:mod:`ser_pipeline.config` names the module of the arch, extractor or loader a job uses as
an extra entry. No central list exists, so adding a model reruns nothing else. The
workflow tests check every closure against what a real run of each job imported
(``SER_RECORD_IMPORTS``), so a miss cannot go unnoticed.

Only ``ast`` and ``hashlib`` are used: building the job graph of the full IEMOCAP
configuration parses the package once (tens of milliseconds), then every digest is a
dictionary walk.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

PACKAGE_NAME = "ser_pipeline"
PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"


def module_path(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The file of ``ser_pipeline.x.y`` (module or package), or None if there is none."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts) if parts else root
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [PACKAGE_NAME, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


_DATA_NAME = re.compile(r"""["']([\w./-]+\.(?:yaml|yml|txt|csv|json|tsv))["']""")
_REGISTRATION = re.compile(r"""^\s*@(?:[\w.]+\.)?(\w+)\(\s*["']([^"']+)["']""", re.M)


def _import_statements(text: str):
    """Every import statement of a file, module level or nested, as parsed nodes.

    Only the lines that start an import are parsed (joined with their parenthesised or
    backslash continuations): parsing whole files costs most of a DAG build's time. A
    docstring line that happens to read like an import either fails to parse (skipped) or
    adds a module to the closure: over-inclusion reruns too much, never too little.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(("import ", "from ")):
            chunk = [stripped]
            while (chunk[-1].endswith("\\") or chunk[0].count("(") > sum(c.count(")") for c in chunk)) \
                    and i + 1 < len(lines):
                i += 1
                chunk[-1] = chunk[-1].rstrip("\\")
                chunk.append(lines[i].strip())
            try:
                yield from ast.parse(" ".join(chunk)).body
            except SyntaxError:
                pass
        i += 1


def _imports(text: str, module: str, is_package: bool) -> set[str]:
    found = set()
    for node in _import_statements(text):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names
                         if a.name == PACKAGE_NAME or a.name.startswith(PACKAGE_NAME + "."))
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                    else node.module or "")
            if base == PACKAGE_NAME or base.startswith(PACKAGE_NAME + "."):
                found.add(base)
                # `from pkg import name` may import a submodule called `name`.
                found.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return found


@functools.lru_cache(maxsize=4)
def _scan_package(root: Path = PACKAGE_DIR) -> dict[str, tuple[Path, frozenset, frozenset, frozenset]]:
    """module -> (file, imported ser_pipeline modules that exist, string literals, registrations)."""
    scanned = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        name = _module_name(path, root)
        text = path.read_text()
        scanned[name] = (path, _imports(text, name, path.name == "__init__.py"),
                         frozenset(_DATA_NAME.findall(text)), frozenset(_REGISTRATION.findall(text)))
    return {name: (path, frozenset(i for i in imports if i in scanned), strings, regs)
            for name, (path, imports, strings, regs) in scanned.items()}


def registered(decorator: str, within: str = PACKAGE_NAME, root: Path = PACKAGE_DIR) -> dict[str, str]:
    """{registered name: module} for every ``@<decorator>("name")`` in package ``within``."""
    found: dict[str, str] = {}
    for mod, (_, _, _, regs) in _scan_package(root).items():
        if not (mod == within or mod.startswith(within + ".")):
            continue
        for dec, name in regs:
            if dec != decorator:
                continue
            if name in found:
                raise ValueError(f"'{name}' is registered by @{decorator} in both {found[name]} and {mod}")
            found[name] = mod
    return dict(sorted(found.items()))


def clear_caches() -> None:
    """Forget the scanned package (after files were edited in this process, e.g. in tests)."""
    _scan_package.cache_clear()
    _code_digest.cache_clear()


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(entries, root: Path = PACKAGE_DIR) -> list[str]:
    """Every package module that importing the ``entries`` can execute, sorted."""
    graph = _scan_package(root)
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        if mod not in graph:
            raise KeyError(f"{mod}: no such module in {root}")
        seen.add(mod)
        todo.extend(graph[mod][1])
        todo.extend(p for p in _parents(mod) if p in graph)
    return sorted(seen)


def data_files(modules, root: Path = PACKAGE_DIR) -> list[Path]:
    """Package data files (under ``data/``) named by a string literal in ``modules``."""
    data_dir = root / "data"
    if not data_dir.is_dir():
        return []
    available = {p.name: p for p in data_dir.iterdir() if p.is_file()}
    graph = _scan_package(root)
    names = set()
    for mod in modules:
        names.update(s.rsplit("/", 1)[-1] for s in graph[mod][2] if s.rsplit("/", 1)[-1] in available)
    return [available[n] for n in sorted(names)]


def code_digest(entries, root: Path = PACKAGE_DIR) -> str:
    """Digest of the text of every module in the closure of ``entries`` and its data files."""
    return _code_digest(tuple(sorted(set(entries))), root)


@functools.lru_cache(maxsize=256)
def _code_digest(entries: tuple, root: Path) -> str:
    mods = closure(entries, root)
    h = hashlib.sha256()
    for mod in mods:
        h.update(mod.encode() + b"\0" + module_path(mod, root).read_bytes() + b"\0")
    for path in data_files(mods, root):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
