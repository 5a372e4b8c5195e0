//! Every statement the migrations send, as sent to Aurora DSQL, passes `dsql-lint`; and the
//! `CHECK` on `pet.status` allows exactly the entity's values.

use migration::{PET_STATUS_VALUES, Step, plan};

/// Every statement of every migration, both ways, rendered for a DSQL server.
fn dsql_statements() -> Vec<(String, String)> {
    plan()
        .iter()
        .flat_map(|migration| {
            let plan = migration.plan();
            let name = migration.name().to_owned();
            plan.up
                .into_iter()
                .chain(plan.down)
                .map(move |step: Step| (name.clone(), step.sql(true)))
        })
        .collect()
}

#[test]
fn every_migration_statement_passes_dsql_lint() {
    let statements = dsql_statements();
    assert!(statements.len() >= 2 * plan().len());
    let mut failures = Vec::new();
    for (migration, sql) in &statements {
        // Each statement runs in its own transaction, so each is linted on its own.
        for diagnostic in dsql_lint::lint_sql(sql) {
            failures.push(format!(
                "{migration}: {sql}\n  {:?}: {}",
                diagnostic.rule, diagnostic.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn indexes_are_async_on_dsql_and_plain_elsewhere() {
    let index = migration::IndexSpec::unique("owner_email_idx", "owner", &["email"]);
    assert_eq!(
        index.sql(true),
        r#"CREATE UNIQUE INDEX ASYNC IF NOT EXISTS "owner_email_idx" ON "owner" ("email")"#
    );
    assert_eq!(
        index.sql(false),
        r#"CREATE UNIQUE INDEX IF NOT EXISTS "owner_email_idx" ON "owner" ("email")"#
    );
    // dsql-lint agrees that only the ASYNC form is DSQL's.
    assert!(dsql_lint::lint_sql(&index.sql(true)).is_empty());
    assert!(!dsql_lint::lint_sql(&index.sql(false)).is_empty());
}

#[test]
fn no_migration_creates_a_foreign_key_serial_or_identity() {
    for (migration, sql) in dsql_statements() {
        let upper = sql.to_uppercase();
        for forbidden in [
            "REFERENCES",
            "FOREIGN KEY",
            "SERIAL",
            "IDENTITY",
            "SEQUENCE",
        ] {
            assert!(!upper.contains(forbidden), "{migration}: {sql}");
        }
    }
}

#[test]
fn the_status_check_lists_exactly_the_entity_values() {
    assert_eq!(PET_STATUS_VALUES, entity::pet_status::PetStatus::DB_VALUES);
    let create_pet = dsql_statements()
        .into_iter()
        .find(|(_, sql)| sql.starts_with("CREATE TABLE IF NOT EXISTS \"pet\""))
        .expect("the pet table");
    assert!(
        create_pet
            .1
            .contains(r#"CHECK ("status" IN ('waiting', 'in_treatment', 'discharged'))"#),
        "{}",
        create_pet.1
    );
}
