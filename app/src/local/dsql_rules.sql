-- dsql_rules.sql: the rules of Aurora DSQL that need the transaction's state, enforced inside
-- this PostgreSQL (13 or newer; tested with 15), with DSQL's SQLSTATE and wording (taken from
-- recordings of a live cluster): one DDL per transaction, no DDL and DML in one transaction,
-- at most 3,000 rows per transaction. Rules one statement's text decides are the front door's
-- (front_door/rules.rs), the one list of them.
--
-- Run by the superuser once per database as one plain-SQL string (template1 and postgres;
-- databases created later inherit everything from template1). Running it again is harmless.
--
-- How:
--   * A ddl_command_start event trigger allows one DDL per transaction with no DML before it
--     (state in transaction-local GUCs dsql_local.ddl / .dml).
--   * Every table a user creates gets statement triggers: DML is refused after DDL and marks
--     the transaction as DML, and a transaction may touch 3,000 rows at most (counted from
--     transition tables into dsql_local.rows). INSERT, UPDATE and DELETE fire no event
--     trigger, hence per-table triggers. A simple-protocol string of several statements runs as
--     one transaction, so the rules hold across it, as on DSQL.
--
-- Superusers are exempt from all of it (current_setting('is_superuser')), and so is this
-- script's own CREATE TRIGGER (dsql_local.internal). Functions run with the invoker's rights and
-- a search path of pg_catalog only, so a user's function of the same name as one they call
-- (current_setting, set_config) never answers for it.
-- Out of reach in-server: CREATE/ALTER/DROP ROLE, CREATE DATABASE and other global objects fire
-- no event trigger, so they are not counted as DDL; tables created by a superuser get no
-- per-table triggers; the GUCs are not protected from a user who sets them on purpose (the
-- front door lets no session set them: front_door/guards.rs).

CREATE SCHEMA IF NOT EXISTS dsql_local AUTHORIZATION postgres;
REVOKE ALL ON SCHEMA dsql_local FROM PUBLIC;
GRANT USAGE ON SCHEMA dsql_local TO PUBLIC;

CREATE OR REPLACE FUNCTION dsql_local.exempt() RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT current_setting('is_superuser') = 'on'
      OR coalesce(current_setting('dsql_local.internal', true), '') = 'on'
$$;

-- Rule 9: one DDL per transaction, and no DDL after DML.
CREATE OR REPLACE FUNCTION dsql_local.one_ddl_per_transaction() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  IF current_setting('dsql_local.dml', true) = 'on' THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'ddl and dml are not supported in the same transaction';
  END IF;
  IF current_setting('dsql_local.ddl', true) = 'on' THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'multiple ddl statements not supported in a transaction';
  END IF;
  PERFORM set_config('dsql_local.ddl', 'on', true);
END $$;

-- Per-table triggers (rules 9, 13).
CREATE OR REPLACE FUNCTION dsql_local.mark_dml() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT dsql_local.exempt() THEN   -- rule 9: DML after DDL; remember DML for later DDL
    IF current_setting('dsql_local.ddl', true) = 'on' THEN
      RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'ddl and dml are not supported in the same transaction';
    END IF;
    PERFORM set_config('dsql_local.dml', 'on', true);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION dsql_local.count_rows() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF NOT dsql_local.exempt() THEN   -- rule 13: at most 3,000 rows per transaction
    n := coalesce(nullif(current_setting('dsql_local.rows', true), ''), '0')::bigint
         + (SELECT count(*) FROM dsql_rows);
    IF n > 3000 THEN
      RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = 'transaction row limit exceeded';
    END IF;
    PERFORM set_config('dsql_local.rows', n::text, true);
  END IF;
  RETURN NULL;
END $$;

-- At the end of CREATE TABLE: attach the per-table triggers (exempt from rule 9 and, without
-- the front door, rule 3).
CREATE OR REPLACE FUNCTION dsql_local.attach_table_triggers() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE t regclass;
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  FOR t IN SELECT c.oid FROM pg_event_trigger_ddl_commands() d
             JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
            WHERE d.command_tag = 'CREATE TABLE' AND c.relkind IN ('r', 'p') LOOP
    PERFORM set_config('dsql_local.internal', 'on', true);
    EXECUTE format('CREATE TRIGGER dsql_local_dml BEFORE INSERT OR UPDATE OR DELETE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.mark_dml()', t);
    EXECUTE format('CREATE TRIGGER dsql_local_rows_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS dsql_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.count_rows()', t);
    EXECUTE format('CREATE TRIGGER dsql_local_rows_update AFTER UPDATE ON %s REFERENCING NEW TABLE AS dsql_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.count_rows()', t);
    EXECUTE format('CREATE TRIGGER dsql_local_rows_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS dsql_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.count_rows()', t);
    PERFORM set_config('dsql_local.internal', 'off', true);
  END LOOP;
END $$;

-- Event triggers fire in name order within an event.
DROP EVENT TRIGGER IF EXISTS dsql_b_transaction;
DROP EVENT TRIGGER IF EXISTS dsql_z_attach;

CREATE EVENT TRIGGER dsql_b_transaction ON ddl_command_start
  EXECUTE FUNCTION dsql_local.one_ddl_per_transaction();
CREATE EVENT TRIGGER dsql_z_attach ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE SCHEMA')
  EXECUTE FUNCTION dsql_local.attach_table_triggers();

-- DSQL has no text search configurations (queries.json, q_fulltext_*): to_tsvector('english', …)
-- gets 42704 text search configuration "english" does not exist. `simple` is pinned (the system
-- needs it) and stays.
CREATE OR REPLACE FUNCTION dsql_local.drop_text_search_configurations() RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE configuration regconfig;
BEGIN
  FOR configuration IN SELECT oid::regconfig FROM pg_ts_config WHERE cfgname <> 'simple' LOOP
    EXECUTE format('DROP TEXT SEARCH CONFIGURATION %s', configuration);
  END LOOP;
END $$;
SELECT dsql_local.drop_text_search_configurations();

-- The roles AWS IAM GRANT maps to IAM identities. Through the front door, `AWS IAM GRANT role TO
-- 'arn'` records a row here (dsql_local.iam_grant, in dsql_sys.sql), and a role other than admin
-- may log in only with one: DSQL's "onboarded". Only the superuser reads or writes it directly.
CREATE TABLE IF NOT EXISTS dsql_local.iam_grants (
  role name NOT NULL,
  arn text NOT NULL,
  PRIMARY KEY (role, arn)
);
REVOKE ALL ON dsql_local.iam_grants FROM PUBLIC;
