//! The `berth` command line. Thin: parses arguments and calls into the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "berth", version, about = "An AT Protocol Personal Data Server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the PDS (configured by PDS_* environment variables).
    Serve {
        /// Read PDS_* variables from this file too (like the reference's pds.env); the
        /// process environment wins where both set a variable.
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// Address to listen on (the port is PDS_PORT).
        #[arg(long, default_value = "0.0.0.0")]
        bind: std::net::IpAddr,
    },
    /// Start a local PLC directory and PDS on loopback with a demo account (no network needed).
    Dev {
        /// Where the dev setup keeps its data and secrets (reused on the next run).
        #[arg(long, default_value = "berth-dev")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2583)]
        port: u16,
        #[arg(long, default_value_t = 2582)]
        plc_port: u16,
    },
    /// Run a did:plc directory (validating every operation), for development and mirrors.
    Plc {
        /// SQLite database file.
        #[arg(long, default_value = "plc.sqlite")]
        db: PathBuf,
        #[arg(long, default_value_t = 2582)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
    },
    /// Offline work on one account's repository in a data directory.
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// CAR file tools.
    Car {
        #[command(subcommand)]
        command: CarCommand,
    },
    /// Blob store maintenance.
    Blobs {
        #[command(subcommand)]
        command: BlobsCommand,
    },
    /// Move an account from one PDS to another (any implementation), resumably: rerun the same
    /// command after any failure and it continues where it stopped.
    Migrate {
        /// The old host, e.g. https://old-pds.example.
        #[arg(long)]
        from: String,
        /// The new host.
        #[arg(long)]
        to: String,
        /// Handle, email or DID on the old host.
        #[arg(long)]
        identifier: String,
        /// Account password on the old host (or BERTH_MIGRATE_PASSWORD).
        #[arg(long, env = "BERTH_MIGRATE_PASSWORD", hide_env_values = true)]
        password: String,
        /// Handle on the new host (default: the current handle).
        #[arg(long)]
        new_handle: Option<String>,
        /// Email on the new host (default: the current email).
        #[arg(long)]
        new_email: Option<String>,
        /// Password on the new host (default: the old one; or BERTH_MIGRATE_NEW_PASSWORD).
        #[arg(long, env = "BERTH_MIGRATE_NEW_PASSWORD", hide_env_values = true)]
        new_password: Option<String>,
        #[arg(long)]
        invite_code: Option<String>,
        /// The PLC token the old host emailed (without it, the old host is asked to email one).
        #[arg(long)]
        plc_token: Option<String>,
        /// The PLC directory.
        #[arg(long, default_value = "https://plc.directory")]
        plc_url: String,
    },
    /// Relays (PDS_CRAWLERS): ask them to crawl this PDS, and see how well they follow it.
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Ask each relay to crawl this PDS now (com.atproto.sync.requestCrawl with PDS_HOSTNAME)
    /// and print its answer. A running server repeats this by itself after writes, at most
    /// every 20 minutes.
    RequestCrawl(RelayArgs),
    /// Print each relay's status for this host and, for our repos (the first 50), whether the
    /// relay has their current rev. Reads the account database; safe while the server runs.
    Status(RelayArgs),
}

#[derive(clap::Args)]
struct RelayArgs {
    /// Read PDS_* variables from this file too; the process environment wins.
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Relay base URL (repeatable); default: the PDS_CRAWLERS list.
    #[arg(long = "relay", value_name = "URL")]
    relays: Vec<String>,
}

#[derive(Subcommand)]
enum BlobsCommand {
    /// Collect blob garbage once: temporary uploads older than PDS_BLOB_GC_TEMP_AGE_SECS that
    /// no record referenced, blobs no record references, and temporary files with no row.
    /// Never deletes a blob a record references. Safest with the server stopped (a running
    /// server collects on its own every PDS_BLOB_GC_INTERVAL_SECS).
    Gc {
        /// Read PDS_* variables from this file too; the process environment wins.
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// Report what would be deleted, deleting nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct RepoTarget {
    /// The PDS data directory (repositories live in <dir>/actors/).
    #[arg(long)]
    data_dir: PathBuf,
    /// The account's DID.
    #[arg(long)]
    did: berth::syntax::Did,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create an empty repository with a new signing key.
    Init(RepoTarget),
    /// Apply record operations from a JSON-lines file as signed commits.
    Write {
        #[command(flatten)]
        target: RepoTarget,
        /// One `{"action","collection","rkey","record"}` per line.
        #[arg(long)]
        file: PathBuf,
        /// Operations per commit (1-200).
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// Write the repository to a CAR file.
    Export {
        #[command(flatten)]
        target: RepoTarget,
        #[arg(long)]
        out: PathBuf,
        /// Only blocks newer than this rev.
        #[arg(long)]
        since: Option<String>,
    },
    /// Replace the repository with a verified CAR file.
    Import {
        #[command(flatten)]
        target: RepoTarget,
        #[arg(long)]
        car: PathBuf,
        /// did:key the commit must be signed with.
        #[arg(long)]
        signing_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum CarCommand {
    /// Print a CAR file's roots and a summary of its blocks, checking every block's hash.
    Inspect {
        /// Path to the .car file.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { env_file, bind } => serve(env_file, bind),
        Command::Plc { db, port, bind } => plc(db, port, bind),
        Command::Dev {
            dir,
            port,
            plc_port,
        } => dev(dir, port, plc_port),
        Command::Repo { command } => repo(command),
        Command::Car {
            command: CarCommand::Inspect { path },
        } => car_inspect(&path),
        Command::Blobs {
            command: BlobsCommand::Gc { env_file, dry_run },
        } => blobs_gc(env_file, dry_run),
        Command::Relay { command } => relay(command),
        Command::Migrate {
            from,
            to,
            identifier,
            password,
            new_handle,
            new_email,
            new_password,
            invite_code,
            plc_token,
            plc_url,
        } => migrate(berth::tools::migrate::MigrateOptions {
            from,
            to,
            identifier,
            password,
            new_handle,
            new_email,
            new_password,
            invite_code,
            plc_token,
            plc_url,
            interactive: std::io::IsTerminal::is_terminal(&std::io::stdin()),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn serve(env_file: Option<PathBuf>, bind: std::net::IpAddr) -> anyhow::Result<()> {
    init_tracing();
    let config = match env_file {
        Some(path) => berth::config::Config::from_env_file(&path)?,
        None => berth::config::Config::from_env()?,
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind((bind, config.service.port)).await?;
        tracing::info!(addr = %listener.local_addr()?, url = %config.service.public_url, "berth serving");
        berth::server::serve(config, listener).await?;
        Ok(())
    })
}

fn dev(dir: PathBuf, port: u16, plc_port: u16) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(berth::tools::dev::run(
        &dir,
        port,
        plc_port,
        |s| {
            println!(
                "berth dev is running (Ctrl-C to stop); data in {}",
                dir.display()
            );
            println!("  PDS:      {}", s.pds_url);
            println!("  PLC:      {}", s.plc_url);
            println!("  handle:   {}", s.handle);
            println!("  password: {}", s.password);
            println!("  DID:      {}", s.did);
        },
        berth::server::shutdown_signal(),
    ))
}

fn plc(db: PathBuf, port: u16, bind: std::net::IpAddr) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind((bind, port)).await?;
        tracing::info!(addr = %listener.local_addr()?, db = %db.display(), "berth plc serving");
        berth::plc::directory::serve_plc(listener, &db).await
    })
}

fn repo(command: RepoCommand) -> anyhow::Result<()> {
    use berth::tools::repo;
    let summary = match command {
        RepoCommand::Init(t) => repo::init(&t.data_dir, &t.did)?,
        RepoCommand::Write {
            target: t,
            file,
            batch,
        } => repo::write(&t.data_dir, &t.did, &file, batch)?,
        RepoCommand::Export {
            target: t,
            out,
            since,
        } => repo::export(&t.data_dir, &t.did, &out, since.as_deref())?,
        RepoCommand::Import {
            target: t,
            car,
            signing_key,
        } => repo::import(&t.data_dir, &t.did, &car, signing_key.as_deref())?,
    };
    println!("{summary}");
    Ok(())
}

fn blobs_gc(env_file: Option<PathBuf>, dry_run: bool) -> anyhow::Result<()> {
    init_tracing();
    let config = match env_file {
        Some(path) => berth::config::Config::from_env_file(&path)?,
        None => berth::config::Config::from_env()?,
    };
    let age = config.service.blob_gc_temp_age;
    runtime()?.block_on(async move {
        let pds = berth::pds::Pds::open(std::sync::Arc::new(config))?;
        let report = pds
            .collect_blob_garbage(age, dry_run)
            .await
            .map_err(|e| anyhow::anyhow!("blob gc: {e}"))?;
        print!("{}", report.table());
        pds.actors.flush_all();
        Ok(())
    })
}

/// The config and the relays to ask: `--relay` values, else PDS_CRAWLERS.
fn relay_setup(args: RelayArgs) -> anyhow::Result<(berth::config::Config, Vec<String>)> {
    let config = match &args.env_file {
        Some(path) => berth::config::Config::from_env_file(path)?,
        None => berth::config::Config::from_env()?,
    };
    let relays = if args.relays.is_empty() {
        config.crawlers.clone()
    } else {
        args.relays
            .iter()
            .map(|r| berth::crawlers::normalize_relay_url(r).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    if relays.is_empty() {
        anyhow::bail!(
            "no relays to ask: set PDS_CRAWLERS (e.g. https://bsky.network) or pass --relay URL"
        );
    }
    Ok((config, relays))
}

fn relay(command: RelayCommand) -> anyhow::Result<()> {
    init_tracing();
    match command {
        RelayCommand::RequestCrawl(args) => relay_request_crawl(args),
        RelayCommand::Status(args) => relay_status(args),
    }
}

fn relay_request_crawl(args: RelayArgs) -> anyhow::Result<()> {
    let (config, relays) = relay_setup(args)?;
    let hostname = config.service.hostname.clone();
    let crawlers = berth::crawlers::Crawlers::new(hostname.clone(), relays)?;
    let outcomes = runtime()?.block_on(crawlers.request_crawl_now());
    println!("requestCrawl for {hostname}:");
    for outcome in &outcomes {
        println!("  {outcome}");
    }
    let failed = outcomes.iter().filter(|o| !o.is_ok()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} relays did not accept the request",
            outcomes.len()
        );
    }
    Ok(())
}

fn relay_status(args: RelayArgs) -> anyhow::Result<()> {
    let (config, relays) = relay_setup(args)?;
    let repos = local_repos(&config.db.account_db)?;
    let hostname = config.service.hostname.clone();
    let reports = runtime()?.block_on(async {
        let mut reports = Vec::new();
        for relay in &relays {
            reports.push(berth::crawlers::relay_report(relay, &hostname, &repos).await);
        }
        reports
    });
    println!("{} repos hosted here", repos.len());
    for report in &reports {
        print!("{}", report.table());
    }
    let failed = reports.iter().filter(|r| r.host.is_err()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} relays could not report on this host",
            reports.len()
        );
    }
    Ok(())
}

/// Every repo in the account database with its head rev, oldest account first.
fn local_repos(account_db: &std::path::Path) -> anyhow::Result<Vec<berth::crawlers::LocalRepo>> {
    // Opening would create an empty database; a missing file means the wrong configuration.
    if !account_db.exists() {
        anyhow::bail!(
            "no account database at {}: point PDS_DATA_DIRECTORY (or PDS_ACCOUNT_DB_LOCATION, \
             or --env-file) at the server's data",
            account_db.display()
        );
    }
    let store = berth::store::account::AccountStore::open(account_db)
        .with_context(|| format!("opening {}", account_db.display()))?;
    let mut repos = Vec::new();
    let mut after: Option<(chrono::DateTime<chrono::Utc>, berth::syntax::Did)> = None;
    loop {
        let page = store
            .list_repos(after.as_ref().map(|(t, d)| (*t, d)), 500)
            .map_err(|e| anyhow::anyhow!("listing repos: {e}"))?;
        let Some(last) = page.last() else { break };
        after = Some((last.account.created_at, last.account.did.clone()));
        repos.extend(page.into_iter().map(|r| berth::crawlers::LocalRepo {
            active: r.account.is_active(),
            did: r.account.did,
            rev: r.root.rev,
        }));
    }
    Ok(repos)
}

fn car_inspect(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = berth::car::CarReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    for root in reader.roots() {
        println!("root {root}");
    }
    let (mut blocks, mut bytes, mut cbor, mut raw) = (0u64, 0u64, 0u64, 0u64);
    for block in reader {
        let (cid, data) = block.with_context(|| format!("after {blocks} good blocks"))?;
        blocks += 1;
        bytes += data.len() as u64;
        match cid.codec() {
            berth::data::DAG_CBOR => cbor += 1,
            berth::data::RAW => raw += 1,
            _ => {}
        }
    }
    println!(
        "{blocks} blocks ({cbor} dag-cbor, {raw} raw), {bytes} bytes of block data; all hashes verified"
    );
    Ok(())
}

fn migrate(opts: berth::tools::migrate::MigrateOptions) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "migrating {} from {} to {}",
        opts.identifier, opts.from, opts.to
    );
    match rt.block_on(berth::tools::migrate::migrate(opts)) {
        Ok(report) => {
            println!(
                "done: {} moved in {:.1} s ({} records, {} blobs copied this run)",
                report.did, report.seconds, report.records, report.blobs
            );
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "{}\nRerun the same command to continue: finished steps are skipped.",
            berth::tools::migrate::explain(&e)
        )),
    }
}
