"""Process plumbing shared by the entry points: configuration, logging, connections, dev stack."""
