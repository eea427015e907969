from .pooling import reduce_first_piece
from .tagger import OUTPUT_LAYER, build_token_tagger

__all__ = ["OUTPUT_LAYER", "build_token_tagger", "reduce_first_piece"]
