"""Model upgrades without re-indexing: adapters new -> old, the compatibility matrix (BCT), and a
collection's upgrade (fit, search through the adapter, backfill, finish)."""

from uniembed.spaces.adapters import Adapter, AdapterCard, fit_adapter

__all__ = ["Adapter", "AdapterCard", "fit_adapter"]
