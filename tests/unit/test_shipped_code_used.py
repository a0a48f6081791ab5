"""Shipped code is code the shipped code uses: no function, class or method in engine/, actors/ or
jobs/ may be referenced only from tests (or from nowhere). A copy kept alive for tests is a second
implementation of a rule that the job does not run.

The check reads the source (AST), resolving names through imports: a module-level function or class
counts as used when shipped code (engine/, actors/, jobs/) or a benchmark names it (imported, called
in its own module, reached as `module.name`, named by a "module:function" string such as an entry
point in pyproject.toml, or by getattr); a method, when that code reads an attribute of its name
(`obj.name` anywhere, `self.name` within its class's family: Ray's `actor.name.remote()` counts).
Not counted: a function's references to itself, and references from code that is itself unused.
Exempt: dunder methods (Python calls them), pydantic validators (pydantic calls them), and methods
that override a third-party base class's (the framework calls them, e.g. Ray's Datasource).
"""

from __future__ import annotations

import ast
import functools
import importlib
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("engine", "actors", "jobs")
USERS = (*SHIPPED, "benchmarks")  # a function only a benchmark runs is used: benchmarks measure shipped code
CALLED_BY_PYDANTIC = {
    "field_validator",
    "model_validator",
    "validator",
    "root_validator",
    "field_serializer",
    "model_serializer",
}

# "module:qualified name" -> why it stays although shipped code does not name it. At most five.
ALLOWED: dict[str, str] = {}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(folders) -> dict[str, tuple[Path, ast.Module]]:
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found[module_of(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def is_package(modules, name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


class Bindings:
    """What each imported name of one module stands for: ("module", name) or ("symbol", module, name)."""

    def __init__(self, module: str, path: Path, tree: ast.Module, modules):
        self.names: dict[str, tuple] = {}
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.names[alias.asname] = ("module", alias.name)
                    else:
                        self.names[alias.name.split(".")[0]] = ("module", alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    self.names[alias.asname or alias.name] = (
                        ("module", full) if is_package(modules, full) else ("symbol", base, alias.name)
                    )


class References(ast.NodeVisitor):
    """The names a module's code refers to, each with the top-level definition (or method) it sits in."""

    def __init__(self, module: str, bindings: Bindings):
        self.module, self.bindings = module, bindings
        self.symbols: set[tuple[str, str, str | None]] = set()  # (module, name, enclosing definition)
        # (attribute name, enclosing definition, on self/cls?)
        self.attributes: set[tuple[str, str | None, bool]] = set()
        self.strings: set[str] = set()
        self.owner: str | None = None

    def visit_FunctionDef(self, node, owner_prefix: str = ""):
        outer = self.owner
        if self.owner is None or owner_prefix:
            self.owner = f"{owner_prefix}{node.name}"
        self.generic_visit(node)
        self.owner = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        outer = self.owner
        if self.owner is None:
            self.owner = node.name
            for item in node.body:  # a method is its own owner: Class.method
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for decorator in item.decorator_list:
                        self.visit(decorator)
                    self.visit_FunctionDef(item, owner_prefix=f"{node.name}.")
                else:
                    self.visit(item)
            for part in (*node.bases, *node.keywords, *node.decorator_list):
                self.visit(part)
        else:
            self.generic_visit(node)
        self.owner = outer

    def visit_Name(self, node):
        bound = self.bindings.names.get(node.id)
        if bound is None:
            self.symbols.add((self.module, node.id, self.owner))
        elif bound[0] == "symbol":
            self.symbols.add((bound[1], bound[2], self.owner))

    def visit_Attribute(self, node):
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and self.bindings.names.get(base.id, ("",))[0] == "module":
            module = self.bindings.names[base.id][1]
            for part in reversed(chain):  # engine.builders.groups.name: the module, then the name in it
                self.symbols.add((module, part, self.owner))
                module = f"{module}.{part}"
        on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
        self.attributes.add((node.attr, self.owner, on_self))
        self.generic_visit(node)

    def visit_Call(self, node):
        # getattr(obj, "name") and its kin: a use of `name` by its string
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) > 1
        ):
            if isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                self.strings.add(node.args[1].value)
        self.generic_visit(node)

    def visit_Constant(self, node):
        # "package.module:function" or "package.module.function": a dotted path names what it ends in
        # (prose such as a docstring that mentions a function is not a use of it)
        if (
            isinstance(node.value, str)
            and ("." in node.value or ":" in node.value)
            and not any(c.isspace() for c in node.value)
        ):
            for word in node.value.replace(":", ".").split("."):
                if word.isidentifier():
                    self.strings.add(word)


def definitions(modules):
    """(module, qualified name, node, class node or None) of every top-level function and class
    and every method of a top-level class."""
    for module, (_, tree) in modules.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield module, node.name, node, None
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        yield module, f"{node.name}.{item.name}", item, node


def decorator_names(node) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return names


def overrides_third_party(module: str, cls: ast.ClassDef, method: str, bindings: Bindings) -> bool:
    """Whether a base of `cls` imported from outside the project has an attribute `method`."""
    for base in cls.bases:
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
        bound = bindings.names.get(name) if isinstance(base, ast.Name) else None
        if bound and bound[0] == "symbol" and bound[1].split(".")[0] not in USERS:
            if hasattr(getattr(importlib.import_module(bound[1]), bound[2], None), method):
                return True
    return False


def entry_points() -> set[str]:
    """The names pyproject.toml's scripts and entry points run ("package.module:function")."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    targets = [
        *project.get("scripts", {}).values(),
        *project.get("gui-scripts", {}).values(),
        *(target for group in project.get("entry-points", {}).values() for target in group.values()),
    ]
    return {target.partition(":")[2].split(".")[0] for target in targets if ":" in target}


def collect(modules, all_modules):
    symbols, attributes, strings = defaultdict(set), defaultdict(set), set()
    bindings = {}
    for module, (path, tree) in modules.items():
        bindings[module] = Bindings(module, path, tree, all_modules)
        refs = References(module, bindings[module])
        refs.visit(tree)
        for target_module, name, owner in refs.symbols:
            symbols[(target_module, name)].add((module, owner))
        for name, owner, on_self in refs.attributes:
            attributes[name].add((module, owner, on_self))
        strings |= refs.strings
    return symbols, attributes, strings, bindings


def resolve(symbols, bindings):
    """Follow re-exports: a reference to (package, name) where the package only imports `name`
    is a reference to the module it imports it from."""
    resolved = defaultdict(set)
    for (module, name), users in symbols.items():
        seen = set()
        while module in bindings and (module, name) not in seen:
            seen.add((module, name))
            bound = bindings[module].names.get(name)
            if not bound or bound[0] != "symbol":
                break
            module, name = bound[1], bound[2]
        resolved[(module, name)] |= users
    return resolved


def class_family(modules) -> dict[str, set[str]]:
    """Class name -> the names of its project ancestors and descendants, itself included: where
    `self.name` may reach a method of that class."""
    bases = {
        node.name: {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
        for _, (_, tree) in modules.items()
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }

    def ancestors(name, seen):
        for base in bases.get(name, ()):
            if base in bases and base not in seen:
                seen.add(base)
                ancestors(base, seen)
        return seen

    up = {name: ancestors(name, set()) for name in bases}
    return {name: {name} | up[name] | {other for other in bases if name in up[other]} for name in bases}


@functools.cache
def unused_in_shipped_code() -> dict[str, str]:
    """'module:qualified name' -> 'tests' (named only by tests) or 'nowhere', for every definition
    in engine/, actors/ and jobs/ that shipped code and benchmarks do not use. A use from code that
    is itself unused does not count (found again until nothing more is unused)."""
    users = sources(USERS)
    tests = sources(["tests"])
    all_modules = set(users) | set(tests)
    symbols, attributes, strings, bindings = collect(users, all_modules)
    symbols = resolve(symbols, bindings)
    strings |= entry_points()
    test_symbols, test_attributes, test_strings, _ = collect(tests, all_modules)
    test_symbols = resolve(test_symbols, bindings)
    family = class_family(users)
    candidates = []
    for module, qualname, node, cls in definitions({m: v for m, v in users.items() if m.split(".")[0] in SHIPPED}):
        name = node.name
        if cls is not None:
            if name.startswith("__") and name.endswith("__"):
                continue
            if decorator_names(node) & CALLED_BY_PYDANTIC:
                continue
        candidates.append((module, qualname, node, cls))

    unused: dict[str, str] = {}

    def live(module: str, owner: str | None) -> bool:
        top = (owner or "").partition(".")[0]
        return not ({f"{module}:{owner}", f"{module}:{top}"} & (set(unused) - set(ALLOWED)))

    while True:
        found = {}
        for module, qualname, node, cls in candidates:
            name, key = node.name, f"{module}:{qualname}"
            if key in unused:
                continue
            if cls is None:
                used = name in strings or any(
                    owner != qualname and live(m, owner) for m, owner in symbols.get((module, name), ())
                )
                in_tests = bool(test_symbols.get((module, name))) or name in test_strings
            else:
                # self.name reaches this method only from its own class's family; obj.name from anywhere
                used = name in strings or any(
                    (m, owner) != (module, qualname)
                    and live(m, owner)
                    and (not on_self or (owner or "").partition(".")[0] in family.get(cls.name, {cls.name}))
                    for m, owner, on_self in attributes.get(name, ())
                )
                in_tests = name in test_attributes or name in test_strings
                if not used and overrides_third_party(module, cls, name, bindings[module]):
                    continue  # the framework calls it
            if not used:
                found[key] = "tests" if in_tests else "nowhere"
        if not found:
            return unused
        unused.update(found)


def test_no_shipped_function_is_used_only_by_tests():
    assert len(ALLOWED) <= 5, "the allow-list is for the odd exception, not a second home for test helpers"
    unused = {name: where for name, where in unused_in_shipped_code().items() if name not in ALLOWED}
    listing = "\n".join(
        f"  {name}  (referenced {'only from tests' if where == 'tests' else 'nowhere'})"
        for name, where in sorted(unused.items())
    )
    assert not unused, f"shipped code that only tests (or nothing) use; delete it, or move it into tests/:\n{listing}"


def test_the_allow_list_names_only_what_the_check_would_flag():
    flagged = unused_in_shipped_code()
    assert not set(ALLOWED) - set(flagged), (
        f"allowed but used (drop from ALLOWED): {sorted(set(ALLOWED) - set(flagged))}"
    )
