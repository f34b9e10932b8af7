"""Device profiles: the JSON schema, the file store under profiles/, its index, comparisons, reports."""
