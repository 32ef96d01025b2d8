"""Meta-tests: every hook is specified, documented and tested; every registered op has a conformance case."""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import typing

import attrs
import pytest

from rknn_core import hookspecs, records
from rknn_core.plugins import KINDS, RECORD_TYPES, default_registry
from rknn_core.testing import records_from, source_packages

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
    """Each op that this repository's plugins (rknn_core, plugins/**) register is named as a quoted string in some
    tests/test_*.py file (a plugin's op may be tested in that plugin's own tests/). Ops of plugins installed from
    elsewhere are theirs to test."""
    registry = default_registry()
    # the core counts also when these tests run outside the source tree (nox -s wheels copies tests/ out)
    ours = records_from(registry, "ops", source_packages(ROOT) | {"rknn_core"})
    sources = "\n".join([*_test_sources(NOT_CONFORMANCE).values(), *_plugin_test_sources().values()])
    missing = sorted(key for key, op in ours.items() if f'"{op.name}"' not in sources and f"'{op.name}'" not in sources)
    report = ", ".join(f"{key} (from plugin '{registry.origin('ops', key)}')" for key in missing)
    assert not missing, (f"{len(missing)} of {len(ours)} ops of this repository have no conformance case "
                         f"in tests/test_*.py (add a test naming the op as \"OpName\"): {report}")


FOREIGN_OP = "foreign_op".title().replace("_", "")  # spelled so that no test source names it in quotes
FOREIGN_PLUGIN = f"""
import numpy as np

from rknn_core.hookspecs import hookimpl
from rknn_core.ir import TensorInfo
from rknn_core.records import OpDef


@hookimpl
def rknn_ops():
    return [OpDef("{FOREIGN_OP}", lambda inputs, attrs: [TensorInfo(inputs[0].shape, inputs[0].dtype)],
                  lambda inputs, attrs: [np.negative(inputs[0])])]
"""


def _install_foreign_plugins(site: pathlib.Path) -> None:
    """An unrelated third-party distribution as pip would leave it: its package and a dist-info whose entry points
    add a working op plugin and a plugin whose module is missing."""
    (site / "rknn_foreign_ops").mkdir(parents=True)
    (site / "rknn_foreign_ops" / "__init__.py").touch()
    (site / "rknn_foreign_ops" / "plugin.py").write_text(textwrap.dedent(FOREIGN_PLUGIN))
    info = site / "rknn_foreign_ops-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rknn-foreign-ops\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[rknn]\nforeign_ops = rknn_foreign_ops.plugin\n"
                                           "foreign_broken = rknn_foreign_broken.plugin\n")


def test_meta_tests_pass_with_a_third_party_plugin_installed(tmp_path):
    """With a foreign op plugin (whose op no test here names) and a broken foreign plugin installed next to this
    repository's plugins, the registry has both, and the meta-tests that walk the default registry still pass."""
    site = tmp_path / "site"
    _install_foreign_plugins(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    probe = ("from rknn_core.plugins import default_registry; r = default_registry(); "
             f"print(r.origin('ops', '{FOREIGN_OP}'), r.supplier('ops', '{FOREIGN_OP}'), sorted(r.broken))")
    seen = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert seen.stdout.split() == ["foreign_ops", "rknn-foreign-ops", "0.3", "['rknn_foreign_broken']"], seen.stderr
    sources = "\n".join([*_test_sources().values(), *_plugin_test_sources().values()])
    assert f'"{FOREIGN_OP}"' not in sources and f"'{FOREIGN_OP}'" not in sources  # judged, it would fail
    meta_tests = ["tests/test_hook_docs.py::test_every_registered_op_has_a_conformance_case",
                  "tests/test_plugins.py::test_default_registry_loads_every_installed_plugin"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist", *meta_tests],
                         env=env, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
