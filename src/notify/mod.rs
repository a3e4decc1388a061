//! Telling people: the alerts that should fire (pure, from the daemon's state), and their
//! delivery to Alertmanager.

pub mod alertmanager;
pub mod alerts;
