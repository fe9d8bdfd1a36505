"""Population strategies as ``torch.optim``-style optimizers (registered in :data:`OPTIMIZERS`)."""
