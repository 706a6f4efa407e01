//! `chiso user`: the users of `chiso serve` and of the Postgres wire, with
//! their roles and wards (`chiso pg-user` is the same command under the name
//! of earlier releases).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use chiso_core::wards::WardRegistry;
use chiso_users::{Hash, Role, Users};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
#[command(
    about = "Manage users: roles (leader, ward, analyst, admin), wards, passwords and API tokens; only hashes are stored",
    after_help = "Roles:\n  leader   every ward: pages, reports, exports; no SQL\n  ward     only its wards (--ward CODE, repeatable), everywhere; uploads for them\n  analyst  every ward; read-only SQL on every entry point\n  admin    all of that, plus the quarantine, the ingest history and the audit\n\nExamples:\n  chiso user add --users users lan --role ward --ward 31135\n  printf '%s\\n' \"$PASSWORD\" | chiso user add --users users bi --role analyst --password-stdin\n  chiso user token --users users ingest-bot\n  chiso serve --pg-addr 127.0.0.1:5433 --pg-users users"
)]
pub enum UserCommand {
    /// Add a user (asking for a password), or change one's role, wards and password.
    Add(AddArgs),
    /// Remove a user.
    Remove(NameArgs),
    /// List the users, their roles and wards.
    List(FileArg),
    /// Print a new API token for a user (shown once; only its hash is kept), or revoke them.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The users file (created by `add` when missing).
    #[arg(long)]
    users: PathBuf,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    file: FileArg,
    /// The user name.
    name: String,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    user: NameArgs,
    /// leader, ward, analyst or admin.
    #[arg(long, default_value = "analyst")]
    role: String,
    /// A ward of a ward user (repeat for several).
    #[arg(long = "ward")]
    wards: Vec<String>,
    /// Read the password from the first line of standard input instead of
    /// asking for it.
    #[arg(long)]
    password_stdin: bool,
    /// Keep the user's password (change only the role or wards), or add a
    /// user without one (a user of tokens only).
    #[arg(long, conflicts_with = "password_stdin")]
    no_password: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    user: NameArgs,
    /// Forget every token of the user instead.
    #[arg(long)]
    revoke: bool,
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => {
            let path = &args.user.file.users;
            let name = &args.user.name;
            let mut users = Users::load_or_new(path)?;
            let role = Role::parse(&args.role).with_context(|| {
                format!(
                    "`{}` is not a role: use leader, ward, analyst or admin",
                    args.role
                )
            })?;
            let wards = args
                .wards
                .iter()
                .map(|code| WardRegistry::builtin().code(code))
                .collect::<Result<Vec<_>, _>>()?;
            users.set(name, role, wards)?;
            if !args.no_password {
                let password = read_password(args.password_stdin)?;
                users.set_password(name, Hash::new(&password)?)?;
            }
            users.save(path)?;
            let count = users.names().count();
            eprintln!(
                "chiso: {name} is {} ({count} user{} in {})",
                role.as_str(),
                if count == 1 { "" } else { "s" },
                path.display()
            );
        }
        UserCommand::Remove(args) => {
            let path = &args.file.users;
            let mut users = Users::load(path)?;
            if !users.remove(&args.name) {
                bail!("{}: there is no user `{}`", path.display(), args.name);
            }
            users.save(path)?;
            eprintln!("chiso: removed {}", args.name);
        }
        UserCommand::List(args) => {
            for user in Users::load(&args.users)?.iter() {
                let wards: Vec<&str> = user.wards.iter().map(|w| w.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{} token{}",
                    user.name,
                    user.role.as_str(),
                    if wards.is_empty() {
                        "-".to_owned()
                    } else {
                        wards.join(",")
                    },
                    if user.password().is_some() {
                        "password"
                    } else {
                        "no password"
                    },
                    user.tokens(),
                    if user.tokens() == 1 { "" } else { "s" }
                );
            }
        }
        UserCommand::Token(args) => {
            let path = &args.user.file.users;
            let mut users = Users::load(path)?;
            if args.revoke {
                let revoked = users.revoke_tokens(&args.user.name)?;
                users.save(path)?;
                eprintln!("chiso: revoked {revoked} token(s) of {}", args.user.name);
            } else {
                let token = users.new_token(&args.user.name)?;
                users.save(path)?;
                eprintln!(
                    "chiso: a new token for {}; it is shown only now (send it as `Authorization: Bearer TOKEN`)",
                    args.user.name
                );
                println!("{token}");
            }
        }
    }
    Ok(())
}

const MIN_PASSWORD: usize = 8;

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    } else {
        bail!("standard input is not a terminal: give the password with --password-stdin");
    };
    if password.chars().count() < MIN_PASSWORD {
        bail!("a password needs at least {MIN_PASSWORD} characters");
    }
    Ok(password)
}
