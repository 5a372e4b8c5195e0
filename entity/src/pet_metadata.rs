//! Typed details of a pet, stored in a JSONB column (DSQL stores JSONB natively since 2026).

use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

/// What the clinic knows about a pet beyond its name. Unknown fields are kept out by serde's
/// defaults; missing optional fields read as `None` or empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct PetMetadata {
    /// Species, e.g. "cat".
    pub species: String,
    /// Breed, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breed: Option<String>,
    /// Weight in kilograms, if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<f64>,
    /// Vaccinations given, by name.
    #[serde(default)]
    pub vaccinations: Vec<String>,
}
