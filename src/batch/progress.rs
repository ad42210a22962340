//! Progress for people and for logs: on a terminal, one line redrawn with the rate and the time
//! left; otherwise a log line now and then. Counting is lock-free so workers never wait for it.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<(&'static str, Instant)>,
    terminal: bool,
    stop: AtomicBool,
    finished: Mutex<Vec<(&'static str, f64)>>,
}

impl Progress {
    pub fn new(terminal: bool) -> Progress {
        Progress {
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            phase: Mutex::new(("starting", Instant::now())),
            terminal,
            stop: AtomicBool::new(false),
            finished: Mutex::new(Vec::new()),
        }
    }

    /// A phase ("reading" bytes, "screening" patients) with its total when known.
    pub fn start_phase(&self, name: &'static str, total: Option<u64>) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total.unwrap_or(0), Ordering::Relaxed);
        if let Ok(mut phase) = self.phase.lock() {
            *phase = (name, Instant::now());
        }
    }

    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn finish_phase(&self) {
        if self.terminal {
            self.draw(true);
        }
        if let (Ok(phase), Ok(mut finished)) = (self.phase.lock(), self.finished.lock()) {
            finished.push((phase.0, phase.1.elapsed().as_secs_f64()));
        }
    }

    /// How long a finished phase took (0 when it did not run).
    pub fn phase_seconds(&self, name: &str) -> f64 {
        self.finished.lock().map_or(0.0, |f| {
            f.iter().filter(|(n, _)| *n == name).map(|(_, s)| s).sum()
        })
    }

    /// Redraws (terminal) or logs (otherwise) until [`stop`](Self::stop); run on its own thread.
    pub fn report_until_stopped(&self) {
        let (every, mut last) = if self.terminal {
            (Duration::from_millis(250), Instant::now())
        } else {
            (Duration::from_secs(30), Instant::now())
        };
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= every {
                last = Instant::now();
                self.draw(false);
            }
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn draw(&self, last: bool) {
        let Ok(phase) = self.phase.lock().map(|p| *p) else {
            return;
        };
        let line = describe(
            phase.0,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            phase.1.elapsed(),
        );
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            if last {
                let _ = writeln!(err);
            }
            let _ = err.flush();
        } else {
            tracing::info!("{line}");
        }
    }
}

/// "screening 12,000/100,000 patients (2,400/s, 33s left)", or in MB for reading.
pub fn describe(phase: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / seconds;
    let (unit, scale) = if phase == "reading" || phase == "exporting" {
        ("MB", 1e6)
    } else {
        ("patients", 1.0)
    };
    let shown = |n: u64| format!("{:.0}", n as f64 / scale);
    let mut text = if total > 0 {
        format!("{phase} {}/{} {unit}", shown(done), shown(total))
    } else {
        format!("{phase} {} {unit}", shown(done))
    };
    text.push_str(&format!(" ({:.0} {unit}/s", rate / scale));
    if total > done && rate > 0.0 {
        let left = (total - done) as f64 / rate;
        text.push_str(&format!(", {} left", human_duration(left)));
    }
    text.push(')');
    text
}

fn human_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_count_rate_and_time_left() {
        assert_eq!(
            describe("screening", 250, 1000, Duration::from_secs(5)),
            "screening 250/1000 patients (50 patients/s, 15s left)"
        );
        assert_eq!(
            describe("reading", 50_000_000, 0, Duration::from_secs(2)),
            "reading 50 MB (25 MB/s)"
        );
        assert_eq!(human_duration(3725.0), "1h02m");
    }
}
