"""Meta-tests: every hook is specified, documented and tested; every registered op has a conformance case."""

from __future__ import annotations

import inspect
import pathlib
import re
import typing

import attrs
import pytest

from rknn_core import hookspecs, records
from rknn_core.plugins import KINDS, RECORD_TYPES, default_registry

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DOC = ROOT / "docs" / "plugins.md"
THIS = pathlib.Path(__file__).name
# Files that mention op names for plugin mechanics, not as conformance cases.
NOT_CONFORMANCE = {THIS, "test_plugins.py"}


def _test_sources(exclude: set[str] = frozenset()) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(TESTS.glob("test_*.py")) if p.name not in exclude}


def _record_type(hook: str) -> type:
    """The record class a hook returns, from its ``Iterable[...]`` annotation."""
    fn = getattr(hookspecs, hook)
    hints = typing.get_type_hints(fn, vars(hookspecs))
    (record,) = typing.get_args(hints["return"])
    return record


def _doc_section(hook: str) -> str:
    """The text of the ``### `hook` ...`` section of docs/plugins.md."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^### `{hook}`.*?(?=^#{{1,3}} |\Z)", text, re.M | re.S)
    assert match, f"docs/plugins.md has no '### `{hook}`' section"
    return match.group(0)


def test_hooks_tuple_lists_every_hookspec():
    specs = sorted(name for name, fn in vars(hookspecs).items()
                   if callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec"))
    assert sorted(hookspecs.HOOKS) == specs
    assert sorted(KINDS.values()) == specs
    for hook in hookspecs.HOOKS:
        assert re.fullmatch(r"rknn_[a-z]+s", hook), f"hook '{hook}' is not named rknn_<plural noun>"


@pytest.mark.parametrize("hook", hookspecs.HOOKS)
def test_hook_has_a_docstring_and_a_typed_record(hook):
    fn = getattr(hookspecs, hook)
    assert inspect.getdoc(fn) and len(inspect.getdoc(fn)) > 20, f"{hook} has no docstring"
    assert not inspect.signature(fn).parameters, f"{hook} must take no argument"
    record = _record_type(hook)
    assert attrs.has(record) and record.__module__ == records.__name__
    assert inspect.getdoc(record), f"record {record.__name__} has no docstring"
    kind = next(k for k, h in KINDS.items() if h == hook)
    assert RECORD_TYPES[kind] is record
    assert "name" in attrs.fields_dict(record), f"{record.__name__} needs a 'name' field"


@pytest.mark.parametrize("hook", hookspecs.HOOKS)
def test_hook_is_documented_for_plugin_authors(hook):
    section = _doc_section(hook)
    record = _record_type(hook)
    assert f"`{record.__name__}`" in section.splitlines()[0], f"the '{hook}' heading should name {record.__name__}"
    undocumented = [f.name for f in attrs.fields(record) if not re.search(rf"^\|\s*`{f.name}`\s*\|", section, re.M)]
    assert not undocumented, f"docs/plugins.md, section {hook}: fields {undocumented} of {record.__name__} are missing"


def test_doc_covers_the_essentials():
    text = DOC.read_text(encoding="utf-8")
    for needle in ("[project.entry-points.rknn]", "`rknn`", "hookimpl", "rknn_op_example", "provided twice",
                   "registry.broken", "pip install plugins/rknn_caffe", "register_op"):
        assert needle in text, f"docs/plugins.md does not mention {needle}"
    for field in attrs.fields(records.Cost):
        assert f"`{field.name}`" in text, f"docs/plugins.md does not describe Cost.{field.name}"


@pytest.mark.parametrize("hook", hookspecs.HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    """Some test (other than this one) implements the hook and builds its record type."""
    record = _record_type(hook).__name__
    sources = _test_sources({THIS})
    implementing = [name for name, src in sources.items() if re.search(rf"def {hook}\(", src)]
    constructing = [name for name, src in sources.items() if re.search(rf"\b{record}\(", src)]
    assert implementing, f"no test implements the hook {hook}"
    assert constructing, f"no test constructs a {record} record"


def _plugin_test_sources() -> dict[str, str]:
    """The test files that plugin packages ship (plugins/**/tests/test_*.py)."""
    return {str(p): p.read_text(encoding="utf-8") for p in sorted((ROOT / "plugins").glob("**/tests/test_*.py"))}


def test_every_registered_op_has_a_conformance_case():
    """Each op in the default registry is named as a quoted string in some tests/test_*.py file (a plugin's op
    may be tested in that plugin's own tests/)."""
    registry = default_registry()
    sources = "\n".join([*_test_sources(NOT_CONFORMANCE).values(), *_plugin_test_sources().values()])
    missing = sorted(name for name in registry.table("ops")
                     if f'"{name}"' not in sources and f"'{name}'" not in sources)
    report = ", ".join(f"{name} (from plugin '{registry.origin('ops', name)}')" for name in missing)
    assert not missing, (f"{len(missing)} of {len(registry.table('ops'))} registered ops have no conformance case "
                         f"in tests/test_*.py (add a test naming the op as \"OpName\"): {report}")
