"""Build the runq Python package: the C engine (via CMake) + runq._runq.

The engine is built as a static library from this source tree and linked
into the extension, so the wheel needs only the system libraries it was
built against (libuv, msgpack-c, zstd, hiredis), found with pkg-config.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))

# pkg-config module -> the Debian package that provides it.
PKG_MODULES = {
    "libuv": "libuv1-dev",
    "msgpack": "libmsgpack-dev",
    "libzstd": "libzstd-dev",
    "hiredis": "libhiredis-dev",
}
TOOLS = {"cmake": "cmake", "pkg-config": "pkg-config"}


def header_version() -> str:
    with open(os.path.join(ROOT, "core", "include", "runq.h"), encoding="utf-8") as f:
        m = re.search(r'#define RUNQ_VERSION_STRING "([^"]+)"', f.read())
    if not m:
        raise RuntimeError("cannot read RUNQ_VERSION_STRING from core/include/runq.h")
    return m.group(1)


def check_dependencies() -> None:
    """Fail early, naming the Debian packages to install."""
    missing = [deb for tool, deb in TOOLS.items() if shutil.which(tool) is None]
    if "pkg-config" not in missing:
        for mod, deb in PKG_MODULES.items():
            ok = subprocess.run(["pkg-config", "--exists", mod]).returncode == 0
            if not ok:
                missing.append(deb)
    else:
        missing.extend(PKG_MODULES.values())
    if missing:
        sys.exit(
            "runq: missing build dependencies; install them with:\n"
            "    apt-get install " + " ".join(missing)
        )


def pkg_config(*args: str) -> list[str]:
    out = subprocess.run(
        ["pkg-config", *args, *PKG_MODULES], check=True, capture_output=True, text=True
    ).stdout
    return out.split()


class BuildWithEngine(build_ext):
    """Build the engine with CMake, then the extension against it."""

    def run(self) -> None:
        check_dependencies()
        lib = self.build_engine()
        cflags = pkg_config("--cflags")
        libs = pkg_config("--libs")
        for ext in self.extensions:
            ext.include_dirs.append(os.path.join(ROOT, "core", "include"))
            ext.extra_compile_args += [f for f in cflags if not f.startswith("-I")]
            ext.include_dirs += [f[2:] for f in cflags if f.startswith("-I")]
            # The static engine first, then what it needs, in link order.
            ext.extra_objects.append(lib)
            ext.depends.append(lib)  # relink whenever the engine changed
            ext.extra_link_args += libs + ["-lpthread", "-lm"]
            # Export only PyInit__runq: the engine's runq_* symbols stay
            # private to this module and cannot clash with another copy.
            ext.extra_link_args.append(f"-Wl,--version-script={self.version_script()}")
        super().run()

    def version_script(self) -> str:
        os.makedirs(self.build_temp, exist_ok=True)
        path = os.path.abspath(os.path.join(self.build_temp, "runq_module.map"))
        with open(path, "w", encoding="utf-8") as f:
            f.write("{ global: PyInit__runq; local: *; };\n")
        return path

    def build_engine(self) -> str:
        bdir = os.path.abspath(os.path.join(self.build_temp, "engine"))
        os.makedirs(bdir, exist_ok=True)
        cfg = os.environ.get("RUNQ_CMAKE_BUILD_TYPE", "RelWithDebInfo")
        subprocess.run(
            [
                "cmake", "-S", ROOT, "-B", bdir,
                f"-DCMAKE_BUILD_TYPE={cfg}",
                "-DRUNQ_BUILD_TESTS=OFF", "-DRUNQ_BUILD_LUA=OFF", "-DRUNQ_BUILD_BENCH=OFF",
            ],
            check=True,
        )
        jobs = str(self.parallel or os.cpu_count() or 2)
        subprocess.run(
            ["cmake", "--build", bdir, "--target", "runq_static", "--parallel", jobs],
            check=True,
        )
        found = glob.glob(os.path.join(bdir, "**", "librunq.a"), recursive=True)
        if not found:
            sys.exit(f"runq: CMake built no librunq.a under {bdir}")
        return found[0]


setup(
    # One version for engine and package: the header's.
    version=header_version(),
    # Not ./build: that is the CMake build directory of ./dev.
    options={"build": {"build_base": "build-python"}},
    ext_modules=[
        Extension(
            "runq._runq",
            sources=sorted(glob.glob("bindings/python/*.c")),
            depends=sorted(glob.glob("bindings/python/*.h"))
            + ["core/include/runq.h", "setup.py"],
            extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Werror",
                                "-fvisibility=hidden"],
        )
    ],
    cmdclass={"build_ext": BuildWithEngine},
)
