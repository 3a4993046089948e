"""Python's scopes, as the compiler decides them, for the analysis of Python cells.

Which names one scope binds (locals, ``global``, ``nonlocal``), and where a name read
in a scope is found: a local of an enclosing function, or the module (the cell's
namespace), now or only later, when a function body runs. Class bodies are invisible
to their methods; comprehension variables never leak, but a walrus inside a
comprehension binds in the enclosing scope.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def param_names(args: ast.arguments) -> set[str]:
    """The names a function's or a lambda's parameters bind in its body."""
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    return names


def scope_bindings(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str], set[str]]:
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
        elif isinstance(node, (*FUNCTIONS, ast.ClassDef)):
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
        elif isinstance(node, COMPREHENSIONS):
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


class Scope:
    """One scope of the cell (``module``, ``function``, ``class``, ``comprehension``) and
    the names it binds, as :func:`scope_bindings` found them."""

    __slots__ = ("deferred", "globals", "kind", "locals", "nonlocals", "parent")

    def __init__(
        self,
        kind: str,
        parent: Scope | None,
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

    def resolve(self, name: str) -> str:
        """Where ``name`` read in this scope is found: ``local``, ``immediate`` (in the
        module, read now) or ``deferred`` (in the module, read later)."""
        s = self
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
        return "deferred" if self.deferred else "immediate"

    def at_module(self, name: str) -> bool:
        """Does binding ``name`` here bind it in the module (the cell's own namespace)?"""
        return self.kind == "module" or name in self.globals
