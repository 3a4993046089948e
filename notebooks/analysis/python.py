"""Static analysis of Python cells: the names a cell defines, reads and mutates.

The rules (docs/notebooks.md states them for users):

- ``defines`` are module-level bindings that exist after the cell ran:
  assignments (plain, augmented, annotated with a value), imports, ``def``,
  ``class``, ``for``/``with`` targets, walrus, ``match`` captures and names a
  function writes through ``global``. A bare annotation (``x: int``) binds
  nothing; ``del x`` of a name the cell bound removes it; ``except E as e``
  binds ``e`` only inside its handler (Python deletes it afterwards).
- ``references`` are names read before the cell binds them, in statement
  order (``x = f(x)`` reads ``x``), plus globals read anywhere inside
  function, lambda or class bodies that the cell never binds. Builtins go to
  ``builtin_references`` (they link only when an earlier cell rebinds them).
- Names starting with ``_`` are private to the cell: never defined nor read.
- In-place mutation of a name the cell did not bind (``df["c"] = …``,
  ``obj.a = …``, ``x += 1``, ``del t[k]``, a mutating method call, any call
  with ``inplace=True``) makes it a reference *and* a ``mutation_define``, and
  puts a warning on the cell. Other method calls are reads.
- Scoping follows Python: function locals, closures, class bodies (invisible
  to their methods) and comprehension variables never leak.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable

from notebooks.analysis.cells import CellAnalysis, Diagnostic, parse_annotations

BUILTINS = frozenset(dir(builtins))

MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "remove",
        "pop",
        "clear",
        "sort",
        "reverse",
        "update",
        "add",
        "discard",
        "setdefault",
        "popitem",
    }
)

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _param_names(args: ast.arguments) -> set[str]:
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    return names


def _scope_bindings(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str], set[str]]:
    """Names bound in one scope (locals, ``global``, ``nonlocal``), as the compiler decides.

    Walks the scope without entering nested scopes, except for walrus targets
    inside comprehensions, which bind in the enclosing scope.
    """
    bound: set[str] = set()
    glob: set[str] = set()
    nonloc: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global):
            glob.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            nonloc.update(node.names)
        elif isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
        elif isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                stack.extend(node.bases)
                stack.extend(node.keywords)
            else:
                stack.extend(node.args.defaults)
                stack.extend(d for d in node.args.kw_defaults if d is not None)
        elif isinstance(node, ast.Lambda):
            stack.extend(node.args.defaults)
            stack.extend(d for d in node.args.kw_defaults if d is not None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, _COMPREHENSIONS):
            bound.update(
                n.target.id
                for n in ast.walk(node)
                if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name)
            )
        else:
            if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
                bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                bound.add(node.rest)
            stack.extend(ast.iter_child_nodes(node))
    return bound - glob - nonloc, glob, nonloc


class _Scope:
    __slots__ = ("deferred", "globals", "kind", "locals", "nonlocals", "parent")

    def __init__(
        self,
        kind: str,
        parent: _Scope | None,
        locals_: set[str] | None = None,
        globals_: set[str] | None = None,
        nonlocals: set[str] | None = None,
    ) -> None:
        self.kind = kind
        self.parent = parent
        self.locals = locals_ or set()
        self.globals = globals_ or set()
        self.nonlocals = nonlocals or set()
        # Code in a function body runs later, when everything the cell binds exists.
        self.deferred = kind == "function" or (parent is not None and parent.deferred)


class _Analyser(ast.NodeVisitor):
    def __init__(self) -> None:
        self.scope = _Scope("module", None)
        self.bound: set[str] = set()  # module names bound so far, in execution order
        self.ever_bound: set[str] = set()
        self.defines: dict[str, None] = {}
        self.refs: dict[str, None] = {}
        self.builtin_refs: dict[str, None] = {}
        self.mutations: dict[str, None] = {}
        self.deferred_reads: dict[str, None] = {}
        self.diags: list[Diagnostic] = []

    # -- name resolution -------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        """``local``, ``immediate`` (module scope, read now) or ``deferred`` (read later)."""
        s = self.scope
        innermost = True
        while s.kind != "module":
            if name in s.globals:
                break
            if s.kind == "class":
                if innermost and name in s.locals:
                    return "local"
            elif name in s.locals or name in s.nonlocals:
                return "local"
            innermost = False
            assert s.parent is not None
            s = s.parent
        return "deferred" if self.scope.deferred else "immediate"

    def _at_module(self, name: str) -> bool:
        return self.scope.kind == "module" or name in self.scope.globals

    def _ref(self, name: str) -> None:
        if name.startswith("_"):
            return
        (self.builtin_refs if name in BUILTINS else self.refs)[name] = None

    def _read(self, name: str) -> None:
        where = self._resolve(name)
        if where == "deferred":
            self.deferred_reads[name] = None
        elif where == "immediate" and name not in self.bound:
            self._ref(name)

    def _bind_module(self, name: str) -> None:
        self.bound.add(name)
        if not self.scope.deferred:
            # A ``global`` write inside a function binds nothing until it is called.
            self.ever_bound.add(name)
        if not name.startswith("_"):
            self.defines.pop(name, None)
            self.defines[name] = None

    def _store(self, name: str) -> None:
        if self._at_module(name):
            self._bind_module(name)

    def _is_upstream(self, name: str) -> bool:
        return (
            not name.startswith("_")
            and self._resolve(name) == "immediate"
            and name not in self.bound
        )

    def _mutation(self, expr: ast.expr, node: ast.AST, how: str) -> None:
        base = expr
        while isinstance(base, (ast.Attribute, ast.Subscript)):
            base = base.value
        if isinstance(base, ast.Name) and self._is_upstream(base.id):
            self._mutate(base.id, node, how)

    def _mutate(self, name: str, node: ast.AST, how: str) -> None:
        self._ref(name)
        if name in self.mutations:
            return
        self.mutations[name] = None
        self.diags.append(
            Diagnostic(
                "warn",
                "mutation",
                f"mutates upstream variable '{name}' in place ({how}); "
                f"this cell becomes the producer of '{name}' for later cells",
                getattr(node, "lineno", None),
            )
        )

    # -- targets ---------------------------------------------------------------------------

    def _target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._store(target.id)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._target(elt)
        elif isinstance(target, ast.Attribute):
            self.visit(target.value)
            self._mutation(target.value, target, f"assignment to .{target.attr}")
        elif isinstance(target, ast.Subscript):
            self.visit(target.value)
            self.visit(target.slice)
            self._mutation(target.value, target, "item assignment")
        else:
            self.visit(target)

    # -- statements ------------------------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if self.scope.kind != "function":  # annotations of locals are never evaluated
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self._target(node.target)
        elif isinstance(node.target, (ast.Attribute, ast.Subscript)):
            self.visit(node.target.value)  # a bare annotation binds nothing
            if isinstance(node.target, ast.Subscript):
                self.visit(node.target.slice)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        target = node.target
        if isinstance(target, ast.Name):
            name = target.id
            if self.scope.kind == "module":
                if name in self.bound or name.startswith("_"):
                    pass
                elif self._resolve(name) == "immediate":
                    self._mutate(name, node, "augmented assignment")
            elif name in self.scope.globals:
                self.deferred_reads[name] = None
                self._bind_module(name)
            self.visit(node.value)
            return
        self.visit(target.value)  # type: ignore[attr-defined]
        if isinstance(target, ast.Subscript):
            self.visit(target.slice)
        self._mutation(target.value, node, "augmented assignment")  # type: ignore[attr-defined]
        self.visit(node.value)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._delete(target)

    def _delete(self, target: ast.expr) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._delete(elt)
        elif isinstance(target, ast.Name):
            name = target.id
            if not self._at_module(name):
                return
            if name in self.bound:
                self.bound.discard(name)
                self.defines.pop(name, None)
            elif not name.startswith("_"):
                self._ref(name)
                self.diags.append(
                    Diagnostic(
                        "warn",
                        "del_upstream",
                        f"del of upstream variable '{name}' only affects this cell",
                        target.lineno,
                    )
                )
        else:
            self.visit(target.value)  # type: ignore[attr-defined]
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
            self._mutation(target.value, target, "del")  # type: ignore[attr-defined]

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.diags.append(
                    Diagnostic(
                        "warn",
                        "star_import",
                        "'import *' binds names the analysis cannot see; import them by name",
                        node.lineno,
                    )
                )
            else:
                self._store(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def _visit_signature(self, args: ast.arguments) -> None:
        for default in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self.visit(default)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for dec in node.decorator_list:
            self.visit(dec)
        self._visit_signature(node.args)
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
            if arg.annotation is not None:
                self.visit(arg.annotation)
        for arg in (node.args.vararg, node.args.kwarg):
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)
        if node.returns is not None:
            self.visit(node.returns)
        self._store(node.name)
        locals_, glob, nonloc = _scope_bindings(node.body)
        self._enter("function", locals_ | _param_names(node.args), glob, nonloc, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node.args)
        locals_, _, _ = _scope_bindings([node.body])
        self._enter("function", locals_ | _param_names(node.args), set(), set(), [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(expr)
        locals_, glob, nonloc = _scope_bindings(node.body)
        self._enter("class", locals_, glob, nonloc, node.body)
        self._store(node.name)

    def _enter(
        self, kind: str, locals_: set[str], glob: set[str], nonloc: set[str], body: list
    ) -> None:
        self.scope = _Scope(kind, self.scope, locals_, glob, nonloc)
        try:
            for child in body:
                self.visit(child)
        finally:
            assert self.scope.parent is not None
            self.scope = self.scope.parent

    def _comprehension(self, node: ast.AST, elts: list[ast.expr]) -> None:
        gens: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(gens[0].iter)  # the first iterable is evaluated in the enclosing scope
        targets = {n.id for g in gens for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        self.scope = _Scope("comprehension", self.scope, targets)
        try:
            for i, gen in enumerate(gens):
                if i:
                    self.visit(gen.iter)
                self.visit(gen.target)
                for cond in gen.ifs:
                    self.visit(cond)
            for elt in elts:
                self.visit(elt)
        finally:
            assert self.scope.parent is not None
            self.scope = self.scope.parent

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while scope.kind == "comprehension":
            assert scope.parent is not None
            scope = scope.parent
        name = node.target.id
        if scope.kind == "module" or name in scope.globals:
            self._bind_module(name)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._target(node.target)
        for child in (*node.body, *node.orelse):
            self.visit(child)

    visit_AsyncFor = visit_For

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._store(node.name)
        for child in node.body:
            self.visit(child)
        if node.name and self._at_module(node.name):
            # Python unbinds the name when the handler ends.
            self.bound.discard(node.name)
            self.defines.pop(node.name, None)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._store(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._store(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for child in (*node.keys, *node.patterns):
            self.visit(child)
        if node.rest:
            self._store(node.rest)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        inplace = any(
            kw.arg == "inplace" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in node.keywords
        )
        if func.attr in MUTATING_METHODS or inplace:
            how = f".{func.attr}(inplace=True)" if inplace else f".{func.attr}()"
            self._mutation(func.value, node, how)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._store(node.id)
        else:
            self._delete(node)


def _module_exports(tree: ast.Module) -> tuple[tuple[str, str], ...] | None:
    exports: list[tuple[str, str]] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstrings
        if isinstance(stmt, _FUNCTIONS):
            exports.append((stmt.name, "function"))
        elif isinstance(stmt, ast.ClassDef):
            exports.append((stmt.name, "class"))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            exports.extend(
                (a.asname or a.name.split(".")[0], "import") for a in stmt.names if a.name != "*"
            )
        else:
            return None
    exports = [e for e in exports if not e[0].startswith("_")]
    return tuple(exports) if any(kind != "import" for _, kind in exports) else None


def analyse_python(source: str) -> CellAnalysis:
    annotations, diags = parse_annotations(source, "#")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        message = f"SyntaxError: {exc.msg}"
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "syntax_error", message, exc.lineno)),
            annotations=annotations,
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        message = f"cannot parse cell: {exc}"
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "syntax_error", message)),
            annotations=annotations,
        )
    analyser = _Analyser()
    try:
        analyser.visit(tree)
    except RecursionError:
        return CellAnalysis(
            diagnostics=(*diags, Diagnostic("error", "too_deep", "cell is nested too deeply")),
            annotations=annotations,
        )
    for name in analyser.deferred_reads:
        if name not in analyser.ever_bound:
            analyser._ref(name)
    defines = tuple(analyser.defines)
    return CellAnalysis(
        defines=defines,
        references=tuple(analyser.refs),
        mutation_defines=tuple(analyser.mutations),
        builtin_references=tuple(analyser.builtin_refs),
        diagnostics=(*diags, *analyser.diags),
        annotations=annotations,
        module_exports=_module_exports(tree),
    )
