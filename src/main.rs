use clap::Parser;

// glibc's malloc spent about a third of EvaluateBundle's CPU (perf, docs/performance.md); the
// service allocates and frees a parsed Bundle per call, from every worker thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Logging, metrics and traces are set up by each command (trdscreen::telemetry).
    trdscreen::cli::run(trdscreen::cli::Cli::parse())
}
