-- Session lookups (with the user's bans and NEAR account) are cached in each process
-- (privchat/auth/session_cache.py). Any change to a session, a ban or a linked account, however it
-- is made (API, admin SQL, ON DELETE CASCADE from users), notifies every replica on commit with
-- the user's id, and each drops what it cached for that user.
CREATE FUNCTION privchat_notify_auth() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('privchat_auth', NEW.user_id::text);
    ELSE
        PERFORM pg_notify('privchat_auth', OLD.user_id::text);
        IF TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id THEN
            PERFORM pg_notify('privchat_auth', NEW.user_id::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_auth AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION privchat_notify_auth();
CREATE TRIGGER user_bans_notify_auth AFTER INSERT OR UPDATE OR DELETE ON user_bans
    FOR EACH ROW EXECUTE FUNCTION privchat_notify_auth();
CREATE TRIGGER oauth_accounts_notify_auth AFTER INSERT OR UPDATE OR DELETE ON oauth_accounts
    FOR EACH ROW EXECUTE FUNCTION privchat_notify_auth();
