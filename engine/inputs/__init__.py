"""What goes in: reading and normalising seeds, and planning which seeds each language gets."""
