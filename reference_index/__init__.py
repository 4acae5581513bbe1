"""The rights holders' side: channels, and their fingerprints over time."""

from .catalog import Catalog, CatalogError, Channel
from .index import MODALITIES, Candidate, Index
from .mih import near_hashes
from .store.base import ParamsMismatch, PostingStore, Track
from .store.embedded import EmbeddedStore
from .thumbs import ThumbParams, ThumbStore

__all__ = [
    "MODALITIES",
    "Candidate",
    "Catalog",
    "CatalogError",
    "Channel",
    "EmbeddedStore",
    "Index",
    "ParamsMismatch",
    "PostingStore",
    "ThumbParams",
    "ThumbStore",
    "Track",
    "near_hashes",
]
