"""Helpers shared by the tests (tests/ is on sys.path under pytest)."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def png(fig) -> bytes:
    """A figure rendered to PNG bytes (and closed): equal bytes, equal pictures."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def load_script(name: str):
    """scripts/<name>.py imported as a module (the scripts are not a package)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def notebook_cells(path):
    """The cells of a stored notebook, read as plain JSON."""
    import json
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def cell_text(cell) -> str:
    return "".join(cell["source"])
