//! The command line: thin. It parses arguments, reads the file, reads the clock when no `--as-of` is
//! given, calls the pure core and prints.
//!
//! Every error is one line on standard error (`trdscreen: ...`), argument errors included, and
//! every output write is checked ([`crate::output`]): a failed write exits 1 with a message, a
//! closed pipe ends the output quietly with the exit code the command had anyway.

use crate::audit::Requester;
use crate::audit::trail::Screening;
use crate::date::Date;
use crate::error::{Error, ErrorKind as FailureKind};
use crate::fhir::read_patient_bundle;
use crate::grpc;
use crate::knowledge::Knowledge;
use crate::output::{self, OutputError};
use crate::service::{Screener, WriteBackRequest, today};
use crate::settings::{LogFormat, Secrets, Settings};
use crate::telemetry;
use crate::{render, screening};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;

#[derive(Parser, Debug)]
#[command(
    name = "trdscreen",
    version,
    about = "Screens FHIR R4 records for treatment-resistant depression"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Evaluates one patient's FHIR Bundle (collection, searchset or transaction) from a file.
    Evaluate {
        /// The Bundle JSON file ("-" for standard input).
        file: PathBuf,
        /// The day to evaluate as of (YYYY-MM-DD); default today (UTC).
        #[arg(long, value_parser = parse_day)]
        as_of: Option<Date>,
        /// Print the assessment as JSON (the gRPC Assessment's field names).
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Write the clinician view (one HTML page) instead: to standard output, or to OUT.
        #[arg(long, value_name = "OUT", num_args = 0..=1, default_missing_value = "-")]
        html: Option<PathBuf>,
        /// A directory whose drugs.toml, codes.toml, policy.toml or hints.toml replace the built-in ones.
        #[arg(long)]
        knowledge: Option<PathBuf>,
    },
    /// Runs the gRPC service (trdscreen.v1.TrdScreening, health, reflection) until SIGTERM/SIGINT.
    Serve {
        /// Settings file (TOML); TRDSCREEN_... environment variables override it.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// The nightly population job: screens everyone from NDJSON files, a FHIR Group or a FHIR search.
    ///
    /// Exit codes: 0 every patient screened (and written back when asked); 3 some patients failed
    /// (the report says which and why); 1 the job failed or was stopped, or every write-back it
    /// tried failed (resume it with the same --checkpoint); 2 bad arguments or settings.
    Batch(BatchArgs),
    /// The export step of the nightly job: one Bulk Data export of the configured FHIR server into a
    /// directory that every shard then reads with `batch --ndjson DIR`.
    ///
    /// Writes the NDJSON files and, last and atomically, DIR/manifest.json (the mark of a finished
    /// export, with its transactionTime). An earlier export in DIR is replaced (its manifest is
    /// removed first). With --since, only changed patients are found, and their whole records are
    /// exported where the server can. Exit codes: 0 done; 1 the export failed; 2 bad arguments.
    Export(ExportArgs),
    /// Screens one patient read from the configured FHIR server, as ScreenPatient does.
    Screen {
        /// The FHIR id of the Patient.
        #[arg(long)]
        patient: String,
        #[arg(long, value_parser = parse_day)]
        as_of: Option<Date>,
        /// What to write back: none, flag, flag-and-care-plan; default: the configured default.
        #[arg(long, value_parser = parse_write_back)]
        write_back: Option<WriteBackRequest>,
        #[arg(long)]
        json: bool,
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Writes a deterministic synthetic population as Bulk Data NDJSON (one file per resource type).
    Synth {
        /// How many patients.
        #[arg(long)]
        patients: u64,
        /// The random seed: the same seed, count and day give byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The directory to write Patient.ndjson, Condition.ndjson, ... into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The day every date is relative to (a fixed default, so results do not drift).
        #[arg(long, value_parser = parse_day, default_value = crate::synth::DEFAULT_AS_OF)]
        as_of: Date,
        /// Labs and vitals per patient that screening does not read, as a hospital's export holds
        /// (to measure what a _typeFilter saves); default none.
        #[arg(long, default_value_t = 0)]
        unrelated_observations: u32,
    },
    /// Asks a running server's grpc.health.v1 Check (plain TCP): exit 0 when SERVING, 1 otherwise.
    Health {
        /// The server's gRPC address, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50051")]
        address: grpc::health_probe::Address,
        /// The service to ask about; default: the server as a whole.
        #[arg(long, default_value = "")]
        service: String,
        /// Seconds to wait for the answer, connecting included.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout_secs: u64,
    },
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["ndjson", "group", "search", "bulk"])))]
pub struct BatchArgs {
    /// A directory of Bulk-style NDJSON files (any split, any order); no FHIR server is read.
    #[arg(long)]
    ndjson: Option<PathBuf>,
    /// The id of a FHIR Group whose members are screened one by one from the FHIR server.
    #[arg(long)]
    group: Option<String>,
    /// A FHIR Patient search (`name=value&...`) whose Patients are screened one by one.
    #[arg(long)]
    search: Option<String>,
    /// A Bulk Data $export from the configured FHIR server, read as NDJSON: `system` (the default),
    /// `patient`, or `group/ID`.
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, default_missing_value = "system")]
    bulk: Option<String>,
    /// The resource types to export (_type), comma-separated; default: those screening reads.
    #[arg(long = "type", value_delimiter = ',', requires = "bulk")]
    types: Vec<String>,
    /// Only patients whose data changed since this instant (_since), e.g. 2026-11-20T00:00:00Z;
    /// each is screened on their whole record.
    #[arg(long, requires = "bulk")]
    since: Option<String>,
    /// Export every Observation rather than only the codes screening reads (no _typeFilter).
    #[arg(long, requires = "bulk")]
    no_type_filter: bool,
    /// With --ndjson: refuse a directory without a finished export (manifest.json) or whose
    /// transactionTime is older than this many seconds.
    #[arg(long, requires = "ndjson")]
    export_max_age_secs: Option<u64>,
    /// With --export-max-age-secs: wait this long for a finished, recent export before giving up.
    #[arg(long, requires = "export_max_age_secs", default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(..=crate::settings::values::LONGEST.as_secs()))]
    export_wait_secs: u64,
    /// The day to evaluate as of (YYYY-MM-DD); default today (UTC).
    #[arg(long, value_parser = parse_day)]
    as_of: Option<Date>,
    /// none, flag or flag-and-careplan; default: the configured default.
    #[arg(long, value_parser = parse_write_back)]
    write_back: Option<WriteBackRequest>,
    /// This pod's part of the population, I/N (e.g. an Indexed Job's $JOB_COMPLETION_INDEX/N).
    #[arg(long, default_value = "0/1")]
    shard: crate::batch::shard::Shard,
    /// A journal of finished patients: a job stopped half way resumes from it.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Where to write the JSON summary; the per-patient CSV goes beside it (.csv).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Scratch space for the NDJSON reader (about the input's size); default the system's temp.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The directory to export into (created owner-only; an earlier export there is replaced).
    #[arg(long)]
    out: PathBuf,
    /// system (the default), patient, or group/ID.
    #[arg(long, default_value = "system")]
    level: String,
    /// The resource types to export (_type), comma-separated; default: those screening reads.
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Only patients whose data changed since this instant (_since); their whole records follow.
    #[arg(long)]
    since: Option<String>,
    /// Export every Observation rather than only the codes screening reads (no _typeFilter).
    #[arg(long)]
    no_type_filter: bool,
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

fn parse_write_back(text: &str) -> Result<WriteBackRequest, String> {
    match text {
        "none" => Ok(WriteBackRequest::None),
        "flag" => Ok(WriteBackRequest::Flag),
        "flag-and-careplan" | "flag-and-care-plan" => Ok(WriteBackRequest::FlagAndCarePlan),
        _ => Err("expected none, flag or flag-and-careplan".into()),
    }
}

fn parse_day(text: &str) -> Result<Date, String> {
    if text.len() != 10 {
        return Err("expected a day as YYYY-MM-DD".into());
    }
    Date::parse(text).map_err(|_| "expected a valid day as YYYY-MM-DD".into())
}

/// The command line, or the exit code when there is nothing to run: `--help` and `--version`
/// printed (0), or an argument error told in one line (2).
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let text = if std::io::stdout().is_terminal() {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            printed(&text, Exit::Success.code())
        }
        _ => fail(Exit::Refused, &one_line(&e)),
    })
}

/// A clap error in one line: its first paragraph ("unexpected argument '--x' found", "the
/// following required arguments were not provided: --patient <PATIENT>"), without the usage.
fn one_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let command = Cli::command();
        let names: Vec<&str> = command
            .get_subcommands()
            .map(clap::Command::get_name)
            .collect();
        return format!("name a command: {} (try --help)", names.join(", "));
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    format!("{} (try --help)", first.join(" "))
}

/// Exit codes: 0 success, 1 a problem with the environment (unreadable file or knowledge, output
/// that cannot be written), 2 input that is not a usable Bundle, or bad arguments.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Batch(args) => batch(args),
        Command::Export(args) => export(args),
        Command::Health {
            address,
            service,
            timeout_secs,
        } => health(&address, &service, Duration::from_secs(timeout_secs)),
        Command::Screen {
            patient,
            as_of,
            write_back,
            json,
            config,
        } => screen(
            config.as_deref(),
            &patient,
            as_of,
            write_back.unwrap_or(WriteBackRequest::Default),
            json,
        ),
        Command::Synth {
            patients,
            seed,
            out,
            as_of,
            unrelated_observations,
        } => synth(
            crate::synth::SynthOptions {
                patients,
                seed,
                as_of,
                unrelated_observations,
            },
            &out,
        ),
        Command::Evaluate {
            file,
            as_of,
            json,
            html,
            knowledge,
        } => {
            let _ = telemetry::init_logging(LogFormat::Text);
            let knowledge = match knowledge.map_or_else(
                || Ok(Knowledge::embedded()),
                |dir| crate::knowledge::load_with_overrides(&dir),
            ) {
                Ok(k) => k,
                Err(e) => return fail(Exit::Failed, &e.to_string()),
            };
            let bytes = match read_input(&file) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    return fail(
                        Exit::Refused,
                        &format!(
                            "{}: not read: larger than {} MiB, the most a Bundle may be",
                            file.display(),
                            MAX_BUNDLE_FILE_BYTES >> 20
                        ),
                    );
                }
                Err(e) => {
                    return fail(
                        Exit::Failed,
                        &format!("cannot read {}: {e}", file.display()),
                    );
                }
            };
            // Input that is not text is input that is not a Bundle.
            let text = match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    return fail(
                        Exit::Refused,
                        &format!(
                            "{}: not a FHIR Bundle: not UTF-8 text (byte {})",
                            file.display(),
                            e.utf8_error().valid_up_to() + 1
                        ),
                    );
                }
            };
            let record = match read_patient_bundle(&text) {
                Ok(record) => record,
                Err(e) => return fail(Exit::Refused, &format!("{}: {e}", file.display())),
            };
            if let Err(e) = record.check_size(knowledge.policy.record.max_resources) {
                return fail(Exit::Refused, &format!("{}: {e}", file.display()));
            }
            let as_of = as_of.unwrap_or_else(today);
            let assessment = screening::evaluate(&record, as_of, &knowledge);
            if let Some(out) = html {
                return match crate::view::page(&record, &assessment, &knowledge) {
                    Ok(page) => written(&page, &out),
                    Err(e) => fail(Exit::Failed, &e.to_string()),
                };
            }
            let out = if json {
                match serde_json::to_string_pretty(&assessment) {
                    Ok(out) => out + "\n",
                    Err(_) => return fail(Exit::Failed, "cannot encode the assessment as JSON"),
                }
            } else {
                render::summary(&assessment, std::io::stdout().is_terminal())
            };
            printed(&out, Exit::Success.code())
        }
    }
}

/// Settings and the screener, or the exit code and message of what is wrong.
fn start(config: Option<&Path>) -> Result<(Settings, Screener), ExitCode> {
    start_with_secrets(config).map(|(settings, _, screener)| (settings, screener))
}

/// Settings, secrets and the screener, or the exit code and message of what is wrong.
fn start_with_secrets(config: Option<&Path>) -> Result<(Settings, Secrets, Screener), ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::load(config, &env).map_err(|e| fail(Exit::Refused, &e.to_string()))?;
    let secrets = settings
        .secrets(&env)
        .map_err(|e| fail(Exit::Refused, &e.to_string()))?;
    let screener =
        Screener::new(&settings, &secrets).map_err(|e| fail(Exit::of_start(&e), &e.to_string()))?;
    Ok((settings, secrets, screener))
}

/// Metrics, traces and logs as `[telemetry]` says, with the build info of the knowledge in use;
/// for `serve` and the nightly job. Call it inside the Tokio runtime; keep the guard to the end.
/// `alongside`: routes served beside `/metrics` (no patient data).
pub fn start_telemetry(
    settings: &Settings,
    knowledge: &Knowledge,
    alongside: axum::Router,
) -> Result<telemetry::TelemetryGuard, ExitCode> {
    let guard = telemetry::init(&settings.telemetry, alongside)
        .map_err(|e| fail(Exit::Failed, &e.to_string()))?;
    telemetry::record_build_info(&knowledge.ruleset_version);
    Ok(guard)
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            fail(
                Exit::Failed,
                &format!("cannot start the async runtime: {e}"),
            )
        })
}

fn serve(config: Option<&Path>) -> ExitCode {
    let (settings, secrets, screener) = match start_with_secrets(config) {
        Ok(started) => started,
        Err(code) => return code,
    };
    // The SMART client's public keys, for the EHR to fetch from the metrics port.
    let jwks = match crate::auth::jwks::smart_client_jwks(&settings.fhir.auth, &secrets) {
        Ok(jwks) => jwks,
        Err(e) => return fail(Exit::of_start(&e), &e.to_string()),
    };
    drop(secrets);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let publishes_keys = jwks.is_some();
        let alongside = jwks.map(crate::auth::jwks_router).unwrap_or_default();
        let telemetry_guard = match start_telemetry(&settings, screener.knowledge(), alongside) {
            Ok(guard) => guard,
            Err(code) => return code,
        };
        match (publishes_keys, telemetry_guard.metrics_address()) {
            (true, Some(address)) => tracing::info!(
                %address,
                path = crate::auth::JWKS_PATH,
                "publishing the SMART client's public keys"
            ),
            (true, None) => tracing::warn!(
                "telemetry.metrics_listen is empty: the SMART client's public keys (JWKS) are not published"
            ),
            (false, _) => {}
        }
        let bound = match grpc::server::bind(&settings, Arc::new(screener)).await {
            Ok(bound) => bound,
            Err(e) => {
                return fail(
                    Exit::Failed,
                    &format!("cannot listen on {}: {e}", settings.grpc.listen),
                );
            }
        };
        tracing::info!(address = %bound.address, "serving trdscreen.v1.TrdScreening");
        match bound.serve(crate::signal::termination()).await {
            Ok(()) => Exit::Success.code(),
            Err(e) => fail(Exit::Failed, &format!("the gRPC server stopped: {e}")),
        }
    })
}

fn health(address: &grpc::health_probe::Address, service: &str, timeout: Duration) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                Exit::Failed,
                &format!("cannot start the async runtime: {e}"),
            );
        }
    };
    match rt.block_on(grpc::health_probe::check(address, service, timeout)) {
        Ok(ServingStatus::Serving) => printed("SERVING\n", Exit::Success.code()),
        Ok(status) => fail(
            Exit::Failed,
            &format!("{address} answers {}", status.as_str_name()),
        ),
        Err(e) => fail(Exit::Failed, &e.to_string()),
    }
}

fn screen(
    config: Option<&Path>,
    patient: &str,
    as_of: Option<Date>,
    write_back: WriteBackRequest,
    json: bool,
) -> ExitCode {
    let (settings, screener) = match start(config) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let _ = telemetry::init_logging(settings.telemetry.log_format);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let as_of = as_of.unwrap_or_else(today);
    let audit = screener.audit();
    if let Err(e) = audit.admits() {
        return fail(Exit::of_error(&e), &e.to_string());
    }
    let mut written = Vec::new();
    let screened = rt.block_on(screener.screen_patient(patient, as_of, write_back, &mut written));
    let who = Requester::this_service("screen", None);
    let audited = audit.patient_screened(&who, patient, Screening::of(&screened, &written));
    rt.block_on(audit.finish());
    let screened = match (screened, audited) {
        (Ok(s), Ok(())) => s,
        (Err(e), _) | (_, Err(e)) => return fail(Exit::of_error(&e), &e.to_string()),
    };
    let code = match screened.write_back {
        Some(Err(_)) => Exit::Failed.code(),
        _ => Exit::Success.code(),
    };
    let out = if json {
        let write_back = screened.write_back.as_ref().map(|r| match r {
            Ok(o) => serde_json::json!({
                "flag_reference": o.flag_reference,
                "care_plan_reference": o.care_plan_reference,
                "changed": o.changed,
            }),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        });
        let out = serde_json::json!({"assessment": screened.assessment, "write_back": write_back});
        match serde_json::to_string_pretty(&out) {
            Ok(text) => text + "\n",
            Err(_) => return fail(Exit::Failed, "cannot encode the assessment as JSON"),
        }
    } else {
        let mut text = render::summary(&screened.assessment, std::io::stdout().is_terminal());
        match &screened.write_back {
            Some(Ok(o)) => text.push_str(&format!(
                "Write-back: {} {} ({})\n",
                o.flag_reference.as_deref().unwrap_or("no Flag"),
                o.care_plan_reference.as_deref().unwrap_or(""),
                if o.changed {
                    "updated"
                } else {
                    "already up to date"
                }
            )),
            Some(Err(e)) => text.push_str(&format!("Write-back failed: {e}\n")),
            None => {}
        }
        text
    };
    printed(&out, code)
}

fn batch(args: BatchArgs) -> ExitCode {
    crate::allocator::return_freed_memory_promptly();
    use crate::batch::{Ending, Job, Source};
    let (settings, screener) = match start(args.config.as_deref()) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let source = match (args.ndjson, args.group, args.search, args.bulk) {
        (Some(dir), ..) => Source::Ndjson(dir),
        (_, Some(group), ..) => Source::Group(group),
        (_, _, Some(query), _) => Source::Search(query),
        (.., Some(level)) => match bulk_request(
            &screener,
            &level,
            &args.types,
            args.since.as_deref(),
            !args.no_type_filter,
        ) {
            Ok(request) => Source::Bulk(request),
            Err(e) => return fail(Exit::Refused, &e.to_string()),
        },
        _ => {
            return fail(
                Exit::Refused,
                "name a source: --ndjson DIR, --group ID or --search QUERY",
            );
        }
    };
    let job = Job {
        source,
        as_of: args.as_of.unwrap_or_else(today),
        write_back: args.write_back.unwrap_or(WriteBackRequest::Default),
        shard: args.shard,
        checkpoint: args.checkpoint,
        report: args.report,
        work_dir: args.work_dir,
        terminal: std::io::stderr().is_terminal(),
        export_gate: args
            .export_max_age_secs
            .map(|max_age| crate::batch::ExportGate {
                max_age: Duration::from_secs(max_age),
                wait: Duration::from_secs(args.export_wait_secs),
            }),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let _in_runtime = rt.enter();
    // A job's pod is gone before a scrape: its metrics leave by OTLP only, and no /metrics port
    // is opened (so jobs never compete for it with each other or with the service).
    let mut job_settings = settings.clone();
    job_settings.telemetry.metrics_listen = None;
    let _telemetry = match start_telemetry(&job_settings, screener.knowledge(), axum::Router::new())
    {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let ran = crate::batch::run(Arc::new(screener), &settings.batch, &job, &rt);
    telemetry::batch::run_finished(match &ran {
        Ok((_, Ending::Success)) => telemetry::batch::RunOutcome::Success,
        Ok((_, Ending::Partial)) => telemetry::batch::RunOutcome::Partial,
        _ => telemetry::batch::RunOutcome::Failure,
    });
    match ran {
        Ok((report, ending)) => {
            let code = match ending {
                Ending::Success => Exit::Success.code(),
                Ending::Partial => Exit::Partial.code(),
                Ending::Failure => Exit::Failed.code(),
            };
            printed(&render::batch_summary(&report), code)
        }
        Err(e) => fail(Exit::of_job(&e), &e.to_string()),
    }
}

/// `trdscreen export`: the export step alone.
fn export(args: ExportArgs) -> ExitCode {
    let (settings, screener) = match start(args.config.as_deref()) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let _ = telemetry::init_logging(settings.telemetry.log_format);
    if !screener.has_fhir_server() {
        return fail(
            Exit::Refused,
            "the export needs a FHIR server (fhir.base_url)",
        );
    }
    let request = match bulk_request(
        &screener,
        &args.level,
        &args.types,
        args.since.as_deref(),
        !args.no_type_filter,
    ) {
        Ok(request) => request,
        Err(e) => return fail(Exit::Refused, &e.to_string()),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let progress = crate::batch::progress::Progress::new(std::io::stderr().is_terminal());
    let exported = std::thread::scope(|scope| {
        let reporter = scope.spawn(|| progress.report_until_stopped());
        let exported = crate::batch::export::run(&screener, &request, &args.out, &progress, &rt);
        progress.stop();
        let _ = reporter.join();
        exported
    });
    match exported {
        Ok(summary) => printed(
            &render::export_summary(&summary, &args.out),
            Exit::Success.code(),
        ),
        Err(e) => fail(Exit::of_job(&e), &e.to_string()),
    }
}

/// The export a `--bulk LEVEL [--type ..] [--since ..]` asks for: with a `_typeFilter` on the
/// Observation codes screening reads unless `filtered` is false or Observations are not asked for.
fn bulk_request(
    screener: &Screener,
    level: &str,
    types: &[String],
    since: Option<&str>,
    filtered: bool,
) -> Result<crate::fhir::bulk::ExportRequest, Error> {
    use crate::fhir::bulk::{ExportLevel, ExportRequest, GroupId};
    let level = match level {
        "system" => ExportLevel::System,
        "patient" => ExportLevel::Patient,
        other => match other.strip_prefix("group/").map(GroupId::parse) {
            Some(Ok(id)) => ExportLevel::Group(id),
            _ => {
                return Err(Error::InvalidArgument(
                    "the export level is system, patient or group/ID (a FHIR id)".into(),
                ));
            }
        },
    };
    let types: Vec<&str> = if types.is_empty() {
        // The population and every type screening reads, Medications included.
        std::iter::once("Patient")
            .chain(crate::fhir::resources::Typed::NAMES)
            .collect()
    } else {
        types.iter().map(String::as_str).collect()
    };
    let request = ExportRequest::parse(level, &types, since)?;
    Ok(if filtered && types.contains(&"Observation") {
        request.with_type_filter(crate::batch::export::type_filter(screener))
    } else {
        request
    })
}

fn synth(options: crate::synth::SynthOptions, out: &Path) -> ExitCode {
    let patients = options.patients;
    let started = std::time::Instant::now();
    let summary = match crate::synth::write_population(&options, out) {
        Ok(summary) => summary,
        Err(e) => return fail(Exit::Failed, &format!("cannot write the population: {e}")),
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut report = format!(
        "wrote {patients} patients ({:.1} MB) to {} in {seconds:.1} s\n",
        summary.bytes as f64 / 1e6,
        out.display()
    );
    for (file, lines) in &summary.lines {
        report.push_str(&format!("  {file}: {lines} lines\n"));
    }
    report.push_str(&format!(
        "  deliberately bad: {} malformed lines, {} resources of a foreign type, {} of patients not exported\n",
        summary.malformed_lines, summary.foreign_type_lines, summary.orphan_resources
    ));
    printed(&report, Exit::Success.code())
}

/// The largest Bundle `evaluate` reads: past the record's resource limit (100,000) at a few
/// kilobytes a resource, so no Bundle the engine would judge is refused for its size.
const MAX_BUNDLE_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// A file's (or standard input's) bytes, at most [`MAX_BUNDLE_FILE_BYTES`]: a larger input is
/// refused before it is all in memory (`None`).
fn read_input(file: &PathBuf) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let source: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file)?)
    };
    let mut bytes = Vec::new();
    source
        .take(MAX_BUNDLE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= MAX_BUNDLE_FILE_BYTES).then_some(bytes))
}

/// Prints `text` on standard output: `code` when it was written or its reader went away (`|
/// head`), 1 with a message when the write failed (a full disk).
fn printed(text: &str, code: ExitCode) -> ExitCode {
    match output::stdout(text) {
        Ok(()) | Err(OutputError::Closed) => code,
        Err(OutputError::Failed(kind)) => {
            fail(Exit::Failed, &format!("cannot write the output: {kind}"))
        }
    }
}

/// Writes `text` to the file `out` (created or replaced), or prints it when `out` is "-".
fn written(text: &str, out: &Path) -> ExitCode {
    if out.as_os_str() == "-" {
        return printed(text, Exit::Success.code());
    }
    match output::write_private(out, text.as_bytes()) {
        Ok(()) => Exit::Success.code(),
        Err(e) => fail(
            Exit::Failed,
            &format!("cannot write {}: {}", out.display(), e.kind()),
        ),
    }
}

fn fail(exit: Exit, message: &str) -> ExitCode {
    output::stderr_line(&format!("trdscreen: {message}"));
    exit.code()
}

/// The exit codes of every command, decided here alone (README; docs/decisions.md "Exit codes"):
/// a CronJob's pod failure policy retries 1 and never 2 or 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// 0: done.
    Success,
    /// 1: the environment failed (the FHIR server, the disk, the runtime, a stop signal): a retry
    /// may succeed.
    Failed,
    /// 2: what was given is wrong (arguments, input, settings, a checkpoint of another job, an
    /// export that is not whole): no retry can mend it.
    Refused,
    /// 3: the nightly job ran, and some patients failed.
    Partial,
}

impl Exit {
    fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Refused => 2,
            Exit::Partial => 3,
        })
    }

    /// An error that ends a command's work: the person's input (a bad id, a bad Bundle) is
    /// refused, everything else is the environment.
    fn of_error(e: &Error) -> Exit {
        match e.kind() {
            FailureKind::InvalidArgument => Exit::Refused,
            _ => Exit::Failed,
        }
    }

    /// An error starting the service from its settings: what they name (a knowledge directory, a
    /// base URL) is refused as the settings are.
    fn of_start(e: &Error) -> Exit {
        match e.kind() {
            FailureKind::InvalidArgument | FailureKind::NotConfigured => Exit::Refused,
            _ => Exit::Failed,
        }
    }

    /// The nightly job's and the export's errors.
    fn of_job(e: &crate::batch::JobError) -> Exit {
        use crate::batch::JobError;
        use crate::fhir::bulk::local::LocalError;
        match e {
            JobError::Service(e) => Exit::of_start(e),
            JobError::Checkpoint(_)
            | JobError::Export(LocalError::NotWhole { .. } | LocalError::BadManifest { .. }) => {
                Exit::Refused
            }
            _ => Exit::Failed,
        }
    }
}
