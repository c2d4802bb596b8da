"""Installing without a working compiler still gives a working omasgan, on the pure-torch operators."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Answers `--version` like the real compiler (torch's ABI check asks it) and fails every compilation.
BROKEN_COMPILER = '#!/bin/sh\nif [ "$1" = "--version" ]; then exec g++ --version; fi\necho "broken" >&2\nexit 1\n'
USE_IT = """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import omasgan
    import omasgan.ops as ops
    import torch
    dist, index = ops.min_distance(torch.zeros(2, 3), torch.ones(4, 3))
notes = [str(w.message) for w in caught if "compiled operators are not built" in str(w.message)]
assert len(notes) == 1, [str(w.message) for w in caught]
assert "not built at install" in notes[0], notes[0]
assert omasgan.__file__.startswith({target!r}), omasgan.__file__
assert ops.backend() == "reference" and torch.allclose(dist, torch.full((2,), 3 ** 0.5))
from omasgan.doctor import environment_report
assert environment_report()["ops_backend"] == "reference"
print("installed-ok")
"""


@pytest.mark.skipif(shutil.which("g++") is None or os.name != "posix", reason="needs g++ to answer --version")
def test_install_with_a_broken_compiler_falls_back_to_the_pure_torch_operators(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.so", "__pycache__", "*.egg-info", "runs", "site"),
    )
    compiler = tmp_path / "c++"
    compiler.write_text(BROKEN_COMPILER)
    compiler.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "OMASGAN_REQUIRE_EXTENSION"}
    env.update(CXX=str(compiler), CC=str(compiler))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = subprocess.run(
        [*pip, "wheel", str(source), "--no-build-isolation", "--no-deps", "-w", str(tmp_path / "wheels"), "-v"],
        env=env, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    log = build.stdout + build.stderr
    assert log.count("omasgan: the compiled operators (omasgan._C) could not be built") == 1, log[-3000:]
    wheel = next((tmp_path / "wheels").glob("omasgan-*.whl"))
    target = tmp_path / "site"
    install = subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    assert not list(target.glob("omasgan/_C*"))
    # -S: no .pth files, so this checkout's editable install cannot shadow the wheel; torch and the other
    # dependencies come from this environment's site-packages.
    path = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    run_env = {k: v for k, v in os.environ.items() if k != "OMASGAN_NO_EXTENSION"}
    run_env["PYTHONPATH"] = path
    used = subprocess.run([sys.executable, "-S", "-c", USE_IT.format(target=str(target))],
                          env=run_env, capture_output=True, text=True, cwd=tmp_path)
    assert used.returncode == 0, used.stderr[-3000:]
    assert "installed-ok" in used.stdout
    # And the documented refusal: with OMASGAN_REQUIRE_EXTENSION=1 the same build fails.
    strict = subprocess.run(
        [*pip, "wheel", str(source), "--no-build-isolation", "--no-deps", "-w", str(tmp_path / "strict")],
        env={**env, "OMASGAN_REQUIRE_EXTENSION": "1"}, capture_output=True, text=True,
    )
    assert strict.returncode != 0
