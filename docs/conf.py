"""Sphinx configuration of circuitprop's documentation (built by scripts/docs.sh with warnings as errors)."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import circuitprop  # noqa: E402
from gen_cli import write_cli_reference  # noqa: E402

project = "circuitprop"
author = "The circuitprop developers"
release = version = circuitprop.__version__
copyright = "2026, the circuitprop developers (MIT License)"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx-mathjax-offline", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": False}
exclude_patterns = ["_build", "_generated"]  # _generated/cli.md is included by cli.md
suppress_warnings = ["myst.header"]  # RESULTS.md and README.md start at level-2 headings under their include
html_theme = "alabaster"
html_static_path = []
html_title = f"circuitprop {release}"


def setup(app):
    write_cli_reference(Path(__file__).resolve().parent / "_generated" / "cli.md")
