from .tagger import OUTPUT_LAYER, build_token_tagger

__all__ = ["OUTPUT_LAYER", "build_token_tagger"]
