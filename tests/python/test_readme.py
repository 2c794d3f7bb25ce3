"""The README's Python quickstart runs as written, on memory:// and Redis."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import readme_block  # noqa: E402


def test_readme_python_quickstart(backend_url: str, tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(readme_block.block("python"))
    env = dict(os.environ, RUNQ_URL=backend_url)
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "add -> 5"
