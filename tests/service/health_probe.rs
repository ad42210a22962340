//! `trdscreen health` against a real `trdscreen serve` process: exit 0 while it serves, 1 for a
//! service it does not know and once nothing listens, 2 for an address that is not HOST:PORT.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn trdscreen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trdscreen"))
        .args(args)
        .output()
        .expect("runs")
}

use crate::service::free_port;

/// `trdscreen serve` as a child process (killed when dropped, as every [`crate::child::Running`]).
struct Server {
    child: crate::child::Running,
    address: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve() -> Server {
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = std::env::temp_dir().join(format!("trdscreen-health-{}", address.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("settings.toml");
    std::fs::write(&settings, format!("[grpc]\nlisten = \"{address}\"\n")).unwrap();
    let child = crate::child::spawn(
        Command::new(env!("CARGO_BIN_EXE_trdscreen"))
            .args(["serve", "-c"])
            .arg(&settings)
            // The metrics endpoint (where the build has one) must not collide with another test's.
            .env("TRDSCREEN_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "starts trdscreen serve",
    );
    let mut server = Server {
        child,
        address,
        _dir: TempDir(dir),
    };
    // Waits for the port (not a timing assertion: a bound on a wait, generous for a loaded machine).
    for _ in 0..600 {
        if let Some(status) = server.child.try_wait().unwrap() {
            let mut log = String::new();
            if let Some(mut err) = server.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut log);
            }
            panic!("trdscreen serve exited early: {status}\n{log}");
        }
        if TcpStream::connect(address).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("trdscreen serve did not listen on {address}");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn exits_0_while_serving_and_1_once_nothing_listens() {
    let mut server = serve();
    let address = server.address.to_string();

    let whole = trdscreen(&["health", "--address", &address]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    assert_eq!(String::from_utf8_lossy(&whole.stdout).trim(), "SERVING");

    let screening = trdscreen(&[
        "health",
        "--address",
        &address,
        "--service",
        "trdscreen.v1.TrdScreening",
    ]);
    assert_eq!(screening.status.code(), Some(0), "{}", stderr(&screening));

    let unknown = trdscreen(&["health", "--address", &address, "--service", "no.Such"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("NotFound"),
        "{}",
        stderr(&unknown)
    );

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let gone = trdscreen(&["health", "--address", &address, "--timeout-secs", "2"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains(&format!("cannot reach {address}")),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn an_address_that_is_not_host_and_port_is_a_usage_error() {
    for bad in ["127.0.0.1", "http://127.0.0.1:50051", ""] {
        let output = trdscreen(&["health", "--address", bad]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            stderr(&output)
        );
    }
}
