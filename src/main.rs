use clap::Parser;

fn main() -> std::process::ExitCode {
    trdscreen::cli::run(trdscreen::cli::Cli::parse())
}
