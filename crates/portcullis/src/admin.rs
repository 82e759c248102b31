//! Support commands: unlock, show, audit verification, and the admin tokens the support
//! console's API takes. Each support action needs a reason and is audited with who did it;
//! on the command line that is the operator, `cli:<user>`, who holds every scope.

use std::process::ExitCode;

use portcullis_core::clock::UnixTime;
use portcullis_core::service::{
    ClearCardOutcome, Portcullis, ReactivateOutcome, SupportAuthority, SupportScope, UnlockOutcome,
};
use portcullis_core::ServiceError;
use secrecy::ExposeSecret;

/// Who is acting from the command line: the operating-system user.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Bad input becomes a message naming the field and the rule, with exit status 1; every
/// other error goes up as an error.
pub(crate) fn refused(e: ServiceError) -> anyhow::Result<ExitCode> {
    match e {
        ServiceError::Invalid(errors) => {
            for err in errors {
                eprintln!("error: {}: {}", err.field, err.message);
            }
            Ok(ExitCode::FAILURE)
        }
        other => Err(other.into()),
    }
}

pub async fn unlock(
    app: &Portcullis,
    user_id: &str,
    reason: &str,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let outcome = match app
        .support_unlock(&SupportAuthority::operator(actor), user_id, reason)
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return refused(e),
    };
    match outcome {
        UnlockOutcome::Unlocked => {
            println!("unlocked {user_id}");
            Ok(ExitCode::SUCCESS)
        }
        UnlockOutcome::NotLocked => {
            println!("{user_id} was not locked; nothing changed");
            Ok(ExitCode::SUCCESS)
        }
        UnlockOutcome::NoSuchAccount => {
            eprintln!("no online account with User ID {user_id}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Clears a paused card; the number comes on standard input (one line).
pub async fn clear_card(app: &Portcullis, reason: &str, actor: &str) -> anyhow::Result<ExitCode> {
    let mut number = String::new();
    std::io::stdin().read_line(&mut number)?;
    let outcome = match app
        .support_clear_card(&SupportAuthority::operator(actor), number.trim(), reason)
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return refused(e),
    };
    match outcome {
        ClearCardOutcome::Cleared => {
            println!("the card accepts its card ID online again; its holder was told");
            Ok(ExitCode::SUCCESS)
        }
        ClearCardOutcome::NotPaused => {
            println!("the card was not paused; its count of wrong card IDs was cleared");
            Ok(ExitCode::SUCCESS)
        }
        ClearCardOutcome::NoSuchCard => {
            eprintln!("no card in the registry has this number");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn reactivate(
    app: &Portcullis,
    user_id: &str,
    reason: &str,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let outcome = match app
        .support_reactivate(&SupportAuthority::operator(actor), user_id, reason)
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return refused(e),
    };
    match outcome {
        ReactivateOutcome::Reactivated => {
            println!("reactivated {user_id}");
            Ok(ExitCode::SUCCESS)
        }
        ReactivateOutcome::NotDeactivated => {
            println!("{user_id} was not deactivated; nothing changed");
            Ok(ExitCode::SUCCESS)
        }
        ReactivateOutcome::NoSuchAccount => {
            eprintln!("no online account with User ID {user_id}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn show(app: &Portcullis, user_id: &str, actor: &str) -> anyhow::Result<ExitCode> {
    let view = match app
        .support_view(&SupportAuthority::operator(actor), user_id)
        .await
    {
        Ok(view) => view,
        Err(e) => return refused(e),
    };
    let Some(view) = view else {
        eprintln!("no online account with User ID {user_id}");
        return Ok(ExitCode::FAILURE);
    };
    println!("{view}");
    Ok(ExitCode::SUCCESS)
}

pub async fn verify_audit(app: &Portcullis, actor: &str) -> anyhow::Result<ExitCode> {
    let check = app.verify_audit(&SupportAuthority::operator(actor)).await?;
    match check.first_bad {
        None => {
            println!("audit log intact: {} entries", check.entries);
            Ok(ExitCode::SUCCESS)
        }
        Some(bad) => {
            println!("audit log TAMPERED: {bad}");
            println!(
                "({} entries verified before it; everything from entry {} on is suspect)",
                check.entries,
                bad.seq()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Creates an admin token and prints it once, alone on standard output (so a script can
/// capture it); the advice goes to standard error.
pub async fn token_create(
    app: &Portcullis,
    name: &str,
    scopes: &[SupportScope],
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let issued = match app
        .create_admin_token(&SupportAuthority::operator(actor), name, scopes)
        .await
    {
        Ok(issued) => issued,
        Err(e) => return refused(e),
    };
    eprintln!(
        "Created admin token #{} for {} with scopes {}.",
        issued.id,
        issued.name,
        scope_list(&issued.scopes)
    );
    println!("{}", issued.secret.expose_secret());
    eprintln!(
        "Store it now in a password manager or secret store: it is shown only this once, \
         Portcullis keeps only its hash, and anyone holding it can act as {} until it is \
         revoked (portcullis admin token revoke {}).",
        issued.name, issued.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Lists the admin tokens: never the tokens themselves, which are not stored.
pub async fn token_list(app: &Portcullis, actor: &str) -> anyhow::Result<ExitCode> {
    let tokens = app
        .list_admin_tokens(&SupportAuthority::operator(actor))
        .await?;
    if tokens.is_empty() {
        println!("no admin tokens (create one with: portcullis admin token create --name NAME --scope SCOPE)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>4}  {:<24} {:<8} {:<40} {:<25} {:<25} {:<25}",
        "id", "name", "state", "scopes", "created", "last used", "revoked"
    );
    let when = |t: Option<UnixTime>| t.map_or_else(|| "-".to_owned(), UnixTime::to_rfc3339);
    for t in tokens {
        println!(
            "{:>4}  {:<24} {:<8} {:<40} {:<25} {:<25} {:<25}",
            t.id,
            t.name,
            if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            scope_list(&t.scopes),
            t.created_at.to_rfc3339(),
            when(t.last_used_at),
            when(t.revoked_at),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token_revoke(
    app: &Portcullis,
    name_or_id: &str,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let revoked = match app
        .revoke_admin_token(&SupportAuthority::operator(actor), name_or_id)
        .await
    {
        Ok(revoked) => revoked,
        Err(e) => return refused(e),
    };
    match revoked {
        Some(t) => {
            println!("revoked admin token #{} ({})", t.id, t.name);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no active admin token is named or numbered {name_or_id}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn scope_list(scopes: &[SupportScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
