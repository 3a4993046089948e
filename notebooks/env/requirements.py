"""Package strings, requirements.txt and conda environment.yaml, read without running anything.

A package string is checked as API.md §7 says (length, shell characters) and
then as a PEP 508 requirement. ``requirements.txt`` takes PEP 508 lines and
comments; options (``-r``, ``-e``, ``--index-url``, …) are refused with their
line number. ``environment.yaml`` takes conda ``dependencies``: the
``python=`` pin, conda names that are PyPI names, and the ``pip:`` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from foundation import InvalidArgument

MAX_PACKAGE = 200
FORBIDDEN = frozenset(";&|`$(){}!<>\"'\n\r\t")

# conda packages whose PyPI name differs; anything not here is taken as it is
CONDA_TO_PYPI = {"pytorch": "torch", "py-xgboost": "xgboost", "pyyaml": "pyyaml"}
CONDA_ONLY = frozenset({"pip", "python", "setuptools", "wheel", "libgcc", "cudatoolkit", "mkl"})


def package_problem(value: str) -> str | None:
    """Why ``value`` is no acceptable package string (None: it is)."""
    if len(value) > MAX_PACKAGE:
        return f"Package specification is too long (at most {MAX_PACKAGE} characters)"
    bad = sorted({ch for ch in value if ch in FORBIDDEN})
    if bad:
        return f"Package specification contains forbidden characters: {' '.join(map(repr, bad))}"
    if not value.strip():
        return "Package specification is empty"
    return None


def requirement(value: str) -> Requirement:
    """``value`` (already screened by :func:`package_problem`) as a PEP 508 requirement."""
    text = value.strip()
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidArgument(f"Invalid package specification {text!r}: {exc}") from None
    if req.url:
        raise InvalidArgument(f"Package {req.name}: direct URL requirements are not accepted")
    return req


def name_of(spec: str) -> str:
    """The canonical name of a requirement string (``Pandas>=2`` -> ``pandas``)."""
    try:
        return canonicalize_name(Requirement(spec).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[^A-Za-z0-9._-]", spec.strip(), maxsplit=1)[0])


@dataclass
class Parsed:
    """A requirements file read: the requirement strings, the python pin, warnings."""

    requirements: list[str] = field(default_factory=list)
    python: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_requirements(text: str) -> Parsed:
    out = Parsed()
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            option = line.split()[0]
            raise InvalidArgument(
                f"requirements.txt line {number}: option {option} is not supported "
                "(only package requirements and comments)"
            )
        _add(out, line, f"requirements.txt line {number}", seen)
    return out


def _add(out: Parsed, line: str, where: str, seen: set[str]) -> None:
    problem = package_problem(line)
    if problem:
        raise InvalidArgument(f"{where}: {problem}")
    try:
        req = requirement(line)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc.message}") from None
    name = canonicalize_name(req.name)
    if name in seen:
        out.warnings.append(f"{where}: {req.name} is listed twice; the first one is kept")
        return
    seen.add(name)
    out.requirements.append(str(req))


def parse_environment_yaml(text: str) -> Parsed:
    """Conda's environment.yaml: ``dependencies`` (and its ``pip:`` list) only."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"environment.yaml is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", []), list):
        raise InvalidArgument("environment.yaml needs a mapping with a 'dependencies' list")
    out = Parsed()
    seen: set[str] = set()
    for item in data.get("dependencies") or []:
        if isinstance(item, dict) and "pip" in item:
            for i, line in enumerate(item.get("pip") or [], start=1):
                text_line = str(line).strip()
                if text_line.startswith("-"):
                    out.warnings.append(f"pip entry {i}: option {text_line.split()[0]} skipped")
                    continue
                _add(out, text_line, f"pip entry {i}", seen)
            continue
        if not isinstance(item, str):
            out.warnings.append(f"dependency {item!r} skipped: not a package string")
            continue
        _conda(out, item.strip(), seen)
    return out


def _conda(out: Parsed, item: str, seen: set[str]) -> None:
    spec = item.split("::", 1)[-1]  # channel::name
    m = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:(==|=|>=|<=|>|<|!=)\s*([^\s=]+))?(?:=\S+)?$", spec)
    if m is None:
        out.warnings.append(f"conda dependency {item!r} skipped: cannot read it")
        return
    name, op, version = m.group(1).lower(), m.group(2), m.group(3)
    if name == "python":
        if version:
            parts = version.rstrip(".*").split(".")
            out.python = ".".join(parts[:2])
        return
    if name in CONDA_ONLY or name.startswith(("lib", "_")):
        out.warnings.append(f"conda dependency {item!r} skipped: no PyPI package of that name")
        return
    pypi = CONDA_TO_PYPI.get(name, name)
    if op == "=" and version:
        exact = version.count(".") >= 2 or version.endswith("*")
        line = f"{pypi}=={version}" if exact else f"{pypi}=={version}.*"
    elif op and version:
        line = f"{pypi}{op}{version}"
    else:
        line = pypi
    _add(out, line, f"conda dependency {item!r}", seen)
