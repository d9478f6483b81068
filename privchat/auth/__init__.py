"""Identity: sessions and guards, OAuth providers (Google, GitHub) and Sign-in-with-NEAR (NEP-413)."""
