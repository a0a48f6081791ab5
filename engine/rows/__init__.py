"""The per-row machines: prompts, drafting with retries, validation, the judge and the refinement loop."""
