//! The clinic's data operations, the SeaORM way and safe on DSQL.
//!
//! Plain reads and single statements take `&impl ConnectionTrait`, so they run on the pool or
//! inside a caller's transaction. Operations that must be one transaction (check-then-write,
//! find-or-create, batches) take the pool and run through [`crate::dsql::retry::transaction`].

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
