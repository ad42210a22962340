#[global_allocator]
static ALLOCATOR: trdscreen::allocator::Allocator = trdscreen::allocator::Allocator;

fn main() -> std::process::ExitCode {
    // Logging, metrics and traces are set up by each command (trdscreen::telemetry).
    match trdscreen::cli::parse() {
        Ok(cli) => trdscreen::cli::run(cli),
        Err(code) => code,
    }
}
