//! The one way the tests start a process (`trdscreen serve`, a nightly job to kill part way,
//! Prometheus): a [`Running`] child is killed and reaped when it goes out of scope, also when the
//! test fails half way, so no test leaves a server or a job behind.

use std::process::{Child, Command, Output};

/// A started child process, stopped (SIGKILL, then reaped) on drop.
pub struct Running(Option<Child>);

/// Starts `command`; panics with `what` when it cannot start.
pub fn spawn(command: &mut Command, what: &str) -> Running {
    Running(Some(
        command.spawn().unwrap_or_else(|e| panic!("{what}: {e}")),
    ))
}

impl Running {
    /// Waits for the child to end and collects what it wrote to its piped stdout and stderr.
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        self.0
            .take()
            .expect("not yet waited for")
            .wait_with_output()
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("not yet waited for")
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("not yet waited for")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
