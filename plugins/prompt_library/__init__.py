"""Prompt library: a portal page (PortalUIProvider) where each user keeps prompts and reads the team's."""
