"""Reports drawn from result rows alone: tables, Markdown, a self-contained HTML page, plots, and sections per
trial kind."""
