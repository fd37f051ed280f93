"""Resource estimation against edge-hardware budgets (Loihi 2 first)."""
