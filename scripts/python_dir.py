"""Prints where `make install` puts the Python package for an install prefix.

Usage: python3 scripts/python_dir.py PREFIX

The interpreter's own site-packages folder under PREFIX when it searches one there
(Debian's python3 reads /usr/local/lib/python3.X/dist-packages, a virtual environment
its own), else the upstream layout PREFIX/lib/python3.X/site-packages, which then has
to be put on PYTHONPATH.
"""

import os
import sys
import sysconfig


def python_dir(prefix):
    prefix = os.path.normpath(prefix)
    searched = {os.path.normpath(p) for p in sys.path if p}
    # Debian's scheme posix_local adds /local to its base: try the parent as base too.
    for scheme in sysconfig.get_scheme_names():
        for base in (prefix, os.path.dirname(prefix)):
            try:
                path = sysconfig.get_path("purelib", scheme, vars={"base": base, "platbase": base})
            except KeyError:
                continue
            path = os.path.normpath(path)
            if path in searched and path.startswith(prefix + os.sep):
                return path
    return sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix})


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1]:
        sys.exit("usage: python_dir.py PREFIX")
    print(python_dir(sys.argv[1]))
