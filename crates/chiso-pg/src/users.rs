//! Who may connect: a users file of names and salted password hashes.
//!
//! One user per line, `NAME SCRAM-SHA-256$ITERATIONS:SALT$SALTED_PASSWORD`
//! (salt and hash in base64), `#` starts a comment. The hash is the SCRAM
//! salted password of RFC 5802 (PBKDF2-HMAC-SHA-256), so the cleartext is
//! never stored and clients authenticate with SCRAM-SHA-256 without sending
//! it. The file is as sensitive as a shadow file: anyone who reads it can
//! sign in, so `chiso pg-user` writes it readable by its owner only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password;
use datafusion_postgres::pgwire::api::auth::{AuthSource, LoginInfo, Password};
use datafusion_postgres::pgwire::error::PgWireResult;

use crate::PgError;

/// PBKDF2 rounds of a new hash: the SCRAM minimum, as PostgreSQL uses.
pub const ITERATIONS: usize = 4096;
const SCHEME: &str = "SCRAM-SHA-256";

/// One user's stored hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Hash {
    iterations: usize,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Hash {
    /// A new hash of `password` with a random salt.
    pub fn new(password: &str) -> Result<Self, PgError> {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| PgError::Random(e.to_string()))?;
        Ok(Self::with_salt(password, salt))
    }

    fn with_salt(password: &str, salt: Vec<u8>) -> Self {
        let salted_password = gen_salted_password(password, &salt, ITERATIONS);
        Self {
            iterations: ITERATIONS,
            salt,
            salted_password,
        }
    }

    /// `SCRAM-SHA-256$4096:SALT$HASH`.
    pub fn encode(&self) -> String {
        format!(
            "{SCHEME}${}:{}${}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.salted_password)
        )
    }

    fn decode(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix('$'))
            .ok_or_else(|| format!("the hash should start with `{SCHEME}$`"))?;
        let (iterations, rest) = rest
            .split_once(':')
            .ok_or("the hash should read SCRAM-SHA-256$ITERATIONS:SALT$HASH")?;
        let (salt, hash) = rest
            .split_once('$')
            .ok_or("the hash should read SCRAM-SHA-256$ITERATIONS:SALT$HASH")?;
        let iterations: usize = iterations
            .parse()
            .map_err(|_| format!("`{iterations}` is not a number of iterations"))?;
        if iterations != ITERATIONS {
            return Err(format!(
                "hashes use {ITERATIONS} iterations; this one has {iterations} (make it again with chiso pg-user)"
            ));
        }
        let decode = |what: &str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|e| format!("the {what} is not base64: {e}"))
        };
        Ok(Self {
            iterations,
            salt: decode("salt", salt)?,
            salted_password: decode("hash", hash)?,
        })
    }
}

/// The users of a server, read from their file.
#[derive(Debug, Clone, Default)]
pub struct Users {
    path: PathBuf,
    users: BTreeMap<String, Hash>,
}

impl Users {
    /// Reads a users file; a line that is not a user is an error naming it.
    pub fn load(path: &Path) -> Result<Self, PgError> {
        let text = std::fs::read_to_string(path).map_err(|cause| PgError::Io {
            path: path.to_owned(),
            cause,
        })?;
        let mut users = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: String| PgError::UsersFile {
                path: path.to_owned(),
                line: number + 1,
                reason,
            };
            let (name, hash) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| invalid("expected `NAME SCRAM-SHA-256$…`".to_owned()))?;
            check_name(name).map_err(invalid)?;
            let hash = Hash::decode(hash.trim()).map_err(invalid)?;
            if users.insert(name.to_owned(), hash).is_some() {
                return Err(invalid(format!("`{name}` is listed twice")));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            users,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Adds or replaces a user.
    pub fn set(&mut self, name: &str, hash: Hash) -> Result<(), PgError> {
        check_name(name).map_err(PgError::Name)?;
        self.users.insert(name.to_owned(), hash);
        Ok(())
    }

    /// Removes a user; `false` when there was none of that name.
    pub fn remove(&mut self, name: &str) -> bool {
        self.users.remove(name).is_some()
    }

    /// Writes the file (readable by its owner only), replacing it whole.
    pub fn save(&self, path: &Path) -> Result<(), PgError> {
        let mut text = String::from(
            "# chiso Postgres users (chiso pg-user): NAME SCRAM-SHA-256$ITERATIONS:SALT$HASH\n",
        );
        for (name, hash) in &self.users {
            let _ = writeln!(text, "{name} {}", hash.encode());
        }
        let io = |cause| PgError::Io {
            path: path.to_owned(),
            cause,
        };
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        std::fs::rename(&temporary, path).map_err(io)
    }

    fn hash_of(&self, name: &str) -> Option<&Hash> {
        self.users.get(name)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a user name: use up to 63 letters, digits, `_`, `-` or `.`"
        ))
    }
}

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
            .users
            .values()
            .flat_map(|hash| hash.salted_password.iter().copied())
            .collect();
        let salt_key = gen_salted_password(&STANDARD.encode(stored), b"chiso unknown-user salt", 1);
        Ok(Self {
            users,
            decoy: Hash::new(&STANDARD.encode(decoy_password))?,
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
        Ok(match self.users.hash_of(name) {
            Some(hash) => Password::new(Some(hash.salt.clone()), hash.salted_password.clone()),
            None => Password::new(
                Some(self.unknown_salt(name)),
                self.decoy.salted_password.clone(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_files_name_their_mistakes() {
        let hash = Hash::with_salt("mật khẩu", b"0123456789abcdef".to_vec());
        let encoded = hash.encode();
        assert!(encoded.starts_with("SCRAM-SHA-256$4096:"), "{encoded}");
        assert!(!encoded.contains("mật"));
        assert_eq!(Hash::decode(&encoded), Ok(hash.clone()));
        assert_ne!(Hash::with_salt("other", b"0123456789abcdef".to_vec()), hash);

        let dir = std::env::temp_dir().join(format!("chiso-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users");
        let mut users = Users::default();
        users.set("analyst", hash.clone()).expect("name");
        users.save(&path).expect("save");
        let loaded = Users::load(&path).expect("load");
        assert_eq!(loaded.names().collect::<Vec<_>>(), ["analyst"]);
        assert_eq!(loaded.hash_of("analyst"), Some(&hash));

        for (text, expected) in [
            ("analyst\n", "users:1:"),
            ("# ok\nbad name SCRAM-SHA-256$4096:AA==$AA==\n", "users:2:"),
            ("a md5abc\n", "should start with"),
            ("a SCRAM-SHA-256$12:AA==$AA==\n", "iterations"),
            ("a SCRAM-SHA-256$4096:!!$AA==\n", "not base64"),
            (
                "a SCRAM-SHA-256$4096:AA==$AA==\na SCRAM-SHA-256$4096:AA==$AA==\n",
                "twice",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = Users::load(&path).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("users"), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_users_get_a_salt_of_their_own_that_does_not_change() {
        let mut users = Users::default();
        users
            .set(
                "analyst",
                Hash::with_salt("pw", b"0123456789abcdef".to_vec()),
            )
            .expect("name");
        let source = UserSource::new(users.clone()).expect("source");
        let again = UserSource::new(users).expect("source");
        let (ghost, other) = (source.unknown_salt("ghost"), source.unknown_salt("other"));
        assert_eq!(ghost.len(), 16);
        assert_ne!(ghost, other);
        assert_eq!(ghost, again.unknown_salt("ghost"), "stable across restarts");
    }
}
