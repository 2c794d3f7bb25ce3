"""What the installed package ships, and setup.py's dependency check."""
from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
from pathlib import Path

import runq
from runq import _runq

ROOT = Path(__file__).resolve().parents[2]


def test_typing_files_are_installed() -> None:
    files = importlib.resources.files("runq")
    assert files.joinpath("py.typed").is_file()
    assert files.joinpath("_runq.pyi").is_file()


def test_versions_agree() -> None:
    major, minor, patch = (int(x) for x in runq.__version__.split("."))
    assert _runq.VERSION_NUMBER == major * 10000 + minor * 100 + patch


def test_missing_system_library_names_the_debian_package(tmp_path: Path) -> None:
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tmp_path), PKG_CONFIG_PATH="")
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_ext"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert ("apt-get install libuv1-dev libmsgpack-dev libzstd-dev libhiredis-dev"
            in out.stderr), out.stderr


def test_engine_symbols_are_not_exported() -> None:
    import ctypes

    lib = ctypes.CDLL(_runq.__file__)
    assert hasattr(lib, "PyInit__runq")
    assert not hasattr(lib, "runq_client_open")  # private copy of the engine
