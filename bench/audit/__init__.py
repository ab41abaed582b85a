"""Dataset audit: how strongly class labels go with properties of the files as stored."""
