//! `chiso pg-user`: the users Postgres clients sign in as.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
#[command(
    about = "Manage the users of `chiso serve --pg-addr` (passwords are stored hashed)",
    after_help = "Examples:\n  chiso pg-user add --users pg-users analyst\n  printf '%s\\n' \"$PASSWORD\" | chiso pg-user add --users pg-users bi --password-stdin\n  chiso serve --pg-addr 127.0.0.1:5433 --pg-users pg-users"
)]
pub enum PgUserCommand {
    /// Add a user, or give an existing one a new password.
    Add(AddArgs),
    /// Remove a user.
    Remove(NameArgs),
    /// List the users.
    List(FileArg),
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
    /// Read the password from the first line of standard input instead of
    /// asking for it.
    #[arg(long)]
    password_stdin: bool,
}

pub fn run(command: PgUserCommand) -> anyhow::Result<()> {
    match command {
        PgUserCommand::Add(args) => {
            let path = &args.user.file.users;
            let mut users = if path.exists() {
                chiso_pg::Users::load(path)?
            } else {
                chiso_pg::Users::default()
            };
            let password = read_password(args.password_stdin)?;
            users.set(&args.user.name, chiso_pg::Hash::new(&password)?)?;
            users.save(path)?;
            eprintln!(
                "chiso: {} can sign in ({} user{} in {})",
                args.user.name,
                users.names().count(),
                if users.names().count() == 1 { "" } else { "s" },
                path.display()
            );
        }
        PgUserCommand::Remove(args) => {
            let path = &args.file.users;
            let mut users = chiso_pg::Users::load(path)?;
            if !users.remove(&args.name) {
                bail!("{}: there is no user `{}`", path.display(), args.name);
            }
            users.save(path)?;
            eprintln!("chiso: removed {}", args.name);
        }
        PgUserCommand::List(args) => {
            for name in chiso_pg::Users::load(&args.users)?.names() {
                println!("{name}");
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
