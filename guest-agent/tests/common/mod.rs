//! Shared by the agent's integration tests: the control API and the
//! reflector, in process, on loopback.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use guest_agent::control::{self, AgentState};
use guest_agent::reflector::Reflector;

/// Starts the reflector and the control API (token `token`) on loopback
/// ports of their own; returns the API's address and the reflector.
pub async fn start_agent(token: &str) -> (SocketAddr, Reflector) {
    let reflector = Reflector::spawn_on("127.0.0.1:0".parse().unwrap()).unwrap();
    let state = Arc::new(AgentState::new(
        token.into(),
        reflector.local_addr().port(),
        false,
        reflector.counters(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(control::serve(listener, state));
    (addr, reflector)
}
