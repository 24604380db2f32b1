"""Storage: the interface every component uses (`base`) and its implementations."""
