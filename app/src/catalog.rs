//! Reading back the schema from the database's catalog.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};

/// One column of a table, as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct ColumnInfo {
    /// Table name.
    pub table_name: String,
    /// Column name.
    pub column_name: String,
    /// Type as PostgreSQL prints it, e.g. `character varying(30)`.
    pub data_type: String,
    /// Whether the column accepts `NULL`.
    pub nullable: bool,
    /// Default expression, if any.
    pub column_default: Option<String>,
}

/// Every column of every table in the current schema, by table name then column position.
/// Uses only catalogs DSQL provides (`pg_class`, `pg_attribute`, `pg_attrdef`, `pg_namespace`).
pub async fn columns(db: &impl ConnectionTrait) -> Result<Vec<ColumnInfo>, DbErr> {
    let sql = "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
                      format_type(a.atttypid, a.atttypmod) AS data_type, \
                      NOT a.attnotnull AS nullable, \
                      pg_get_expr(d.adbin, d.adrelid) AS column_default \
               FROM pg_catalog.pg_attribute a \
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
               WHERE n.nspname = current_schema() AND c.relkind = 'r' \
                 AND a.attnum > 0 AND NOT a.attisdropped \
               ORDER BY c.relname, a.attnum";
    ColumnInfo::find_by_statement(Statement::from_string(DbBackend::Postgres, sql))
        .all(db)
        .await
}

/// One index of a table, as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct IndexInfo {
    /// Table name.
    pub table_name: String,
    /// Index name.
    pub index_name: String,
    /// The `CREATE INDEX` statement that would rebuild it, as `pg_indexes` prints it.
    pub definition: String,
}

/// Every index in the current schema (primary keys and unique constraints included), by table
/// name then index name. Uses `pg_indexes`, which DSQL provides.
pub async fn indexes(db: &impl ConnectionTrait) -> Result<Vec<IndexInfo>, DbErr> {
    let sql = "SELECT tablename::text AS table_name, indexname::text AS index_name, \
                      indexdef AS definition \
               FROM pg_catalog.pg_indexes \
               WHERE schemaname = current_schema() \
               ORDER BY tablename, indexname";
    IndexInfo::find_by_statement(Statement::from_string(DbBackend::Postgres, sql))
        .all(db)
        .await
}

/// One constraint, as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct ConstraintInfo {
    /// The table it constrains; `None` for a domain's constraint.
    pub table_name: Option<String>,
    /// Constraint name.
    pub constraint_name: String,
    /// Its definition, as `pg_get_constraintdef` prints it, e.g. `PRIMARY KEY (id)`.
    pub definition: String,
}

/// Every constraint in the current schema (primary key, unique, check, …), by table name then
/// constraint name. Uses `pg_constraint`, which DSQL provides.
pub async fn constraints(db: &impl ConnectionTrait) -> Result<Vec<ConstraintInfo>, DbErr> {
    let sql = "SELECT c.relname::text AS table_name, con.conname::text AS constraint_name, \
                      pg_get_constraintdef(con.oid) AS definition \
               FROM pg_catalog.pg_constraint con \
               JOIN pg_catalog.pg_namespace n ON n.oid = con.connamespace \
               LEFT JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
               WHERE n.nspname = current_schema() \
               ORDER BY c.relname, con.conname";
    ConstraintInfo::find_by_statement(Statement::from_string(DbBackend::Postgres, sql))
        .all(db)
        .await
}

/// The columns as readable text: each table's name, then one indented line per column.
pub fn render(columns: &[ColumnInfo]) -> String {
    let width = columns
        .iter()
        .map(|c| c.column_name.len())
        .max()
        .unwrap_or(0);
    let type_width = columns.iter().map(|c| c.data_type.len()).max().unwrap_or(0);
    let mut out = String::new();
    let mut table = None;
    for column in columns {
        if table != Some(&column.table_name) {
            table = Some(&column.table_name);
            out.push_str(&column.table_name);
            out.push('\n');
        }
        let null = if column.nullable { "null" } else { "not null" };
        let line = format!(
            "  {:width$}  {:type_width$}  {null:8}  {}",
            column.column_name,
            column.data_type,
            column
                .column_default
                .as_deref()
                .map(|d| format!("default {d}"))
                .unwrap_or_default(),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The columns on one line: `owner (id, name, …); pet (…)`, tables in the order given.
pub fn summary(columns: &[ColumnInfo]) -> String {
    let mut tables: Vec<(&str, Vec<&str>)> = Vec::new();
    for column in columns {
        match tables.last_mut() {
            Some((table, names)) if *table == column.table_name => {
                names.push(&column.column_name);
            }
            _ => tables.push((&column.table_name, vec![&column.column_name])),
        }
    }
    tables
        .iter()
        .map(|(table, names)| format!("{table} ({})", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}
