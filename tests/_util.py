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
