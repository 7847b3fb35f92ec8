//! `berth migrate`: moves an account from any PDS to any PDS (reference ↔ berth ↔ berth) by the
//! documented procedure, so that the account is never half-moved.
//!
//! Invariants:
//! - Identity is switched (the PLC operation submitted) only after the new host holds the old
//!   host's current commit, as many records, and every blob its records reference.
//! - Every step first asks the hosts whether it is already done and skips it if so, so a rerun
//!   after a crash, a network failure or a missing PLC token continues where the last run
//!   stopped. Nothing is kept locally but what the user passes on the command line.
//! - The old host is deactivated only after the new one is active.
//!
//! Fault injection for tests: `BERTH_MIGRATE_FAIL_AFTER=<step>` ends the run with an error right
//! after that step completes, as a crash would.

use super::xrpc_client::{XrpcClient, is_status, remote_error};
use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

/// What the user passes.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The old host's URL.
    pub from: String,
    /// The new host's URL.
    pub to: String,
    /// Handle, email or DID on the old host.
    pub identifier: String,
    /// The account password on the old host (not an app password).
    pub password: String,
    /// Handle on the new host (default: the current one).
    pub new_handle: Option<String>,
    /// Email on the new host (default: the current one).
    pub new_email: Option<String>,
    /// Password on the new host (default: the old one).
    pub new_password: Option<String>,
    pub invite_code: Option<String>,
    /// The token the old host emailed for the PLC operation; without it, one is requested.
    pub plc_token: Option<String>,
    /// The PLC directory (for did:plc accounts).
    pub plc_url: String,
    /// Ask for the PLC token on the terminal when it is needed and not given.
    pub interactive: bool,
}

/// The steps, in order; names are what `BERTH_MIGRATE_FAIL_AFTER` takes.
pub const STEPS: &[&str] = &[
    "check",
    "create-account",
    "import-repo",
    "blobs",
    "preferences",
    "verify-copy",
    "identity",
    "activate",
    "deactivate-old",
    "verify",
];

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct MigrateReport {
    pub did: String,
    /// (step, what happened)
    pub steps: Vec<(String, String)>,
    pub records: u64,
    pub blobs: u64,
    pub seconds: f64,
}

struct Run {
    opts: MigrateOptions,
    report: MigrateReport,
    fail_after: Option<String>,
    step_started: Instant,
}

impl Run {
    fn done(&mut self, step: &str, what: impl Into<String>) -> anyhow::Result<()> {
        let what = what.into();
        let ms = self.step_started.elapsed().as_millis();
        self.step_started = Instant::now();
        println!("  {step:<15} {what} ({ms} ms)");
        self.report.steps.push((step.to_string(), what));
        if self.fail_after.as_deref() == Some(step) {
            bail!("stopped after step {step} (BERTH_MIGRATE_FAIL_AFTER)");
        }
        Ok(())
    }
}

/// Runs (or resumes) a migration.
pub async fn migrate(opts: MigrateOptions) -> anyhow::Result<MigrateReport> {
    let started = Instant::now();
    let mut run = Run {
        opts,
        report: MigrateReport::default(),
        fail_after: std::env::var("BERTH_MIGRATE_FAIL_AFTER").ok(),
        step_started: started,
    };
    let o = run.opts.clone();
    let old_anon = XrpcClient::new(&o.from)?;
    let new_anon = XrpcClient::new(&o.to)?;

    // --- check: everything that can be checked before anything changes (independent
    // requests at once: the old host's login is the slow one).
    let login = json!({"identifier": o.identifier, "password": o.password});
    let (session, server) = tokio::join!(
        old_anon.procedure("com.atproto.server.createSession", &login),
        new_anon.query("com.atproto.server.describeServer", &[]),
    );
    let session = session
        .context("logging in to the old host (the account password, not an app password)")?;
    let server = server.context("the new host does not answer describeServer")?;
    let did = str_field(&session, "did")?;
    run.report.did = did.clone();
    let old = old_anon.with_token(&str_field(&session, "accessJwt")?);
    let handle = o
        .new_handle
        .clone()
        .or_else(|| session["handle"].as_str().map(String::from))
        .ok_or_else(|| anyhow!("the account has no handle; pass --new-handle"))?;
    let email = o
        .new_email
        .clone()
        .or_else(|| session["email"].as_str().map(String::from));
    let new_password = o.new_password.clone().unwrap_or_else(|| o.password.clone());
    let new_service_did = str_field(&server, "did")?;
    let head_params = [("did", did.as_str())];
    let (doc_endpoint, old_head, old_status) = tokio::join!(
        pds_endpoint(&o.plc_url, &did),
        // Authenticated: the owner may read its repo even once the old host has deactivated
        // it (a rerun after the last steps).
        old.query("com.atproto.sync.getLatestCommit", &head_params),
        old.query("com.atproto.server.checkAccountStatus", &[]),
    );
    let doc_endpoint = doc_endpoint?;
    let old_head = old_head.context("reading the old host's current commit")?;
    let old_head = str_field(&old_head, "cid")?;
    let old_status = old_status.ok();
    let points_new = same_host(&doc_endpoint, &o.to);
    if !points_new && !same_host(&doc_endpoint, &o.from) {
        bail!(
            "the DID document of {did} names {doc_endpoint} as its PDS, neither the old nor the \
             new host: refusing to move it"
        );
    }
    run.done(
        "check",
        format!("{did} ({handle}) on {}, head {old_head}", o.from),
    )?;

    // --- create-account (deactivated) on the new host, or log in to the one made earlier.
    let existing = new_anon
        .procedure(
            "com.atproto.server.createSession",
            &json!({"identifier": did, "password": new_password}),
        )
        .await;
    let new_session = match existing {
        Ok(s) => {
            run.done("create-account", "exists already; logged in")?;
            s
        }
        Err(e)
            if is_status(&e, StatusCode::UNAUTHORIZED)
                || is_status(&e, StatusCode::BAD_REQUEST) =>
        {
            let exp = (chrono::Utc::now().timestamp() + 60).to_string();
            let auth = old
                .query(
                    "com.atproto.server.getServiceAuth",
                    &[
                        ("aud", &new_service_did),
                        ("lxm", "com.atproto.server.createAccount"),
                        ("exp", &exp),
                    ],
                )
                .await
                .context("asking the old host for a service token")?;
            let mut body = json!({"did": did, "handle": handle, "password": new_password});
            if let Some(e) = &email {
                body["email"] = json!(e);
            }
            if let Some(c) = &o.invite_code {
                body["inviteCode"] = json!(c);
            }
            let created = new_anon
                .with_token(&str_field(&auth, "token")?)
                .procedure("com.atproto.server.createAccount", &body)
                .await
                .context("creating the account on the new host")?;
            if created["did"].as_str() != Some(did.as_str()) {
                bail!("the new host created {} instead of {did}", created["did"]);
            }
            run.done(
                "create-account",
                format!("created on {} (deactivated)", o.to),
            )?;
            created
        }
        Err(e) => return Err(e.context("logging in to the new host")),
    };
    let new = new_anon.with_token(&str_field(&new_session, "accessJwt")?);

    // --- import-repo: skipped when the new host already has the old head.
    let status = new
        .query("com.atproto.server.checkAccountStatus", &[])
        .await?;
    if status["repoCommit"].as_str() == Some(old_head.as_str()) {
        run.done("import-repo", "new host has the current commit already")?;
    } else {
        let spinner = ProgressBar::new_spinner().with_message("downloading the repo");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let car = old
            .query_bytes("com.atproto.sync.getRepo", &[("did", &did)])
            .await
            .context("downloading the repo")?;
        spinner.set_message("importing the repo");
        new.procedure_bytes(
            "com.atproto.repo.importRepo",
            "application/vnd.ipld.car",
            car.clone(),
        )
        .await
        .context("importing the repo into the new host")?;
        spinner.finish_and_clear();
        run.done(
            "import-repo",
            format!("{} KiB CAR imported", car.len() / 1024),
        )?;
    }

    // --- blobs: whatever the new host still misses, from the old host.
    let mut copied = 0u64;
    let status = new
        .query("com.atproto.server.checkAccountStatus", &[])
        .await?;
    let missing_total = status["expectedBlobs"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(status["importedBlobs"].as_u64().unwrap_or(0));
    let bar = ProgressBar::new(missing_total).with_style(
        ProgressStyle::with_template("  blobs {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let page = new
            .query("com.atproto.repo.listMissingBlobs", &[("limit", "500")])
            .await
            .context("listing missing blobs on the new host")?;
        let blobs = page["blobs"].as_array().cloned().unwrap_or_default();
        if blobs.is_empty() {
            break;
        }
        for b in blobs {
            let cid = str_field(&b, "cid")?;
            let (mime, bytes) = old
                .query_blob("com.atproto.sync.getBlob", &[("did", &did), ("cid", &cid)])
                .await
                .with_context(|| format!("downloading blob {cid}"))?;
            new.procedure_bytes("com.atproto.repo.uploadBlob", &mime, bytes)
                .await
                .with_context(|| format!("uploading blob {cid}"))?;
            copied += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    run.report.blobs = copied;
    run.done("blobs", format!("{copied} copied"))?;

    // --- preferences (app.bsky), if the old host keeps any.
    match old.query("app.bsky.actor.getPreferences", &[]).await {
        Ok(prefs) => {
            let prefs = prefs["preferences"].clone();
            let n = prefs.as_array().map_or(0, Vec::len);
            new.procedure(
                "app.bsky.actor.putPreferences",
                &json!({"preferences": prefs}),
            )
            .await
            .context("storing preferences on the new host")?;
            run.done("preferences", format!("{n} copied"))?;
        }
        Err(e) => run.done("preferences", format!("none read from the old host ({e})"))?,
    }

    // --- verify-copy: the new host must hold everything before identity moves.
    let new_status = new
        .query("com.atproto.server.checkAccountStatus", &[])
        .await?;
    if new_status["repoCommit"].as_str() != Some(old_head.as_str()) && !points_new {
        bail!(
            "the new host is at commit {}, the old at {old_head}: not switching identity; rerun",
            new_status["repoCommit"]
        );
    }
    let expected = new_status["expectedBlobs"].as_u64().unwrap_or(0);
    let imported = new_status["importedBlobs"].as_u64().unwrap_or(0);
    if imported < expected {
        bail!("the new host has {imported} of {expected} blobs: not switching identity; rerun");
    }
    let records = new_status["indexedRecords"].as_u64().unwrap_or(0);
    if let Some(old_records) = old_status
        .as_ref()
        .and_then(|s| s["indexedRecords"].as_u64())
        && old_records != records
        && !points_new
    {
        bail!("the new host has {records} records, the old {old_records}: not switching identity");
    }
    run.report.records = records;
    run.done(
        "verify-copy",
        format!("{records} records, {imported}/{expected} blobs, head {old_head}"),
    )?;

    // --- identity: the PLC operation, signed by the old host, submitted by the new.
    if same_host(&pds_endpoint(&o.plc_url, &did).await?, &o.to) {
        run.done("identity", "DID document already names the new host")?;
    } else {
        if !did.starts_with("did:plc:") {
            bail!(
                "{did} is not a did:plc: update its DID document to name {} and rerun",
                o.to
            );
        }
        let creds = new
            .query("com.atproto.identity.getRecommendedDidCredentials", &[])
            .await
            .context("asking the new host for its DID credentials")?;
        let token = match &o.plc_token {
            Some(t) => t.clone(),
            None => {
                old.procedure_no_input("com.atproto.identity.requestPlcOperationSignature")
                    .await
                    .context("asking the old host to email a PLC token")?;
                if !o.interactive {
                    bail!(
                        "the old host emailed a PLC token to the account's address; rerun with \
                         --plc-token <token> (the steps done so far are kept)"
                    );
                }
                prompt("PLC token from the email: ")?
            }
        };
        let mut body = creds.clone();
        body["token"] = json!(token);
        let signed = old
            .procedure("com.atproto.identity.signPlcOperation", &body)
            .await
            .context("the old host signing the PLC operation")?;
        new.procedure(
            "com.atproto.identity.submitPlcOperation",
            &json!({"operation": signed["operation"]}),
        )
        .await
        .context("the new host submitting the PLC operation")?;
        run.done("identity", format!("DID document now names {}", o.to))?;
    }

    // --- activate the new host, then deactivate the old.
    let status = new
        .query("com.atproto.server.checkAccountStatus", &[])
        .await?;
    if status["activated"].as_bool() == Some(true) {
        run.done("activate", "already active")?;
    } else {
        new.procedure_no_input("com.atproto.server.activateAccount")
            .await
            .context("activating the account on the new host")?;
        run.done("activate", "active on the new host")?;
    }
    let old_active = old
        .query("com.atproto.server.checkAccountStatus", &[])
        .await
        .map(|s| s["activated"].as_bool() != Some(false))
        .unwrap_or(true);
    if old_active {
        old.procedure("com.atproto.server.deactivateAccount", &json!({}))
            .await
            .context("deactivating the account on the old host")?;
        run.done("deactivate-old", "deactivated on the old host")?;
    } else {
        run.done("deactivate-old", "already deactivated")?;
    }

    // --- verify the end state, with a real write on the new host.
    if !same_host(&pds_endpoint(&o.plc_url, &did).await?, &o.to) {
        bail!("the DID document does not name the new host");
    }
    let status = new
        .query("com.atproto.server.checkAccountStatus", &[])
        .await?;
    if status["activated"].as_bool() != Some(true) || status["validDid"].as_bool() != Some(true) {
        bail!("the new host reports {status}");
    }
    let probe = new
        .procedure(
            "com.atproto.repo.createRecord",
            &json!({"repo": did, "collection": "app.berth.migration.check",
                    "record": {"$type": "app.berth.migration.check", "at": chrono::Utc::now().to_rfc3339()}}),
        )
        .await
        .context("a test write on the new host")?;
    let rkey = probe["uri"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    new.procedure(
        "com.atproto.repo.deleteRecord",
        &json!({"repo": did, "collection": "app.berth.migration.check", "rkey": rkey}),
    )
    .await
    .context("removing the test record")?;
    run.report.records = status["indexedRecords"].as_u64().unwrap_or(0);
    run.done(
        "verify",
        format!(
            "new host active, {} records, {}/{} blobs; old host deactivated; test write ok",
            status["indexedRecords"], status["importedBlobs"], status["expectedBlobs"]
        ),
    )?;
    run.report.seconds = started.elapsed().as_secs_f64();
    Ok(run.report)
}

fn str_field(v: &Value, k: &str) -> anyhow::Result<String> {
    v[k].as_str()
        .map(String::from)
        .ok_or_else(|| anyhow!("response has no {k:?}: {v}"))
}

/// The PDS endpoint a DID's document names now (PLC for did:plc, `/.well-known/did.json` for
/// did:web).
async fn pds_endpoint(plc_url: &str, did: &str) -> anyhow::Result<String> {
    let url = if let Some(host) = did.strip_prefix("did:web:") {
        format!("https://{}/.well-known/did.json", host.replace("%3A", ":"))
    } else {
        format!("{}/{did}", plc_url.trim_end_matches('/'))
    };
    let doc: Value = reqwest::get(&url)
        .await
        .with_context(|| format!("resolving {did} at {url}"))?
        .json()
        .await
        .with_context(|| format!("resolving {did} at {url}"))?;
    doc["service"]
        .as_array()
        .and_then(|services| {
            services.iter().find(|s| {
                s["id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with("#atproto_pds"))
            })
        })
        .and_then(|s| s["serviceEndpoint"].as_str())
        .map(String::from)
        .ok_or_else(|| anyhow!("the DID document of {did} names no PDS"))
}

/// Same origin, ignoring a trailing slash and `localhost` vs `127.0.0.1`.
fn same_host(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_end_matches('/')
            .replace("://127.0.0.1", "://localhost")
    };
    norm(a) == norm(b)
}

fn prompt(question: &str) -> anyhow::Result<String> {
    use std::io::Write;
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let line = line.trim().to_string();
    if line.is_empty() {
        bail!("no token entered");
    }
    Ok(line)
}

/// A short line for a failed run: the remote error when there is one.
pub fn explain(e: &anyhow::Error) -> String {
    match remote_error(e) {
        Some(r) => format!("{e:#} ({} {})", r.error, r.message),
        None => format!("{e:#}"),
    }
}
