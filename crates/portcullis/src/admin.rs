//! Support commands: unlock, show, and audit verification. Each support action needs a
//! reason and is audited with who did it.

use std::process::ExitCode;

use anyhow::bail;
use portcullis_core::service::{Portcullis, SupportAuthority};

/// Who is acting from the command line: the operating-system user.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub async fn unlock(
    app: &Portcullis,
    user_id: &str,
    reason: &str,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    if reason.trim().len() < 3 {
        bail!("give a reason (--reason) of at least 3 characters: it is kept in the audit log");
    }
    match app
        .support_unlock(&SupportAuthority::operator(actor), user_id, reason)
        .await?
    {
        true => {
            println!("unlocked {user_id}");
            Ok(ExitCode::SUCCESS)
        }
        false => {
            println!("{user_id} was not locked; nothing changed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn show(app: &Portcullis, user_id: &str) -> anyhow::Result<ExitCode> {
    let Some(view) = app
        .support_view(&SupportAuthority::operator(&cli_actor()), user_id)
        .await?
    else {
        eprintln!("no online account with User ID {user_id}");
        return Ok(ExitCode::FAILURE);
    };
    println!("{view}");
    Ok(ExitCode::SUCCESS)
}

pub async fn verify_audit(app: &Portcullis) -> anyhow::Result<ExitCode> {
    match app.verify_audit().await? {
        Ok(count) => {
            println!("audit log intact: {count} entries");
            Ok(ExitCode::SUCCESS)
        }
        Err(bad) => {
            println!("audit log TAMPERED: {bad}");
            Ok(ExitCode::FAILURE)
        }
    }
}
