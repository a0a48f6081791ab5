"""Text-level tools a row's fields pass through: span protection, parsing model output, field checks."""
