"""builder_api layer."""
