//! The pet's status: a Rust enum stored as a short string.
//!
//! DSQL has no `CREATE TYPE`, so a database enum is not an option. The string form is checked
//! three times: by the compiler here, by a `CHECK` constraint the migration writes with the
//! same strings (a test compares them with [`ActiveEnum::values`]), and by
//! [`PetStatus::from_str`](std::str::FromStr) on user input. The strings are declared once, in
//! the `string_value`s below; `DeriveActiveEnum` derives the rest from them.

use std::fmt;
use std::str::FromStr;

use sea_orm::entity::prelude::*;

/// Where a pet is in the clinic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum PetStatus {
    /// Registered, waiting to be seen.
    #[sea_orm(string_value = "waiting")]
    Waiting,
    /// Being treated.
    #[sea_orm(string_value = "in_treatment")]
    InTreatment,
    /// Sent home.
    #[sea_orm(string_value = "discharged")]
    Discharged,
}

impl fmt::Display for PetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_value())
    }
}

/// A status string that is not one of [`PetStatus`]'s stored values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPetStatus(
    /// The string that was given, as it was given.
    pub String,
);

impl fmt::Display for InvalidPetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid pet status {:?}: expected one of {}",
            self.0,
            PetStatus::values().join(", ")
        )
    }
}

impl std::error::Error for InvalidPetStatus {}

impl FromStr for PetStatus {
    type Err = InvalidPetStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from_value(&s.to_owned()).map_err(|_| InvalidPetStatus(s.to_owned()))
    }
}
