"""Analysis cores of the playground views (pure functions, no gradio); `playground.ui` has the UI."""
