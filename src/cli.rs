//! The command line: thin. It parses arguments, reads the file, reads the clock when no `--as-of` is
//! given, calls the pure core and prints.

use crate::date::Date;
use crate::fhir::read_patient_bundle;
use crate::knowledge::Knowledge;
use crate::{render, screening};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

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

fn read_input(file: &PathBuf) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
}

fn today() -> Date {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Date::from_days_since_epoch((seconds / 86_400) as i32)
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("trdscreen: {message}");
    ExitCode::from(code)
}
