"""The build hook that makes the compiled engine the default; everything else is in pyproject.toml.

Whatever installs timewatch (`pip install .`, `pip install -e .`, `make`, hw/install.sh) runs
this build_ext: when a C compiler, the Python headers and mypyc are there it compiles the engine,
the codecs and the trace reader with mypyc (the modules and manifest of tools/build_compiled.py),
else, or when that build fails, the package installs as pure Python, with the reason printed.
`timewatch --version` says which engine an installation runs. TIMEWATCH_PURE=1 skips the build.

A hook in the build rather than a step after the install: `pip install .` has no step after, and
the hook works the same for a wheel, an editable install (the .so files land next to the .py
files, as `make compiled` puts them) and the Pi installer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
import build_compiled  # noqa: E402


def say(msg: str) -> None:
    print(f"timewatch: {msg}", file=sys.stderr, flush=True)


class AlwaysBuildExt(Distribution):
    """build_ext runs for every build: it decides itself whether there is anything to compile
    (the extensions are known only once mypyc has run, which only a build needs)."""

    def has_ext_modules(self) -> bool:
        return True


# The commands that build (metadata steps such as egg_info also finalize build_ext, and mypyc
# takes a minute: it runs only for these).
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


class MypycBuildExt(build_ext):
    why_pure: str | None = None

    def finalize_options(self) -> None:
        self.why_pure = build_compiled.cannot_compile()
        exts: list[Any] = []
        if self.why_pure is None and BUILDS & set(sys.argv[1:]):
            try:
                from mypyc.build import mypycify

                os.chdir(ROOT)  # mypy reads [tool.mypy] from pyproject.toml here
                exts = mypycify(build_compiled.MODULES, group_name=build_compiled.GROUP,
                                target_dir=str(build_compiled.BUILD_DIR))
            except (Exception, SystemExit) as e:  # noqa: BLE001 - mypy errors exit
                self.why_pure = f"mypyc could not translate the engine: {e}"
        self.distribution.ext_modules = exts
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def _package_dir(self) -> Path:
        return ROOT / "timewatch" if self.inplace else Path(self.build_lib) / "timewatch"

    def run(self) -> None:
        # No .so of an earlier build left behind: in the source tree (an editable install) it
        # would shadow its .py, in build/lib (setuptools reuses it) it would go into the wheel.
        old = build_compiled.built_files() if self.inplace else [
            *self._package_dir().rglob("*.so"), self._package_dir() / build_compiled.MANIFEST.name]
        for p in old:
            p.unlink(missing_ok=True)
        if self.why_pure is None:
            try:
                super().run()
                build_compiled.write_manifest(self._package_dir(), build_compiled.MODULES)
                say(f"engine compiled with mypyc ({len(build_compiled.MODULES)} modules)")
                return
            except (Exception, SystemExit) as e:  # noqa: BLE001 - a compiler error
                self.why_pure = f"the C build failed: {e}"
                for p in [*self._package_dir().rglob("*.so"),
                          self._package_dir() / build_compiled.MANIFEST.name]:
                    p.unlink(missing_ok=True)
        say(f"engine: pure Python ({self.why_pure})")

    def get_outputs(self) -> list[str]:
        return super().get_outputs() if self.why_pure is None else []


setup(distclass=AlwaysBuildExt, cmdclass={"build_ext": MypycBuildExt})
