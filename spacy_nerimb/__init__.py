"""spacy-nerimb: named-entity recognition on imbalanced data, as spaCy components.

Importing the package is cheap: spaCy and thinc find the component, losses,
architectures, scorers and readers through entry points (see setup.cfg).
"""
__version__ = "0.1.0"
