"""Card verification core, portable to door stations (pure; never imports cardsvc, holds no private key)."""
