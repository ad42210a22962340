use clap::Parser;

fn main() -> std::process::ExitCode {
    // Logging, metrics and traces are set up by each command (trdscreen::telemetry).
    trdscreen::cli::run(trdscreen::cli::Cli::parse())
}
