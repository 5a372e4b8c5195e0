-- dsql_statement_rules.sql: the rules that one statement's text decides, enforced inside the
-- server, for a build without the front door (which decides them from the statement itself,
-- with PostgreSQL's parser, and this file is then not installed: each rule lives in one place).
-- Run by the superuser after dsql_rules.sql (it uses its dsql_local schema and exempt()).
--
-- How: ddl_command_start event triggers refuse statements by command tag; ddl_command_end event
-- triggers look at what the command built (pg_event_trigger_ddl_commands and the catalogs):
-- serial, TEMP/UNLOGGED tables, column types, identity and sequence caches, enum/composite/range
-- types, non-SQL functions; a per-table trigger refuses TRUNCATE (dsql_rules.sql attaches it to
-- each new table once refuse_truncate exists); plpgsql loses its inline
-- handler, so DO blocks fail with 0A000.

-- Statements DSQL does not have at all, by command tag.
CREATE OR REPLACE FUNCTION dsql_local.unsupported_tag(tag text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE tag
    WHEN 'CREATE TRIGGER'           THEN 'CREATE TRIGGER not supported'                -- rule 3
    WHEN 'CREATE EXTENSION'         THEN 'unsupported statement: CreateExtension'      -- rule 4
    WHEN 'CREATE PROCEDURE'         THEN 'PROCEDURE is not supported'                  -- rule 6
    WHEN 'ALTER TYPE'               THEN 'ALTER TYPE not supported'                    -- rule 2
    WHEN 'DROP TYPE'                THEN 'unsupported object in DROP statement'        -- rule 2
    WHEN 'CREATE MATERIALIZED VIEW' THEN 'unsupported statement: CreateTableAs'        -- rule 12
    WHEN 'CREATE TABLE AS'          THEN 'unsupported statement: CreateTableAs'        -- rule 12
    WHEN 'SELECT INTO'              THEN 'unsupported statement: CreateTableAs'        -- rule 12
    WHEN 'CREATE FOREIGN TABLE'     THEN 'unsupported statement: CreateForeignTable'   -- rule 12
  END
$$;

-- Rules 2, 3, 4, 6, 12 by tag. At ddl_command_end only for the elements of CREATE SCHEMA
-- (CREATE SCHEMA s CREATE TRIGGER ...), which fire no ddl_command_start of their own.
CREATE OR REPLACE FUNCTION dsql_local.refuse_statement() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE msg text;
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  IF TG_EVENT = 'ddl_command_start' THEN
    msg := dsql_local.unsupported_tag(TG_TAG);
  ELSE
    SELECT min(dsql_local.unsupported_tag(command_tag)) INTO msg FROM pg_event_trigger_ddl_commands();
  END IF;
  IF msg IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = msg;
  END IF;
END $$;

-- Rule 2: CREATE TYPE (enum, composite, range, shell); CREATE DOMAIN has its own tag and passes.
CREATE OR REPLACE FUNCTION dsql_local.refuse_create_type() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE kind "char";
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  SELECT t.typtype INTO kind FROM pg_event_trigger_ddl_commands() d JOIN pg_type t ON t.oid = d.objid
   WHERE d.classid = 'pg_type'::regclass ORDER BY t.typtype = 'm' LIMIT 1;   -- a range before its multirange
  RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = CASE kind
    WHEN 'c' THEN 'unsupported statement: CompositeType'   -- CREATE TYPE t AS (a int)
    WHEN 'r' THEN 'unsupported statement: CreateRange'     -- CREATE TYPE t AS RANGE (...)
    ELSE 'CREATE TYPE not supported' END;                  -- AS ENUM, shell, base
END $$;

-- Rule 6: only LANGUAGE sql functions.
CREATE OR REPLACE FUNCTION dsql_local.refuse_function_language() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE lang name;
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  SELECT l.lanname INTO lang FROM pg_event_trigger_ddl_commands() d
    JOIN pg_proc p ON p.oid = d.objid AND d.classid = 'pg_proc'::regclass
    JOIN pg_language l ON l.oid = p.prolang
   WHERE l.lanname <> 'sql' LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format('CREATE FUNCTION with language %s not supported', lang);
  END IF;
END $$;

-- Rules 5, 1, 11: tables built by CREATE TABLE / ALTER TABLE (also inside CREATE SCHEMA).
CREATE OR REPLACE FUNCTION dsql_local.check_tables() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE persistence "char"; typ text;
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  -- rule 5: TEMPORARY / UNLOGGED (event triggers do fire for temp tables, as pg_temp.name)
  SELECT c.relpersistence INTO persistence FROM pg_event_trigger_ddl_commands() d
    JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
   WHERE d.command_tag = 'CREATE TABLE' AND c.relpersistence <> 'p' LIMIT 1;
  IF persistence = 't' THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'TEMPORARY or TEMP table not supported for CREATE TABLE';
  ELSIF persistence = 'u' THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'UNLOGGED table not supported for CREATE TABLE';
  END IF;
  -- rule 1: a sequence created by CREATE/ALTER TABLE and owned (deptype 'a', not identity's 'i')
  -- by a column was a serial column: type "serial" does not exist
  SELECT CASE a.atttypid WHEN 'int8'::regtype THEN 'bigserial' WHEN 'int2'::regtype THEN 'smallserial' ELSE 'serial' END
    INTO typ FROM pg_event_trigger_ddl_commands() d
    JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = d.objid AND dep.deptype = 'a' AND dep.refobjsubid > 0
    JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
   WHERE d.command_tag = 'CREATE SEQUENCE' AND d.object_type = 'sequence'
   ORDER BY a.attnum LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('type "%s" does not exist', typ);
  END IF;
  -- rule 11: column types: datatype inet not supported
  SELECT format_type(a.atttypid, NULL) INTO typ FROM pg_event_trigger_ddl_commands() d
    JOIN pg_attribute a ON a.attrelid = d.objid AND d.classid = 'pg_class'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
   WHERE d.command_tag IN ('CREATE TABLE', 'ALTER TABLE') AND d.object_type = 'table'
     AND (t.typcategory IN ('A', 'G', 'I', 'R', 'V')   -- arrays, geometric, inet/cidr, ranges, bit/varbit
          OR t.oid IN ('money'::regtype, 'xml'::regtype, 'macaddr'::regtype, 'macaddr8'::regtype,
                       'tsvector'::regtype, 'tsquery'::regtype, 'pg_lsn'::regtype,
                       'txid_snapshot'::regtype, 'pg_snapshot'::regtype))
   ORDER BY d.objid, a.attnum LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = format('datatype %s not supported', typ);
  END IF;
END $$;

-- Rule 10: identity columns must be bigint; sequences and identity columns need an explicit
-- CACHE of 1 or >= 65536. PostgreSQL's default cache is also 1, so "explicit" is judged from
-- the statement text: a new sequence with cache 1 and no word CACHE in the query is refused
-- (a heuristic: the word anywhere in the query string counts; the wire-level front door will
-- read the statement itself).
CREATE OR REPLACE FUNCTION dsql_local.check_sequences() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  IF dsql_local.exempt() THEN RETURN; END IF;
  FOR r IN SELECT d.command_tag, s.seqcache, a.atttypid
             FROM pg_event_trigger_ddl_commands() d
             JOIN pg_sequence s ON s.seqrelid = d.objid AND d.classid = 'pg_class'::regclass
             LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = d.objid AND dep.deptype = 'i'
             LEFT JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid LOOP
    IF r.atttypid IS NOT NULL AND r.atttypid <> 'int8'::regtype THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = format('datatype %s not supported, identity column type must be bigint', format_type(r.atttypid, NULL));
    END IF;
    -- A CACHE of another size: DSQL's message (its SQLSTATE is assumed, as in front_door/rules.rs).
    IF NOT (r.seqcache = 1 OR r.seqcache >= 65536) AND current_query() ~* '\mcache\M' THEN
      RAISE EXCEPTION USING ERRCODE = '22023',
        MESSAGE = format('CACHE (%s) must be greater than or equal to 65536 or equal to 1', r.seqcache);
    END IF;
    IF NOT (r.seqcache = 1 OR r.seqcache >= 65536)
       OR (r.command_tag = 'CREATE SEQUENCE' AND current_query() !~* '\mcache\M') THEN
      RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = CASE WHEN r.atttypid IS NULL
        THEN 'CREATE SEQUENCE is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1'
        ELSE 'identity column is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1' END;
    END IF;
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION dsql_local.refuse_truncate() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT dsql_local.exempt() THEN   -- rule 8
    RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'unsupported statement: Truncate';
  END IF;
  RETURN NULL;
END $$;

-- Event triggers fire in name order within an event (dsql_rules.sql has dsql_b_* and dsql_z_*).
DROP EVENT TRIGGER IF EXISTS dsql_a_statement_start;
DROP EVENT TRIGGER IF EXISTS dsql_a_statement_end;
DROP EVENT TRIGGER IF EXISTS dsql_c_create_type;
DROP EVENT TRIGGER IF EXISTS dsql_c_function;
DROP EVENT TRIGGER IF EXISTS dsql_d_tables;
DROP EVENT TRIGGER IF EXISTS dsql_e_sequences;

CREATE EVENT TRIGGER dsql_a_statement_start ON ddl_command_start
  WHEN TAG IN ('CREATE TRIGGER', 'CREATE EXTENSION', 'CREATE PROCEDURE', 'ALTER TYPE', 'DROP TYPE',
               'CREATE MATERIALIZED VIEW', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE FOREIGN TABLE')
  EXECUTE FUNCTION dsql_local.refuse_statement();
CREATE EVENT TRIGGER dsql_a_statement_end ON ddl_command_end WHEN TAG IN ('CREATE SCHEMA')
  EXECUTE FUNCTION dsql_local.refuse_statement();
CREATE EVENT TRIGGER dsql_c_create_type ON ddl_command_end WHEN TAG IN ('CREATE TYPE')
  EXECUTE FUNCTION dsql_local.refuse_create_type();
CREATE EVENT TRIGGER dsql_c_function ON ddl_command_end WHEN TAG IN ('CREATE FUNCTION')
  EXECUTE FUNCTION dsql_local.refuse_function_language();
CREATE EVENT TRIGGER dsql_d_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE SCHEMA')
  EXECUTE FUNCTION dsql_local.check_tables();
CREATE EVENT TRIGGER dsql_e_sequences ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE SCHEMA', 'CREATE SEQUENCE', 'ALTER SEQUENCE')
  EXECUTE FUNCTION dsql_local.check_sequences();

-- Rule 7: DO blocks -> 0A000 language "plpgsql" does not support inline code execution.
-- plpgsql functions (event triggers, triggers) keep working; nobody, superuser included, can use DO.
UPDATE pg_language SET laninline = 0 WHERE lanname = 'plpgsql';
