-- dsql_sys.sql: Aurora DSQL's `sys` schema for asynchronous jobs, as the front door offers it.
--
-- Run by the superuser in each database the first time a client logs in to it through the front
-- door (a database reached only directly, by tests of the bare server, never gets it: the
-- migrations take `sys.jobs` as the sign of DSQL and then write `CREATE INDEX ASYNC`, which
-- only the front door understands). Running it again is harmless.
--
-- What DSQL has, and the stand-in too:
--   * sys.jobs: one row per job, DSQL's nine columns; readable by everyone.
--   * CALL sys.wait_for_job('<job id>'): a procedure; a job id that is not 26 base32 characters
--     gets DSQL's 22P02 "Unable to convert text to UUID". It answers whether the job completed.
-- What the front door calls in place of `AWS IAM GRANT role TO 'arn'` and `AWS IAM REVOKE role
-- FROM 'arn'`:
--   * dsql_local.iam_grant(role, arn) and dsql_local.iam_revoke(role, arn): record or remove the
--     mapping in dsql_local.iam_grants (dsql_rules.sql); for roles that may create roles
--     (admin), of a role that exists. They answer no row.
-- What the front door calls in place of `CREATE [UNIQUE] INDEX ASYNC …` and
-- `ALTER TABLE ASYNC … VALIDATE CONSTRAINT …`:
--   * dsql_local.start_job(job_type, statement): runs the statement without ASYNC, as the
--     caller, records a completed job and returns its id; no row if the statement built nothing
--     (`IF NOT EXISTS` found the index). The work is done before the call returns, so every job
--     is `completed` when first seen, and a build that fails (a unique index over duplicates)
--     fails the statement itself, where DSQL would fail the job later.
-- What DSQL answers differently from PostgreSQL 15:
--   * version(): DSQL's text, `PostgreSQL 16` (environment.json), for `version()` and
--     `pg_catalog.version()` alike (SQLAlchemy reads the latter to learn the server's version).
--     PostgreSQL calls a built-in function by its OID, whatever pg_catalog says of it, so the
--     built-in cannot be replaced in place: it moves to dsql_local, and pg_catalog gets DSQL's.
--     Only the superuser may change pg_catalog: no user can drop or replace it there.
--   * sys.iam_pg_role_mappings: the mappings AWS IAM GRANT made, with the six columns AWS's
--     documentation shows (iam_oid, arn, pg_role_oid, pg_role_name, grantor_pg_role_oid,
--     grantor_pg_role_name). The stand-in has no IAM identities: iam_oid is a number derived from
--     the ARN (the same ARN always gets the same number), not an object of this server.

CREATE SCHEMA IF NOT EXISTS sys AUTHORIZATION postgres;
REVOKE ALL ON SCHEMA sys FROM PUBLIC;
GRANT USAGE ON SCHEMA sys TO PUBLIC;

CREATE TABLE IF NOT EXISTS sys.jobs (
  job_id text PRIMARY KEY,
  status text NOT NULL,
  details text,
  job_type text NOT NULL,
  class_id oid,
  object_id oid,
  object_name text,
  start_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL
);
REVOKE ALL ON sys.jobs FROM PUBLIC;
GRANT SELECT ON sys.jobs TO PUBLIC;

-- RFC 4648 base32, lower case, unpadded: DSQL's job ids are a UUID's 16 bytes so written.
CREATE OR REPLACE FUNCTION dsql_local.base32(bytes bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  alphabet constant text := 'abcdefghijklmnopqrstuvwxyz234567';
  bits bigint := 0;
  pending int := 0;
  encoded text := '';
BEGIN
  FOR i IN 0 .. length(bytes) - 1 LOOP
    bits := (bits << 8) | get_byte(bytes, i);
    pending := pending + 8;
    WHILE pending >= 5 LOOP
      pending := pending - 5;
      encoded := encoded || substr(alphabet, ((bits >> pending) & 31)::int + 1, 1);
    END LOOP;
    bits := bits & ((1::bigint << pending) - 1);
  END LOOP;
  IF pending > 0 THEN
    encoded := encoded || substr(alphabet, ((bits << (5 - pending)) & 31)::int + 1, 1);
  END IF;
  RETURN encoded;
END
$$;

-- Records a completed job. Security definer: callers may read sys.jobs, not write it.
CREATE OR REPLACE FUNCTION dsql_local.record_job(id text, kind text, class oid, object oid, name text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  INSERT INTO sys.jobs VALUES (id, 'completed', NULL, kind, class, object, name, now(), clock_timestamp());
$$;

-- Runs `statement` as the caller and records the job; see the top of this file. The object is
-- found as the catalog row this transaction wrote: the index (pg_class) or the constraint
-- (pg_constraint).
CREATE OR REPLACE FUNCTION dsql_local.start_job(job_type text, statement text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  id constant text := dsql_local.base32(uuid_send(gen_random_uuid()));
  me constant xid := pg_current_xact_id()::xid;
  class oid;
  object oid;
  name text;
BEGIN
  EXECUTE statement;
  IF job_type = 'INDEX_BUILD' THEN
    class := 'pg_class'::regclass;
    SELECT c.oid, c.relname INTO object, name FROM pg_class c
     WHERE c.relkind IN ('i', 'I') AND c.xmin = me ORDER BY c.oid DESC LIMIT 1;
  ELSE
    class := 'pg_constraint'::regclass;
    SELECT c.oid, c.conname INTO object, name FROM pg_constraint c
     WHERE c.xmin = me ORDER BY c.oid DESC LIMIT 1;
  END IF;
  IF object IS NULL THEN
    RETURN;
  END IF;
  PERFORM dsql_local.record_job(id, job_type, class, object, name);
  RETURN NEXT id;
END
$$;

CREATE OR REPLACE PROCEDURE sys.wait_for_job(job_id text, INOUT completed boolean DEFAULT NULL)
LANGUAGE plpgsql AS $$
BEGIN
  IF job_id IS NULL OR job_id !~ '^[a-z2-7]{26}$' THEN
    RAISE EXCEPTION USING ERRCODE = '22P02', MESSAGE = 'Unable to convert text to UUID';
  END IF;
  SELECT j.status = 'completed' INTO completed FROM sys.jobs j WHERE j.job_id = wait_for_job.job_id;
END
$$;

-- AWS IAM GRANT and REVOKE; see the top of this file. Only a role that may create roles
-- (admin) maps identities.
CREATE OR REPLACE FUNCTION dsql_local.require_createrole(action text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT coalesce((SELECT r.rolcreaterole OR r.rolsuper FROM pg_roles r WHERE r.rolname = session_user), false) THEN
    RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('permission denied to %s IAM access', action);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION dsql_local.iam_grant(role_name text, arn text) RETURNS SETOF void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  PERFORM dsql_local.require_createrole('grant');
  IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = role_name) THEN
    RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('role "%s" does not exist', role_name);
  END IF;
  INSERT INTO dsql_local.iam_grants VALUES (role_name, arn) ON CONFLICT DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION dsql_local.iam_revoke(role_name text, arn text) RETURNS SETOF void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  PERFORM dsql_local.require_createrole('revoke');
  DELETE FROM dsql_local.iam_grants g WHERE g.role = role_name AND g.arn = iam_revoke.arn;
END
$$;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
              WHERE p.proname = 'version' AND p.pronamespace = 'pg_catalog'::regnamespace
                AND p.pronargs = 0 AND l.lanname = 'internal') THEN
    ALTER FUNCTION pg_catalog.version() SET SCHEMA dsql_local;
  END IF;
END
$$;
CREATE OR REPLACE FUNCTION pg_catalog.version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT text 'PostgreSQL 16' $$;

-- Who made each mapping: the session's role when AWS IAM GRANT ran.
ALTER TABLE dsql_local.iam_grants ADD COLUMN IF NOT EXISTS grantor name NOT NULL DEFAULT session_user;

CREATE OR REPLACE VIEW sys.iam_pg_role_mappings AS
  SELECT ('x' || left(md5(g.arn), 8))::bit(32)::bigint::oid AS iam_oid,
         g.arn,
         r.oid AS pg_role_oid,
         g.role AS pg_role_name,
         gr.oid AS grantor_pg_role_oid,
         g.grantor AS grantor_pg_role_name
    FROM dsql_local.iam_grants g
    JOIN pg_catalog.pg_roles r ON r.rolname = g.role
    LEFT JOIN pg_catalog.pg_roles gr ON gr.rolname = g.grantor;
REVOKE ALL ON sys.iam_pg_role_mappings FROM PUBLIC;
GRANT SELECT ON sys.iam_pg_role_mappings TO PUBLIC;
