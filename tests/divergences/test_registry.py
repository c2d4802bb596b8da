"""The registry: built-ins and plugins through one hook, clear errors, isolation of broken plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import omasgan
from omasgan import divergences
from omasgan.errors import DivergenceNameClashError, InvalidInputError, PluginLoadError, UnknownDivergenceError

BUILTINS = {"kl", "pearson", "js", "gan", "klwgan", "wasserstein"}


@pytest.fixture
def throwaway_plugin():
    """Register plugin objects on the live manager for one test, and always remove them."""
    pm = divergences.plugin_manager()
    added = []

    def add(obj, name):
        pm.register(obj, name=name)
        added.append(name)

    try:
        yield add
    finally:
        for name in added:
            pm.unregister(name=name)


def test_builtins_are_registered_with_their_provider():
    table = divergences.available()
    assert BUILTINS <= set(table)
    for name in BUILTINS:
        assert table[name].distribution == "omasgan"
        assert table[name].plugin == "omasgan.builtin"
    assert table["klwgan"].parameters == {"temperature": 5.0, "form": "reference"}
    assert table["wasserstein"].parameters == {"gradient_penalty": 10.0}


def test_get_builds_with_parameters_and_rejects_unknown_ones():
    assert divergences.get("klwgan", temperature=2.0).temperature == 2.0
    with pytest.raises(InvalidInputError, match=r"takes parameters \['form', 'temperature'\], got \['tau'\]"):
        divergences.get("klwgan", tau=2.0)


def test_typo_raises_key_error_listing_names_and_closest_match():
    with pytest.raises(KeyError) as failure:
        divergences.get("klwgn")
    assert isinstance(failure.value, UnknownDivergenceError)
    message = str(failure.value)
    assert "Did you mean 'klwgan'?" in message
    assert "Available: " in message and all(name in message for name in BUILTINS)


def test_throwaway_plugin_registers_and_is_removed_afterwards(throwaway_plugin):
    class Plugin:
        @omasgan.hookimpl
        def omasgan_register_divergences(self, register):
            register("scaled_kl", lambda *, scale=2.0: divergences.get("kl"), description="test")

    assert "scaled_kl" not in divergences.available()
    throwaway_plugin(Plugin(), "scaled-kl-plugin")
    entry = divergences.info("scaled_kl")
    assert entry.plugin == "scaled-kl-plugin"
    assert entry.parameters == {"scale": 2.0}
    assert divergences.get("scaled_kl").name == "kl"


def test_throwaway_plugin_is_gone_after_the_fixture():
    assert "scaled_kl" not in divergences.available()


def test_duplicate_name_is_an_error_naming_both_providers(throwaway_plugin):
    class Clashing:
        @omasgan.hookimpl
        def omasgan_register_divergences(self, register):
            register("js", lambda: divergences.get("kl"))
            register("only_here", lambda: divergences.get("kl"))

    with pytest.warns(RuntimeWarning, match="registered by two providers"):
        throwaway_plugin(Clashing(), "clashing-plugin")
        divergences.available()
    with pytest.raises(DivergenceNameClashError) as failure:
        divergences.get("js")
    assert "omasgan 0.1.0 (omasgan.builtin)" in str(failure.value)
    assert "clashing-plugin" in str(failure.value)
    # Unrelated names keep working, the clashing plugin's other names too.
    assert divergences.get("kl").name == "kl"
    assert divergences.get("only_here").name == "kl"


def test_plugin_whose_hook_raises_is_reported_and_others_still_load(throwaway_plugin):
    class Broken:
        @omasgan.hookimpl
        def omasgan_register_divergences(self, register):
            register("half_registered", lambda: divergences.get("kl"))
            raise RuntimeError("boom")

    with pytest.warns(RuntimeWarning, match="'broken-plugin'.*RuntimeError: boom"):
        throwaway_plugin(Broken(), "broken-plugin")
        table = divergences.available()
    assert "half_registered" not in table  # a failed plugin's registrations are dropped
    assert BUILTINS <= set(table)
    errors = [e for e in divergences.load_errors() if isinstance(e, PluginLoadError)]
    assert any("broken-plugin" in str(e) for e in errors)


def test_register_rejects_malformed_names(throwaway_plugin):
    class BadName:
        @omasgan.hookimpl
        def omasgan_register_divergences(self, register):
            register("Bad Name", lambda: divergences.get("kl"))

    with pytest.warns(RuntimeWarning, match=r"must match \[a-z\]"):
        throwaway_plugin(BadName(), "bad-name-plugin")
        divergences.available()


def _run_fresh(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env={**os.environ, **env}
    )


def test_entry_point_plugin_loads_in_a_fresh_interpreter():
    result = _run_fresh(
        """
        from omasgan import divergences
        table = divergences.available()
        for name in ["reverse_kl", "neyman", "squared_hellinger", "jeffrey", "total_variation", "alpha"]:
            assert table[name].distribution == "omasgan-fdivergences", (name, table[name])
            assert table[name].plugin == "fdivergences"
        assert divergences.get("alpha", alpha=2.0).params["alpha"] == 2.0
        print("entry-point-ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "entry-point-ok" in result.stdout


def test_omasgan_plugins_empty_loads_only_builtins():
    result = _run_fresh(
        "from omasgan import divergences; print(sorted(divergences.available()))", OMASGAN_PLUGINS=""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(BUILTINS))


def test_entry_point_that_fails_to_import_is_reported_by_name(tmp_path):
    # A real installed distribution (dist-info on sys.path) whose entry point raises on import.
    dist_info = tmp_path / "broken_divergences-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-divergences\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[omasgan.divergences]\nbroken = broken_divergences_module\n")
    (tmp_path / "broken_divergences_module.py").write_text("raise ImportError('missing dependency xyz')\n")
    result = _run_fresh(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from omasgan import divergences
            table = divergences.available()
        assert "kl" in table and "reverse_kl" in table, sorted(table)
        messages = [str(w.message) for w in caught]
        assert any("'broken'" in m and "broken-divergences" in m and "missing dependency xyz" in m
                   for m in messages), messages
        assert any("broken" in str(e) for e in divergences.load_errors())
        print("isolated-ok")
        """,
        PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    assert result.returncode == 0, result.stderr
    assert "isolated-ok" in result.stdout


@pytest.mark.parametrize(
    "module_source, problem",
    [
        # A hook name no spec has: pluggy only finds it in check_pending, which ran outside the isolation.
        (
            "import omasgan\n@omasgan.hookimpl\ndef omasgan_register_divergence(register):\n    pass\n",
            "unknown hook 'omasgan_register_divergence'",
        ),
        # A hook with an argument the spec does not offer: pluggy refuses it while registering.
        (
            "import omasgan\n@omasgan.hookimpl\ndef omasgan_register_divergences(register, extra):\n    pass\n",
            "extra",
        ),
    ],
    ids=["misnamed-hook", "wrong-signature"],
)
def test_plugin_with_an_invalid_hook_is_isolated(tmp_path, module_source, problem):
    # Before the fix a misnamed hook raised PluginValidationError from every registry call, get("kl") too.
    dist_info = tmp_path / "bad_hooks-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-hooks\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[omasgan.divergences]\nbadhooks = bad_hooks_module\n")
    (tmp_path / "bad_hooks_module.py").write_text(module_source)
    result = _run_fresh(
        f"""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from omasgan import divergences
            assert divergences.get("kl").name == "kl"
            table = divergences.available()
        assert "kl" in table and "reverse_kl" in table, sorted(table)
        assert "badhooks" not in [name for name, _ in divergences.plugin_manager().list_name_plugin()]
        errors = [str(e) for e in divergences.load_errors()]
        assert any("'badhooks'" in e and "bad-hooks" in e and {problem!r} in e for e in errors), errors
        assert sum("'badhooks'" in str(w.message) for w in caught) == 1, [str(w.message) for w in caught]
        print("isolated-ok")
        """,
        PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    assert result.returncode == 0, result.stderr
    assert "isolated-ok" in result.stdout


def test_cli_lists_divergences_with_providers():
    result = subprocess.run([sys.executable, "-m", "omasgan.cli", "divergences"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "klwgan" in result.stdout and "temperature=5.0" in result.stdout
    assert "omasgan-fdivergences 0.1.0 (fdivergences)" in result.stdout


def test_cli_check_prints_a_per_property_report():
    result = subprocess.run(
        [sys.executable, "-m", "omasgan.cli", "divergences", "check", "jeffrey", "--max-examples", "20"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED  Fenchel-Young equality at t = f'(u)" in result.stdout
    typo = subprocess.run([sys.executable, "-m", "omasgan.cli", "divergences", "check", "jefrey"],
                          capture_output=True, text=True)
    assert typo.returncode == 2 and "Did you mean 'jeffrey'?" in typo.stderr
