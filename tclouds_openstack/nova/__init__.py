"""Nova adapters: scheduler filters, Placement trait sync, reaction to trust loss."""
