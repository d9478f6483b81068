-- Model settings and the VPC key are cached in each process (privchat/services/changes.py).
-- Any change to them, however it is made (API on any replica, admin SQL), notifies every
-- replica on commit, and each drops what it cached.
CREATE FUNCTION privchat_notify_model() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.model_id ELSE NEW.model_id END;
BEGIN
    -- A payload is limited to 8000 bytes: a longer id drops every model (an empty key).
    IF octet_length(changed) > 1000 THEN
        changed := '';
    END IF;
    PERFORM pg_notify('privchat_changes', 'model:' || changed);
    IF TG_OP = 'UPDATE' AND NEW.model_id IS DISTINCT FROM OLD.model_id THEN
        PERFORM pg_notify('privchat_changes', 'model:' || CASE
            WHEN octet_length(OLD.model_id) > 1000 THEN '' ELSE OLD.model_id END);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER models_notify_change AFTER INSERT OR UPDATE OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION privchat_notify_model();

CREATE FUNCTION privchat_notify_vpc() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.key IN ('vpc_api_key', 'vpc_organization_id') THEN
        PERFORM pg_notify('privchat_changes', 'vpc:');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER app_config_notify_vpc AFTER UPDATE OR DELETE ON app_config
    FOR EACH ROW EXECUTE FUNCTION privchat_notify_vpc();
