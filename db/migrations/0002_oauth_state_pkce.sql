-- D6: OAuth states carry the PKCE verifier (S256) of the flow they start.
ALTER TABLE oauth_states ADD COLUMN code_verifier TEXT;
