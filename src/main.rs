use clap::Parser;

fn main() -> std::process::ExitCode {
    // Logs go to stderr; RUST_LOG chooses the level (default: info). They never carry clinical data.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    trdscreen::cli::run(trdscreen::cli::Cli::parse())
}
