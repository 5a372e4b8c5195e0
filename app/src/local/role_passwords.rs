//! The server passwords of the stand-in's roles, the superuser's included: each one derived
//! from a single random secret that only this process holds, in memory (HMAC-SHA256 of the
//! role's name). The front door can thus log in to the server as any role without a password
//! table, while the server, its files and its OS user only ever see SCRAM verifiers
//! ([`super::scram::verifier`]), from which no login can be made.

use crate::secret::Secret;

/// The secret every role's password derives from.
#[derive(Clone)]
pub struct RolePasswords {
    secret: Secret,
}

impl std::fmt::Debug for RolePasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RolePasswords(***)")
    }
}

impl RolePasswords {
    /// A fresh secret: passwords no other stand-in shares.
    pub fn random() -> Self {
        Self {
            secret: Secret::random(),
        }
    }

    /// The password of `role` on the server (64 hexadecimal characters).
    pub fn of(&self, role: &str) -> Secret {
        Secret::new(hex::encode(super::scram::hmac(
            self.secret.expose().as_bytes(),
            role.as_bytes(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_its_own_password_and_each_stand_in_its_own_set() {
        let (one, other) = (RolePasswords::random(), RolePasswords::random());
        assert_eq!(one.of("admin").expose(), one.of("admin").expose());
        assert_ne!(one.of("admin").expose(), one.of("postgres").expose());
        assert_ne!(one.of("admin").expose(), other.of("admin").expose());
        assert_eq!(format!("{one:?}"), "RolePasswords(***)");
    }
}
