"""What a run shows people: counts that add up, plots, the HTML page and its sample browser."""
