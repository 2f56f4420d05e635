"""Registry: registration, lookup, errors, and plugin discovery through real (temporary) entry points.

Fake plugin distributions are written as ``*.dist-info`` folders on ``sys.path``, so ``importlib.metadata``
finds them exactly as it finds pip-installed packages.
"""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import uuid

import pytest
import torch
from fixtures.stubs import ValidationOnlyPlugin

from lumina_core import CORE_API_VERSION, registry
from lumina_core.plugin import ModalityPlugin
from lumina_core.registry import (
    DATASETS,
    MODALITIES,
    DuplicateNameError,
    IncompatiblePluginError,
    NonConformingError,
    PluginImportError,
    Registry,
    UnknownNameError,
)


@pytest.fixture
def fresh_registry_state(monkeypatch):
    """Only the fake distributions of the test are visible; registrations and the scan are undone after."""
    real = importlib.metadata.entry_points

    def fake_only(*args, **kwargs):
        return [
            ep
            for ep in real(*args, **kwargs)
            if ep.dist is not None and ep.dist.metadata["Name"].startswith("fake-")
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_only)
    registry.reset_plugins()
    with registry.temporary_registrations():
        yield
    registry.reset_plugins()


@pytest.fixture
def make_dist(tmp_path, monkeypatch, fresh_registry_state):
    """make_dist(dist, version, {ep_name: module}, {module: source}) -> unique module names are the caller's job."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created_modules: list[str] = []

    def make(dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[lumina.plugins]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            created_modules.append(module)
        registry.reset_plugins()

    yield make
    for module in created_modules:
        sys.modules.pop(module, None)


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


PLUGIN_SOURCE = """
from fixtures.stubs import ValidationOnlyDataset, ValidationOnlyPlugin
from lumina_core.registry import MODALITIES, DATASETS

@MODALITIES.register("{name}")
class Plugin(ValidationOnlyPlugin):
    name = "{name}"
    api_version = "{api}"
    def __init__(self, size=3):
        self.size = size

@DATASETS.register("{name}_data")
class Data(ValidationOnlyDataset):
    modality = "{name}"
"""


# -- registration and lookup ------------------------------------------------------------------------------
def test_register_get_build_names_origin(fresh_registry_state):
    reg = Registry("widget")

    @reg.register("b")
    def make_b(scale: int = 1):
        return ("b", scale)

    @reg.register()
    class Alpha:
        def __init__(self, x=0):
            self.x = x

    assert reg.names() == ["Alpha", "b"]
    assert reg.get("b") is make_b
    assert reg.build({"name": "b", "params": {"scale": 3}}) == ("b", 3)
    assert reg.build("b") == ("b", 1)
    assert reg.build({"name": "Alpha", "params": {}}, x=5).x == 5
    assert "test_registry" in reg.origin("b") and "make_b" in reg.origin("b")
    assert "b" in reg and "c" not in reg


def test_unknown_name_lists_close_matches_sources_and_command(fresh_registry_state):
    reg = Registry("widget")
    reg.register("midpoint")(lambda: 1)
    reg.register("euler")(lambda: 2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("midpiont")
    msg = str(err.value)
    assert "'midpoint'" in msg and "Did you mean" in msg
    assert "lumina.plugins" in msg and "lumina plugins list" in msg
    assert isinstance(err.value, KeyError)  # lookups stay KeyErrors


def test_duplicate_name_names_both_origins_unless_override(fresh_registry_state):
    reg = Registry("widget")

    def first():
        pass

    def second():
        pass

    reg.register("w")(first)
    reg.register("w")(first)  # the same object again is harmless (module re-import)
    with pytest.raises(DuplicateNameError) as err:
        reg.register("w")(second)
    assert "first" in str(err.value) and "second" in str(err.value)
    reg.register("w", override=True)(second)
    assert reg.get("w") is second


def test_incompatible_api_version_is_refused(fresh_registry_state):
    major = int(CORE_API_VERSION.split(".")[0])

    class Future:
        api_version = f"{major + 1}.0"

    with pytest.raises(IncompatiblePluginError, match="core API"):
        MODALITIES.register("_future_plugin")(Future)
    assert "_future_plugin" not in MODALITIES

    class SameMajor(ValidationOnlyPlugin):
        api_version = f"{major}.7"

    MODALITIES.register("_same_major_plugin")(SameMajor)
    assert MODALITIES.get("_same_major_plugin") is SameMajor


def test_registration_refuses_what_does_not_conform_to_the_base_naming_what_is_missing(fresh_registry_state):
    """Each registry's abstract base is enforced at ``register()``: not a subclass, or a subclass that leaves
    abstract methods, is refused with the methods named; a conforming class registers."""

    class Duck:  # has some of the methods, subclasses nothing
        def tokenize(self, samples): ...

    with pytest.raises(NonConformingError) as err:
        MODALITIES.register("_duck_plugin")(Duck)
    msg = str(err.value)
    assert "does not subclass lumina_core.plugin.ModalityPlugin" in msg
    assert "lacks adapter_spec, default_shape, detokenize, sample_shape, write_preview" in msg
    assert "_duck_plugin" not in MODALITIES

    class Half(ModalityPlugin):
        def tokenize(self, samples): ...

    with pytest.raises(NonConformingError, match="does not implement adapter_spec, default_shape, detokenize"):
        MODALITIES.register("_half_plugin")(Half)

    with pytest.raises(NonConformingError, match="LuminaDataset .map-style.*LuminaStream .iterable"):
        DATASETS.register("_plain_torch_data")(type("Plain", (torch.utils.data.Dataset,), {}))
    with pytest.raises(NonConformingError, match="not subclass lumina_core.sampling.solvers.Solver"):
        registry.SOLVERS.register("_lambda_solver")(lambda: 1)

    class Whole(ValidationOnlyPlugin):
        pass

    assert MODALITIES.register("_whole_plugin")(Whole) is Whole and MODALITIES.conforms("_whole_plugin")


def test_core_providers_are_imported_on_first_lookup(fresh_registry_state):
    assert "flow_matching" in registry.OBJECTIVES.names()
    assert registry.SOLVERS.get("euler") is not None
    assert registry.TIME_SAMPLERS.origin_info("uniform").distribution == "lumina"  # needs `pip install -e .`


def test_builtin_modalities_come_from_the_installed_entry_points():
    """No second discovery path: the core's own modalities are entry points of the installed distribution."""
    assert registry.core_installed(), "run `pip install -e .`: the tests expect the package installed"
    entries = registry.plugin_entries()
    assert entries["image"].distribution == "lumina" and entries["image"].value == "lumina_modalities.image"


def test_unknown_name_says_when_the_core_is_not_installed(fresh_registry_state, monkeypatch):
    reg = Registry("widget")
    with pytest.raises(UnknownNameError) as err:
        reg.get("image")
    assert "not installed" not in str(err.value)
    monkeypatch.setattr(registry, "core_installed", lambda: False)
    with pytest.raises(UnknownNameError, match=r"not installed .* `pip install -e \.`"):
        reg.get("image")


# -- entry points -----------------------------------------------------------------------------------------
def test_names_are_listed_without_importing(make_dist):
    name, module = _uid("wave"), _uid("fake_wave_mod")
    make_dist(
        "fake-wave", "1.2.3", {name: module}, {module: PLUGIN_SOURCE.format(name=name, api=CORE_API_VERSION)}
    )
    entries = registry.plugin_entries()
    assert name in registry.plugin_names()
    assert entries[name].status == "not loaded"
    assert (entries[name].distribution, entries[name].version) == ("fake-wave", "1.2.3")
    assert module not in sys.modules


def test_plugin_is_imported_on_first_use_with_its_origin(make_dist):
    name, module = _uid("wave"), _uid("fake_wave_mod")
    make_dist(
        "fake-wave", "1.2.3", {name: module}, {module: PLUGIN_SOURCE.format(name=name, api=CORE_API_VERSION)}
    )
    cls = MODALITIES.get(name)
    assert module in sys.modules and cls.__module__ == module
    origin = MODALITIES.origin_info(name)
    assert (origin.distribution, origin.version) == ("fake-wave", "1.2.3")
    assert origin.entry_point == f"{name} = {module}"
    assert "fake-wave 1.2.3" in MODALITIES.origin(name)
    assert registry.plugin_entries()[name].status == "loaded"
    assert ("dataset", f"{name}_data") in registry.plugin_entries()[name].registered
    assert MODALITIES.build({"name": name, "params": {"size": 7}}).size == 7


def test_unknown_name_loads_every_pending_plugin(make_dist):
    name, module = _uid("wave"), _uid("fake_wave_mod")
    make_dist(
        "fake-wave", "1.0", {name: module}, {module: PLUGIN_SOURCE.format(name=name, api=CORE_API_VERSION)}
    )
    # the dataset's name is not an entry point name: get() imports the pending plugins, then finds it
    assert DATASETS.get(f"{name}_data").modality == name


def test_entry_points_are_scanned_once(make_dist, monkeypatch):
    name, module = _uid("wave"), _uid("fake_wave_mod")
    make_dist(
        "fake-wave", "1.0", {name: module}, {module: PLUGIN_SOURCE.format(name=name, api=CORE_API_VERSION)}
    )
    calls = []
    real = importlib.metadata.entry_points

    def counting(*args, **kwargs):
        calls.append(kwargs.get("group"))
        return real(*args, **kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    for _ in range(3):
        registry.plugin_entries()
        MODALITIES.get(name)
        with pytest.raises(UnknownNameError):
            MODALITIES.get(_uid("nothing"))
    assert calls == ["lumina.plugins"]


def test_broken_plugin_names_distribution_version_and_cause_and_others_work(make_dist):
    good, good_mod = _uid("good"), _uid("fake_good_mod")
    bad, bad_mod = _uid("bad"), _uid("fake_bad_mod")
    make_dist(
        "fake-good",
        "0.3",
        {good: good_mod},
        {good_mod: PLUGIN_SOURCE.format(name=good, api=CORE_API_VERSION)},
    )
    source = f"""
    from lumina_core.registry import MODALITIES
    from fixtures.stubs import ValidationOnlyPlugin
    MODALITIES.register("{bad}")(type("Half", (ValidationOnlyPlugin,), {{}}))  # registered, then the import fails
    import lumina_missing_dependency_xyz
    """
    make_dist("fake-bad", "9.9.1", {bad: bad_mod}, {bad_mod: source})
    with pytest.raises(PluginImportError) as err:
        MODALITIES.get(bad)
    msg = str(err.value)
    assert "fake-bad" in msg and "9.9.1" in msg and "lumina_missing_dependency_xyz" in msg
    assert bad not in MODALITIES  # a half-imported plugin registers nothing
    assert MODALITIES.get(good).__module__ == good_mod  # the other plugin keeps working
    assert registry.plugin_entries()[bad].status == "broken"
    with pytest.raises(PluginImportError):  # still broken, without a second import attempt
        MODALITIES.get(bad)
    # an unknown name mentions the broken plugin as a possible reason
    with pytest.raises(UnknownNameError, match="fake-bad"):
        MODALITIES.get(_uid("other"))


@pytest.mark.parametrize(
    "statement", ["import sys; sys.exit(3)", "raise SystemExit('no GPU')", "raise GeneratorExit"]
)
def test_plugin_that_exits_while_importing_is_isolated_and_named(make_dist, statement):
    """sys.exit() (or another BaseException) in a plugin's import must not take down the process."""
    good, good_mod = _uid("good"), _uid("fake_good_mod")
    bad, bad_mod = _uid("exits"), _uid("fake_exit_mod")
    make_dist(
        "fake-good",
        "0.3",
        {good: good_mod},
        {good_mod: PLUGIN_SOURCE.format(name=good, api=CORE_API_VERSION)},
    )
    make_dist("fake-exits", "1.2", {bad: bad_mod}, {bad_mod: statement + "\n"})
    broken = registry.load_all_plugins()  # what `lumina plugins list` and `config validate` do
    assert [e.name for e in broken] == [bad]
    entries = registry.plugin_entries()
    assert entries[bad].status == "broken" and entries[good].status == "loaded"
    assert "fake-exits" in str(entries[bad].error)
    if "exit" in statement:
        assert "sys.exit" in str(entries[bad].error)
    assert MODALITIES.get(good).__module__ == good_mod


def test_plugin_for_other_core_api_is_refused_with_reason(make_dist):
    name, module = _uid("old"), _uid("fake_old_mod")
    major = int(CORE_API_VERSION.split(".")[0])
    make_dist(
        "fake-old", "0.1", {name: module}, {module: PLUGIN_SOURCE.format(name=name, api=f"{major + 1}.0")}
    )
    with pytest.raises(PluginImportError) as err:
        MODALITIES.get(name)
    msg = str(err.value)
    assert "fake-old" in msg and "core API" in msg and CORE_API_VERSION in msg


def test_two_distributions_registering_one_name(make_dist):
    name = _uid("dup")
    mod_a, mod_b = _uid("fake_dup_a"), _uid("fake_dup_b")
    make_dist("fake-a", "1.0", {name: mod_a}, {mod_a: PLUGIN_SOURCE.format(name=name, api=CORE_API_VERSION)})
    other = _uid("other")
    source_b = f"""
    from lumina_core.registry import MODALITIES
    from fixtures.stubs import ValidationOnlyPlugin
    @MODALITIES.register("{name}")
    class Clash(ValidationOnlyPlugin):
        pass
    """
    make_dist("fake-b", "2.0", {other: mod_b}, {mod_b: source_b})
    MODALITIES.get(name)  # loads fake-a
    with pytest.raises(PluginImportError) as err:
        MODALITIES.get(other)  # fake-b's import registers the same name: refused, naming both origins
    msg = str(err.value)
    assert "registered twice" in msg and "fake-a" in msg and "fake-b" in msg
