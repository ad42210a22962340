use clap::Parser;

#[global_allocator]
static ALLOCATOR: trdscreen::allocator::Allocator = trdscreen::allocator::Allocator;

fn main() -> std::process::ExitCode {
    trdscreen::allocator::return_freed_memory_promptly();
    // Logging, metrics and traces are set up by each command (trdscreen::telemetry).
    trdscreen::cli::run(trdscreen::cli::Cli::parse())
}
