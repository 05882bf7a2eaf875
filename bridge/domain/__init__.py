"""Domain rules: the post status machine and value types."""
