//! # chiso-users: who may sign in, and what they see
//!
//! One users file for the web server and the Postgres wire (`chiso user`):
//! each user's role (leader, ward, analyst, admin), the wards of a ward
//! user, a password as a salted SCRAM-SHA-256 hash (RFC 5802's salted
//! password, PBKDF2-HMAC-SHA-256, so that Postgres clients authenticate
//! with SCRAM without sending it and the login page checks the same hash),
//! and API tokens as SHA-256 hashes of random 256-bit values. Nothing in
//! the file signs anyone in by itself, but it is as sensitive as a shadow
//! file: `chiso user` writes it readable by its owner only.
//!
//! A user's role decides their [`Scope`], which the engine applies before
//! any query plans (`chiso_engine::scope`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chiso_core::wards::{WardCode, WardRegistry};
use chiso_engine::Scope;

/// Why the users file could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}:{line}: {reason}", .path.display())]
    File {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: there is no user `{name}`", .path.display())]
    NoSuchUser { path: PathBuf, name: String },
    #[error("{0}")]
    Name(String),
    #[error("cannot draw random bytes: {0}")]
    Random(String),
}

/// RFC 5802's salted password (`Hi` of SCRAM): PBKDF2-HMAC-SHA-256, the
/// password normalised by SASLprep as PostgreSQL and pgwire do.
pub fn gen_salted_password(password: &str, salt: &[u8], iterations: usize) -> Vec<u8> {
    let normalised = stringprep::saslprep(password).unwrap_or(std::borrow::Cow::Borrowed(password));
    let mut out = [0u8; 32];
    let rounds = std::num::NonZeroU32::new(u32::try_from(iterations).unwrap_or(u32::MAX))
        .unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        normalised.as_bytes(),
        &mut out,
    );
    out.to_vec()
}

/// PBKDF2 rounds of a new hash: the SCRAM minimum, as PostgreSQL uses.
pub const ITERATIONS: usize = 4096;
const SCHEME: &str = "SCRAM-SHA-256";

/// One user's stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Hash {
    iterations: usize,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

impl Hash {
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    pub fn salted_password(&self) -> &[u8] {
        &self.salted_password
    }
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
    pub fn new(password: &str) -> Result<Self, UsersError> {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| UsersError::Random(e.to_string()))?;
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
                "hashes use {ITERATIONS} iterations; this one has {iterations} (make it again with chiso user add)"
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

/// What a user may do and see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Every ward: pages, reports, exports; no SQL.
    Leader,
    /// Only the listed wards, everywhere, SQL included; uploads for them.
    Ward,
    /// Every ward; read-only SQL on every entry point.
    Analyst,
    /// All of that, plus the quarantine, the ingest history and the audit.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Leader, Self::Ward, Self::Analyst, Self::Admin];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Ward => "ward",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }

    /// Whether the role writes SQL (the console, `/api/sql`, the wire).
    pub fn writes_sql(self) -> bool {
        !matches!(self, Self::Leader)
    }

    /// Whether the role sends events and dossier lists.
    pub fn ingests(self) -> bool {
        matches!(self, Self::Ward | Self::Admin)
    }
}

/// One user: a role, the wards of a ward user, a password (for the login
/// page and the Postgres wire) and API tokens (for scripts), both stored
/// as hashes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub wards: Vec<WardCode>,
    password: Option<Hash>,
    /// SHA-256 of each token.
    tokens: Vec<[u8; 32]>,
}

impl User {
    /// What the user sees: their wards, every ward, or (an admin)
    /// everything including the operational tables.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::Ward => Scope::wards(self.wards.iter().cloned()),
            Role::Leader | Role::Analyst => Scope::city(),
            Role::Admin => Scope::everything(),
        }
    }

    pub fn password(&self) -> Option<&Hash> {
        self.password.as_ref()
    }

    pub fn tokens(&self) -> usize {
        self.tokens.len()
    }
}

/// The users of a server, read from their file.
///
/// One user per line: `NAME role=ROLE [wards=CODE,CODE] [password=HASH]
/// [token=sha256:HEX]…`, `#` starts a comment. A line of the file of
/// releases before roles, `NAME SCRAM-SHA-256$…`, is read as an analyst
/// with that password (what those users could do: SQL over the wire), and
/// written in the new form the next time the file is saved.
#[derive(Debug, Clone, Default)]
pub struct Users {
    path: PathBuf,
    users: BTreeMap<String, User>,
}

impl Users {
    /// Reads a users file; a line that is not a user is an error naming it.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|cause| UsersError::Io {
            path: path.to_owned(),
            cause,
        })?;
        let mut users = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: String| UsersError::File {
                path: path.to_owned(),
                line: number + 1,
                reason,
            };
            let user = parse_user(line).map_err(invalid)?;
            let name = user.name.clone();
            if users.insert(name.clone(), user).is_some() {
                return Err(invalid(format!("`{name}` is listed twice")));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            users,
        })
    }

    /// The file at `path`, or no users when there is none yet.
    pub fn load_or_new(path: &Path) -> Result<Self, UsersError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self {
                path: path.to_owned(),
                users: BTreeMap::new(),
            })
        }
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

    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Adds a user or changes one's role and wards (a ward user needs at
    /// least one ward; others have none). Keeps the password and tokens of
    /// an existing user.
    pub fn set(&mut self, name: &str, role: Role, wards: Vec<WardCode>) -> Result<(), UsersError> {
        check_name(name).map_err(UsersError::Name)?;
        if (role == Role::Ward) == wards.is_empty() {
            return Err(UsersError::Name(if role == Role::Ward {
                format!("`{name}` is a ward user: give their wards (--ward CODE)")
            } else {
                format!("only ward users have wards; `{name}` is {}", role.as_str())
            }));
        }
        let user = self.users.entry(name.to_owned()).or_insert_with(|| User {
            name: name.to_owned(),
            role,
            wards: Vec::new(),
            password: None,
            tokens: Vec::new(),
        });
        user.role = role;
        user.wards = wards;
        Ok(())
    }

    /// Gives `name` a new password.
    pub fn set_password(&mut self, name: &str, hash: Hash) -> Result<(), UsersError> {
        let user = self.user_mut(name)?;
        user.password = Some(hash);
        Ok(())
    }

    /// A new API token for `name`: returned once, only its hash is kept.
    pub fn new_token(&mut self, name: &str) -> Result<String, UsersError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| UsersError::Random(e.to_string()))?;
        let token = format!("chiso_{}", hex(&bytes));
        let hash = token_hash(&token);
        self.user_mut(name)?.tokens.push(hash);
        Ok(token)
    }

    /// Forgets every token of `name`; how many there were.
    pub fn revoke_tokens(&mut self, name: &str) -> Result<usize, UsersError> {
        Ok(std::mem::take(&mut self.user_mut(name)?.tokens).len())
    }

    /// The user a token belongs to.
    pub fn by_token(&self, token: &str) -> Option<&User> {
        let hash = token_hash(token.trim());
        self.users
            .values()
            .find(|user| user.tokens.iter().any(|known| same(known, &hash)))
    }

    /// The user `name` if `password` is theirs.
    pub fn by_password(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.users.get(name)?;
        let hash = user.password.as_ref()?;
        let offered = gen_salted_password(password, &hash.salt, hash.iterations);
        same(&offered, &hash.salted_password).then_some(user)
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, UsersError> {
        let path = self.path.clone();
        self.users
            .get_mut(name)
            .ok_or_else(|| UsersError::NoSuchUser {
                path,
                name: name.to_owned(),
            })
    }

    /// Removes a user; `false` when there was none of that name.
    pub fn remove(&mut self, name: &str) -> bool {
        self.users.remove(name).is_some()
    }

    /// Writes the file (readable by its owner only), replacing it whole.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let mut text = String::from(
            "# chiso users (chiso user): NAME role=ROLE [wards=CODE,…] [password=SCRAM-SHA-256$…] [token=sha256:…]\n",
        );
        for user in self.users.values() {
            let _ = write!(text, "{} role={}", user.name, user.role.as_str());
            if !user.wards.is_empty() {
                let wards: Vec<&str> = user.wards.iter().map(WardCode::as_str).collect();
                let _ = write!(text, " wards={}", wards.join(","));
            }
            if let Some(hash) = &user.password {
                let _ = write!(text, " password={}", hash.encode());
            }
            for token in &user.tokens {
                let _ = write!(text, " token=sha256:{}", hex(token));
            }
            text.push('\n');
        }
        let io = |cause| UsersError::Io {
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
}

/// One line of the file, either form.
fn parse_user(line: &str) -> Result<User, String> {
    let mut fields = line.split_whitespace();
    let name = fields.next().unwrap_or_default();
    check_name(name)?;
    let mut user = User {
        name: name.to_owned(),
        role: Role::Analyst,
        wards: Vec::new(),
        password: None,
        tokens: Vec::new(),
    };
    let rest: Vec<&str> = fields.collect();
    if let [hash] = rest.as_slice()
        && hash.starts_with(SCHEME)
    {
        // The file of releases before roles: a Postgres analyst.
        user.password = Some(Hash::decode(hash)?);
        return Ok(user);
    }
    let mut role = None;
    for field in rest {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE, not `{field}`"))?;
        match key {
            "role" => {
                role = Some(Role::parse(value).ok_or_else(|| {
                    format!("`{value}` is not a role: use leader, ward, analyst or admin")
                })?);
            }
            "wards" => {
                for code in value.split(',') {
                    let code = WardRegistry::builtin()
                        .code(code)
                        .map_err(|e| e.to_string())?;
                    user.wards.push(code);
                }
            }
            "password" => user.password = Some(Hash::decode(value)?),
            "token" => {
                let hex_text = value
                    .strip_prefix("sha256:")
                    .ok_or("a token is stored as sha256:HEX")?;
                user.tokens.push(unhex(hex_text)?);
            }
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    user.role = role.ok_or("expected `NAME role=ROLE …` or `NAME SCRAM-SHA-256$…`")?;
    if (user.role == Role::Ward) == user.wards.is_empty() {
        return Err(if user.role == Role::Ward {
            "a ward user needs wards=CODE,…".to_owned()
        } else {
            "only ward users have wards".to_owned()
        });
    }
    Ok(user)
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

fn token_hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        return Err("a token hash is 64 hexadecimal digits".into());
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| "a token hash is 64 hexadecimal digits".to_owned())?;
    }
    Ok(out)
}

/// Failed sign-ins an address may have within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_ADDRESSES: usize = 10_000;

/// The recent failed sign-ins of every address: after [`MAX_FAILURES`]
/// within [`FAILURE_WINDOW`], an address waits (the login page and the
/// Postgres wire both ask).
#[derive(Debug, Default)]
pub struct Failures {
    by_address: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Failures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Vec<Instant>>> {
        self.by_address.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `address` must wait before signing in again, if it must.
    pub fn wait(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let mut by_address = self.lock();
        let recent = by_address.get_mut(&address)?;
        recent.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
        if recent.len() < MAX_FAILURES {
            return None;
        }
        recent
            .first()
            .map(|oldest| FAILURE_WINDOW.saturating_sub(now.duration_since(*oldest)))
    }

    pub fn record(&self, address: IpAddr, now: Instant) {
        let mut by_address = self.lock();
        if by_address.len() >= MAX_ADDRESSES && !by_address.contains_key(&address) {
            by_address.retain(|_, recent| {
                recent.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
                !recent.is_empty()
            });
            if by_address.len() >= MAX_ADDRESSES {
                by_address.clear();
            }
        }
        let recent = by_address.entry(address).or_default();
        recent.push(now);
        if recent.len() > MAX_FAILURES {
            recent.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ward(code: &str) -> WardCode {
        WardRegistry::builtin().code(code).expect("a ward")
    }

    #[test]
    fn an_address_waits_after_too_many_failures_and_others_do_not() {
        let failures = Failures::default();
        let (guesser, other): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(failures.wait(guesser, start), None, "after {i} failures");
            failures.record(guesser, start);
        }
        assert!(failures.wait(guesser, start).is_some());
        assert_eq!(failures.wait(other, start), None);
        assert_eq!(
            failures.wait(guesser, start + FAILURE_WINDOW),
            None,
            "the window passed"
        );
    }

    #[test]
    fn hashes_round_trip() {
        let hash = Hash::with_salt("mật khẩu", b"0123456789abcdef".to_vec());
        let encoded = hash.encode();
        assert!(encoded.starts_with("SCRAM-SHA-256$4096:"), "{encoded}");
        assert!(!encoded.contains("mật"));
        assert_eq!(Hash::decode(&encoded), Ok(hash.clone()));
        assert_ne!(Hash::with_salt("other", b"0123456789abcdef".to_vec()), hash);
    }

    #[test]
    fn users_roles_passwords_and_tokens_round_trip() {
        let dir = std::env::temp_dir().join(format!("chiso-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users");
        let mut users = Users::load_or_new(&path).expect("new");
        users
            .set("lan", Role::Ward, vec![ward("31135")])
            .expect("ward user");
        users.set("chi", Role::Leader, vec![]).expect("leader");
        users
            .set_password("lan", Hash::new("mật khẩu đúng").expect("hash"))
            .expect("password");
        let token = users.new_token("chi").expect("token");
        assert!(token.starts_with("chiso_") && token.len() == 6 + 64);
        users.save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&token) && !text.contains("mật"), "{text}");

        let users = Users::load(&path).expect("load");
        let lan = users.by_password("lan", "mật khẩu đúng").expect("signs in");
        assert_eq!(lan.scope(), Scope::wards([ward("31135")]));
        assert!(users.by_password("lan", "sai").is_none());
        assert!(
            users.by_password("chi", "anything").is_none(),
            "no password"
        );
        assert_eq!(users.by_token(&token).map(|u| u.role), Some(Role::Leader));
        assert!(users.by_token("chiso_00").is_none());
        assert!(!Role::Leader.writes_sql() && Role::Ward.ingests());

        let mut users = users;
        assert_eq!(users.revoke_tokens("chi").expect("revoke"), 1);
        assert!(users.by_token(&token).is_none());
        assert!(
            users.set("x", Role::Ward, vec![]).is_err(),
            "a ward user needs wards"
        );
        assert!(users.set("y", Role::Analyst, vec![ward("31135")]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_of_earlier_releases_is_read_as_analysts() {
        let dir = std::env::temp_dir().join(format!("chiso-users-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("pg-users");
        let hash = Hash::with_salt("pw-analyst", b"0123456789abcdef".to_vec());
        std::fs::write(&path, format!("# old\nbi {}\n", hash.encode())).expect("write");
        let users = Users::load(&path).expect("load");
        let bi = users.by_password("bi", "pw-analyst").expect("signs in");
        assert_eq!(bi.role, Role::Analyst);
        users.save(&path).expect("migrate");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("bi role=analyst password=SCRAM-SHA-256$"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_name_their_mistakes() {
        let dir = std::env::temp_dir().join(format!("chiso-users-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users");
        for (text, expected) in [
            ("analyst\n", "users:1:"),
            ("# ok\nbad/name role=admin\n", "users:2:"),
            ("a md5abc\n", "KEY=VALUE"),
            ("a role=king\n", "not a role"),
            ("a role=ward\n", "needs wards"),
            ("a role=ward wards=99999\n", "99999"),
            ("a role=admin wards=31135\n", "only ward users"),
            (
                "a role=admin password=SCRAM-SHA-256$12:AA==$AA==\n",
                "iterations",
            ),
            (
                "a role=admin password=SCRAM-SHA-256$4096:!!$AA==\n",
                "not base64",
            ),
            ("a role=admin token=abc\n", "sha256:HEX"),
            ("a role=admin\na role=admin\n", "twice"),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = Users::load(&path).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("users"), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
