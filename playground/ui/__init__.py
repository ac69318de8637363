"""Gradio components and plotly figures, one module per view, each with `build_tab(config)`."""
