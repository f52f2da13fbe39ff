"""Collision events: input sources (one reader per file format), the feature kernel, ingestion, daily partitions."""
