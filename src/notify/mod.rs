//! Telling people: the alerts that should fire, the emails and webhook requests that should
//! go (pure, from the daemon's state), and their delivery to Alertmanager, SMTP and the
//! webhooks, each off the daemon's path.

pub mod alertmanager;
pub mod alerts;
pub mod email;
pub mod events;
pub mod kube_events;
pub mod mail;
pub mod metrics;
pub mod names;
mod queue;
pub mod webhook;
pub mod webhooks;
