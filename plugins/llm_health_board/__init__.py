"""LLM health board: an admin page (UIProvider) that lists the studio's LLMs and checks them on demand."""
