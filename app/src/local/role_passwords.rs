//! The server passwords of the stand-in's roles, the superuser's included: each one derived
//! from a single random secret that only this process holds, in memory (HMAC-SHA256 of the
//! role's name). The front door can thus log in to the server as any role without a password
//! table, while the server, its files and its OS user only ever see SCRAM verifiers
//! ([`super::scram::verifier`]), from which no login can be made.

use secrecy::{ExposeSecret, SecretString};

/// The secret every role's password derives from.
#[derive(Clone)]
pub struct RolePasswords {
    secret: SecretString,
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
            secret: super::random_secret(),
        }
    }

    /// The password of `role` on the server (64 hexadecimal characters).
    pub fn of(&self, role: &str) -> SecretString {
        SecretString::from(hex::encode(super::scram::hmac(
            self.secret.expose_secret().as_bytes(),
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
        assert_eq!(
            one.of("admin").expose_secret(),
            one.of("admin").expose_secret()
        );
        assert_ne!(
            one.of("admin").expose_secret(),
            one.of("postgres").expose_secret()
        );
        assert_ne!(
            one.of("admin").expose_secret(),
            other.of("admin").expose_secret()
        );
        assert_eq!(format!("{one:?}"), "RolePasswords(***)");
    }
}
