//! `portcullis`: the command line. Thin: each command loads the configuration and calls
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::config::{Config, Mode};
use portcullis::{
    accounts_import, admin, app, db, demo, import, inactivity, keys, mode, oidc, serve, status,
    telemetry, tls, validate, webhooks,
};
use portcullis_core::clock::SystemClock;
use portcullis_core::service::SupportScope;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Online-account access for card issuers"
)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    /// The database (overrides the configuration): sqlite://path or postgres://…
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Load demo registry records, send notifications to the outbox, print demo cards.
        #[arg(long)]
        demo: bool,
        /// The address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// The issuer registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Online accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Support actions.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check the configuration before a (re)start: production mode's refusals, the secrets
    /// folder, the files it names, the database and its schema. Changes nothing; exit
    /// status 1 listing every problem.
    ValidateConfig,
    /// The status page: incidents, planned maintenance and maintenance mode.
    Status {
        #[command(subcommand)]
        command: StatusCommand,
    },
    /// Backups, restores and checks of the database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Key rotation: keyrings in secrets_dir, never in the database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Subscriptions to security events, delivered as signed webhooks.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// The OpenID Connect provider: relying parties and signing keys.
    Oidc {
        #[command(subcommand)]
        command: oidc::OidcCommand,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Subscribe an endpoint; prints {"id","secret"} (the signing secret, shown once).
    Add {
        /// https:// to a public host (http:// with webhooks.allow_http; loopback only with
        /// webhooks.allow_loopback).
        #[arg(long)]
        url: String,
        /// `all`, or a comma-separated list of event types (docs/design/webhooks.md).
        #[arg(long)]
        events: String,
    },
    /// One JSON line per subscription, with its deliveries pending, sent and failed.
    List,
    /// Remove a subscription and its deliveries not yet made.
    Remove {
        #[arg(value_name = "ID")]
        id: i64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new current key to the keyring NAME (registry.key, factor.key, outbox.key,
    /// csrf.key or audit.key); the old keys stay for reading. Running nodes pick it up
    /// without a restart.
    Rotate {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Each key name's current id, old ids, and how many rows still use each old id.
    Status,
    /// Move every sealed value to its current key now (what the re-seal job does).
    Reseal,
    /// Remove the old key ID from the keyring NAME; refused while `keys status` shows rows
    /// under it, or while a short-lived use of it may still be in flight.
    Retire {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "ID")]
        id: u32,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy a SQLite database to FILE while the service runs (consistent: one moment);
    /// for PostgreSQL, print the pg_dump and base-backup commands.
    Backup { file: PathBuf },
    /// Restore a SQLite backup into database_url, with the service stopped; checks it first.
    Restore {
        file: PathBuf,
        /// Move an existing database aside (never deleted) and restore in its place.
        #[arg(long)]
        force: bool,
    },
    /// Check the database: schema version against this binary, integrity and foreign keys,
    /// the audit chain under the registry key, the keys in secrets_dir. Changes nothing.
    Check,
}

#[derive(Subcommand)]
enum StatusCommand {
    /// Incidents and planned maintenance shown on /status.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Maintenance mode: every page and API call (but health, status and admin) answers 503.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// Post an incident (or, with --kind maintenance, planned maintenance).
    Create {
        #[arg(long)]
        title: String,
        #[arg(long)]
        message: String,
        /// incident or maintenance.
        #[arg(long, default_value = "incident")]
        kind: String,
        /// When it starts (RFC 3339).
        #[arg(long)]
        starts: Option<String>,
        /// When it ends (RFC 3339).
        #[arg(long)]
        ends: Option<String>,
    },
    /// Move an incident on: investigating, identified, monitoring, resolved (or scheduled,
    /// in_progress, completed for maintenance).
    Update {
        id: i64,
        #[arg(long)]
        state: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// Open incidents and those of the last 90 days.
    List,
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Switch maintenance mode on for every node.
    On {
        /// When it ends (RFC 3339); Retry-After counts down to it.
        #[arg(long)]
        until: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// Switch maintenance mode off.
    Off,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Load records from CSV (header row) or JSON Lines (.jsonl); all or nothing.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Migrate online accounts from an earlier login system (JSON Lines: user_id,
    /// account_type, card_number, password_hash, email, phone, created_at and optionally
    /// must_change_password); all or nothing. Password hashes are kept as they are and
    /// replaced by argon2id at each account's first sign-in.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Unlock a locked account.
    Unlock {
        user_id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Let a card paused after too many wrong card IDs accept its card ID online again.
    /// The card number is read from standard input, so it stays out of the process list
    /// and the shell history.
    ClearCard {
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Show an account's state, lock and recent audit events.
    Show { user_id: String },
    /// Reactivate an account deactivated after inactivity.
    Reactivate {
        user_id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Warn accounts inactive for inactivity.warn_after_secs and deactivate those warned
    /// inactivity.deactivate_after_secs ago (what the scheduled job does).
    RunInactivity {
        /// List what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Admin tokens for the support console's API (/api/v1/admin/).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once; only its hash is kept.
    Create {
        /// The support agent the token belongs to (audited as support:NAME).
        #[arg(long)]
        name: String,
        /// What the token may do: accounts:read, accounts:unlock, audit:read, status:write,
        /// registry:write, webhooks:write, clients:write (repeatable).
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<SupportScope>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke the active token with this name or id.
    Revoke {
        #[arg(value_name = "NAME_OR_ID")]
        name_or_id: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit chain; exit status 1 naming the first bad entry.
    Verify,
}

/// mimalloc, not glibc's allocator: rows made on a SQLite connection's thread are freed on a
/// tokio worker, and glibc's arenas then contend (figure 2's profile: `malloc`, `free` and
/// the arena lock's wake-ups were a fifth of the workers' time in `/me`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(url) = &cli.database_url {
        config.database_url = url.clone();
    }
    Ok(config)
}

/// The configuration for a one-shot command, with logging at `error` (its answer is on
/// standard output and its refusals on standard error; the service's warnings about its
/// configuration belong to `serve` and `validate-config`).
fn command_config(cli: &Cli) -> anyhow::Result<Config> {
    let config = load_config(cli)?;
    // Traces are for the service; a one-shot command exports none.
    let _ = telemetry::init(&config.log.format, "error", None);
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve { demo, listen } => {
            let mut config = load_config(&cli)?;
            // Held until the service stops: dropping it sends the last buffered spans.
            let _telemetry = telemetry::init(
                &config.log.format,
                "info,sqlx=warn",
                config.telemetry.otlp_endpoint.as_deref(),
            )?;
            if let Some(listen) = listen {
                config.listen = listen.clone();
            }
            let mode = mode::effective(&config, *demo)?;
            match mode {
                Mode::Production => {
                    let problems = mode::production_problems(&config);
                    if !problems.is_empty() {
                        eprintln!(
                            "error: production mode refuses this configuration \
                             (`portcullis validate-config` lists the same):"
                        );
                        for problem in &problems {
                            eprintln!("  - {problem}");
                        }
                        eprintln!(
                            "For a demo run `portcullis serve --demo`; for tests and \
                             benchmarks set mode = \"development\" (docs/operations.md)."
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                }
                Mode::Demo => {
                    if config.database_url == Config::default().database_url
                        && cli.database_url.is_none()
                    {
                        config.database_url = "sqlite://./portcullis-data/demo.db".into();
                    }
                    if config.notify.outbox_file.is_none() {
                        config.notify.outbox_file =
                            Some(PathBuf::from("./portcullis-data/outbox.jsonl"));
                    }
                }
                Mode::Development => {}
            }
            serve(config, mode).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry {
            command: RegistryCommand::Import { file },
        } => {
            let config = command_config(&cli)?;
            let built = app::build(&config, Arc::new(SystemClock), false).await?;
            // The keyring as it is now: records under its current key, rows under an old
            // one moved (docs/design/keys.md, "The registry key").
            let ring = portcullis_crypto::keyring::load_or_create_ring(
                &config.secrets_dir,
                app::REGISTRY_KEY,
            )
            .context("reading the registry key")?;
            let actor = admin::cli_actor();
            let audit = built.app.audit_keys().current();
            let ctx = import::ImportContext {
                store: built.store.as_ref(),
                keys: &ring,
                audit: &audit,
                policies: built.app.policies(),
                actor: &actor,
                now: built.app.clock().now(),
            };
            match import::import_file(&ctx, file).await {
                Ok(report) => {
                    println!(
                        "imported {} records in {:.2}s",
                        report.records,
                        report.elapsed.as_secs_f64()
                    );
                    println!(
                        "{} reissued cards took over online accounts; {} linked cards changed \
                         status",
                        report.load.reissues, report.load.status_changes
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("nothing was imported:\n{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Accounts {
            command: AccountsCommand::Import { file },
        } => {
            let config = command_config(&cli)?;
            let built = app::build(&config, Arc::new(SystemClock), false).await?;
            let ceilings = config.accounts_import.ceilings();
            match accounts_import::import_file(&built.app, &ceilings, file).await {
                Ok(report) => {
                    let schemes: Vec<String> = report
                        .by_scheme
                        .iter()
                        .map(|(scheme, n)| format!("{scheme}: {n}"))
                        .collect();
                    println!(
                        "imported {} accounts ({})",
                        report.accounts,
                        schemes.join(", ")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("nothing was imported:\n{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Admin { command } => {
            let config = command_config(&cli)?;
            let built = app::build(&config, Arc::new(SystemClock), false).await?;
            let actor = admin::cli_actor();
            let result = match command {
                AdminCommand::Unlock { user_id, reason } => {
                    admin::unlock(&built.app, user_id, reason, &actor).await
                }
                AdminCommand::ClearCard { reason } => {
                    admin::clear_card(&built.app, reason, &actor).await
                }
                AdminCommand::Show { user_id } => admin::show(&built.app, user_id, &actor).await,
                AdminCommand::Reactivate { user_id, reason } => {
                    admin::reactivate(&built.app, user_id, reason, &actor).await
                }
                AdminCommand::RunInactivity { dry_run } => {
                    inactivity::run_cli(&built.app, *dry_run, &actor).await
                }
                AdminCommand::Token { command } => match command {
                    TokenCommand::Create { name, scopes } => {
                        admin::token_create(&built.app, name, scopes, &actor).await
                    }
                    TokenCommand::List => admin::token_list(&built.app, &actor).await,
                    TokenCommand::Revoke { name_or_id } => {
                        admin::token_revoke(&built.app, name_or_id, &actor).await
                    }
                },
            };
            // A one-shot command delivers the messages it queued (an unlock tells the
            // person) rather than leave them to the next serving node's poll.
            built
                .delivery
                .deliver_due(std::time::Duration::from_secs(10))
                .await;
            result
        }
        Command::Webhooks { command } => {
            let config = command_config(&cli)?;
            let built = app::build(&config, Arc::new(SystemClock), false).await?;
            let actor = admin::cli_actor();
            match command {
                WebhooksCommand::Add { url, events } => {
                    webhooks::add(&built.app, url, events, &actor).await
                }
                WebhooksCommand::List => webhooks::list(&built.app, &actor).await,
                WebhooksCommand::Remove { id } => webhooks::remove(&built.app, *id, &actor).await,
            }
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let config = command_config(&cli)?;
            let built = app::build(&config, Arc::new(SystemClock), false).await?;
            admin::verify_audit(&built.app, &admin::cli_actor()).await
        }
        Command::Status { command } => {
            let config = command_config(&cli)?;
            let built = app::build(&config, Arc::new(SystemClock), false).await?;
            let actor = admin::cli_actor();
            let app = &built.app;
            match command {
                StatusCommand::Incident { command } => match command {
                    IncidentCommand::Create {
                        title,
                        message,
                        kind,
                        starts,
                        ends,
                    } => {
                        status::incident_create(
                            app,
                            &actor,
                            kind,
                            title,
                            message,
                            starts.as_deref(),
                            ends.as_deref(),
                        )
                        .await
                    }
                    IncidentCommand::Update { id, state, message } => {
                        status::incident_update(app, &actor, *id, state, message.as_deref()).await
                    }
                    IncidentCommand::List => status::incident_list(app, &actor).await,
                },
                StatusCommand::Maintenance { command } => match command {
                    MaintenanceCommand::On { until, message } => {
                        status::maintenance(app, &actor, Some((until, message.as_deref()))).await
                    }
                    MaintenanceCommand::Off => status::maintenance(app, &actor, None).await,
                },
            }
        }
        Command::Db { command } => {
            let config = command_config(&cli)?;
            match command {
                DbCommand::Backup { file } => db::backup(&config, file).await,
                DbCommand::Restore { file, force } => db::restore(&config, file, *force).await,
                DbCommand::Check => db::check_database(&config).await,
            }
        }
        Command::Keys { command } => {
            let config = command_config(&cli)?;
            match command {
                KeysCommand::Rotate { name } => keys::rotate(&config, name),
                KeysCommand::Status => {
                    let built = app::build(&config, Arc::new(SystemClock), false).await?;
                    keys::status_cli(&config, &built.store).await
                }
                KeysCommand::Reseal => {
                    let built = app::build(&config, Arc::new(SystemClock), false).await?;
                    keys::reseal_cli(
                        &built.store,
                        &keys::Sealers::of(&built),
                        config.keys.reseal_batch,
                    )
                    .await
                }
                KeysCommand::Retire { name, id } => {
                    let built = app::build(&config, Arc::new(SystemClock), false).await?;
                    let now = built.app.clock().now();
                    portcullis::keys_retire::retire_cli(
                        &config,
                        built.store.as_ref(),
                        name,
                        *id,
                        now,
                    )
                    .await
                }
            }
        }
        Command::Oidc { command } => {
            let config = command_config(&cli)?;
            oidc::run(&config, command).await
        }
        Command::ValidateConfig => {
            let config = command_config(&cli)?;
            validate::run(&config).await
        }
    }
}

async fn serve(mut config: Config, mode: Mode) -> anyhow::Result<()> {
    let demo = mode == Mode::Demo;
    // The certificate first: a pair that does not load stops the start before anything binds.
    let tls = tls::Tls::from_config(&config.tls)?;
    let scheme = config.tls.scheme();
    // Bound first, so the demo's public URL carries the real port (`--listen …:0` too).
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Browsers offer passkeys only on a host name, never on an IP address: the demo is
    // `http://localhost:PORT`, whatever address it listens on.
    let local = format!("{scheme}://localhost:{}", addr.port());
    if demo && config.public_url.is_none() {
        config.public_url = Some(local.clone());
    }
    let built = app::build(&config, Arc::new(SystemClock), demo).await?;
    if demo {
        let ring =
            portcullis_crypto::keyring::load_or_create_ring(&config.secrets_dir, app::REGISTRY_KEY)
                .context("reading the registry key")?;
        demo::load(
            built.store.as_ref(),
            &ring,
            &built.app.audit_keys().current(),
            built.app.clock().now(),
        )
        .await
        .context("loading the demo registry")?;
        println!("Portcullis is running at {local}/");
        let public = config.policies().public_url;
        if public != local {
            println!("(public URL {public}, set in the configuration)");
        }
        if !addr.ip().is_loopback() {
            println!("(listening on {addr})");
        }
        let outbox = config
            .notify
            .outbox_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        println!(
            "Demo mode: every email and text message goes to the outbox, at \
             {local}/demo/outbox and in {outbox}"
        );
        println!(
            "Demo cards, one of each account type (create an online account at \
             {local}/register):"
        );
        for card in demo::one_of_each_type() {
            println!("  {}", card.describe());
        }
    } else {
        println!("Portcullis is running at {scheme}://{addr}/");
        tracing::info!(%mode, public_url = %config.policies().public_url, "serving");
    }
    let listeners = app::Listeners::with_public(listener, &config).await?;
    println!(
        "Management (metrics, health) at {scheme}://{}/",
        listeners.management.local_addr()?
    );
    // Retries, leases and give-up decisions on a steady clock: a wall clock set back or
    // forward neither holds messages nor gives them up early.
    let delivery = built.delivery.clone().with_steady_time().spawn();
    let job = config.inactivity.enabled.then(|| {
        inactivity::spawn_job(
            built.app.clone(),
            std::time::Duration::from_secs(
                u64::try_from(config.inactivity.interval_secs).unwrap_or(3600),
            ),
        )
    });
    let reseal = keys::spawn_job(
        built.store.clone(),
        keys::Sealers::of(&built),
        config.keys.reseal_interval(),
        config.keys.reseal_batch,
    );
    let mut limits = config.server.connection_limits();
    // A full house of connections must leave descriptors for the database, the management
    // listener and files: three per SQLite connection (database, WAL, shared memory).
    let reserve = 64 + 3 * u64::from(config.database.max_connections);
    let open_files = serve::open_files_limit();
    let cap = serve::effective_cap(limits.max_connections, open_files, reserve);
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            open_files = open_files.unwrap_or(0),
            "server.max_connections lowered to fit the open-files limit (raise `ulimit -n`)"
        );
    }
    limits.max_connections = cap;
    let drain = limits.drain;
    let served = app::serve(listeners, built.state, limits, tls, shutdown_signal()).await;
    // A job stopped in the middle of a run gives its lease back: the next node to try
    // (the one restarted in this one's place tries at once) runs it.
    if let Some(job) = job {
        job.stop(built.store.as_ref()).await;
    }
    reseal.stop(built.store.as_ref()).await;
    // After the last request: finish the message in hand and release the other claims, but
    // never wait on a hanging provider for longer than the drain allows.
    delivery
        .stop_within(drain.min(std::time::Duration::from_secs(5)))
        .await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
