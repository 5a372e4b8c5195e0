//! SeaORM 2.0 entities of the pet clinic.
//!
//! Five tables: [`owner`], [`pet`], [`vet`], [`specialty`] and the link table [`vet_specialty`].
//! Every key is a client-generated UUID (or, for [`specialty`], the natural key), because Aurora
//! DSQL spreads writes by key and an auto-increment key would make one hot spot.
//!
//! Relations live in the ORM only: each `belongs_to` is declared with `skip_fk`, so
//! [`sea_orm::Schema::create_table_from_entity`] emits no `FOREIGN KEY`. DSQL accepts foreign keys
//! since August 2026; leaving them out is this project's choice (see the README), and the
//! application keeps referential integrity itself.

pub mod owner;
pub mod pet;
pub mod pet_metadata;
pub mod pet_status;
pub mod specialty;
pub mod vet;
pub mod vet_specialty;

/// Longest owner, pet and vet name the schema stores (`varchar(30)`).
pub const NAME_MAX_LEN: u32 = 30;

/// Everything a caller usually needs: the entities under short names and the value types.
pub mod prelude {
    pub use crate::owner::Entity as Owner;
    pub use crate::pet::Entity as Pet;
    pub use crate::pet_metadata::PetMetadata;
    pub use crate::pet_status::PetStatus;
    pub use crate::specialty::Entity as Specialty;
    pub use crate::vet::Entity as Vet;
    pub use crate::vet_specialty::Entity as VetSpecialty;
}
