//! `lockstep serve`: the HTTP API and the dashboard.

pub mod dashboard;
