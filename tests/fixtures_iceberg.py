"""Fixtures that build real Iceberg warehouses with pyiceberg in tmp_path."""
