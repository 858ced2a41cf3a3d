//! `styrlogg user`: adds, replaces, removes and lists the web interface's
//! users and API tokens in the users file. Passwords are read from standard
//! input (or a prompt without echo on a terminal), never from the command
//! line, and only their argon2id hash is written.

use crate::cli::{Cli, UserCommand};
use crate::web::limits::{PASSWORD_BYTES_MAX, PASSWORD_CHARS_MIN};
use crate::web::users::{check_login, hash_password, new_token, token_hash, Token, User, Users};
use crate::Refused;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal};

fn read_password(login: &str) -> Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {login}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!(Refused("the two passwords differ; nothing was changed".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.chars().count() < PASSWORD_CHARS_MIN {
        bail!(Refused(format!("the password must have at least {PASSWORD_CHARS_MIN} characters; nothing was changed")));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        bail!(Refused(format!("the password may have at most {PASSWORD_BYTES_MAX} bytes; nothing was changed")));
    }
    Ok(password)
}

fn clean(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    out.dedup();
    out
}

/// Checks a new user against the file as it is.
fn may_add(users: &Users, login: &str, replace: bool) -> Result<()> {
    check_login(login).map_err(Refused)?;
    if users.tokens.contains_key(login) {
        bail!(Refused(format!("{login} is the name of an API token; choose another login")));
    }
    if users.users.contains_key(login) && !replace {
        bail!(Refused(format!("user {login} exists; use --replace to change it")));
    }
    Ok(())
}

/// Holds the users file for one change, from reading it to writing it:
/// two `styrlogg user` commands at once would otherwise each write the
/// file as they read it, and one change (a removal) would be lost.
fn lock(path: &std::path::Path) -> Result<std::fs::File> {
    let lock_path = std::path::PathBuf::from(format!("{}.lock", path.display()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    f.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(f)
}

pub fn run(cli: &Cli, cmd: &UserCommand) -> Result<()> {
    let path = &cli.users;
    let load = || Users::load(path).map_err(|e| Refused(format!("{e:#}")));
    // A role no workflow has is a typo: the user could sign in and never
    // record anything.
    if let UserCommand::Add { roles, .. } | UserCommand::Token { roles, .. } = cmd {
        crate::flow::known_roles(cli, clean(roles).iter().map(String::as_str))?;
    }
    // The password is asked before the file is locked (a prompt may wait),
    // after the checks that would refuse it anyway.
    let password = match cmd {
        UserCommand::Add { login, replace, .. } => {
            may_add(&load()?, login, *replace)?;
            Some(read_password(login)?)
        }
        _ => None,
    };
    let _held = match cmd {
        UserCommand::List => None,
        _ => Some(lock(path)?),
    };
    let mut users = load()?;
    match cmd {
        UserCommand::Add { login, name, roles, orgs, replace } => {
            may_add(&users, login, *replace)?;
            let password = password.expect("read above");
            let user = User {
                name: name.clone().unwrap_or_else(|| login.clone()).trim().to_string(),
                roles: clean(roles),
                orgs: clean(orgs),
                password: hash_password(&password)?,
            };
            users.users.insert(login.clone(), user);
            users.save(path).map_err(|e| Refused(format!("{e:#}")))?;
            println!("user {login} saved in {} (roles: {})", path.display(), clean(roles).join(", "));
        }
        UserCommand::Token { name, roles, orgs, replace } => {
            check_login(name).map_err(Refused)?;
            if users.users.contains_key(name) {
                bail!(Refused(format!("{name} is the login of a user; choose another token name")));
            }
            if users.tokens.contains_key(name) && !replace {
                bail!(Refused(format!("token {name} exists; use --replace to make a new one")));
            }
            let token = new_token(name)?;
            users
                .tokens
                .insert(name.clone(), Token { roles: clean(roles), orgs: clean(orgs), hash: token_hash(&token) });
            // Shown first: a token that cannot be shown (standard output
            // closed) is not saved, so no name is taken by a secret no one has.
            {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{token}").and_then(|()| out.flush()).map_err(|e| {
                    Refused(format!("the new token could not be shown ({e}), so token {name} was not saved"))
                })?;
            }
            users.save(path).map_err(|e| Refused(format!("{e:#}; the token shown is not valid")))?;
            eprintln!("token {name} saved in {}; it is shown only now, above", path.display());
        }
        UserCommand::Remove { login } => {
            if users.users.remove(login).is_none() && users.tokens.remove(login).is_none() {
                bail!(Refused(format!("no user or token {login} in {}", path.display())));
            }
            users.save(path)?;
            println!("{login} removed from {}", path.display());
        }
        UserCommand::List => {
            use std::io::Write;
            let mut out = crate::output::stdout();
            for (login, u) in &users.users {
                let orgs = if u.orgs.is_empty() { "any organisation".to_string() } else { u.orgs.join(", ") };
                writeln!(out, "user  {login:<20} {:<28} roles: {}; {orgs}", u.name, u.roles.join(", "))?;
            }
            for (name, t) in &users.tokens {
                let orgs = if t.orgs.is_empty() { "any organisation".to_string() } else { t.orgs.join(", ") };
                writeln!(out, "token {name:<20} {:<28} roles: {}; {orgs}", "", t.roles.join(", "))?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
