//! The pet's status: a Rust enum stored as a short string.
//!
//! DSQL has no `CREATE TYPE`, so a database enum is not an option. The string form is checked
//! three times: by the compiler here, by a `CHECK` constraint the migration writes from
//! [`PetStatus::DB_VALUES`], and by [`PetStatus::from_str`](std::str::FromStr) on user input.

use std::fmt;
use std::str::FromStr;

use sea_orm::Iterable;
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

impl PetStatus {
    /// Every value as stored in the database, in declaration order. The migration's `CHECK`
    /// constraint lists exactly these (a test keeps the two in step).
    pub const DB_VALUES: [&'static str; 3] = ["waiting", "in_treatment", "discharged"];

    /// The stored string of this status.
    pub fn as_db_str(self) -> &'static str {
        match self {
            Self::Waiting => Self::DB_VALUES[0],
            Self::InTreatment => Self::DB_VALUES[1],
            Self::Discharged => Self::DB_VALUES[2],
        }
    }
}

impl fmt::Display for PetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_db_str())
    }
}

/// A status string that is not one of [`PetStatus::DB_VALUES`].
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
            PetStatus::DB_VALUES.join(", ")
        )
    }
}

impl std::error::Error for InvalidPetStatus {}

impl FromStr for PetStatus {
    type Err = InvalidPetStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::iter()
            .find(|status| status.as_db_str() == s)
            .ok_or_else(|| InvalidPetStatus(s.to_owned()))
    }
}
