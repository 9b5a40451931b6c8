//! The harness's client of a client probe driven remotely (`client-probe
//! serve`, [`probe`]): on another machine, or at the lab's client. It
//! connects from the site the backend names.

pub mod probe;
