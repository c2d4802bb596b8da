"""The README's plugin example works as printed: it registers, conforms and trains."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from omasgan import divergences
from omasgan.testing import check_divergence

README = Path(__file__).resolve().parents[2] / "README.md"


def _plugin_module() -> types.ModuleType:
    text = README.read_text()
    section = text.split("### Writing a divergence plugin", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    module = types.ModuleType("readme_plugin")
    exec(compile(code, str(README), "exec"), module.__dict__)
    return module


@pytest.fixture
def readme_plugin():
    module = _plugin_module()
    pm = divergences.plugin_manager()
    pm.register(module, name="readme-plugin")
    try:
        yield module
    finally:
        pm.unregister(name="readme-plugin")


def test_readme_plugin_registers_and_passes_conformance(readme_plugin):
    entry = divergences.info("scaled_pearson")
    assert entry.parameters == {"scale": 2.0, "generator_mode": "nonsaturating"}
    report = check_divergence(divergences.get("scaled_pearson", scale=3.0), max_examples=40)
    assert report.passed
