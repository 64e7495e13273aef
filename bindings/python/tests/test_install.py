"""Packaging and finding the library: `pip install bindings/python` works offline (no
index, no build isolation) and installs the package alone; the installed package finds
libcsal3d through $CSAL3D_LIBRARY, pkg-config and ldconfig, and says what it tried when
it cannot. The pip test is skipped where pip, setuptools or wheel is missing."""

import ctypes.util
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

import csal3d
from csal3d import _native

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(csal3d.__file__)))
PROBE = "import csal3d, csal3d._native as n; print(csal3d.__file__); print(n.path)"


def _library():
    """The real library file, whichever way this process found it."""
    for p in (_native.path, os.environ.get("CSAL3D_LIBRARY") or ""):
        if os.path.exists(p):
            return os.path.realpath(p)
    found = ctypes.util.find_library("csal3d")
    return found and os.path.realpath(found)


def _script(folder, name, body):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + textwrap.dedent(body))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


class _Temp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="csal3d_py_install_")
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        self.lib = _library()
        if not self.lib:
            self.skipTest("cannot tell where this process's libcsal3d is")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def copy_package(self):
        """A copy of the package outside the source tree (so the source-tree lookup does
        not apply), as an installed one would be."""
        site = os.path.join(self.dir, "site")
        shutil.copytree(os.path.join(PACKAGE, "csal3d"), os.path.join(site, "csal3d"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        return site

    def python(self, site, env_extra, code=PROBE):
        env = {k: v for k, v in os.environ.items()
               if k not in ("CSAL3D_LIBRARY", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH")}
        env["PYTHONPATH"] = site
        env["PATH"] = self.bin + os.pathsep + env.get("PATH", "")
        env.update(env_extra)
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120, check=False, cwd=self.dir)


class TestLibraryLookup(_Temp):
    def test_pkg_config_then_ldconfig_then_a_clear_error(self):
        site = self.copy_package()
        libdir = os.path.join(self.dir, "prefix", "lib")
        os.makedirs(libdir)
        os.symlink(self.lib, os.path.join(libdir, "libcsal3d.so.0"))
        # pkg-config knows a csal3d.pc: its libdir is used.
        _script(self.bin, "pkg-config", f"""
            [ "$1" = "--variable=libdir" ] && [ "$2" = "csal3d" ] && echo {libdir} && exit 0
            exit 1
        """)
        _script(self.bin, "ldconfig", "exit 0\n")
        r = self.python(site, {})
        self.assertEqual(r.returncode, 0, r.stderr)
        file, path = r.stdout.split()
        self.assertTrue(file.startswith(site))
        self.assertEqual(path, os.path.join(libdir, "libcsal3d.so.0"))
        # No csal3d.pc: the ldconfig cache.
        _script(self.bin, "pkg-config", """
            echo "Package csal3d was not found in the pkg-config search path." >&2
            exit 1
        """)
        _script(self.bin, "ldconfig", f"""
            echo "2 libs found in cache \\`/etc/ld.so.cache'"
            echo "	libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"
            echo "	libcsal3d.so.0 (libc6,x86-64) => {libdir}/libcsal3d.so.0"
        """)
        r = self.python(site, {})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[1], os.path.join(libdir, "libcsal3d.so.0"))
        # $CSAL3D_LIBRARY comes first, and is the only place tried when set.
        r = self.python(site, {"CSAL3D_LIBRARY": self.lib})
        self.assertEqual(r.stdout.split()[1], self.lib)
        r = self.python(site, {"CSAL3D_LIBRARY": os.path.join(self.dir, "nowhere.so")})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("$CSAL3D_LIBRARY: " + os.path.join(self.dir, "nowhere.so") +
                      " does not exist", r.stderr)
        self.assertNotIn("pkg-config --variable", r.stderr.strip().splitlines()[-1])
        self.assertIn("Fix $CSAL3D_LIBRARY, or unset it", r.stderr)
        # Nothing anywhere: ImportError naming every place tried.
        _script(self.bin, "ldconfig", "echo '0 libs found'\n")
        if ctypes.util.find_library("csal3d"):
            self.skipTest("libcsal3d is installed system-wide: the loader would find it")
        r = self.python(site, {})
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.strip().splitlines()[-1]
        self.assertTrue(err.startswith("ImportError: cannot load libcsal3d; tried"), err)
        for what in ("$CSAL3D_LIBRARY: not set",
                     "next to the package: " + os.path.join(site, "csal3d",
                                                            "libcsal3d.so.0"),
                     "pkg-config --variable=libdir csal3d: no csal3d.pc (Package csal3d "
                     "was not found", "ldconfig -p: libcsal3d.so.0 is not in the cache",
                     "the dynamic loader: libcsal3d.so.0: cannot open shared object file",
                     "Set CSAL3D_LIBRARY"):
            self.assertIn(what, err)
        self.assertNotIn("the source tree", err)  # only applies to a checkout


def _missing_build_tools():
    missing = [m for m in ("pip", "setuptools", "wheel") if importlib.util.find_spec(m) is None]
    return ", ".join(missing)


@unittest.skipIf(_missing_build_tools(), f"cannot build offline: {_missing_build_tools()} "
                 "missing (Debian: python3-pip python3-setuptools python3-wheel)")
class TestPipInstall(_Temp):
    def test_offline_install_of_the_package(self):
        src = os.path.join(self.dir, "src")  # pip builds in the tree: build a copy
        shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns(
            "__pycache__", "build", "*.egg-info"))
        target = os.path.join(self.dir, "target")
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                            "--no-build-isolation", "--no-deps", "--target", target, src],
                           env=env, capture_output=True, text=True, timeout=600,
                           check=False, cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        installed = sorted(os.listdir(target))
        self.assertIn("csal3d", installed)
        self.assertNotIn("tests", installed)
        dist = [d for d in installed if d.endswith(".dist-info")]
        self.assertEqual(len(dist), 1, installed)
        with open(os.path.join(target, dist[0], "METADATA")) as f:
            meta = f.read()
        self.assertIn("Requires-Dist: numpy", meta)
        version = re.search(r"^Version: (\S+)$", meta, re.M).group(1)
        self.assertEqual(version, csal3d.version(), "pyproject.toml's version is not the "
                         "library's: update it with the Makefile's MAJOR.MINOR.PATCH")
        for module in ("__init__", "_native", "convert", "ssl", "pipeline"):
            self.assertTrue(os.path.exists(os.path.join(target, "csal3d", module + ".py")))
        r = self.python(target, {"CSAL3D_LIBRARY": self.lib},
                        PROBE + "; print(csal3d.version())")
        self.assertEqual(r.returncode, 0, r.stderr)
        file, path, v = r.stdout.split()
        self.assertEqual(file, os.path.join(target, "csal3d", "__init__.py"))
        self.assertEqual((path, v), (self.lib, csal3d.version()))


if __name__ == "__main__":
    unittest.main()
