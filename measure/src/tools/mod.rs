//! Parsers of other tools' output, read by the benchmarks that compare
//! our probe and dirtier with them: [`ping`] (iputils), [`irtt`] (its
//! JSON), [`stress_ng`] (`--memrate --metrics`). Each error names what the
//! tool's output lacked.

pub mod irtt;
pub mod ping;
pub mod stress_ng;

/// Output a tool printed that is not what its parser expects: what is
/// missing or wrong, quoting the tool where that helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);
