//! SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL speaks it: the stored form of a
//! password ([`verifier`]), which is all the server ever gets, and the client's side of a
//! login (`Client`, with the front door), for the sessions the front door opens on the
//! server itself.
//!
//! The server is only ever sent verifiers, never a password: a verifier proves a login but
//! cannot make one, so the server's files, its log and its OS user learn nothing that logs in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use secrecy::{ExposeSecret, SecretString};

/// PostgreSQL's iteration count for the verifiers it makes (`scram_iterations`' default).
const ITERATIONS: u32 = 4096;
/// The mechanism's name in PostgreSQL's SASL messages.
pub const MECHANISM: &str = "SCRAM-SHA-256";

#[cfg(feature = "front-door")]
/// What can go wrong in a SCRAM exchange.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    /// A message of the server's is not what SCRAM prescribes.
    #[error("the server's SCRAM message is malformed ({0})")]
    Malformed(&'static str),
    /// The server's final signature does not prove that it knows the verifier: it is not
    /// the server whose verifier was set.
    #[error("the server's SCRAM signature does not match")]
    ServerSignature,
}

/// The verifier PostgreSQL stores for `password` with a fresh random salt,
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`; `ALTER ROLE … PASSWORD` and
/// initdb's `--pwfile` store a string of this form as it is.
pub fn verifier(password: &SecretString) -> String {
    let salt: [u8; 16] = rand::random();
    let keys = SaltedKeys::derive(password, &salt, ITERATIONS);
    format!(
        "{MECHANISM}${ITERATIONS}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(Sha256::digest(keys.client)),
        BASE64.encode(keys.server)
    )
}

/// The keys a password gives for one salt and iteration count: what a login needs, worth
/// keeping since deriving them takes `iterations` rounds of HMAC.
#[derive(Clone)]
pub struct SaltedKeys {
    client: [u8; 32],
    server: [u8; 32],
}

impl std::fmt::Debug for SaltedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaltedKeys(***)")
    }
}

impl SaltedKeys {
    /// `Hi(password, salt, iterations)` (PBKDF2 with HMAC-SHA256, one block), then the client
    /// and server keys.
    pub fn derive(password: &SecretString, salt: &[u8], iterations: u32) -> Self {
        let mut block = salt.to_vec();
        block.extend_from_slice(&1_u32.to_be_bytes());
        let mut u = hmac(password.expose_secret().as_bytes(), &block);
        let mut salted = u;
        for _ in 1..iterations {
            u = hmac(password.expose_secret().as_bytes(), &u);
            salted.iter_mut().zip(u).for_each(|(s, u)| *s ^= u);
        }
        Self {
            client: hmac(&salted, b"Client Key"),
            server: hmac(&salted, b"Server Key"),
        }
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (a long one is hashed first), so this never falls back.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(feature = "front-door")]
/// The client's side of one SCRAM-SHA-256 login without channel binding (`n,,`): what
/// PostgreSQL's own clients send over a connection without TLS.
pub struct Client {
    first_bare: String,
    nonce: String,
    expected_server_signature: Option<[u8; 32]>,
}

#[cfg(feature = "front-door")]
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

#[cfg(feature = "front-door")]
impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "front-door")]
impl Client {
    /// A login with a fresh random nonce.
    pub fn new() -> Self {
        let nonce = BASE64.encode(rand::random::<[u8; 18]>());
        Self {
            // PostgreSQL takes the user from the startup message and ignores this one.
            first_bare: format!("n=,r={nonce}"),
            nonce,
            expected_server_signature: None,
        }
    }

    /// The client-first message (the `SASLInitialResponse`'s data).
    pub fn first_message(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// The client-final message, with the proof, in answer to the server-first message;
    /// `keys` gives the password's keys for the salt and iteration count the server names.
    pub fn final_message(
        &mut self,
        server_first: &str,
        keys: impl FnOnce(&[u8], u32) -> SaltedKeys,
    ) -> Result<String, ScramError> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in server_first.split(',') {
            match attribute.split_at_checked(2) {
                Some(("r=", value)) => nonce = Some(value),
                Some(("s=", value)) => salt = BASE64.decode(value).ok(),
                Some(("i=", value)) => iterations = value.parse::<u32>().ok(),
                _ => {}
            }
        }
        let nonce = nonce
            .filter(|nonce| nonce.starts_with(&self.nonce))
            .ok_or(ScramError::Malformed("nonce"))?;
        let salt = salt.ok_or(ScramError::Malformed("salt"))?;
        let iterations = iterations
            .filter(|&i| i > 0)
            .ok_or(ScramError::Malformed("iterations"))?;
        let keys = keys(&salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let stored_key: [u8; 32] = Sha256::digest(keys.client).into();
        let mut proof = hmac(&stored_key, auth_message.as_bytes());
        proof.iter_mut().zip(keys.client).for_each(|(p, k)| *p ^= k);
        self.expected_server_signature = Some(hmac(&keys.server, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks the server-final message: the server proves that it holds the verifier.
    pub fn verify_server(&self, server_final: &str) -> Result<(), ScramError> {
        let signature = server_final
            .strip_prefix("v=")
            .and_then(|value| BASE64.decode(value).ok())
            .ok_or(ScramError::Malformed("server signature"))?;
        match self.expected_server_signature {
            Some(expected) if expected[..] == signature[..] => Ok(()),
            _ => Err(ScramError::ServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "front-door")]
    /// RFC 7677's example exchange (user "user", password "pencil").
    #[test]
    fn the_client_computes_rfc_7677s_proof_and_checks_its_server_signature() {
        let mut client = Client::new();
        client.nonce = "rOprNGfwEbeRWgbNEkqO".to_owned();
        client.first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".to_owned();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = client
            .final_message(server_first, |salt, iterations| {
                SaltedKeys::derive(&SecretString::from("pencil"), salt, iterations)
            })
            .expect("a proof");
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("the server's signature");
        assert!(matches!(
            client.verify_server("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramError::ServerSignature)
        ));
    }

    #[test]
    fn a_verifier_has_postgresqls_form_and_a_fresh_salt() {
        let password = SecretString::from("pencil");
        let (a, b) = (verifier(&password), verifier(&password));
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert_eq!(a.matches('$').count(), 2);
        assert_ne!(a, b);
    }

    #[cfg(feature = "front-door")]
    #[test]
    fn a_server_first_message_with_another_nonce_is_refused() {
        let mut client = Client::new();
        let refused = client.final_message(
            "r=someone-elses-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
            |salt, iterations| SaltedKeys::derive(&SecretString::from("pencil"), salt, iterations),
        );
        assert!(matches!(refused, Err(ScramError::Malformed("nonce"))));
    }
}
