"""``spacy-nerimb.TokenTagger.v1``: tok2vec → linear head producing logits per token."""
from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Model, chain, with_array, zero_init
from thinc.types import Floats2d

OUTPUT_LAYER = "output_layer"


@registry.architectures("spacy-nerimb.TokenTagger.v1")
def build_token_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from any tok2vec (CNN or transformer listener) → logits.

    The head is a plain ``Linear`` layer (no softmax): every loss takes
    logits, so there is no probability/logit gradient mismatch. ``nO`` is
    left unset in configs: the component sets it at ``initialize`` to the
    width the configured loss asks for (tags, two-task pairs, CRF emissions).
    """
    output_layer = Linear(nO=nO, init_W=zero_init)
    output_layer.name = OUTPUT_LAYER
    model = chain(tok2vec, with_array(output_layer))
    model.set_ref("tok2vec", tok2vec)
    model.set_ref(OUTPUT_LAYER, output_layer)
    return model
