-- Which user created which upstream response (privchat/upstream/first_id.py records the id from
-- the stream's first event or the JSON answer's top-level `id`). The upstream key is shared by
-- every user, so `previous_response_id` and `/v1/signature/{id}` are checked against this table
-- before anything is forwarded (docs/ownership.md).
CREATE TABLE response_owners (
    id VARCHAR(255) PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_response_owners_user_id ON response_owners(user_id);
