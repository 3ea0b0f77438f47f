"""The registry: versioned, documented checkpoints with lineage (SQLModel + a content-addressed blob store)."""
