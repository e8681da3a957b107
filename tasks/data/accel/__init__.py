"""An optional, output-identical accelerator for trafilatura's extraction."""
