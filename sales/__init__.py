"""The sales rules: settings, the business model, text folding, extraction, scoring,
opt-out, strategy, classification and follow-up planning.

A layer below the actors: every actor may import it; it imports only the store."""
