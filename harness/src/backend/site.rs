//! Where a part of the measurement runs, as the backend places it.
//!
//! The probe's sockets, the stream receivers, the announce watcher and the
//! connections to the guest agent all open "at the client": in the lab
//! that is the client's network namespace, on a real platform the
//! harness's own network (the harness runs on the tester's laptop). The
//! backend says which; everything else only asks a [`Site`] to open a
//! socket or start a process there, and never learns how.

use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::process::Command;

/// A place where sockets are opened and processes started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The lab namespace, if the site is one.
    netns: Option<String>,
}

impl Site {
    /// The harness's own network: plain TCP and UDP addresses.
    pub fn here() -> Site {
        Site { netns: None }
    }

    /// A lab network namespace (made by the local backend, or by a test).
    pub fn lab_namespace(ns: &str) -> Site {
        Site {
            netns: Some(ns.to_string()),
        }
    }

    /// Runs `f` so that the sockets it creates belong to the site (they stay
    /// there wherever they are used afterwards).
    pub fn enter<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> std::io::Result<T> + Send + 'static,
    {
        match &self.netns {
            Some(ns) => crate::backend::local::lab::netns::in_netns(ns, f),
            None => f().context("at the harness's own network"),
        }
    }

    /// A command that starts `program` at the site.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.netns {
            Some(ns) => {
                // `ip netns exec` replaces itself with the program, so the
                // child's PID is the program's own.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// For messages: `the lab's client namespace lmig-…` or `this machine`.
    pub fn describe(&self) -> String {
        match &self.netns {
            Some(ns) => format!("network namespace {ns}"),
            None => "this machine's network".into(),
        }
    }
}
