"""Small shared helpers: atomic file output, the data directory, JSON/Markdown reports."""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Union

PathLike = Union[str, Path]

DATA_DIR_ENV = "NERIMB_DATA_DIR"


def default_data_dir() -> Path:
    """Where real corpora are read from: ``$NERIMB_DATA_DIR``, else ``../shared/data``."""
    return Path(os.environ.get(DATA_DIR_ENV, Path.cwd().parent / "shared" / "data"))


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A failure inside the block removes the temporary file, so a failed run
    never leaves a half-written output behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give outputs the usual umask mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf8")


def write_json_atomic(path: PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats are shown with 4 decimals."""

    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines: List[str] = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def machine_info() -> Dict[str, Any]:
    """Facts about this machine that benchmark numbers depend on (recorded with results)."""
    import platform

    import spacy
    import thinc
    import torch

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "nproc": os.cpu_count(), "cpu_model": cpu_model, "gpu": gpu,
        "python": platform.python_version(), "platform": platform.platform(),
        "spacy": spacy.__version__, "thinc": thinc.__version__, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "load_average_1_5_15_at_start": load,
    }
