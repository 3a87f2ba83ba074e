//! Users and their secrets, the same on both protocols.
//!
//! A user's secret is stored as `scram-sha-256$<iterations>$<salt>$<salted password>` (base64),
//! made by `tributary hash-password`: the PostgreSQL wire protocol's SCRAM-SHA-256 exchange needs
//! the salted password, and HTTP Basic credentials are checked by salting the offered password the
//! same way. The salted password is not the password, but it is enough to sign in over SCRAM:
//! keep the configuration file private.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password;
use datafusion_postgres::pgwire::api::auth::{AuthSource, LoginInfo, Password};
use datafusion_postgres::pgwire::error::PgWireResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tributary_warehouse::access::{Caller, Role};

/// SCRAM iterations: one number for every stored secret, since the server announces it.
pub const ITERATIONS: usize = 4096;

/// `[[users]]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Sign-in name.
    pub name: String,
    /// `viewer`, `analyst` or `admin`.
    pub role: Role,
    /// From `tributary hash-password`.
    pub password_hash: String,
}

#[derive(Debug, Clone)]
struct Secret {
    role: Role,
    salt: Vec<u8>,
    salted: Vec<u8>,
}

/// The configured users.
#[derive(Debug, Default)]
pub struct Users {
    secrets: HashMap<String, Secret>,
    /// Credentials already checked, by a digest of name and password: salting takes thousands of
    /// hash rounds on purpose, too slow to repeat on every dashboard request.
    verified: Mutex<HashMap<[u8; 32], Caller>>,
}

/// A new secret for `password`, with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, ITERATIONS);
    format!(
        "scram-sha-256${ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(salted)
    )
}

impl Users {
    /// The users of the configuration, with each mistake named.
    pub fn new(users: &[UserConfig]) -> Result<Self, String> {
        let mut secrets = HashMap::new();
        for user in users {
            let parts: Vec<&str> = user.password_hash.split('$').collect();
            let bad = || {
                format!(
                    "users: the password_hash of {:?} is not `scram-sha-256$4096$<salt>$<salted password>`; make one with `tributary hash-password`",
                    user.name
                )
            };
            let [scheme, iterations, salt, salted] = parts.as_slice() else {
                return Err(bad());
            };
            if *scheme != "scram-sha-256" || iterations.parse::<usize>().ok() != Some(ITERATIONS) {
                return Err(bad());
            }
            let salt = STANDARD.decode(salt).map_err(|_| bad())?;
            let salted = STANDARD.decode(salted).map_err(|_| bad())?;
            if user.name.is_empty() || secrets.contains_key(&user.name) {
                return Err(format!("users: the name {:?} is empty or given twice", user.name));
            }
            secrets.insert(
                user.name.clone(),
                Secret {
                    role: user.role,
                    salt,
                    salted,
                },
            );
        }
        Ok(Self {
            secrets,
            verified: Mutex::default(),
        })
    }

    /// No users configured: the server serves this machine only, unauthenticated.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The caller these credentials sign in, if they are right.
    pub fn verify(&self, name: &str, password: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(caller) = self.verified.lock().expect("never poisoned").get(&digest) {
            return Some(caller.clone());
        }
        let secret = self.secrets.get(name)?;
        let offered = gen_salted_password(password, &secret.salt, ITERATIONS);
        if !constant_time_eq(&offered, &secret.salted) {
            return None;
        }
        let caller = Caller {
            user: name.to_string(),
            role: secret.role,
        };
        let mut verified = self.verified.lock().expect("never poisoned");
        if verified.len() > 10_000 {
            verified.clear();
        }
        verified.insert(digest, caller.clone());
        Some(caller)
    }

    /// The role of a user known to exist.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.secrets.get(name).map(|s| s.role)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `user:password` from the base64 of HTTP Basic credentials.
pub fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The users as pgwire's SCRAM exchange asks for them.
#[derive(Debug)]
pub struct ScramSource(pub std::sync::Arc<Users>);

#[async_trait::async_trait]
impl AuthSource for ScramSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().unwrap_or_default();
        match self.0.secrets.get(name) {
            Some(secret) => Ok(Password::new(Some(secret.salt.clone()), secret.salted.clone())),
            // An unknown user fails the exchange like a wrong password, with a salt that looks
            // real, so that nobody can probe for user names.
            None => {
                let salt: [u8; 16] = rand::random();
                let noise: [u8; 32] = rand::random();
                Ok(Password::new(Some(salt.to_vec()), noise.to_vec()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_check_passwords() {
        let users = Users::new(&[UserConfig {
            name: "ana".into(),
            role: Role::Analyst,
            password_hash: hash_password("s3cret"),
        }])
        .unwrap();
        assert_eq!(users.verify("ana", "s3cret").map(|c| c.role), Some(Role::Analyst));
        assert_eq!(
            users.verify("ana", "s3cret").map(|c| c.user),
            Some("ana".to_string()),
            "cached"
        );
        assert!(users.verify("ana", "wrong").is_none());
        assert!(users.verify("bob", "s3cret").is_none());
        let err = Users::new(&[UserConfig {
            name: "ana".into(),
            role: Role::Viewer,
            password_hash: "plain".into(),
        }])
        .unwrap_err();
        assert!(err.contains("\"ana\"") && err.contains("hash-password"), "{err}");
        assert_eq!(decode_basic("YW5hOnMzY3JldA=="), Some(("ana".into(), "s3cret".into())));
    }
}
