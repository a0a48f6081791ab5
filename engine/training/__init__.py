"""The pure side of fine-tuning and evaluation: configs, tokenisation and masking, loop bookkeeping, metrics."""
