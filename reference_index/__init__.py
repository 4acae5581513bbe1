"""The rights holders' side: channels, and their fingerprints over time."""

from .catalog import Catalog, CatalogError, Channel
from .index import Candidate, Index
from .store.base import ParamsMismatch, PostingStore, Track
from .store.embedded import EmbeddedStore

__all__ = [
    "Candidate",
    "Catalog",
    "CatalogError",
    "Channel",
    "EmbeddedStore",
    "Index",
    "ParamsMismatch",
    "PostingStore",
    "Track",
]
