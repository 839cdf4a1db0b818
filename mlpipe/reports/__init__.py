"""Reports people read: plots, the validation report, the model card (Markdown -> HTML)."""
