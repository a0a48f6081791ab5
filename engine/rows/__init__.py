"""The per-row machine: the refinement loop's steps (refine), the recipes' prompts and checks,
validation, the judge and the round trip."""
