"""Maps between embedding spaces, used below the collections and by model upgrades: adapters that
take a new model's vectors into an old model's space (adapters.py), and relative representations,
a vector as its cosines to fixed anchor texts, which any model can produce (relative.py)."""
