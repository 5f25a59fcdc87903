"""Build step that setuptools' pyproject settings cannot say: copy the dashboard's files into the package.

The checkout keeps app.py, asgi.py, cli.py, pages/, schema/ and .streamlit/config.toml at its top level
(Streamlit finds pages/ beside app.py); the wheel puts them in `fairwatch/` with the same relative layout,
so `fairwatch.connectors.datapaths.REPO_ROOT` is the folder that holds them in both cases.
"""

from pathlib import Path
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FILES = ("app.py", "asgi.py", "cli.py", ".streamlit/config.toml")
TREES = ("pages", "schema")


class BuildWithApp(build_py):
    """build_py that also copies the dashboard's files into build/lib/fairwatch/."""

    def run(self) -> None:
        """Build the packages, then copy the app's files beside them."""
        super().run()
        target = Path(self.build_lib) / "fairwatch"
        for name in FILES:
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest)
        for tree in TREES:
            shutil.copytree(ROOT / tree, target / tree, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithApp})
