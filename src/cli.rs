//! The command line: thin. It parses arguments, reads the file, reads the clock when no `--as-of` is
//! given, calls the pure core and prints.

use crate::date::Date;
use crate::error::Error;
use crate::fhir::read_patient_bundle;
use crate::grpc;
use crate::knowledge::Knowledge;
use crate::service::{Screener, WriteBackRequest, today};
use crate::settings::Settings;
use crate::{render, screening};
use clap::{Parser, Subcommand};
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
        #[arg(long)]
        json: bool,
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

fn parse_write_back(text: &str) -> Result<WriteBackRequest, String> {
    match text {
        "none" => Ok(WriteBackRequest::None),
        "flag" => Ok(WriteBackRequest::Flag),
        "flag-and-care-plan" => Ok(WriteBackRequest::FlagAndCarePlan),
        _ => Err("expected none, flag or flag-and-care-plan".into()),
    }
}

fn parse_day(text: &str) -> Result<Date, String> {
    if text.len() != 10 {
        return Err("expected a day as YYYY-MM-DD".into());
    }
    Date::parse(text).map_err(|_| "expected a valid day as YYYY-MM-DD".into())
}

/// Exit codes: 0 success, 1 a problem with the environment (unreadable file or knowledge), 2 input
/// that is not a usable Bundle.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
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
        Command::Evaluate {
            file,
            as_of,
            json,
            knowledge,
        } => {
            let knowledge = match knowledge.map_or_else(
                || Ok(Knowledge::embedded()),
                |dir| Knowledge::load_with_overrides(&dir),
            ) {
                Ok(k) => k,
                Err(e) => return fail(1, &e.to_string()),
            };
            let text = match read_input(&file) {
                Ok(text) => text,
                Err(e) => return fail(1, &format!("cannot read {}: {e}", file.display())),
            };
            let record = match read_patient_bundle(&text) {
                Ok(record) => record,
                Err(e) => return fail(2, &format!("{}: {e}", file.display())),
            };
            let as_of = as_of.unwrap_or_else(today);
            let assessment = screening::evaluate(&record, as_of, &knowledge);
            if json {
                match serde_json::to_string_pretty(&assessment) {
                    Ok(out) => println!("{out}"),
                    Err(e) => return fail(1, &format!("cannot write the assessment: {e}")),
                }
            } else {
                print!(
                    "{}",
                    render::summary(&assessment, std::io::stdout().is_terminal())
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// Settings, secrets and the screener, or the exit code and message of what is wrong.
fn start(config: Option<&Path>) -> Result<(Settings, Screener), ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::load(config, &env).map_err(|e| fail(1, &e.to_string()))?;
    let secrets = settings
        .secrets(&env)
        .map_err(|e| fail(1, &e.to_string()))?;
    let screener = Screener::new(&settings, &secrets).map_err(|e| fail(1, &e.to_string()))?;
    Ok((settings, screener))
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(1, &format!("cannot start the async runtime: {e}")))
}

fn serve(config: Option<&Path>) -> ExitCode {
    let (settings, screener) = match start(config) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let bound = match grpc::server::bind(&settings, Arc::new(screener)).await {
            Ok(bound) => bound,
            Err(e) => {
                return fail(
                    1,
                    &format!("cannot listen on {}: {e}", settings.grpc.listen),
                );
            }
        };
        tracing::info!(address = %bound.address, "serving trdscreen.v1.TrdScreening");
        match bound.serve(grpc::server::termination_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &format!("the gRPC server stopped: {e}")),
        }
    })
}

fn health(address: &grpc::health_probe::Address, service: &str, timeout: Duration) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(grpc::health_probe::check(address, service, timeout)) {
        Ok(ServingStatus::Serving) => {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(status) => fail(1, &format!("{address} answers {}", status.as_str_name())),
        Err(e) => fail(1, &e.to_string()),
    }
}

fn screen(
    config: Option<&Path>,
    patient: &str,
    as_of: Option<Date>,
    write_back: WriteBackRequest,
    json: bool,
) -> ExitCode {
    let (_, screener) = match start(config) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let as_of = as_of.unwrap_or_else(today);
    let screened = match rt.block_on(screener.screen_patient(patient, as_of, write_back)) {
        Ok(s) => s,
        Err(e @ Error::InvalidArgument(_)) => return fail(2, &e.to_string()),
        Err(e) => return fail(1, &e.to_string()),
    };
    if json {
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
            Ok(text) => println!("{text}"),
            Err(e) => return fail(1, &format!("cannot write the assessment: {e}")),
        }
    } else {
        print!(
            "{}",
            render::summary(&screened.assessment, std::io::stdout().is_terminal())
        );
        match &screened.write_back {
            Some(Ok(o)) => println!(
                "Write-back: {} {} ({})",
                o.flag_reference.as_deref().unwrap_or("no Flag"),
                o.care_plan_reference.as_deref().unwrap_or(""),
                if o.changed {
                    "updated"
                } else {
                    "already up to date"
                }
            ),
            Some(Err(e)) => println!("Write-back failed: {e}"),
            None => {}
        }
    }
    match screened.write_back {
        Some(Err(_)) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

fn read_input(file: &PathBuf) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("trdscreen: {message}");
    ExitCode::from(code)
}
