"""Card issuance core: credential format, signing and rendering (pure; no web, database or reader imports)."""
