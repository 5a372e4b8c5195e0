//! What no session may reach through the front door, whatever else DSQL allows: a privilege
//! DSQL's roles lack, a file or a program of the server's machine, and the settings the
//! stand-in's own rules depend on.
//!
//! - Roles: PostgreSQL's predefined `pg_*` roles are neither granted, nor granted to, nor
//!   named in `CREATE`/`ALTER ROLE`, and no role gets `SUPERUSER`, `REPLICATION` or
//!   `BYPASSRLS`. On PostgreSQL 15 a role with `CREATEROLE` (the stand-in's `admin`) could
//!   otherwise grant itself `pg_execute_server_program`.
//! - `COPY` to or from a server file or program; only `FROM STDIN` and `TO STDOUT` pass, as
//!   on DSQL. Calls of [`FILE_FUNCTIONS`] wherever they appear.
//! - Settings ([`setting_refusal`]): the stand-in's `dsql_local.*` switches, the parameters
//!   DSQL refuses to set, a `client_encoding` other than UTF-8 (the judge reads UTF-8) and
//!   `standard_conforming_strings` off (the judge lexes strings as PostgreSQL does with it
//!   on) — by `SET`, startup parameters ([`startup_refusal`]) and `set_config`.
//! - Functions that run SQL given as text (`query_to_xml`, `ts_stat`, …): the text is judged
//!   like a query, and refused when it is not a constant the judge can read.
//!
//! Every message here is an assumption in DSQL's style: none of these refusals is recorded.

use pg_query::NodeEnum;
use pg_query::protobuf::{self, a_const};
use serde_json::Value;

use super::rules::Refusal;

/// DSQL's answer to a statement that names one of its system roles, as it answers a `GRANT`
/// on its system schemas (dsql-facts.md §0; the wording for roles is an assumption).
pub const SYSTEM_ENTITY: &str = "feature not supported on system entity";

/// The PostgreSQL 15 functions that read, list or write files of the server's machine, run a
/// program there, or act on the server process's files and logs. Chosen from `pg_catalog`'s
/// functions whose `EXECUTE` PostgreSQL 15 revokes from `PUBLIC` (superuser or predefined-role
/// only), keeping those that touch files or programs (the replication-origin, statistics-reset
/// and memory-context functions touch neither), plus `pg_import_system_collations`, which runs
/// `locale -a` and checks for a superuser itself.
pub const FILE_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_archive_statusdir",
    "pg_ls_tmpdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "lo_import",
    "lo_export",
    "pg_current_logfile",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_show_all_file_settings",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_create_restore_point",
    "pg_switch_wal",
    "pg_promote",
    "pg_rotate_logfile",
    "pg_reload_conf",
    "pg_log_backend_memory_contexts",
    "pg_import_system_collations",
];

/// Functions that run SQL given as text, and which argument holds it (`ts_rewrite` only in
/// its two-argument form).
const SQL_RUNNERS: &[(&str, usize, Option<usize>)] = &[
    ("query_to_xml", 0, None),
    ("query_to_xmlschema", 0, None),
    ("query_to_xml_and_xmlschema", 0, None),
    ("ts_stat", 0, None),
    ("ts_rewrite", 1, Some(2)),
];

/// `set_config`, which sets a parameter from inside a query.
const SET_CONFIG: &str = "set_config";

/// Whether an identifier (as the lexer found it, quoted or not) may name a function this
/// module judges: the cheap test that decides whether a statement's tree is walked.
pub fn is_watched(identifier: &str) -> bool {
    let name = identifier.trim_matches('"').to_ascii_lowercase();
    FILE_FUNCTIONS.contains(&name.as_str())
        || SQL_RUNNERS.iter().any(|(runner, ..)| *runner == name)
        || name == SET_CONFIG
}

/// The refusal of a function named `name` (last part of a possibly qualified name).
fn function_refusal(name: &str) -> Refusal {
    // DSQL's wording for the functions it lacks (advisory locks, dsql-facts.md §1.1).
    Refusal::unsupported(format!("function {name} not supported"))
}

// ---------------------------------------------------------------------------------------------
// Roles.

/// Whether `name` is one of PostgreSQL's predefined roles (a prefix PostgreSQL reserves).
fn is_predefined(name: &str) -> bool {
    name.starts_with("pg_")
}

/// The name a `RoleSpec` node names, if it names one.
fn role_name(node: &protobuf::Node) -> Option<&str> {
    match &node.node {
        Some(NodeEnum::RoleSpec(r)) => Some(&r.rolename),
        Some(NodeEnum::AccessPriv(p)) => Some(&p.priv_name),
        _ => None,
    }
}

/// Whether any of `nodes` (role specifications or granted roles) is a predefined role.
fn names_predefined(nodes: &[protobuf::Node]) -> bool {
    nodes.iter().filter_map(role_name).any(is_predefined)
}

/// Role attributes DSQL's roles never have, by the option name PostgreSQL's grammar gives them.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("superuser", "SUPERUSER"),
    ("isreplication", "REPLICATION"),
    ("bypassrls", "BYPASSRLS"),
];

/// `CREATE ROLE`/`ALTER ROLE` options: an attribute of [`ATTRIBUTES`] switched on, or a role
/// list (`IN ROLE`, `ROLE`, `ADMIN`) naming a predefined role.
fn role_options_refusal(options: &[protobuf::Node]) -> Option<Refusal> {
    options.iter().find_map(|option| {
        let Some(NodeEnum::DefElem(d)) = &option.node else {
            return None;
        };
        let arg = d.arg.as_ref().and_then(|a| a.node.as_ref());
        if let Some((_, attribute)) = ATTRIBUTES.iter().find(|(name, _)| *name == d.defname) {
            let on = match arg {
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                _ => true,
            };
            return on.then(|| {
                Refusal::unsupported(format!("role attribute {attribute} not supported"))
            });
        }
        match arg {
            Some(NodeEnum::List(list)) if names_predefined(&list.items) => {
                Some(Refusal::unsupported(SYSTEM_ENTITY))
            }
            _ => None,
        }
    })
}

/// Role statements that would give a role what DSQL's roles cannot have.
pub fn role_refusal(node: &NodeEnum) -> Option<Refusal> {
    match node {
        NodeEnum::GrantRoleStmt(s)
            if s.is_grant
                && (names_predefined(&s.granted_roles) || names_predefined(&s.grantee_roles)) =>
        {
            Some(Refusal::unsupported(SYSTEM_ENTITY))
        }
        NodeEnum::CreateRoleStmt(s) => {
            if is_predefined(&s.role) {
                return Some(Refusal::unsupported(SYSTEM_ENTITY));
            }
            role_options_refusal(&s.options)
        }
        NodeEnum::AlterRoleStmt(s) => {
            if s.role.as_ref().is_some_and(|r| is_predefined(&r.rolename)) {
                return Some(Refusal::unsupported(SYSTEM_ENTITY));
            }
            role_options_refusal(&s.options)
        }
        _ => None,
    }
}

/// `CREATE AGGREGATE`, `CREATE OPERATOR` and the like name the functions they call in their
/// definition (`sfunc = set_config`, or as a string, `sfunc = 'pg_catalog.set_config'`): one
/// that names a function this module judges is refused, since its calls would not be.
pub fn definition_refusal(s: &protobuf::DefineStmt) -> Option<Refusal> {
    s.definition.iter().find_map(|option| {
        let Some(NodeEnum::DefElem(d)) = &option.node else {
            return None;
        };
        let named = match d.arg.as_ref()?.node.as_ref()? {
            NodeEnum::TypeName(t) => t.names.last().and_then(string_node)?.to_owned(),
            NodeEnum::List(l) => l.items.last().and_then(string_node)?.to_owned(),
            NodeEnum::String(s) => s.sval.rsplit('.').next()?.to_owned(),
            _ => return None,
        };
        is_watched(&named).then(|| function_refusal(&named.to_ascii_lowercase()))
    })
}

/// The text of a `String` node.
fn string_node(node: &protobuf::Node) -> Option<&str> {
    match &node.node {
        Some(NodeEnum::String(s)) => Some(&s.sval),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// COPY.

/// `COPY` to or from a file or a program of the server: DSQL has only `FROM STDIN` and
/// `TO STDOUT` (dsql-facts.md §1.1). The wording follows DSQL's `unsupported VACUUM
/// statement` (an assumption: not recorded).
pub fn copy_refusal(s: &protobuf::CopyStmt) -> Option<Refusal> {
    (s.is_program || !s.filename.is_empty())
        .then(|| Refusal::unsupported("unsupported COPY statement"))
}

// ---------------------------------------------------------------------------------------------
// Settings.

/// Parameters DSQL refuses to set, all answered `setting configuration parameter "…" not
/// supported`. Recorded: `default_transaction_isolation` (`isolation.json`). Observed on
/// clusters by others (dsql-facts.md §3.6): `client_min_messages` (pgAdmin #9433),
/// `statement_timeout` (`SET LOCAL`, quill-router #672), `lc_numeric` (as a startup
/// parameter). Reported refused with the wording not captured: `default_transaction_read_only`.
/// Everything else DSQL allows, among them the accepted `search_path`, `application_name`,
/// `TimeZone`, `DateStyle`, `client_encoding` (UTF-8), `extra_float_digits` and
/// `dsql.enable_batched_nestloop`.
const REFUSED_PARAMETERS: &[&str] = &[
    "default_transaction_isolation",
    "client_min_messages",
    "statement_timeout",
    "lc_numeric",
    "default_transaction_read_only",
];

/// The prefix of the stand-in's own switches (the in-server rules' state and exemptions).
const INTERNAL_PREFIX: &str = "dsql_local.";

/// Whether `value` names a client encoding in which the server reads exactly the bytes the
/// judge reads as UTF-8, as PostgreSQL reads encoding names (case and punctuation ignored):
/// UTF-8 (`UTF8`, `utf-8`, `Unicode`), or `SQL_ASCII`, for which a UTF-8 server converts
/// nothing and still checks that the text is UTF-8 (what libpq's `auto` picks in a C locale).
fn is_utf8(value: &str) -> bool {
    let name: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    ["utf8", "unicode", "sqlascii"].contains(&name.as_str())
}

/// DSQL's refusal of setting `name`, when `value` is `Some` that value (`None`: a value the
/// judge cannot read, or a reset to the session's default).
///
/// Refused: the `REFUSED_PARAMETERS`; anything under `dsql_local.`; `client_encoding` other
/// than UTF-8 or `SQL_ASCII` (DSQL is UTF-8 only, dsql-facts.md §0; that DSQL refuses another
/// client encoding, rather than converting, is an assumption); `standard_conforming_strings` other than `on`
/// (not recorded: a difference of lexing between the judge and the server would let text past
/// the judge). A reset is always allowed for the last two: the session's default is UTF-8 and
/// `on`, since startup parameters pass the same check.
pub fn setting_refusal(name: &str, value: Option<&str>, reset: bool) -> Option<Refusal> {
    let lower = name.to_ascii_lowercase();
    let refused = REFUSED_PARAMETERS.contains(&lower.as_str())
        || lower.starts_with(INTERNAL_PREFIX)
        || (!reset
            && match lower.as_str() {
                "client_encoding" => !value.is_some_and(is_utf8),
                "standard_conforming_strings" => !value.is_some_and(|v| {
                    ["on", "true", "yes", "1"].contains(&v.to_ascii_lowercase().as_str())
                }),
                _ => false,
            });
    refused.then(|| {
        Refusal::unsupported(format!(
            "setting configuration parameter \"{lower}\" not supported"
        ))
    })
}

/// The value of a `SET` argument: a string, or a number as written.
pub fn set_value(node: &protobuf::Node) -> Option<String> {
    match &node.node {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(a_const::Val::Sval(s)) => Some(s.sval.clone()),
            Some(a_const::Val::Ival(i)) => Some(i.ival.to_string()),
            Some(a_const::Val::Fval(f)) => Some(f.fval.clone()),
            Some(a_const::Val::Boolval(b)) => Some(b.boolval.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The startup parameters a client sent, judged: `user`, `database` and the protocol's own
/// keys pass; `options` may hold only `-c name=value` / `--name=value` settings; every other
/// key is a setting. The first refusal, as DSQL refuses a startup parameter it does not
/// support (dsql-facts.md §3.6, `lc_numeric`).
pub fn startup_refusal<'a>(
    parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<Refusal> {
    parameters.into_iter().find_map(|(name, value)| match name {
        "user" | "database" => None,
        "options" => options_refusal(value),
        name => setting_refusal(name, Some(value), false),
    })
}

/// The settings of a startup `options` value, split as the server splits it: at unescaped
/// whitespace, a backslash escaping the next character.
fn option_words(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A startup `options` value: only settings, each allowed by [`setting_refusal`]. Another
/// switch (`-d 5`, `-B …`) is a server option no client of DSQL can give (an assumption about
/// DSQL's wording).
fn options_refusal(options: &str) -> Option<Refusal> {
    let words = option_words(options);
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().map(String::as_str)
        } else {
            word.strip_prefix("--").or_else(|| word.strip_prefix("-c"))
        };
        let Some((name, value)) = setting.and_then(|s| s.split_once('=')) else {
            return Some(Refusal::unsupported(format!(
                "unsupported startup option \"{word}\""
            )));
        };
        // The server reads `-` in a name as `_`.
        let name = name.replace('-', "_");
        if let Some(refusal) = setting_refusal(&name, Some(value), false) {
            return Some(refusal);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Calls, found anywhere in a statement's tree (its serde form).

/// The names of a name list in serde form (`[{"node": {"String": {"sval": …}}}, …]`).
fn names(list: Option<&Value>) -> Vec<&str> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.pointer("/node/String/sval").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// A constant string argument in serde form.
fn string_constant(arg: &Value) -> Option<&str> {
    arg.pointer("/node/AConst/val/Sval/sval")
        .and_then(Value::as_str)
}

/// The refusal of one node of a statement's tree, in serde form (`kind` its node type,
/// `fields` its fields): a call of a [`FILE_FUNCTIONS`] function (or a reference to one, as
/// in `GRANT EXECUTE ON FUNCTION`), a `set_config` of a refused setting or of a name it cannot
/// read, and SQL given as text to a function that runs it, judged by `judge`.
pub fn node_refusal(
    kind: &str,
    fields: &Value,
    judge: &dyn Fn(&str) -> Option<Refusal>,
) -> Option<Refusal> {
    let (name_field, args) = match kind {
        "FuncCall" => ("funcname", fields.get("args")),
        "ObjectWithArgs" => ("objname", None),
        _ => return None,
    };
    let name = *names(fields.get(name_field)).last()?;
    if FILE_FUNCTIONS.contains(&name) {
        return Some(function_refusal(name));
    }
    let args = args.and_then(Value::as_array)?;
    if name == SET_CONFIG {
        let Some(parameter) = args.first().and_then(string_constant) else {
            // Not recorded: a name only known when the query runs cannot be judged.
            return Some(Refusal::unsupported(
                "function set_config not supported with a parameter name that is not a constant",
            ));
        };
        let value = args.get(1).and_then(string_constant);
        return setting_refusal(parameter, value, false);
    }
    let (_, position, arity) = SQL_RUNNERS.iter().find(|(runner, ..)| *runner == name)?;
    if arity.is_some_and(|n| n != args.len()) {
        return None;
    }
    match args.get(*position).and_then(string_constant) {
        Some(sql) => judge(sql),
        // Not recorded: SQL only known when the query runs cannot be judged.
        None => Some(Refusal::unsupported(format!(
            "function {name} not supported with a query that is not a constant"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(parameters: &[(&str, &str)]) -> Option<String> {
        startup_refusal(parameters.iter().copied()).map(|r| r.message)
    }

    #[test]
    fn startup_options_pass_settings_dsql_accepts_and_nothing_else() {
        for ok in [
            "-c search_path=myschema",
            "-c search_path=a,b   --application_name=x",
            "-csearch_path=a\\ b",
            "",
        ] {
            assert_eq!(refused(&[("options", ok)]), None, "{ok}");
        }
        for (options, named) in [
            ("-c dsql_local.internal=on", "dsql_local.internal"),
            ("-c search_path=x -c DSQL_LOCAL.rows=1", "dsql_local.rows"),
            ("--dsql-local.internal=on", "dsql_local.internal"),
            ("-c statement_timeout=5s", "statement_timeout"),
            ("-c client_encoding=LATIN1", "client_encoding"),
        ] {
            let message = refused(&[("options", options)]).expect(options);
            assert!(message.contains(named), "{options}: {message}");
        }
        assert!(refused(&[("options", "-d 5")]).is_some());
        assert!(refused(&[("options", "-c")]).is_some());
        assert_eq!(
            refused(&[
                ("user", "u"),
                ("database", "d"),
                ("client_encoding", "UTF8")
            ]),
            None
        );
        assert!(refused(&[("dsql_local.internal", "on")]).is_some());
    }

    #[test]
    fn settings_the_rules_depend_on_keep_their_values() {
        assert!(setting_refusal("client_encoding", Some("unicode"), false).is_none());
        assert!(setting_refusal("client_encoding", Some("LATIN1"), false).is_some());
        assert!(setting_refusal("client_encoding", None, true).is_none());
        assert!(setting_refusal("standard_conforming_strings", Some("off"), false).is_some());
        assert!(setting_refusal("standard_conforming_strings", Some("ON"), false).is_none());
        assert!(setting_refusal("Dsql_Local.ddl", None, true).is_some());
        assert!(setting_refusal("TimeZone", Some("UTC"), false).is_none());
    }
}
