"""`pointsman …`: one file per noun."""
