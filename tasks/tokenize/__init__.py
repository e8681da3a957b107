"""The tokenize stage: BPE training on the documents and token shards."""
