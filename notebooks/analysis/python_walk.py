"""The walk over one Python cell: which module names it binds, reads and mutates.

:class:`CellWalker` visits the statements in the order they run, following
Python's scopes (``scopes.py``), and collects ``defines``, ``refs``,
``builtin_refs``, ``mutations`` and warnings; ``python.py`` states the rules and
turns what it found into a :class:`~notebooks.analysis.cells.CellAnalysis`.
"""

from __future__ import annotations

import ast
import builtins

from notebooks.analysis.cells import Diagnostic
from notebooks.analysis.scopes import Scope, param_names, scope_bindings

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


class CellWalker(ast.NodeVisitor):
    """Visits a cell's tree in execution order; what it found is in its attributes."""

    def __init__(self) -> None:
        self.scope = Scope("module", None)
        self.bound: set[str] = set()  # module names bound so far, in execution order
        self.ever_bound: set[str] = set()
        self.defines: dict[str, None] = {}
        self.refs: dict[str, None] = {}
        self.builtin_refs: dict[str, None] = {}
        self.mutations: dict[str, None] = {}
        self.deferred_reads: dict[str, None] = {}
        self.diags: list[Diagnostic] = []

    def finish(self) -> None:
        """After the walk: a global read in a function, lambda or class body is a
        reference too, unless the cell itself binds it as it runs."""
        for name in self.deferred_reads:
            if name not in self.ever_bound:
                self._ref(name)

    # -- names -----------------------------------------------------------------------------

    def _ref(self, name: str) -> None:
        if name.startswith("_"):
            return
        (self.builtin_refs if name in BUILTINS else self.refs)[name] = None

    def _read(self, name: str) -> None:
        where = self.scope.resolve(name)
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
        if self.scope.at_module(name):
            self._bind_module(name)

    def _is_upstream(self, name: str) -> bool:
        return (
            not name.startswith("_")
            and self.scope.resolve(name) == "immediate"
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
                elif self.scope.resolve(name) == "immediate":
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
            if not self.scope.at_module(name):
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
        locals_, glob, nonloc = scope_bindings(node.body)
        self._enter("function", locals_ | param_names(node.args), glob, nonloc, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node.args)
        locals_, _, _ = scope_bindings([node.body])
        self._enter("function", locals_ | param_names(node.args), set(), set(), [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(expr)
        locals_, glob, nonloc = scope_bindings(node.body)
        self._enter("class", locals_, glob, nonloc, node.body)
        self._store(node.name)

    def _enter(
        self, kind: str, locals_: set[str], glob: set[str], nonloc: set[str], body: list
    ) -> None:
        self.scope = Scope(kind, self.scope, locals_, glob, nonloc)
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
        self.scope = Scope("comprehension", self.scope, targets)
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
        if node.name and self.scope.at_module(node.name):
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
