"""Runtime and shared vocabulary: settings, the run catalog, storage, the Dask client, errors, the schema."""
