//! The entities describe relations to SeaORM but ask the database for no foreign key.

use entity::prelude::*;
use sea_orm::sea_query::{ForeignKeyCreateStatement, PostgresQueryBuilder};
use sea_orm::{ActiveEnum, DbBackend, EntityTrait, Iterable, RelationTrait, Schema};

fn create_table_sql<E: EntityTrait>(entity: E) -> String {
    let schema = Schema::new(DbBackend::Postgres);
    DbBackend::Postgres
        .build(&schema.create_table_from_entity(entity))
        .to_string()
}

#[test]
fn entity_ddl_has_no_foreign_key() {
    for sql in [
        create_table_sql(Owner),
        create_table_sql(Pet),
        create_table_sql(Vet),
        create_table_sql(Specialty),
        create_table_sql(VetSpecialty),
    ] {
        assert!(!sql.contains("FOREIGN KEY"), "{sql}");
        assert!(!sql.contains("REFERENCES"), "{sql}");
    }
}

#[test]
fn the_belongs_to_relations_exist_and_would_be_foreign_keys_without_skip_fk() {
    let relations: Vec<_> = entity::pet::Relation::iter()
        .map(|relation| relation.def())
        .chain(entity::vet_specialty::Relation::iter().map(|relation| relation.def()))
        .filter(|def| !def.is_owner)
        .collect();
    // pet → owner, vet_specialty → vet, vet_specialty → specialty.
    assert_eq!(relations.len(), 3);
    for def in relations {
        assert!(
            def.skip_fk,
            "relation to {:?} creates a foreign key",
            def.to_tbl
        );
        let mut unskipped = def;
        unskipped.skip_fk = false;
        let sql =
            <ForeignKeyCreateStatement as From<_>>::from(unskipped).to_string(PostgresQueryBuilder);
        assert!(sql.contains("FOREIGN KEY"), "{sql}");
    }
}

#[test]
fn pet_status_strings_round_trip_and_unknown_ones_are_refused() {
    for status in PetStatus::iter() {
        assert_eq!(status.to_value().parse::<PetStatus>(), Ok(status));
    }
    let err = "sleeping".parse::<PetStatus>().expect_err("not a status");
    assert_eq!(
        err.to_string(),
        "invalid pet status \"sleeping\": expected one of waiting, in_treatment, discharged"
    );
}
