//! The users of the users file (`chiso_users`) as pgwire's SCRAM
//! exchange asks for them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chiso_users::{Hash, User, Users, gen_salted_password};
use datafusion_postgres::pgwire::api::auth::{AuthSource, LoginInfo, Password};
use datafusion_postgres::pgwire::error::PgWireResult;

use crate::PgError;

/// The users as pgwire's SCRAM asks for them.
#[derive(Debug)]
pub(crate) struct UserSource {
    users: Users,
    /// Offered for names nobody has, so that the exchange fails the same
    /// way as a wrong password and does not tell which names exist.
    decoy: Hash,
    salt_key: Vec<u8>,
}

impl UserSource {
    pub(crate) fn new(users: Users) -> Result<Self, PgError> {
        let mut decoy_password = [0u8; 24];
        getrandom::fill(&mut decoy_password).map_err(|e| PgError::Random(e.to_string()))?;
        // The key of unknown users' salts: from the stored hashes, which no
        // client knows, so it stays the same across restarts.
        let stored: Vec<u8> = users
            .iter()
            .filter_map(User::password)
            .flat_map(|hash| hash.salted_password().iter().copied())
            .collect();
        let salt_key = gen_salted_password(&STANDARD.encode(stored), b"chiso unknown-user salt", 1);
        Ok(Self {
            users,
            decoy: Hash::new(&STANDARD.encode(decoy_password))
                .map_err(|e| PgError::Random(e.to_string()))?,
            salt_key,
        })
    }

    /// The salt an unknown `name` is answered with: the same for the same
    /// name every time, different between names, as PostgreSQL does, so
    /// that a client cannot tell an unknown user from a known one by its
    /// salt.
    fn unknown_salt(&self, name: &str) -> Vec<u8> {
        let mut salt = gen_salted_password(name, &self.salt_key, 1);
        salt.truncate(16);
        salt
    }
}

#[async_trait::async_trait]
impl AuthSource for UserSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().unwrap_or_default();
        Ok(match self.users.get(name).and_then(User::password) {
            Some(hash) => {
                Password::new(Some(hash.salt().to_vec()), hash.salted_password().to_vec())
            }
            None => Password::new(
                Some(self.unknown_salt(name)),
                self.decoy.salted_password().to_vec(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_get_a_salt_of_their_own_that_does_not_change() {
        let dir = std::env::temp_dir().join(format!("chiso-pg-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users");
        let mut users = Users::load_or_new(&path).expect("users");
        users
            .set("analyst", chiso_users::Role::Analyst, vec![])
            .expect("name");
        users
            .set_password("analyst", Hash::new("pw-analyst").expect("hash"))
            .expect("password");
        let source = UserSource::new(users.clone()).expect("source");
        let again = UserSource::new(users).expect("source");
        let (ghost, other) = (source.unknown_salt("ghost"), source.unknown_salt("other"));
        assert_eq!(ghost.len(), 16);
        assert_ne!(ghost, other);
        assert_eq!(ghost, again.unknown_salt("ghost"), "stable across restarts");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
