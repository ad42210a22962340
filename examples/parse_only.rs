//! The yardstick for `trdscreen batch --ndjson`: every line of every `*.ndjson` file in a directory
//! parsed as JSON (into `serde_json::Value`), nothing else, on every core. Batch throughput is
//! judged against this pass over the same files in the same run (docs/performance.md).
//!
//! ```sh
//! cargo run --release --example parse_only -- DIR
//! ```
//!
//! Prints lines, bytes, seconds, MB/s and lines/s.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::Instant;

// The trdscreen binary's allocator, so that the yardstick is not slowed by one the job does not use.
#[global_allocator]
static ALLOCATOR: trdscreen::allocator::Allocator = trdscreen::allocator::Allocator;

/// Blocks of whole lines handed to the workers.
const BLOCK: usize = 4 * 1024 * 1024;

fn main() {
    trdscreen::allocator::return_freed_memory_promptly();
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: parse_only DIR");
        std::process::exit(2);
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("a readable directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(workers * 2);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let (mut lines, mut bad) = (0u64, 0u64);
                loop {
                    let block = match rx.lock().map(|r| r.recv()) {
                        Ok(Ok(block)) => block,
                        _ => break,
                    };
                    for line in block.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        lines += 1;
                        if serde_json::from_slice::<serde_json::Value>(line).is_err() {
                            bad += 1;
                        }
                    }
                }
                (lines, bad)
            })
        })
        .collect();
    let mut bytes = 0u64;
    for file in &files {
        let mut reader = BufReader::with_capacity(BLOCK, std::fs::File::open(file).expect("open"));
        loop {
            let mut block = Vec::with_capacity(BLOCK + 64 * 1024);
            let n = (&mut reader)
                .take(BLOCK as u64)
                .read_to_end(&mut block)
                .expect("read");
            if n == 0 {
                break;
            }
            // Finish the last line so blocks hold whole lines.
            reader.read_until(b'\n', &mut block).expect("read");
            bytes += block.len() as u64;
            tx.send(block).expect("workers alive");
        }
    }
    drop(tx);
    let (mut lines, mut bad) = (0, 0);
    for h in handles {
        let (l, b) = h.join().expect("worker");
        lines += l;
        bad += b;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "parse-only: {lines} lines ({bad} not JSON), {:.1} MB in {secs:.2} s on {workers} threads: {:.1} MB/s, {:.0} lines/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        lines as f64 / secs
    );
}
