//! The clinic's data operations, the SeaORM way and safe on DSQL.
//!
//! On DSQL every round trip crosses a network and every `COMMIT` is a distributed commit, so
//! each write is the fewest statements that keep it safe: one autocommit statement where one
//! can check and write at once (creating an owner, creating an owner's pets with the owner
//! check, an upsert), retried by [`crate::dsql::retry::autocommit`]; find-or-create as a find,
//! else an insert that cannot duplicate; a transaction only where work must read, then write
//! (a visit count, a lock), through [`crate::dsql::retry::transaction`]. Plain reads take
//! `&impl ConnectionTrait`, so they run on the pool or inside a caller's transaction.

pub mod owners;
pub mod pets;
pub mod vets;

use validator::Validate;

use crate::error::{Error, Result};

/// Validates user input before it reaches the database.
pub(crate) fn validated<T: Validate>(input: &T) -> Result<()> {
    input
        .validate()
        .map_err(|errors| Error::Invalid(errors.to_string()))
}
