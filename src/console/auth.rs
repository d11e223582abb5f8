//! Who may see the console: one credential from the configuration, stored as an Argon2id
//! hash (PHC string), and the sessions of those who gave it.
//!
//! The console shows personal data (person ids, custody, offenses), so every page but the
//! login form needs either a session cookie from a successful login or the credential itself
//! as `Authorization: Bearer …` (for scripts). Argon2 makes a stolen configuration file
//! expensive to turn back into the credential, and its verification compares in constant
//! time. A session id is 256 random bits; the store keeps only its SHA-256, so a lookup
//! leaks nothing useful through timing and a memory dump holds no usable cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// The cookie that carries a session id.
pub(crate) const COOKIE: &str = "handoff_console";

/// How long a session lasts after login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Sessions kept at once; the oldest goes when a login would exceed it.
const MAX_SESSIONS: usize = 1024;

/// Why a configured credential hash is refused.
#[derive(Debug, thiserror::Error)]
#[error("not an Argon2 PHC string ({0}); make one with `handoff console --hash-credential < FILE`")]
pub struct BadHash(String);

/// Hashes a credential for the configuration (`console.credential_hash`).
pub fn hash(credential: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(credential.as_bytes(), &salt)
        .expect("Argon2 with its default parameters hashes any input")
        .to_string()
}

/// Checks that `phc` is a hash [`Gate::new`] can use.
pub fn check_hash(phc: &str) -> Result<(), BadHash> {
    let parsed = PasswordHash::new(phc).map_err(|e| BadHash(e.to_string()))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(BadHash(format!(
            "algorithm {} is not Argon2",
            parsed.algorithm
        )));
    }
    Ok(())
}

/// The credential's hash and the open sessions.
pub(crate) struct Gate {
    phc: String,
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Gate {
    pub(crate) fn new(phc: &str) -> Result<Gate, BadHash> {
        check_hash(phc)?;
        Ok(Gate {
            phc: phc.to_owned(),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `credential` is the configured one.
    pub(crate) fn verify(&self, credential: &str) -> bool {
        let hash = PasswordHash::new(&self.phc).expect("checked in Gate::new");
        Argon2::default()
            .verify_password(credential.as_bytes(), &hash)
            .is_ok()
    }

    /// A new session, as the cookie value to hand back.
    pub(crate) fn open_session(&self, now: Instant) -> String {
        let mut id = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        let token = hex(&id);
        let mut sessions = self.sessions.lock().expect("session lock");
        sessions.retain(|_, until| *until > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(digest(&token), now + SESSION_TTL);
        token
    }

    /// Whether `token` names an open session.
    pub(crate) fn session(&self, token: &str, now: Instant) -> bool {
        let sessions = self.sessions.lock().expect("session lock");
        sessions
            .get(&digest(token))
            .is_some_and(|until| *until > now)
    }

    /// Ends a session (logout).
    pub(crate) fn close_session(&self, token: &str) {
        self.sessions
            .lock()
            .expect("session lock")
            .remove(&digest(token));
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_verifies_and_nothing_else_does() {
        let gate = Gate::new(&hash("correct horse battery staple")).unwrap();
        assert!(gate.verify("correct horse battery staple"));
        assert!(!gate.verify("correct horse battery stapl"));
        assert!(!gate.verify(""));
    }

    #[test]
    fn a_hash_that_is_not_argon2_is_refused_with_the_way_out() {
        let e = Gate::new("5e884898da28047151d0e56f8dc629").err().unwrap();
        assert!(e.to_string().contains("--hash-credential"), "{e}");
        assert!(check_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }

    #[test]
    fn sessions_open_expire_and_close() {
        let gate = Gate::new(&hash("s3cret-for-tests")).unwrap();
        let t0 = Instant::now();
        let token = gate.open_session(t0);
        assert_eq!(token.len(), 64);
        assert!(gate.session(&token, t0));
        assert!(!gate.session("0".repeat(64).as_str(), t0));
        assert!(!gate.session(&token, t0 + SESSION_TTL + Duration::from_secs(1)));
        let other = gate.open_session(t0);
        assert_ne!(token, other);
        gate.close_session(&other);
        assert!(!gate.session(&other, t0));
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(cookie("a=1; handoff_console=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("handoff_console_x=1", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
    }
}
